#!/usr/bin/env python3
"""The server's CPU time per request, broken down by stage, from a perf profile.

    scripts/cpu-stages.py [--seconds 10] [--accounts 10000] [--binary target/release/creditd]
                          [--perf-seconds 4]

Starts creditd (or --ceiling, the ceiling server) on a fresh SQLite database, runs
creditd-load (64 clients, charges only), and during the middle of the run samples the
server with `perf record -e cpu-clock --call-graph dwarf`. Each sample is put in the
first stage below whose pattern matches one of its frames (so a malloc under the SQL
engine counts as SQL, and one under the ledger core as the core). The server's CPU
time per request (/proc/PID/stat, the whole measured window) is then split by the
stages' shares of the samples.
"""
import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchserver import cpu_seconds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "bench-admin-key-0123456789"
ADDR = "127.0.0.1:18091"

# Stages known by where a sample is, anywhere in its stack: the first that matches wins
# (so a malloc or memcpy under the SQL engine counts as SQL, under the core as the core).
CONTEXT = [
    ("fsync wait", r"fsync|fdatasync|jbd2|ext4_sync|blkdev_issue_flush|file_write_and_wait"),
    ("SQL", r"sqlite3|sqlx_sqlite::|sqlx_core::"),
    ("encoding of states", r"creditd_store::columns|creditd_store::sqlite::backlog|"
                           r"creditd_store::records|serde_json::ser::.*creditd_ledger"),
    ("ledger core", r"creditd_ledger::"),
    ("store (rest)", r"creditd_store::"),
    ("parse", r"creditd_server::http::json|serde_json::de::|serde_path_to_error"),
    ("answer", r"creditd_server::answer|serde_json::ser::|serde_json::value::ser"),
    ("metrics and log", r"creditd_server::http::observe|creditd_server::metrics|tracing|"
                        r"creditd::local::.*Log|fmt::write|Formatter"),
]
# The rest by the innermost frame that says what it is.
INNERMOST = [
    ("queue hand-off", r"creditd_server::writer|tokio::sync::|futex|finish_task_switch|"
                       r"__schedule|schedule\b|try_to_wake_up|wake_up|tokio::runtime::park|"
                       r"epoll|eventfd|tokio::runtime::|flume::|std::thread::.*park|syscall$"),
    ("HTTP and auth", r"hyper::|axum::|tower|http::|creditd_server::|tcp_|sock_|__sys_|"
                      r"ip_|__netif|net_rx|loopback|_copy_|copy_user|ksys_|vfs_"),
]
STAGES = [stage for stage, _ in CONTEXT + INNERMOST] + ["other"]
CONTEXT_COMPILED = [(stage, re.compile(pattern)) for stage, pattern in CONTEXT]
INNERMOST_COMPILED = [(stage, re.compile(pattern)) for stage, pattern in INNERMOST]


def samples(script_text):
    """Each sample's frames (symbols), leaf first, with the thread's name."""
    for block in script_text.split("\n\n"):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        thread = lines[0].split()[0]
        frames = []
        for line in lines[1:]:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                frames.append(parts[1])
        yield thread, frames


def classify(frames):
    for stage, pattern in CONTEXT_COMPILED:
        if any(pattern.search(frame) for frame in frames):
            return stage
    for frame in frames:
        for stage, pattern in INNERMOST_COMPILED:
            if pattern.search(frame):
                return stage
    return "other"


def report(script, cpu_per_request, requests, show):
    counts = collections.Counter()
    threads = collections.Counter()
    frames_of = collections.defaultdict(collections.Counter)
    for thread, frames in samples(script):
        stage = classify(frames)
        counts[stage] += 1
        threads[thread] += 1
        frames_of[stage][" <- ".join(frames[:4])] += 1
    total = sum(counts.values())
    print(f"server CPU per request: {cpu_per_request:.1f} µs ({requests:,} requests, "
          f"{total:,} samples)")
    print(f"{'stage':<22} {'share':>6} {'µs/request':>10}")
    for stage in STAGES:
        share = counts[stage] / total if total else 0
        print(f"{stage:<22} {share:>6.1%} {share * cpu_per_request:>10.1f}")
    print("samples by thread: " + ", ".join(f"{t} {n / total:.0%}" for t, n in threads.most_common(6)))
    for stage in STAGES:
        for frames, n in frames_of[stage].most_common(show):
            print(f"  {stage}: {n}: {frames}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--perf-seconds", type=int, default=4)
    parser.add_argument("--accounts", type=int, default=10000)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/creditd"))
    parser.add_argument("--ceiling", action="store_true",
                        help="profile target/release/creditd-ceiling instead")
    parser.add_argument("--show", type=int, default=0,
                        help="print the commonest frames of each stage, this many")
    parser.add_argument("--from-script", metavar="FILE",
                        help="classify this saved `perf script` output instead of running")
    parser.add_argument("--save-script", metavar="FILE",
                        help="save the `perf script` output here")
    args = parser.parse_args()
    if args.from_script:
        with open(args.from_script) as saved:
            header = saved.readline().split()
            report(saved.read(), float(header[1]), int(header[2]), args.show)
        return
    work = tempfile.mkdtemp(prefix="creditd-stages.")
    env = dict(os.environ, CREDITD_ADMIN_KEY=KEY)
    if args.ceiling:
        command = [os.path.join(ROOT, "target/release/creditd-ceiling"), "--listen", ADDR]
    else:
        command = [args.binary, "serve", "--listen", ADDR, "--database", f"sqlite://{work}/bench.db"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        load = subprocess.Popen(
            [os.path.join(ROOT, "target/release/creditd-load"), "--addr", ADDR, "--key", KEY,
             "--accounts", str(args.accounts), "--seconds", str(args.seconds), "--mix", "100,0,0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in load.stderr:
            if line.startswith("run:"):
                break
        before = cpu_seconds(server.pid)
        time.sleep(max(0.0, (args.seconds - args.perf_seconds) / 2))
        data = os.path.join(work, "perf.data")
        subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "--call-graph",
                        "dwarf,16384", "-p", str(server.pid), "-o", data, "--", "sleep",
                        str(args.perf_seconds)], check=True, stderr=subprocess.DEVNULL)
        out, _ = load.communicate()
        after = cpu_seconds(server.pid)
        script = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,ip,sym"],
                                capture_output=True, text=True, check=True).stdout
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    requests = 0
    for line in out.splitlines():
        if line.startswith("all"):
            requests = int(line.split()[1])
    print(out)
    if requests == 0:
        sys.exit("no requests answered")
    cpu_per_request = (after - before) * 1e6 / requests
    if args.save_script:
        with open(args.save_script, "w") as saved:
            saved.write(f"# {cpu_per_request} {requests}\n{script}")
    report(script, cpu_per_request, requests, args.show)


if __name__ == "__main__":
    main()
