"""The outbox: one .eml file per message in a folder. The embedded default.

Each file is written atomically, so a crash never leaves half a message;
file names sort by time of writing and carry the recipient, so an editor can
open the folder and see exactly what went out.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from pathlib import Path

from pipeline.files import write_atomic
from pipeline.transports.base import OutgoingMessage, Transport

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


class OutboxTransport(Transport):
    name = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> str:
        with self._lock:
            sequence = next(self._counter)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        recipient = _UNSAFE.sub("_", message.recipient)[:100]
        name = f"{stamp}-{time.time_ns() % 10**9:09d}-{sequence:06d}-{recipient}.eml"
        write_atomic(self.folder / name, message.raw)
        return name
