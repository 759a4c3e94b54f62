"""The outbox: one .eml file per message in a folder. The embedded default.

Each file is written atomically, so a crash never leaves half a message;
file names sort by time of writing and carry the recipient, so an editor can
open the folder and see exactly what went out. The folder is also the
outbox's record of what it accepted: after a crash, a message whose file is
there was sent (:meth:`OutboxTransport.accepted`).
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from pipeline.files import write_atomic
from pipeline.transports.base import OutgoingMessage, Transport

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)
HEAD = 16384
"""Bytes of a file read to find its Message-ID (it is among the first headers)."""


def _file_recipient(address: str) -> str:
    """The recipient as the file name carries it."""
    return _UNSAFE.sub("_", address)[:100]


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
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        recipient = _file_recipient(message.recipient)
        name = f"{stamp}-{time.time_ns() % 10**9:09d}-{sequence:06d}-{recipient}.eml"
        # Each file is a reader's address and their personal links: the
        # owner's alone, in a folder only the owner can list.
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.folder / name, message.raw, mode=0o600)
        return name

    def accepted(self, wanted: Mapping[str, str]) -> dict[str, str]:
        """The messages among ``wanted`` whose file is in the outbox, found
        by the recipient in the file name and the Message-ID inside; their
        provider id is the file name, as :meth:`send` returned it."""
        by_recipient: dict[str, set[str]] = {}
        for message_id, recipient in wanted.items():
            by_recipient.setdefault(_file_recipient(recipient), set()).add(message_id)
        found: dict[str, str] = {}
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return found
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not name.endswith(".eml"):
                continue  # a temporary file: the write never finished
            parts = name[: -len(".eml")].split("-", 3)
            ids = by_recipient.get(parts[3]) if len(parts) == 4 else None
            if not ids:
                continue
            try:
                with open(entry.path, "rb") as handle:
                    head = handle.read(HEAD)
            except OSError:
                continue
            match = _MESSAGE_ID.search(head)
            if match and match.group(1).decode("ascii", "replace") in ids:
                found[match.group(1).decode("ascii", "replace")] = name
        return found
