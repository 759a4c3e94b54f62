"""The outbox: one .eml file per message in a folder. The embedded default.

Each file is written atomically, so a crash never leaves half a message.
File names sort by time of writing and end in a tag of the message's
Message-ID, never the reader's address: a listing of the folder (or a
ledger row, whose provider id is the file name) shows no reader. The folder
is also the outbox's record of what it accepted: after a crash, a message
whose file is there was sent (:meth:`OutboxTransport.accepted`).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from pipeline.transports.base import OutgoingMessage, Transport
from subscribers.files import write_atomic

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)
HEAD = 16384
"""Bytes of a file read to find its Message-ID (it is among the first headers)."""


def _tag(message_id: str) -> str:
    """What a file name carries of the message: a digest of its Message-ID."""
    return hashlib.blake2b(message_id.encode("utf-8"), digest_size=8).hexdigest()


def _message_id(head: bytes) -> str | None:
    match = _MESSAGE_ID.search(head)
    return match.group(1).decode("ascii", "replace") if match else None


class OutboxTransport(Transport):
    name = "outbox"
    records_all_accepted = True

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> str:
        with self._lock:
            sequence = next(self._counter)
        # One reading of the clock for both parts, so names sort in the
        # order the files were written even across a second's boundary.
        now = time.time_ns()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9))
        message_id = _message_id(message.raw[:HEAD]) or f"{stamp}-{sequence}"
        name = f"{stamp}-{now % 10**9:09d}-{sequence:06d}-{_tag(message_id)}.eml"
        # Each file is a reader's address and their personal links: the
        # owner's alone, in a folder only the owner can list.
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.folder / name, message.raw, mode=0o600)
        return name

    def accepted(self, wanted: Mapping[str, str]) -> dict[str, str]:
        """The messages among ``wanted`` (Message-ID → recipient) whose file
        is in the outbox, found by the Message-ID's tag in the file name and
        the Message-ID inside; their provider id is the file name, as
        :meth:`send` returned it."""
        by_tag = {_tag(message_id): message_id for message_id in wanted}
        found: dict[str, str] = {}
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return found
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not name.endswith(".eml"):
                continue  # a temporary file: the write never finished
            wanted_id = by_tag.get(name[: -len(".eml")].rpartition("-")[2])
            if wanted_id is None:
                continue
            try:
                with open(entry.path, "rb") as handle:
                    head = handle.read(HEAD)
            except OSError:
                continue
            if _message_id(head) == wanted_id:
                found[wanted_id] = name
        return found
