#!/usr/bin/env python3
"""The cost of the credits page's reads at depth (docs/BENCHMARKS.md): two accounts with
the same last 90 days (10 charges a day), one of them with DEPTH older charges before.
If a read's cost followed the whole history, the deep account's would grow with DEPTH.

    scripts/bench-reads.py target/release/creditd [--depth 100000] [--requests 200]

Starts creditd on a test clock in a temporary folder; prints p50 / p99 per read and
account, and the ratio deep / shallow.
"""

import argparse
import os
import socket
import subprocess
import tempfile
import time

from benchserver import Client

ADMIN = "bench-reads-admin-key-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def charges(client, account, count):
    for _ in range(count):
        client.call("POST", f"/v1/accounts/{account}/charges", {"feature": "image_color_change"})


def percentiles(samples):
    samples = sorted(samples)
    return samples[len(samples) // 2], samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("creditd")
    parser.add_argument("--depth", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="creditd-bench-reads-")
    port = free_port()
    server = subprocess.Popen(
        [args.creditd, "serve", "--test-clock", "--listen", f"127.0.0.1:{port}",
         "--database", f"sqlite://{work}/creditd.db"],
        env=dict(os.environ, CREDITD_ADMIN_KEY=ADMIN),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        client = Client(port, ADMIN)
        for account in ["shallow", "deep"]:
            client.call("POST", f"/v1/accounts/{account}/grants",
                        {"kind": "general", "amount": 1_000_000_000, "source": "compensation"})
        started = time.monotonic()
        charges(client, "deep", args.depth)
        seeded = time.monotonic() - started
        # The older history is more than 90 days behind both accounts' recent days.
        client.call("POST", "/v1/test-clock", {"advance_seconds": 100 * 86400})
        for _ in range(90):
            for account in ["shallow", "deep"]:
                charges(client, account, 10)
            client.call("POST", "/v1/test-clock", {"advance_seconds": 86400})
        print(f"seeded {args.depth:,} older charges in {seeded:.0f} s; "
              f"then 900 charges over 90 days on each account")
        reads = {
            "balance-history (90 days)": "/v1/accounts/{}/balance-history",
            "usage (first page, 50)": "/v1/accounts/{}/usage",
            "ledger (first page, 50)": "/v1/accounts/{}/ledger",
            "balance": "/v1/accounts/{}/balance",
        }
        print(f"{'read':<28} {'shallow p50':>12} {'p99':>8} {'deep p50':>10} {'p99':>8} {'p99 ratio':>10}")
        for name, path in reads.items():
            figures = {}
            # Interleaved, so both accounts see the same machine.
            samples = {"shallow": [], "deep": []}
            for _ in range(args.requests):
                for account in ["shallow", "deep"]:
                    begin = time.perf_counter()
                    client.call("GET", path.format(account))
                    samples[account].append((time.perf_counter() - begin) * 1000)
            for account in samples:
                figures[account] = percentiles(samples[account])
            print(f"{name:<28} {figures['shallow'][0]:>10.2f}ms {figures['shallow'][1]:>6.2f}ms "
                  f"{figures['deep'][0]:>8.2f}ms {figures['deep'][1]:>6.2f}ms "
                  f"{figures['deep'][1] / figures['shallow'][1]:>10.2f}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
