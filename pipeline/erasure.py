"""Erasing a reader everywhere the newsletter's root holds them.

    erase_reader(settings, store, email) → Erasure

The store deletes the subscriber and their history, scrubs the ledger and
keeps a salted hash as a suppression (:meth:`subscribers.store.Store.erase`),
then empties SQLite's write-ahead log of the pages that held them. Beyond
the database, the address is in files the tool wrote under the root:

    outbox/*.eml          messages to the reader (the local transport's
                          record of what went out): removed
    recovery/*.json       results a run could not record: the reader's
                          provider ids dropped, the results kept
    exports the tool      CSV files written by ``publish subscribers
    wrote                 export -o``, as listed in exports.list: the
                          reader's rows removed, everyone else's kept

Everything is idempotent: erasing an address that is already gone still
cleans the files, so a run cut short is finished by running it again.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.recovery import folders as recovery_folders
from subscribers.addresses import ascii_domain
from subscribers.errors import InvalidDomain
from subscribers.files import write_atomic

if TYPE_CHECKING:
    from pipeline.config import Settings
    from subscribers.store import Store

log = logging.getLogger(__name__)

EXPORTS = "exports.list"
"""The file, at the newsletter's root, of the exports the tool wrote."""


@dataclass(frozen=True)
class Erasure:
    found: bool
    """There was a subscriber with the address."""
    outbox_files: int
    """Messages to the reader removed from the outbox."""
    exports: int
    """Exports the reader's rows were removed from."""
    recovery_files: int
    """Recovery files the reader's provider ids were dropped from."""
    database_clean: bool
    """The database's files hold no trace of the deleted rows; False while
    another process holds the SQLite log open (run the erase again later)."""


def erase_reader(settings: Settings, store: Store, email: str) -> Erasure:
    """Erase ``email`` from the store and from the files under the root."""
    found = store.erase(email)
    address = _Address.of(email)
    return Erasure(
        found=found,
        outbox_files=_clean_outbox(settings.outbox_dir, address),
        exports=sum(_clean_export(path, address) for path in exports(settings.root)),
        recovery_files=sum(
            _clean_recovery(path, address)
            for folder in recovery_folders(settings.root)
            for path in sorted(folder.glob("*.json"))
        ),
        database_clean=store.forget_deleted(),
    )


def remember_export(root: Path, path: Path) -> None:
    """Add ``path`` to the exports an erase cleans."""
    known = exports(root)
    target = path.resolve()
    if target not in known:
        lines = [str(p) for p in (*known, target)]
        write_atomic(root / EXPORTS, "\n".join(lines) + "\n", mode=0o600)


def exports(root: Path) -> list[Path]:
    """The exports the tool wrote that are still there."""
    try:
        text = (root / EXPORTS).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [Path(line) for line in text.splitlines() if line.strip() and Path(line).is_file()]


@dataclass(frozen=True)
class _Address:
    """The ways files spell one address."""

    forms: frozenset[str]
    """Lowercased: as typed, and with the domain in ASCII (IDNA) as headers carry it."""
    pattern: re.Pattern[bytes]
    """Any form, in any case, never as the tail of a longer address (erasing
    ``na@example.com`` leaves ``ana@example.com`` and ``na@example.com.au``)."""

    @classmethod
    def of(cls, email: str) -> _Address:
        lowered = email.strip().lower()
        local, _, domain = lowered.rpartition("@")
        try:
            forms = frozenset({lowered, f"{local}@{ascii_domain(domain)}"})
        except InvalidDomain:
            forms = frozenset({lowered})
        either = b"|".join(sorted(re.escape(form.encode("utf-8")) for form in forms))
        return cls(
            forms,
            re.compile(
                rb"(?<![\w.!#$%&'*+/=?^`{|}~-])(?:" + either + rb")(?![\w-]|\.[\w-])",
                re.IGNORECASE,
            ),
        )

    def in_(self, data: bytes) -> bool:
        return self.pattern.search(data) is not None

    def names(self, message_id: str) -> bool:
        """Whether a provider id holds the address; an outbox file name from
        before names carried none ends in ``-ADDRESS.eml``."""
        if message_id.endswith(".eml") and message_id.count("-") >= 3:
            return message_id[: -len(".eml")].split("-", 3)[3].lower() in self.forms
        return self.in_(message_id.encode("utf-8"))


def _clean_outbox(folder: Path, address: _Address) -> int:
    removed = 0
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.is_file() and entry.name.endswith(".eml"):
            with open(entry.path, "rb") as handle:
                if address.in_(handle.read()):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def _clean_export(path: Path, address: _Address) -> int:
    text = path.read_text(encoding="utf-8")
    if not address.in_(text.encode("utf-8")):
        return 0
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in csv.reader(io.StringIO(text, newline="")):
        if not address.in_(",".join(row).encode("utf-8")):
            writer.writerow(row)
    write_atomic(path, out.getvalue(), mode=path.stat().st_mode & 0o777)
    return 1


def _clean_recovery(path: Path, address: _Address) -> int:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    changed = 0
    for outcome in data.get("outcomes", []):
        message_id = outcome.get("message_id")
        if isinstance(message_id, str) and address.names(message_id):
            outcome["message_id"] = None
            changed = 1
    if changed:
        write_atomic(path, json.dumps(data) + "\n", mode=0o600)
    return changed
