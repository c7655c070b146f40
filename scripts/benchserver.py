"""What the benchmark scripts share about a server under test: waiting until it listens,
reading its CPU time, and a keep-alive HTTP client of its API."""
import http.client
import json
import os
import socket
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def wait_listening(port):
    """Returns once something accepts connections on 127.0.0.1:PORT (30 s at most)."""
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing started listening on port {port}")


def cpu_seconds(pid, children=False):
    """User + system CPU of a process (with children: of its reaped children), from
    /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / TICK


class Client:
    """One keep-alive connection to creditd's API with a bearer key."""

    def __init__(self, port, key):
        self.key = key
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None):
        """The answer's JSON (None if empty); any status from 300 up ends the script."""
        headers = {"Authorization": f"Bearer {self.key}"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        answer = self.conn.getresponse()
        raw = answer.read()
        if answer.status >= 300:
            sys.exit(f"{method} {path}: {answer.status} {raw[:200]!r}")
        return json.loads(raw) if raw else None
