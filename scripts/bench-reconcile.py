#!/usr/bin/env python3
"""Reconciliation at scale (docs/BENCHMARKS.md, SPEC §11): a file of ROWS paid orders of
which 1% are missing, checked (dry run) and applied by `creditd reconcile`, on SQLite
or PostgreSQL. Reports each run's wall time and the peak memory of the server (VmHWM,
a fresh server per run) and of the CLI.

    scripts/bench-reconcile.py target/release/creditd [--rows 1000000] [--members 100000]
        [--database postgres://postgres@127.0.0.1:5432/DB]

Seeding: MEMBERS members are activated over the API, then the 99% already paid are
recorded by a reconciliation with --apply (itself timed: a large apply).
"""

import argparse
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import http.client

ADMIN = "bench-reconcile-admin-key-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, database, port):
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--database", database],
        env=dict(os.environ, CREDITD_ADMIN_KEY=ADMIN, RUST_LOG="warn"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    raise SystemExit("creditd did not start")


def peak_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def activate(port, members, end):
    def work(first, step):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for n in range(first, members, step):
            body = json.dumps({"action": "activate", "period_end": end})
            c.request("POST", f"/v1/accounts/m{n}/membership", body=body,
                      headers={"Authorization": f"Bearer {ADMIN}",
                               "Content-Type": "application/json"})
            answer = c.getresponse()
            answer.read()
            if answer.status != 200:
                raise SystemExit(f"activate m{n}: {answer.status}")
    threads = [threading.Thread(target=work, args=(i, 8)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def write_file(path, rows, members, paid_at, only_paid):
    """Rows 0..rows-1; every 100th is the missing one (left out when only_paid)."""
    with open(path, "w") as f:
        f.write("order_id,account_id,credits,package,paid_at\n")
        for n in range(rows):
            if only_paid and n % 100 == 99:
                continue
            f.write(f"ord-{n:08d},m{n % members},,credits_100,{paid_at}\n")


def run_cli(binary, port, path, apply):
    args = ["/usr/bin/time", "-f", "%e %M", binary, "reconcile", path]
    if apply:
        args.append("--apply")
    result = subprocess.run(
        args, env=dict(os.environ, CREDITD_URL=f"http://127.0.0.1:{port}", CREDITD_KEY=ADMIN),
        capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"reconcile failed: {result.stdout} {result.stderr}")
    seconds, cli_kib = result.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(cli_kib), result.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("creditd")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--database")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="creditd-bench-reconcile-")
    database = args.database or f"sqlite://{work}/creditd.db"
    port = free_port()

    server = start(args.creditd, database, port)
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 40 * 86400))
    began = time.monotonic()
    activate(port, args.members, end)
    print(f"activated {args.members:,} members in {time.monotonic() - began:.0f} s", flush=True)
    paid_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
    time.sleep(2)
    paid, full = f"{work}/paid.csv", f"{work}/orders.csv"
    write_file(paid, args.rows, args.members, paid_at, only_paid=True)
    write_file(full, args.rows, args.members, paid_at, only_paid=False)
    print(f"file: {args.rows:,} rows, {os.path.getsize(full) / 1e6:.1f} MB", flush=True)
    seconds, cli_kib, _ = run_cli(args.creditd, port, paid, apply=True)
    print(f"seeding apply of {args.rows - args.rows // 100:,} missing orders: {seconds:.1f} s, "
          f"server peak {peak_kib(server.pid) / 1024:.0f} MiB, CLI peak {cli_kib / 1024:.0f} MiB",
          flush=True)
    server.terminate()
    server.wait()

    for name, apply in [("dry run", False), ("apply", True)]:
        server = start(args.creditd, database, port)
        seconds, cli_kib, out = run_cli(args.creditd, port, full, apply)
        print(f"{name}: {seconds:.1f} s, server peak {peak_kib(server.pid) / 1024:.0f} MiB, "
              f"CLI peak {cli_kib / 1024:.0f} MiB", flush=True)
        print("\n".join(line for line in out.splitlines()
                        if "│" in line or "recorded" in line or "missing" in line), flush=True)
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
