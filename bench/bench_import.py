"""Importing a list against its floor: `publish subscribers import` beside
Python's `csv` and `sqlite3.executemany` doing the least the import must do.

Target (issue 17): the import at no more than 5x the floor.

    python3 bench/bench_import.py [--rows 100000] [--runs 3] [--keep DIR] [--postgres]

The file is generated with a fixed seed: names (some accented), a few
hundred distinct domains (the big providers most often, a few
international ones), about 5% unsubscribed, 2% pending, 0.5% repeated
addresses in another letter case, 0.3% bad addresses and 0.1% bad statuses.

    floor           one process reads the file with `csv` and inserts a
                    tuple a row with `sqlite3.executemany`, in one
                    transaction, into a table with the columns and indexes
                    of `subscribers`: the columns an import fills for a new
                    reader (email, email_key and mailbox_key, both the
                    lowercased address, name, status, source, created_at,
                    updated_at, unsubscribed_at, consent_at, consent_ip,
                    consent_text), INSERT OR IGNORE for the repeats; the
                    store's pragmas (WAL, synchronous=NORMAL) and a bulk
                    insert's page cache. No validation, no history, no
                    suppression check. Timed in-process, from opening the
                    file to the commit.
    bare floor      the same reading, and only the file's email, name,
                    status and created_at cells into a table of those four
                    columns without an index: what is left of the work when
                    there is no schema at all (no unique key, no history).
    whole process   `publish subscribers import FILE` on a fresh newsletter
                    root (SQLite, created and migrated by that run).
    start-up        the same with a file of the header only: what the whole
                    process spends before the first row.
    in-process      `subscribers.csvio.import_csv` on a migrated, empty store.
    PostgreSQL      with --postgres, the same in-process import into a
                    throwaway PostgreSQL 15 (tests/support/postgres.py), for
                    its time alone: a lookup that slows as the list grows
                    shows here first.

Each is run --runs times, each on a fresh database; the best run counts
(the machine is shared: the others measure its load, not the import).
Wall time and CPU time (user + system, of the process or of the child)
are both printed, and both ratios: on a loaded machine the CPU figures
say more about the code.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST = [
    "Ana", "Ben", "Chloé", "Dana", "Émile", "Farah", "Günter", "Hana", "Ivan", "Jo",
    "Kai", "Léa", "Mateo", "Nia", "Oskar", "Priya", "Quinn", "Rosa", "Søren", "Tomás",
]
LAST = [
    "Abbott", "Berg", "Castillo", "Dubois", "Eriksen", "Fischer", "García", "Horvath",
    "Ito", "Jansen", "Kowalski", "López", "Müller", "Nakamura", "O'Brien", "Petrov",
]
PROVIDERS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "gmx.de"]
INTERNATIONAL = ["faß.de", "Bücher.example", "straße.de", "müller-mail.de", "ԛәлп.com"]
BAD_ADDRESSES = [
    "no-at-sign.example.com", "two@@example.com", "dot..dot@example.com",
    "josé@example.com", "x@-leading-hyphen.com", "trailing.@example.com", "x@☃.net",
]


def domains(count: int = 300) -> list[str]:
    """A few hundred distinct domains: companies and schools, and a few
    international ones."""
    made = [f"{word}{n}.example.{tld}" for n, (word, tld) in enumerate(
        (random.choice(["acme", "north", "clinic", "studio", "uni", "mail"]),
         random.choice(["com", "org", "net", "co.uk"]))
        for _ in range(count - len(PROVIDERS) - len(INTERNATIONAL))
    )]
    return PROVIDERS + INTERNATIONAL + made


def ascii_only(name: str) -> str:
    """A name as people put it in their address: no accents, no apostrophe."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return folded.replace("'", "")


