"""How a send reports where it stands: :class:`Progress` snapshots through a callback.

    send loop ──counts──> ProgressMeter ──Progress, every PROGRESS_SECONDS──> on_progress
                          (the ledger's totals when the run began, plus this
                           run's counts; the rate over the last ten seconds)

The library never prints: the CLI turns each snapshot into a Rich progress
bar (:mod:`pipeline.cli.send_reports`), a test keeps them in a list.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from subscribers.ledger import Totals

PROGRESS_SECONDS = 0.2
"""The least time between two reports (the first and the last are always made)."""
RATE_SECONDS = 10
"""The rate is measured over about this many seconds of the newest counts."""


@dataclass(frozen=True)
class Progress:
    """A snapshot for a progress bar, reported through the ``on_progress`` callback."""

    total: int
    sent: int
    failed: int
    skipped: int
    rate: float
    """Messages per second, over the last few seconds."""
    seconds_left: float | None

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped

    @property
    def left(self) -> int:
        return max(0, self.total - self.done)


ProgressCallback = Callable[[Progress], None]


class ProgressMeter:
    """Turns one run's counts into :class:`Progress` snapshots.

    ``base`` is the send's totals when the run began (what earlier runs
    decided); the counts passed in are this run's alone, and the rate is
    this run's too."""

    def __init__(self, base: Totals, on_progress: ProgressCallback | None = None) -> None:
        self.base = base
        self.on_progress = on_progress
        self._samples: list[tuple[float, int]] = []
        self._last_report = 0.0

    def snapshot(self, sent: int, failed: int, skipped: int) -> Progress:
        base = self.base
        now = time.monotonic()
        samples = self._samples
        samples.append((now, sent))
        while len(samples) > 2 and now - samples[0][0] > RATE_SECONDS:
            samples.pop(0)
        elapsed = now - samples[0][0]
        rate = (sent - samples[0][1]) / elapsed if elapsed > 0.5 else 0.0
        sent += base.sent
        failed += base.failed
        skipped += base.skipped
        left = max(0, base.total - sent - failed - skipped)
        return Progress(
            total=base.total,
            sent=sent,
            failed=failed,
            skipped=skipped,
            rate=rate,
            seconds_left=left / rate if rate > 0 else None,
        )

    def report(self, sent: int, failed: int, skipped: int, *, force: bool = False) -> None:
        """Hand a snapshot to ``on_progress``, unless one went less than
        :data:`PROGRESS_SECONDS` ago (``force``: regardless)."""
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_report < PROGRESS_SECONDS:
            return
        self._last_report = now
        self.on_progress(self.snapshot(sent, failed, skipped))


__all__ = ["PROGRESS_SECONDS", "Progress", "ProgressCallback", "ProgressMeter"]
