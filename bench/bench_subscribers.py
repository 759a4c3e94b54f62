"""How the subscriber list scales, and how fast the signup service answers.

Targets: importing a 100,000-row CSV under 15 s (whole process); exporting
1,000,000 subscribers in constant memory; POST /subscribe at least 300
requests/s on loopback with SQLite.

    python3 bench/bench_subscribers.py [--rows 100000] [--big 1000000]
                                       [--seconds 10] [--requests 4000]

Each part runs in a temporary newsletter root with the repository's
settings and a fresh SQLite database:

1. import: a generated CSV (names, a few unsubscribed, some bad rows) through
   `publish subscribers import` under /usr/bin/time -v; then again, which
   must change nothing.
2. export: `publish subscribers export -o FILE` over --rows and over --big
   subscribers; peak RSS the same for both means memory does not grow with
   the list.
3. signups: the web service as `publish serve` runs it (uvicorn, a
   confirmation mailer process, the outbox transport), with its rate limits
   lifted, and a load generator: wrk for --seconds if it is installed (Debian: wrk),
   otherwise a pool of httpx clients sending --requests. Each request is a
   new address, so each one is a pending subscriber, two events and a
   confirmation message written to the outbox; the rate counts until the
   last message is written.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_authoring import publish_script, timed

ROOT = Path(__file__).resolve().parent.parent


def make_root(folder: Path) -> Path:
    shutil.copy(ROOT / "newsletter.toml", folder / "newsletter.toml")
    return folder


def write_csv(path: Path, rows: int) -> int:
    """A list like an editor's: mostly active, some unsubscribed, 0.1% broken."""
    bad = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "status", "created_at"])
        for n in range(rows):
            if n % 1000 == 999:
                writer.writerow([f"broken-{n}-at-example.com", "", "", ""])
                bad += 1
                continue
            status = "unsubscribed" if n % 20 == 0 else "active"
            writer.writerow(
                [f"Reader.{n}@Example.com", f"Reader {n}", status, "2025-03-04T05:06:07Z"]
            )
    return bad


def populate(root: Path, count: int) -> float:
    """Put ``count`` subscribers in the root's database, fast (not the CLI)."""
    sys.path.insert(0, str(ROOT))
    from subscribers.models import Source, Status
    from subscribers.store import Store
    from subscribers.store.rows import new_row

    started = time.perf_counter()
    with Store.open("sqlite:///subscribers.db", root) as store:
        for start in range(0, count, 10_000):
            rows = [
                new_row(f"reader.{n}@example.com", f"Reader {n}", Status.ACTIVE, Source.IMPORT)
                for n in range(start, min(start + 10_000, count))
            ]
            with store.transaction() as tx:
                tx.insert_many(rows)
    return time.perf_counter() - started


def bench_import(script: str, rows: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-subscribers-") as tmp:
        root = make_root(Path(tmp))
        path = root / "list.csv"
        bad = write_csv(path, rows)
        size = path.stat().st_size / 1e6
        seconds, rss = timed([script, "--root", str(root), "subscribers", "import", str(path)])
        again, _ = timed([script, "--root", str(root), "subscribers", "import", str(path)])
        print(f"import of {rows:,} rows ({size:.1f} MB, {bad} bad rows reported), whole process:")
        print(f"  first import   {seconds:6.2f} s  ({rows / seconds:,.0f} rows/s, peak RSS "
              f"{rss / 1024:.0f} MB)   target < 15 s")
        print(f"  re-import      {again:6.2f} s  (idempotent: changes nothing)")


def bench_export(script: str, sizes: list[int]) -> None:
    print("export to CSV, whole process (`publish subscribers export -o FILE`):")
    for count in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-subscribers-") as tmp:
            root = make_root(Path(tmp))
            filled = populate(root, count)
            out = root / "export.csv"
            seconds, rss = timed(
                [script, "--root", str(root), "subscribers", "export", "-o", str(out)]
            )
            lines = sum(1 for _ in out.open(encoding="utf-8")) - 1
            assert lines == count, (lines, count)
            print(f"  {count:>9,} subscribers  {seconds:6.2f} s  ({count / seconds:,.0f}/s)  "
                  f"peak RSS {rss / 1024:5.0f} MB  (database filled in {filled:.0f} s)")


SERVER = textwrap.dedent(
    """
    import sys
    from dataclasses import replace
    from pathlib import Path
    from pipeline.cli.serve import _web_config, run_service
    from pipeline.config import load_settings
    from subscribers.models import Limit

    root, port = Path(sys.argv[1]), int(sys.argv[2])
    settings = load_settings(root, {"web_port": port})
    web = replace(
        _web_config(settings, "bench-secret-0123456789abcdef"),
        per_ip=Limit(10**9, 60), per_address=Limit(10**9, 60), per_domain=Limit(10**9, 60),
    )
    if __name__ == "__main__":
        run_service(settings, web)
    """
)

WRK_SCRIPT = textwrap.dedent(
    """
    local threads = 0
    function setup(thread)
      threads = threads + 1
      thread:set("id", threads)
    end
    counter = 0
    request = function()
      counter = counter + 1
      local body = "email=bench." .. id .. "." .. counter .. "%40example.com&name=Bench"
      return wrk.format("POST", "/subscribe",
        {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
    end
    """
)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)


def answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def bench_signups(seconds: int, requests: int) -> None:
    import httpx

    with tempfile.TemporaryDirectory(prefix="bench-subscribers-") as tmp:
        root = make_root(Path(tmp))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        log = (root / "serve.log").open("w")
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(root), str(port)],
            env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: answers(f"{url}/subscribe"), 30, "the service to start")
            outbox = root / "outbox"
            started = time.perf_counter()
            if shutil.which("wrk"):
                script = root / "post.lua"
                script.write_text(WRK_SCRIPT)
                out = subprocess.run(
                    ["wrk", "-t2", "-c16", f"-d{seconds}s", "-s", str(script), f"{url}/subscribe"],
                    capture_output=True, text=True, check=True,
                ).stdout
                answered = time.perf_counter() - started
                sent = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
                failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
                errors = int(failed.group(1)) if failed else 0
                latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
                generator = "wrk, 2 threads, 16 connections"
            else:
                def post(n: int) -> int:
                    with httpx.Client(base_url=url, timeout=30) as client:
                        return sum(
                            client.post("/subscribe",
                                        data={"email": f"bench.{n}.{i}@example.com"}).status_code
                            != 200
                            for i in range(requests // 16)
                        )

                with ThreadPoolExecutor(16) as pool:
                    errors = sum(pool.map(post, range(16)))
                answered = time.perf_counter() - started
                sent, latency = 16 * (requests // 16), None
                generator = "16 threads of httpx clients"
            written = sum(1 for _ in outbox.iterdir()) if outbox.is_dir() else 0
            wait_until(
                lambda: outbox.is_dir() and sum(1 for _ in outbox.iterdir()) >= sent - errors,
                120, "every confirmation to reach the outbox",
            )
            drained = time.perf_counter() - started
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
            log.close()
        print(f"POST /subscribe on loopback, SQLite, outbox transport ({generator}):")
        print(f"  {sent:,} signups answered in {answered:.1f} s: {sent / answered:,.0f} requests/s"
              f"  ({errors} not 200)   target >= 300/s")
        if latency:
            print(f"  latency avg {latency.group(1)}, stdev {latency.group(2)}, "
                  f"max {latency.group(3)}")
        print(f"  every confirmation written after {drained:.1f} s: "
              f"{(sent - errors) / drained:,.0f} signups/s end to end; {written:,} while "
              f"answering, the rest at {(sent - errors - written) / (drained - answered):,.0f}/s "
              "once the requests stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--only", choices=["import", "export", "signups"])
    args = parser.parse_args()
    script = publish_script()
    if args.only in (None, "import"):
        bench_import(script, args.rows)
    if args.only in (None, "export"):
        bench_export(script, [args.rows, args.big])
    if args.only in (None, "signups"):
        bench_signups(args.seconds, args.requests)


if __name__ == "__main__":
    main()
