#!/usr/bin/env python3
"""Cost flat in history: charges and reads on a SQLite database already holding
millions of ledger entries, beside an empty one, runs interleaved.

    scripts/bench-depth.py [--work DIR] [--entries 10000000] [--deep 1000000]
                           [--seconds 10] [--rounds 2] [--requests 200] [--bin DIR]
                           [--seed-only]  (--rounds 0: the reads only)

Seeding (skipped when DIR/deep.db already holds the entries asked for; keep DIR to
measure again without seeding again): creditd on DIR/deep.db, creditd-load with charges
only and no Idempotency-Keys, first on one account (`deep-0`, until it has --deep
entries), then on 10,000 accounts (`spread-0` … `spread-9999`) until the database holds
--entries ledger entries in all. Seeding is not measured.

Then, per round: creditd-load (64 clients, charges only, every charge with an
Idempotency-Key) on the accounts `spread-*`, first on a fresh empty database, then on
DIR/deep.db, where those same accounts already have hundreds of entries each among the
millions. Last, on the deep database (once the server has done its start-up count of
every account, for /metrics), each read of an account is timed --requests times
over one keep-alive connection, for `deep-0`, for `spread-1` and for a new account
(`shallow`, one grant and ten charges), interleaved: the balance, a ledger page, a ledger
page of one rare type (`?type=grant`) and a usage page. Prints p50 / p99 per read.
"""
import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import tempfile
import sys
import time

from benchserver import Client, cpu_seconds, wait_listening

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "bench-admin-key-0123456789"
PORT = 18092
BIN = os.path.join(ROOT, "target/release")


LOG = os.path.join(tempfile.gettempdir(), "bench-depth-server.log")


def start(database):
    server = subprocess.Popen(
        [os.path.join(BIN, "creditd"), "serve", "--listen", f"127.0.0.1:{PORT}", "--database", f"sqlite://{database}"],
        env=dict(os.environ, CREDITD_ADMIN_KEY=KEY), stdout=subprocess.DEVNULL,
        stderr=open(LOG, "w"))
    wait_listening(PORT)
    return server


def stop(server):
    server.send_signal(signal.SIGTERM)
    server.wait()


def written_bytes(pid):
    """Bytes the process has had written to storage (/proc/PID/io)."""
    with open(f"/proc/{pid}/io") as io:
        return int(next(line for line in io if line.startswith("write_bytes:")).split()[1])


