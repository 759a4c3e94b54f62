"""Who holds a claim, and whether they are still alive.

Each claim on a recipient row is stamped with its worker, ``host:pid:nonce``
(:func:`new_worker_id`), and is a lease: the worker refreshes its rows'
``updated_at`` as its heartbeat. Another worker is presumed dead when

    its lease ran out (no refresh for :data:`LEASE`)           any host
    its process is gone, or a zombie nobody has reaped         this host only

No SQL here: the claim protocol (:mod:`subscribers.ledger.claims`) reads
the rows and asks these questions of them.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket

from subscribers.models import as_utc

LEASE = dt.timedelta(minutes=2)
"""A claim not refreshed for this long belongs to a worker presumed dead."""
HEARTBEAT = dt.timedelta(seconds=20)
"""How often a live worker refreshes its claims with the default lease (a
sixth of the lease: a late heartbeat or two never loses it)."""


def new_worker_id() -> str:
    """``host:pid:nonce``, unique to one sending process (or Ledger)."""
    host = socket.gethostname()[:60].replace(":", "_") or "localhost"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


def worker_is_gone(worker: str | None, here: str) -> bool:
    """True when ``worker`` ran on this host and its process is no more (or
    is a zombie that nobody has reaped). Workers on other hosts are judged
    by their lease instead."""
    if not worker:
        return True
    host, _, rest = worker.partition(":")
    pid_text = rest.partition(":")[0]
    if host != here.partition(":")[0] or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return is_zombie(int(pid_text))


def is_zombie(pid: int) -> bool:
    """True when process ``pid`` has exited but was never reaped (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return False
    # "pid (command) state ...": the command may hold spaces and parentheses.
    return stat.rpartition(b")")[2].split()[:1] == [b"Z"]


def is_stale(
    updated_at: dt.datetime | None, worker: str | None, here: str, cutoff: dt.datetime
) -> bool:
    """True when a claim last refreshed at ``updated_at`` by ``worker`` belongs
    to a worker presumed dead: its lease ran out (``cutoff``) or, on this
    host, its process is gone."""
    return (as_utc(updated_at) or cutoff) <= cutoff or worker_is_gone(worker, here)