def write_csv(path: Path, rows: int, seed: int = 17) -> dict[str, int]:
    """The list (see the module's docstring); what it holds, counted."""
    random.seed(seed)
    pool = domains()
    weights = [30, 10, 8, 6, 4, 3] + [0.2] * len(INTERNATIONAL) + [0.2] * (
        len(pool) - len(PROVIDERS) - len(INTERNATIONAL)
    )
    counts = dict.fromkeys(("bad", "duplicate", "unsubscribed", "pending"), 0)
    start = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    written: list[str] = []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "status", "created_at", "consent_ip"])
        for n in range(rows):
            first, last = random.choice(FIRST), random.choice(LAST)
            domain = random.choices(pool, weights)[0]
            email = f"{ascii_only(first)}.{ascii_only(last)}{n}@{domain}"
            status = "active"
            roll = random.random()
            if roll < 0.003:
                email = random.choice(BAD_ADDRESSES)
                counts["bad"] += 1
            elif roll < 0.004:
                status = "lapsed"  # not a status of any export: a bad row
                counts["bad"] += 1
            elif roll < 0.009 and written:
                email = random.choice(written).upper()
                counts["duplicate"] += 1
            elif roll < 0.059:
                status = "unsubscribed"
                counts["unsubscribed"] += 1
            elif roll < 0.079:
                status = "pending"
                counts["pending"] += 1
            written.append(email)
            joined = start + dt.timedelta(minutes=n * 7)
            writer.writerow([
                email, f"{first} {last}", status, joined.strftime("%Y-%m-%dT%H:%M:%SZ"),
                f"192.0.2.{n % 250}",
            ])
    return counts


class Timing(NamedTuple):
    wall: float
    """Seconds elapsed."""
    cpu: float
    """Seconds of CPU (user and system): less at the mercy of the machine's load."""


