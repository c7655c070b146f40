#!/usr/bin/env python3
"""creditd on PostgreSQL beside the plain baseline and pgledger, runs interleaved.

    scripts/bench-pgledger.py --pgledger DIR [--seconds 10] [--rounds 2]
                              [--accounts 10000,1] [--mix 100,0,0] [--no-build]
    scripts/bench-pgledger.py --build NAME=BINARY --build NAME=BINARY … [--seconds …]

With --build, only creditd (group commit) runs, once per build named, interleaved on
the same footing, and the means are compared with the first build's.

pgledger (github.com/pgr0ss/pgledger) is the ledger a PostgreSQL shop would pick: plain
SQL functions, one transaction per transfer. It is not part of this repository: DIR is a
checkout of it, or its bare git directory (the `fetch` tool's mirror), whose SQL
(`vendor/scoville-pgsql-ulid/*.sql`, `pgledger.sql`) is loaded into a scratch database
of the same PostgreSQL. Nothing of it is copied here.

Each round runs, for each spread of accounts (10,000; 1, a hot account), on a fresh
database each:
- creditd: one node of `creditd serve` (group commit) driven by creditd-load, 64
  clients over HTTP, charges only by default, every write with an Idempotency-Key;
- per-request: the same node committing one transaction per request (`--commit
  per-request`), the plain way through the same server;
- plain: `creditd-load --plain-sql`, the same clients and mix as one transaction per
  request straight on PostgreSQL (`SELECT … FOR UPDATE`, `UPDATE`, `INSERT`), no HTTP;
- pgledger: pgbench calling `pgledger_create_transfer` with 4 and with 16 clients
  (prepared statements), the better of the two kept. On 10,000 accounts a transfer
  goes between two distinct random accounts, as pgledger's own performance check does;
  on a hot account every transfer is from that one account to a random other (pgledger
  needs two accounts per transfer: it locks both, so the hot one is locked by all).

Beside each figure: the CPU time of every PostgreSQL process (and of creditd) over the
measured window, per request or transfer (/proc/PID/stat; backends that end during the
window are counted through their postmaster's reaped children), and how many autovacuum
and autoanalyze runs the scratch database's tables had in that window.

Ends with the means and the ratios the issue asks for: creditd against its own
per-request commit, against plain, and against pgledger. PostgreSQL is
CREDITD_BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432), started by
scripts/postgres-up.sh if it is down.
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchserver import cpu_seconds, wait_listening

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "bench-admin-key-0123456789"
ADDR = "127.0.0.1:18091"
SERVER = os.environ.get("CREDITD_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
DATABASE = f"creditd_bench_pgledger_{os.getpid()}"
PGLEDGER_SQL = ["vendor/scoville-pgsql-ulid/ulid-to-uuid.sql",
                "vendor/scoville-pgsql-ulid/uuid-to-ulid.sql", "pgledger.sql"]


def psql(*args, database="postgres"):
    subprocess.run(["psql", "-qX", "-v", "ON_ERROR_STOP=1", f"{SERVER}/{database}", *args],
                   check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))


def maintenance_runs():
    """Autovacuum and autoanalyze runs so far on the scratch database's tables."""
    out = subprocess.run(
        ["psql", "-qXtA", f"{SERVER}/{DATABASE}", "-c",
         "SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_user_tables"],
        check=True, capture_output=True, text=True).stdout
    return int(out.strip() or 0)


