"""POST /subscribe against a trivial FastAPI POST on the same uvicorn stack (issue 17, point 3).

Target: the signup service answers at least 0.5x the requests per second of
a FastAPI app whose POST handler only reads the form and answers 303, on
SQLite and on PostgreSQL.

    python3 bench/bench_signup.py [--requests 3000] [--concurrency 16]
                                  [--only sqlite|postgresql]

Each run starts a uvicorn server in a process of its own, with the options
`publish serve` gives it (one worker, uvicorn's default loop and HTTP
implementation, proxy headers, info logging to a file), and drives it with
the same load generator: ``--concurrency`` httpx async clients in one event
loop sending ``--requests`` posts between them, each a new address, after a
short warm-up. The baseline is the trivial app; the project is the service
as `publish serve` runs it (its own confirmation mailer process, the outbox
transport), with its rate limits lifted, on a fresh SQLite file and on a
throwaway PostgreSQL (tests/support/postgres.py's, without a synchronous
commit). Printed: req/s of each and their
ratio; the project's run also waits until every confirmation is in the
outbox, so that the mailer's work is not left for after the measurement.
Where /proc is (Linux), also the CPU time per signup of the web process and
of the mailer, from the first post to the last confirmation: on a machine
of two cores they share with the load generator, that is what the ratio
comes down to.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from bench_subscribers import SERVER, answers, free_port, wait_until  # noqa: E402

BASELINE = textwrap.dedent(
    """
    import sys
    import uvicorn
    from fastapi import FastAPI, Request
    from starlette.responses import RedirectResponse

    app = FastAPI()

    @app.post("/subscribe")
    async def subscribe(request: Request):
        form = await request.form()
        form.get("email")
        return RedirectResponse("/subscribe/thanks", status_code=303)

    @app.get("/subscribe")
    async def page():
        return {"ok": True}

    if __name__ == "__main__":
        # The options pipeline/cli/serve.py gives uvicorn.
        uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=int(sys.argv[2]), server_header=False,
            log_level="info", proxy_headers=True, forwarded_allow_ips=["127.0.0.1", "::1"],
        )).run()
    """
)


@contextmanager
def server(code: str, root: Path, database: str = "") -> Iterator[tuple[str, int]]:
    """A uvicorn process running ``code``; its base URL and pid until stopped (SIGINT)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), NEWSLETTER_DATABASE_URL=database)
    with (root / "serve.log").open("a") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(root), str(port)],
            env=env,
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: answers(f"{url}/subscribe"), 60, "the server to start")
            yield url, process.pid
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)


async def _drive(url: str, tag: str, requests: int, concurrency: int) -> tuple[float, int]:
    """Seconds taken by ``requests`` posts from ``concurrency`` clients, and
    how many were answered with neither 2xx nor 3xx."""
    import httpx

    counter = iter(range(requests))
    errors = 0

    async def client() -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for n in counter:
                answer = await http.post(
                    "/subscribe", data={"email": f"{tag}.{n}@example.com", "name": "Bench"}
                )
                errors += answer.status_code >= 400

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started, errors


def drive(url: str, tag: str, requests: int, concurrency: int) -> tuple[float, int]:
    asyncio.run(_drive(url, f"warm.{tag}", max(concurrency * 4, requests // 20), concurrency))
    return asyncio.run(_drive(url, tag, requests, concurrency))


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user and system) a process has used so far; None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mailer_of(pid: int) -> int | None:
    """The service's mailer: the process ``pid`` spawned (multiprocessing's
    ``spawn_main``; its resource tracker is a child too), from /proc."""
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            try:
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return int(child)
            except OSError:
                continue
    return None


def outbox_count(root: Path) -> int:
    outbox = root / "outbox"
    return sum(1 for _ in outbox.iterdir()) if outbox.is_dir() else 0


def run_baseline(requests: int, concurrency: int) -> float:
    with (
        tempfile.TemporaryDirectory(prefix="bench-signup-") as tmp,
        server(BASELINE, Path(tmp)) as (url, _pid),
    ):
        seconds, errors = drive(url, "base", requests, concurrency)
    assert errors == 0, errors
    return requests / seconds


def run_service(
    database: str | None, requests: int, concurrency: int
) -> tuple[float, float, dict[str, float]]:
    """The service's req/s, its signups/s until the last confirmation is
    written, and the CPU milliseconds per signup of its web process and of
    its mailer over that time (empty without /proc)."""
    with tempfile.TemporaryDirectory(prefix="bench-signup-") as tmp:
        root = Path(tmp)
        shutil.copy(ROOT / "newsletter.toml", root / "newsletter.toml")
        url = database or f"sqlite:///{root / 'subscribers.db'}"
        # The database is NEWSLETTER_DATABASE_URL, which the mailer process reads too.
        with server(SERVER, root, url) as (base, pid):
            processes = {"web": pid, "mailer": mailer_of(pid) or pid}
            used = {name: cpu_seconds(p) for name, p in processes.items()}
            before = time.perf_counter()
            seconds, errors = drive(base, "svc", requests, concurrency)
            expected = requests + max(concurrency * 4, requests // 20)
            wait_until(lambda: outbox_count(root) >= expected, 300, "every confirmation")
            drained = time.perf_counter() - before
            cpu = {
                name: 1000 * (now - start) / expected
                for name, p in processes.items()
                if (start := used[name]) is not None and (now := cpu_seconds(p)) is not None
            }
        if errors:
            print(f"  {errors} posts answered with an error; see {root / 'serve.log'}")
    return requests / seconds, expected / drained, cpu


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL 15 on a free loopback port (tests/support/postgres.py),
    without fsync or a synchronous commit, so that the disk's flush time is
    not what is measured; its database's URL."""
    from tests.support.postgres import OwnPostgres

    server = OwnPostgres(Path(tempfile.mkdtemp(prefix="bench-signup-pg-")), durable=False)
    try:
        yield server.url
    finally:
        server.close()


def report(name: str, requests: int, concurrency: int, database: str | None) -> None:
    baseline = run_baseline(requests, concurrency)
    service, drained, cpu = run_service(database, requests, concurrency)
    print(f"POST /subscribe, {name}, {requests:,} posts from {concurrency} httpx async clients:")
    print(f"  trivial FastAPI POST  {baseline:7,.0f} req/s")
    print(
        f"  the signup service    {service:7,.0f} req/s   ({drained:,.0f} signups/s until "
        "the last confirmation was in the outbox)"
    )
    if cpu:
        print("  CPU per signup        " + ", ".join(f"{n} {ms:.2f} ms" for n, ms in cpu.items()))
    print(f"  ratio                 {service / baseline:7.2f}x   target >= 0.50x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    if args.only in (None, "sqlite"):
        report("SQLite", args.requests, args.concurrency, None)
    if args.only in (None, "postgresql"):
        with postgres() as url:
            report("PostgreSQL", args.requests, args.concurrency, url)


if __name__ == "__main__":
    main()