def load(server, prefix, accounts, seconds, *extra):
    """creditd-load's charge figures, with the server's CPU and bytes written per charge
    over the measured window (from when the generator's setup ends)."""
    generator = subprocess.Popen(
        [os.path.join(BIN, "creditd-load"), "--addr", f"127.0.0.1:{PORT}", "--key", KEY,
         "--clients", "64", "--accounts", str(accounts), "--prefix", prefix,
         "--seconds", str(seconds), "--mix", "100,0,0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    before = None
    for line in generator.stderr:
        if line.startswith("run:"):
            before = (cpu_seconds(server.pid), written_bytes(server.pid))
            break
    out, _ = generator.communicate()
    after = (cpu_seconds(server.pid), written_bytes(server.pid))
    with open(f"/proc/{server.pid}/status") as status:
        peak = int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    charge = rows["charge"]
    count = max(int(charge[1]), 1)
    before = before or after
    return {"count": int(charge[1]), "per_s": float(charge[2]), "p50": float(charge[3]),
            "p99": float(charge[4]), "cpu_us": (after[0] - before[0]) * 1e6 / count,
            "written": (after[1] - before[1]) / count, "peak_mb": peak / 1024}


def entries(database, account=None):
    with sqlite3.connect(database) as db:
        if account is None:
            return db.execute("SELECT count(*) FROM history WHERE kind = 'entry'").fetchone()[0]
        return db.execute("SELECT count(*) FROM history WHERE kind = 'entry' AND account_id = ?",
                          (account,)).fetchone()[0]


def seed(database, args):
    """Charges until deep-0 has --deep entries and the database --entries."""
    if os.path.exists(database) and entries(database) >= args.entries:
        print(f"seeded already: {entries(database):,} entries, deep-0 has "
              f"{entries(database, 'deep-0'):,}", flush=True)
        return
    started = time.monotonic()
    server = start(database)
    try:
        for prefix, accounts, wanted in (("deep", 1, args.deep), ("spread", 10_000, args.entries)):
            done = 0
            while done < wanted - (0 if prefix == "deep" else args.deep):
                run = load(server, prefix, accounts, 60, "--no-idempotency-keys")
                done += run["count"] + accounts
                print(f"   seeding {prefix}: {done:,} entries ({run['per_s']:,.0f}/s), "
                      f"{time.monotonic() - started:,.0f} s", flush=True)
    finally:
        stop(server)
    print(f"seeded {entries(database):,} entries in {time.monotonic() - started:,.0f} s; "
          f"deep-0 has {entries(database, 'deep-0'):,}; file {os.path.getsize(database) / 1e9:.1f} GB",
          flush=True)


def reads(database, args):
    server = start(database)
    try:
        # A node that runs the jobs counts every account once at start (the gauges of
        # /metrics); reads are timed after it, not beside it.
        began = time.monotonic()
        while "counted the accounts" not in open(LOG).read():
            if time.monotonic() - began > 120:
                sys.exit("the server did not count its accounts within 120 s")
            time.sleep(0.1)
        print(f"reads timed after the start-up count of accounts "
              f"({time.monotonic() - began:.1f} s after listening)")
        client = Client(PORT, KEY)
        client.call("POST", "/v1/accounts/shallow/grants",
                    {"kind": "general", "amount": 1_000_000, "source": "compensation"})
        for _ in range(10):
            client.call("POST", "/v1/accounts/shallow/charges", {"feature": "ai_extender"})
        paths = {
            "balance": "/v1/accounts/{}/balance",
            "ledger (first page)": "/v1/accounts/{}/ledger",
            "ledger ?type=grant": "/v1/accounts/{}/ledger?type=grant",
            "usage (first page)": "/v1/accounts/{}/usage",
        }
        accounts = ["shallow", "spread-1", "deep-0"]
        print(f"{'read':<22}" + "".join(f"{a + ' p50':>16} {'p99':>8}" for a in accounts))
        for name, path in paths.items():
            samples = {account: [] for account in accounts}
            for _ in range(args.requests):
                for account in accounts:
                    begin = time.perf_counter()
                    client.call("GET", path.format(account))
                    samples[account].append((time.perf_counter() - begin) * 1000)
            line = f"{name:<22}"
            for account in accounts:
                ordered = sorted(samples[account])
                p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
                line += f"{ordered[len(ordered) // 2]:>14.2f}ms {p99:>6.2f}ms"
            print(line, flush=True)
    finally:
        stop(server)


def main():
    global BIN
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", help="folder of the seeded database (default: a temporary one)")
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--deep", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed-only", action="store_true",
                        help="seed DIR/deep.db and stop (measure later with the same --work)")
    parser.add_argument("--bin", default=BIN,
                        help="folder of the creditd and creditd-load binaries (release build)")
    args = parser.parse_args()
    BIN = args.bin
    work = args.work or tempfile.mkdtemp(prefix="creditd-depth.")
    os.makedirs(work, exist_ok=True)
    deep = os.path.join(work, "deep.db")
    seed(deep, args)
    if args.seed_only:
        return
    if args.rounds:
        charges(deep, work, args)
    reads(deep, args)


def charges(deep, work, args):
    """Charges on an empty database and on the deep one, interleaved."""
    results = {"empty": [], "deep": []}
    print(f"{'database':<10} {'charges/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'CPU µs/charge':>13} "
          f"{'written B/charge':>16} {'peak MB':>8}")
    for round_ in range(args.rounds):
        print(f"-- round {round_ + 1}, {time.strftime('%H:%M:%S', time.gmtime())} UTC", flush=True)
        for name in ("empty", "deep"):
            database = deep
            if name == "empty":
                database = os.path.join(work, "empty.db")
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(database + suffix):
                        os.remove(database + suffix)
            server = start(database)
            try:
                run = load(server, "spread", 10_000, args.seconds)
            finally:
                stop(server)
            results[name].append(run)
            print(f"{name:<10} {run['per_s']:>10,.0f} {run['p50']:>7.2f} {run['p99']:>7.2f} "
                  f"{run['cpu_us']:>13.1f} {run['written']:>16,.0f} {run['peak_mb']:>8,.0f}",
                  flush=True)
    empty = statistics.mean(r["per_s"] for r in results["empty"])
    deep_mean = statistics.mean(r["per_s"] for r in results["deep"])
    print(f"-- means: empty {empty:,.0f} charges/s, deep ({entries(deep):,} entries) "
          f"{deep_mean:,.0f}: {deep_mean / empty:.0%} of empty")


if __name__ == "__main__":
    main()