def fresh_database():
    """A new scratch database, and a checkpoint, so that every run starts at the same
    point of PostgreSQL's checkpoint cycle: a checkpoint that fell inside some 10 s runs
    and not others (full-page images of every page first touched after it) made the
    same build's runs differ twofold."""
    psql("-c", f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    psql("-c", f"CREATE DATABASE {DATABASE}")
    psql("-c", "CHECKPOINT")


def pgledger_sources(path, into):
    """The SQL files of pgledger, from a checkout or from a bare git directory."""
    files = []
    for name in PGLEDGER_SQL:
        if os.path.exists(os.path.join(path, name)):
            files.append(os.path.join(path, name))
            continue
        text = subprocess.run(["git", "--git-dir", path, "show", f"HEAD:{name}"],
                              check=True, capture_output=True, text=True).stdout
        target = os.path.join(into, os.path.basename(name))
        with open(target, "w") as out:
            out.write(text)
        files.append(target)
    return files


def postgres_cpu():
    """CPU of every PostgreSQL process so far: the live ones, and the postmaster's reaped
    children (backends whose connection closed during the window)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() != "postgres":
                    continue
            total += cpu_seconds(pid)
            with open(f"/proc/{pid}/stat") as stat:
                parent = stat.read().rsplit(")", 1)[1].split()[1]
            with open(f"/proc/{parent}/comm") as comm:
                if comm.read().strip() != "postgres":
                    total += cpu_seconds(pid, children=True)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def measured(command, server=None):
    """Runs creditd-load; CPU is read from when its setup ends (it says so on stderr)."""
    load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    before = None
    for line in load.stderr:
        if line.startswith("run:"):
            before = (postgres_cpu(), server and cpu_seconds(server.pid), maintenance_runs())
            break
    out, _ = load.communicate()
    time.sleep(0.5)  # until the postmaster has reaped the backends of closed connections
    after = (postgres_cpu(), server and cpu_seconds(server.pid), maintenance_runs())
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    if "charge" not in rows or before is None:
        sys.exit(f"no figures from creditd-load:\n{out}")
    charge, count = rows["charge"], max(int(rows["all"][1]), 1)
    return {"per_s": float(charge[2]), "p50": float(charge[3]), "p99": float(charge[4]),
            "pg_us": (after[0] - before[0]) * 1e6 / count,
            "creditd_us": (after[1] - before[1]) * 1e6 / count if server else 0.0,
            "autovacuum": after[2] - before[2]}


def creditd(accounts, args, commit="group", binary=None):
    fresh_database()
    server = subprocess.Popen(
        [binary or os.path.join(ROOT, "target/release/creditd"), "serve", "--listen", ADDR,
         "--database", f"{SERVER}/{DATABASE}", "--commit", commit],
        env=dict(os.environ, CREDITD_ADMIN_KEY=KEY), stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(tempfile.gettempdir(), "bench-pgledger-server.log"), "w"))
    try:
        wait_listening(int(ADDR.split(":")[1]))
        return measured(
            [os.path.join(ROOT, "target/release/creditd-load"), "--addr", ADDR, "--key", KEY,
             "--clients", "64", "--accounts", str(accounts), "--seconds", str(args.seconds),
             "--mix", args.mix], server)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()


def plain(accounts, args):
    fresh_database()
    return measured(
        [os.path.join(ROOT, "target/release/creditd-load"), "--plain-sql", f"{SERVER}/{DATABASE}",
         "--clients", "64", "--accounts", str(accounts), "--seconds", str(args.seconds),
         "--mix", args.mix])


def pgledger(accounts, args, sources, work):
    """pgbench on pgledger with 4 and 16 clients; the better run is kept."""
    if accounts == 1:
        # The hot account is pgla_0; every transfer goes from it to one of 10,000 others.
        pick = ("\\set to random(1, 10000)\n"
                "SELECT id FROM pgledger_create_transfer('pgla_0', 'pgla_' || :to, 1);\n")
        others = 10_000
    else:
        pick = (f"\\set from random(1, {accounts})\n"
                f"\\set to 1 + (:from + random(0, {accounts - 2})) % {accounts}\n"
                "SELECT id FROM pgledger_create_transfer('pgla_' || :from, 'pgla_' || :to, 1);\n")
        others = accounts
    script = os.path.join(work, "transfer.sql")
    with open(script, "w") as out:
        out.write(pick)
    best = None
    for clients in (4, 16):
        fresh_database()
        psql("--single-transaction", *sum((["-f", f] for f in sources), []), database=DATABASE)
        psql("-c", "INSERT INTO pgledger_accounts (id, name, currency, allow_negative_balance,"
             " allow_positive_balance, created_at, updated_at)"
             f" SELECT 'pgla_' || n, 'acct', 'CREDITS', true, true, now(), now()"
             f" FROM generate_series(0, {others}) n", "-c", "VACUUM ANALYZE", database=DATABASE)
        before, runs = postgres_cpu(), maintenance_runs()
        out = subprocess.run(
            ["pgbench", "-n", "-M", "prepared", "-f", script, "-c", str(clients),
             "-j", str(min(clients, 2)), "-T", str(args.seconds), f"{SERVER}/{DATABASE}"],
            check=True, capture_output=True, text=True).stdout
        time.sleep(0.5)
        pg_us, runs = (postgres_cpu() - before) * 1e6, maintenance_runs() - runs
        tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
        pg_us /= max(int(re.search(r"transactions actually processed: (\d+)", out).group(1)), 1)
        latency = float(re.search(r"latency average = ([0-9.]+) ms", out).group(1))
        failed = int(re.search(r"number of failed transactions: (\d+)", out).group(1))
        if failed:
            sys.exit(f"pgledger: {failed} transfers failed:\n{out}")
        print(f"   pgledger with {clients} clients: {tps:,.0f} transfers/s, "
              f"latency average {latency:.2f} ms, PostgreSQL CPU {pg_us:.0f} µs/transfer",
              flush=True)
        if best is None or tps > best["per_s"]:
            best = {"per_s": tps, "p50": latency, "p99": float("nan"), "pg_us": pg_us,
                    "creditd_us": 0.0, "autovacuum": runs}
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pgledger",
                        help="a checkout of pgr0ss/pgledger, or its bare git directory")
    parser.add_argument("--build", action="append", default=[], metavar="NAME=BINARY",
                        help="compare creditd builds instead (group commit, interleaved, the "
                             "first the reference): no baseline, no pgledger")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--accounts", default="10000,1")
    parser.add_argument("--mix", default="100,0,0")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    builds = [build.split("=", 1) for build in args.build]
    if not builds and not args.pgledger:
        parser.error("--pgledger is needed, unless builds are compared (--build)")
    subprocess.run([os.path.join(ROOT, "scripts/postgres-up.sh")], check=True)
    if not args.no_build:
        for package in ("creditd", "creditd-loadgen"):
            subprocess.run(["cargo", "build", "--release", "--locked", "-p", package],
                           cwd=ROOT, check=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-pgledger.") as work:
        sources = None if builds else pgledger_sources(args.pgledger, work)
        systems = [(name, lambda a, path=path: creditd(a, args, binary=path))
                   for name, path in builds] or [
            ("creditd", lambda a: creditd(a, args)),
            ("per-request", lambda a: creditd(a, args, "per-request")),
            ("plain", lambda a: plain(a, args)),
            ("pgledger", lambda a: pgledger(a, args, sources, work))]
        try:
            print(f"{'system':<11} {'accts':>6} {'per s':>10} {'p50 ms':>7} {'p99 ms':>7} "
                  f"{'PG CPU µs/op':>12} {'creditd µs/op':>13} {'autovacuum':>10}")
            for round_ in range(args.rounds):
                print(f"-- round {round_ + 1}, {time.strftime('%H:%M:%S', time.gmtime())} UTC",
                      flush=True)
                for accounts in [int(a) for a in args.accounts.split(",")]:
                    for system, measure in systems:
                        result = measure(accounts)
                        results.setdefault((system, accounts), []).append(result)
                        print(f"{system:<11} {accounts:>6} {result['per_s']:>10,.0f} "
                              f"{result['p50']:>7.2f} {result['p99']:>7.2f} "
                              f"{result['pg_us']:>12.0f} {result['creditd_us']:>13.0f} "
                              f"{result['autovacuum']:>10}", flush=True)
        finally:
            psql("-c", f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    if builds:
        for accounts in [int(a) for a in args.accounts.split(",")]:
            means = [(name, statistics.mean(r["per_s"] for r in results[(name, accounts)]))
                     for name, _ in builds]
            print(f"{accounts:>6} accounts: " + ", ".join(
                f"{name} {mean:,.0f} charges/s ({mean / means[0][1]:.3f}x)" for name, mean in means))
        return
    print("-- means (pgledger: the better of 4 and 16 clients; its p50 column is pgbench's mean latency)")
    for accounts in [int(a) for a in args.accounts.split(",")]:
        means = {system: statistics.mean(r["per_s"] for r in results[(system, accounts)])
                 for system in ("creditd", "per-request", "plain", "pgledger")}
        print(f"{accounts:>6} accounts: creditd {means['creditd']:,.0f} charges/s, per-request "
              f"{means['per-request']:,.0f}, plain {means['plain']:,.0f}, pgledger "
              f"{means['pgledger']:,.0f} transfers/s; creditd is "
              f"{means['creditd'] / means['per-request']:.2f}x per-request, "
              f"{means['creditd'] / means['plain']:.2f}x plain and "
              f"{means['creditd'] / means['pgledger']:.2f}x pgledger")


if __name__ == "__main__":
    main()
