#!/usr/bin/env python3
"""creditd against the ceiling of this machine, side by side, runs interleaved.

    scripts/bench-ceiling.py [--seconds 10] [--rounds 3] [--accounts 10000,1]
                             [--build NAME=PATH ...] [--no-ceiling] [--mix 100,0,0]
                             [--bytes]

Each round runs, for each spread of accounts, the ceiling server (creditd-ceiling: checks
the key, parses the body, answers creditd's shapes, stores nothing) and then each creditd
build (default: target/release/creditd on a fresh SQLite database) under the same
creditd-load flags (64 clients, charges only by default, every write with an
Idempotency-Key). Beside the load generator's figures it reads the server's CPU time
(user + system, /proc/PID/stat) before and after the measured window and prints it per
request. Ends with the mean of each build as a share of the ceiling's. Builds the
release binaries unless --no-build is given.

With --bytes, each creditd run is followed by what its SQLite file holds once the server
has stopped (and folded its backlog): bytes of file per acknowledged change (the setup's
grants, one per account, and every answered request of the run), and the bytes in use of
each table and index (SQLite's dbstat) per change.
"""
import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

from benchserver import cpu_seconds, wait_listening

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "bench-admin-key-0123456789"
ADDR = "127.0.0.1:18090"


def start(build, path, work):
    if build == "ceiling":
        command = [path, "--listen", ADDR]
    else:
        for name in os.listdir(work):
            os.remove(os.path.join(work, name))
        command = [path, "serve", "--listen", ADDR, "--database", f"sqlite://{work}/bench.db"]
    env = dict(os.environ, CREDITD_ADMIN_KEY=KEY)
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(tempfile.gettempdir(), "bench-ceiling-server.log"), "w"))
    wait_listening(int(ADDR.split(":")[1]))
    return server


def run(build, path, accounts, args, work):
    server = start(build, path, work)
    try:
        load = subprocess.Popen(
            [os.path.join(ROOT, "target/release/creditd-load"), "--addr", ADDR, "--key", KEY,
             "--clients", str(args.clients), "--accounts", str(accounts),
             "--seconds", str(args.seconds), "--mix", args.mix]
            + (["--as-admin"] if args.as_admin else []),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The measured window starts when setup ends (the generator says so on stderr).
        before = None
        for line in load.stderr:
            if line.startswith("run:"):
                before = cpu_seconds(server.pid)
                break
        out, _ = load.communicate()
        after = cpu_seconds(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
    if args.bytes and build != "ceiling":
        stored(os.path.join(work, "bench.db"), accounts, out)
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    if "charge" not in rows or "all" not in rows:
        sys.exit(f"no figures from creditd-load:\n{out}")
    charge, every = rows["charge"], rows["all"]
    requests = int(every[1])
    result = {
        "charges_s": float(charge[2]), "p50": float(charge[3]), "p99": float(charge[4]),
        "requests_s": float(every[2]), "failed": int(every[7]),
        "cpu_us": (after - (after if before is None else before)) * 1e6 / max(requests, 1),
    }
    print(f"{build:<12} {accounts:>6} {result['charges_s']:>10,.0f} {result['p50']:>7.2f} "
          f"{result['p99']:>7.2f} {result['requests_s']:>10,.0f} {result['cpu_us']:>8.1f} "
          f"{result['failed']:>6}", flush=True)
    return result


def stored(path, accounts, out):
    """Prints bytes per acknowledged change: of the file, and in use by each table."""
    every = next(line.split() for line in out.splitlines() if line.startswith("all"))
    changes = accounts + int(every[1]) - int(every[7])
    size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    with sqlite3.connect(path) as db:
        tables = db.execute(
            "SELECT name, sum(pgsize - unused) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
        free = db.execute("PRAGMA freelist_count").fetchone()[0] * db.execute(
            "PRAGMA page_size").fetchone()[0]
    used = sum(b for _, b in tables)
    print(f"   bytes: {changes:,} changes, file {size / changes:,.0f} B/change "
          f"({size / 1e6:,.1f} MB), in use {used / changes:,.0f}, free pages {free / changes:,.0f}")
    for name, in_use in tables[:8]:
        print(f"   {name:<32} {in_use / changes:>8,.0f} B/change")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--accounts", default="10000,1")
    parser.add_argument("--mix", default="100,0,0")
    parser.add_argument("--build", action="append", default=[],
                        help="NAME=PATH of a creditd binary (default: creditd=target/release/creditd)")
    parser.add_argument("--no-ceiling", action="store_true")
    parser.add_argument("--as-admin", action="store_true",
                        help="run the load with the admin key (every change audited)")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--bytes", action="store_true",
                        help="after each creditd run, the bytes its SQLite file holds per change")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "creditd"],
                       cwd=ROOT, check=True)
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "creditd-loadgen"],
                       cwd=ROOT, check=True)
    builds = [tuple(b.split("=", 1)) for b in args.build] or [
        ("creditd", os.path.join(ROOT, "target/release/creditd"))]
    if not args.no_ceiling:
        builds.insert(0, ("ceiling", os.path.join(ROOT, "target/release/creditd-ceiling")))
    work = tempfile.mkdtemp(prefix="creditd-ceiling.")
    results = {}
    try:
        print(f"{'build':<12} {'accts':>6} {'charges/s':>10} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'all req/s':>10} {'CPU µs/req':>8} {'failed':>6}")
        for round_ in range(args.rounds):
            print(f"-- round {round_ + 1}, {time.strftime('%H:%M:%S', time.gmtime())} UTC", flush=True)
            for accounts in [int(a) for a in args.accounts.split(",")]:
                for build, path in builds:
                    results.setdefault((build, accounts), []).append(
                        run(build, path, accounts, args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("-- means")
    for (build, accounts), runs in results.items():
        mean = statistics.mean(r["charges_s"] for r in runs)
        line = (f"{build:<12} {accounts:>6} {mean:>10,.0f} charges/s, CPU "
                f"{statistics.mean(r['cpu_us'] for r in runs):.1f} µs/request, p99 "
                f"{max(r['p99'] for r in runs):.2f} ms (worst)")
        ceiling = results.get(("ceiling", accounts))
        if ceiling and build != "ceiling":
            line += f", {mean / statistics.mean(r['charges_s'] for r in ceiling):.0%} of the ceiling"
        print(line)


if __name__ == "__main__":
    main()
