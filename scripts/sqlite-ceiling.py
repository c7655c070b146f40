#!/usr/bin/env python3
"""What SQLite alone can commit on this machine, with no HTTP and no creditd code.

    python3 scripts/sqlite-ceiling.py [rowid|without_rowid|no_idempotency] [PAGE_SIZE]

A model of the writer's work per charge, in batches of 40 over 10,000 accounts, in WAL
mode with synchronous = FULL (an fsync per commit): update the account's state row
(700 bytes), append a ledger entry keyed by (account, number) (200 bytes), and record
an idempotency key (a random UUID) with a 300-byte answer, into a table prefilled with
200,000 keys (PRE=N to change). Prints charges per second and the bytes the process
wrote to the database files per charge (WAL and checkpoints). Python's own overhead is
included, so the figures are a ceiling only roughly; see docs/BENCHMARKS.md.
"""
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid

variant = sys.argv[1] if len(sys.argv) > 1 else "rowid"
page_size = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
prefill = int(os.environ.get("PRE", "200000"))
ACCOUNTS, BATCH, BATCHES = 10_000, 40, 400

folder = tempfile.mkdtemp()
db = sqlite3.connect(os.path.join(folder, "ceiling.db"), isolation_level=None)
db.execute(f"pragma page_size={page_size}")
db.execute("pragma journal_mode=wal")
db.execute("pragma synchronous=full")
db.execute("pragma cache_size=-65536")
db.execute("create table accounts(id text primary key, state blob, seq int) without rowid")
db.execute(
    "create table history(account_id text, number int, at int, data blob,"
    " primary key(account_id, number)) without rowid"
)
if variant == "rowid":
    db.execute(
        "create table idem(id integer primary key, label text unique, account text,"
        " digest blob, status int, body text, at int)"
    )
    db.execute("create index idem_at on idem(at)")
    insert_key = "insert into idem(label, account, digest, status, body, at) values(?,?,?,?,?,?)"
else:
    db.execute(
        "create table idem(label text primary key, account text, digest blob, status int,"
        " body text, at int) without rowid"
    )
    insert_key = "insert into idem values(?,?,?,?,?,?)"

accounts = [f"load-0123abcd-{i}" for i in range(ACCOUNTS)]
db.execute("begin")
db.executemany("insert into accounts values(?,?,0)", [(a, os.urandom(700)) for a in accounts])
db.executemany(
    insert_key,
    ((f"bench\n{uuid.uuid4()}", "x", os.urandom(32), 200, "x" * 300, 0) for _ in range(prefill)),
)
db.execute("commit")


def bytes_written():
    with open("/proc/self/io") as io:
        return int(io.read().split("write_bytes: ")[1].split()[0])


seqs = [0] * ACCOUNTS
written, started = bytes_written(), time.time()
for t in range(BATCHES):
    picked = random.sample(range(ACCOUNTS), BATCH)
    db.execute("begin immediate")
    db.executemany(
        "update accounts set state=?, seq=? where id=?",
        [(os.urandom(700), seqs[i] + 1, accounts[i]) for i in picked],
    )
    entries = []
    for i in picked:
        seqs[i] += 1
        entries.append((accounts[i], seqs[i], t, os.urandom(200)))
    db.executemany("insert into history values(?,?,?,?)", entries)
    if variant != "no_idempotency":
        db.executemany(
            insert_key,
            [
                (f"bench\n{uuid.uuid4()}", accounts[i], os.urandom(32), 201, "x" * 300, t)
                for i in picked
            ],
        )
    db.execute("commit")
elapsed = time.time() - started
charges = BATCH * BATCHES
print(
    f"{variant}, {page_size}-byte pages: {charges / elapsed:.0f} charges/s, "
    f"{(bytes_written() - written) / charges:.0f} bytes written per charge"
)
db.close()
shutil.rmtree(folder)
