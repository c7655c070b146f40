#!/usr/bin/env python3
"""Slow and idle clients against creditd (issue 15): how fast /healthz and charges
answer while thousands of connections send nothing and hundreds trickle half a request
head, with creditd limited to a given number of open files.

    scripts/bench-idle-clients.py target/release/creditd [--open-files 1024]
        [--idle 2000] [--slowloris 200] [--requests 200]

Starts creditd under `ulimit -n OPEN_FILES` on a fresh SQLite database, opens the idle
and slow connections (the slow ones send one more header byte every 5 s), then times
REQUESTS `/healthz` calls and REQUESTS charges, each on a new connection, and prints
p50, p99 and the slowest, and how many failed. Needs only the Python standard library.
"""

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ADMIN = "bench-idle-admin-key-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None, timeout=10.0):
    """Status of one request on a new connection, or None if it failed."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method,
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json",
                 "Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except Exception:
        return None


def still_open(sock):
    """Whether the server has not closed this connection."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def timed(port, method, path, body, count):
    times, failed = [], 0
    for _ in range(count):
        started = time.perf_counter()
        status = call(port, method, path, body)
        times.append(time.perf_counter() - started)
        if status is None or status >= 500:
            failed += 1
    times.sort()
    return {
        "p50_ms": round(times[len(times) // 2] * 1000, 2),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))] * 1000, 2),
        "max_ms": round(times[-1] * 1000, 2),
        "failed": failed,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--open-files", type=int, default=1024)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--slowloris", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.idle + args.slowloris + 512
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))

    work = tempfile.mkdtemp(prefix="creditd-idle-")
    port = free_port()
    server = subprocess.Popen(
        ["sh", "-c", f'ulimit -n {args.open_files} && exec "$0" "$@"', args.binary,
         "serve", "--listen", f"127.0.0.1:{port}", "--database", f"sqlite://{work}/idle.db"],
        env=dict(os.environ, CREDITD_ADMIN_KEY=ADMIN, RUST_LOG="warn"),
        stderr=open(os.path.join(work, "server.log"), "w"))
    try:
        for _ in range(200):
            if call(port, "GET", "/healthz", timeout=1) == 200:
                break
            time.sleep(0.05)
        call(port, "POST", "/v1/accounts/load/grants",
             {"kind": "general", "amount": 1_000_000, "source": "promotion"})
        before = {
            "healthz": timed(port, "GET", "/healthz", None, args.requests),
            "charge": timed(port, "POST", "/v1/accounts/load/charges",
                            {"feature": "ai_extender"}, args.requests),
        }

        idle, refused = [], 0
        for _ in range(args.idle):
            try:
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                refused += 1
        slow = []
        for i in range(args.slowloris):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(f"POST /v1/accounts/slow{i}/grants HTTP/1.1\r\nHost: x\r\n".encode())
                slow.append(s)
            except OSError:
                refused += 1
        stop = threading.Event()

        def trickle():
            while not stop.wait(5):
                for s in slow:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        pass

        threading.Thread(target=trickle, daemon=True).start()
        time.sleep(1)
        during = {
            "healthz": timed(port, "GET", "/healthz", None, args.requests),
            "charge": timed(port, "POST", "/v1/accounts/load/charges",
                            {"feature": "ai_extender"}, args.requests),
        }
        stop.set()
        alive = sum(1 for s in idle + slow if still_open(s))
        print(json.dumps({
            "open_files": args.open_files, "idle": args.idle, "slowloris": args.slowloris,
            "connects_refused": refused, "crowd_still_open_at_end": alive,
            "without_crowd": before, "with_crowd": during,
        }, indent=2))
        for s in idle + slow:
            s.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