@contextmanager
def timing(result: list[Timing], children: bool = False) -> Iterator[None]:
    """Time the block into ``result``: this process's CPU, or its children's."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF

    def cpu() -> float:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    wall, used = time.perf_counter(), cpu()
    yield
    result.append(Timing(time.perf_counter() - wall, cpu() - used))


def floor(path: Path, database: Path) -> Timing:
    """The floor (see the module's docstring)."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from subscribers.schema import subscribers
    from subscribers.store.bulk import BULK_CACHE_KB

    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA cache_size = -{BULK_CACHE_KB}")
    dialect = sqlite.dialect()
    conn.execute(str(CreateTable(subscribers).compile(dialect=dialect)))
    for index in subscribers.indexes:
        conn.execute(str(CreateIndex(index).compile(dialect=dialect)))
    columns = (
        "email", "email_key", "mailbox_key", "name", "status", "source", "created_at",
        "updated_at", "unsubscribed_at", "consent_at", "consent_ip", "consent_text",
    )
    insert = (
        f"INSERT OR IGNORE INTO subscribers ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )
    result: list[Timing] = []
    with timing(result):
        now = dt.datetime.now(dt.UTC).isoformat()
        consent = f"Imported from {path.name}"
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            rows = [
                (email, email.lower(), email.lower(), name, status, "import", created, now,
                 now if status == "unsubscribed" else None, created, ip, consent)
                for email, name, status, created, ip in reader
            ]
        conn.execute("BEGIN")
        conn.executemany(insert, rows)
        conn.execute("COMMIT")
    conn.close()
    return result[0]


def bare_floor(path: Path, database: Path) -> Timing:
    """The bare floor: the file's own four cells into a table of those four
    columns, no index (see the module's docstring)."""
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE subscribers (email TEXT, name TEXT, status TEXT, created_at TEXT)")
    result: list[Timing] = []
    with timing(result):
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            rows = [(email, name, status, created) for email, name, status, created, _ in reader]
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO subscribers VALUES (?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    conn.close()
    return result[0]


def make_root(folder: Path) -> Path:
    shutil.copy(ROOT / "newsletter.toml", folder / "newsletter.toml")
    return folder


def whole_process(script: str, path: Path) -> tuple[Timing, str]:
    """`publish subscribers import FILE` on a fresh root; its summary line."""
    result: list[Timing] = []
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        root = make_root(Path(tmp))
        with timing(result, children=True):
            out = subprocess.run(
                [script, "--root", str(root), "subscribers", "import", str(path)],
                capture_output=True, text=True, cwd=root, check=False,
            )
    if out.returncode not in (0, 1):
        sys.exit(out.stderr)
    return result[0], out.stderr.strip().splitlines()[-1]


def in_process(path: Path) -> Timing:
    """``import_csv`` on a migrated, empty store."""
    from subscribers.csvio import import_csv
    from subscribers.store import Store

    result: list[Timing] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-import-") as tmp,
        Store.open("sqlite:///subscribers.db", Path(tmp)) as store,
        timing(result),
    ):
        import_csv(store, path)
    return result[0]


def on_postgres(path: Path) -> Timing:
    """``import_csv`` into a migrated, empty PostgreSQL database."""
    from subscribers.csvio import import_csv
    from subscribers.store import Store
    from tests.support.postgres import OwnPostgres

    server = OwnPostgres(Path(tempfile.mkdtemp(prefix="bench-import-pg-")))
    result: list[Timing] = []
    try:
        with Store.open(server.url, Path(tempfile.gettempdir())) as store, timing(result):
            import_csv(store, path)
    finally:
        server.close()
    return result[0]


def best(runs: int, measure: Callable[[], Timing]) -> Timing:
    """The least wall time and the least CPU time of ``runs`` runs."""
    timings = [measure() for _ in range(runs)]
    return Timing(min(t.wall for t in timings), min(t.cpu for t in timings))


def line(what: str, timing: Timing, base: Timing | None = None, target: str = "") -> str:
    text = f"  {what:<34} {timing.wall:6.2f} s wall {timing.cpu:6.2f} s CPU"
    if base is not None:
        text += f"   {timing.wall / base.wall:4.1f}x / {timing.cpu / base.cpu:4.1f}x the floor"
    return text + (f"   {target}" if target else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="Write the generated file here and keep it.")
    parser.add_argument("--postgres", action="store_true", help="Time one into PostgreSQL too.")
    args = parser.parse_args()
    from bench_authoring import publish_script

    script = publish_script()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        folder = Path(tmp)
        path = (args.keep or folder) / "list.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        counts = write_csv(path, args.rows)
        size = path.stat().st_size / 1e6
        header = folder / "header.csv"
        header.write_text("email,name,status,created_at,consent_ip\n", encoding="utf-8")

        def floor_run(measure: Callable[[Path, Path], Timing] = floor) -> Timing:
            for leftover in folder.glob("floor.db*"):
                leftover.unlink()
            return measure(path, folder / "floor.db")

        summary = ""

        def whole_run() -> Timing:
            nonlocal summary
            timing, summary = whole_process(script, path)
            return timing

        base = best(args.runs, floor_run)
        bare = best(args.runs, lambda: floor_run(bare_floor))
        whole = best(args.runs, whole_run)
        startup = best(args.runs, lambda: whole_process(script, header)[0])
        inside = best(args.runs, lambda: in_process(path))
        postgres = on_postgres(path) if args.postgres else None

    load = ", ".join(f"{figure:.2f}" for figure in os.getloadavg())
    print(f"import of {args.rows:,} rows ({size:.1f} MB: {counts['bad']} bad, "
          f"{counts['duplicate']} repeated, {counts['unsubscribed']} unsubscribed, "
          f"{counts['pending']} pending); best of {args.runs}; load average {load} "
          f"on {os.cpu_count()} cores")
    print(f"  publish says: {summary}")
    print(line("floor (csv + sqlite3.executemany)", base))
    print(line("whole process", whole, base, "target <= 5x"))
    print(line("  of which start-up (header only)", startup))
    print(line("in-process (import_csv)", inside, base))
    print(line("bare floor (4 columns, no index)", bare))
    print(line("  whole process against it", whole, bare))
    print(line("  in-process against it", inside, bare))
    if postgres is not None:
        print(line("in-process into PostgreSQL (once)", postgres) + "   CPU: this process only")


if __name__ == "__main__":
    main()
