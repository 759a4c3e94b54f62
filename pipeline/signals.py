"""Ctrl-C and SIGTERM as a stop event, so that long work winds down cleanly.

    with stop_on_signals() as stop:      first Ctrl-C or SIGTERM: stop.set()
        send_loop(..., stop=stop)        the work looks at ``stop`` and ends
                                         after what is in flight
                                         second Ctrl-C: KeyboardInterrupt

The send loop (:mod:`pipeline.send`) and the event sync use it; neither
installs a handler of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C (SIGINT) or SIGTERM, so that a send
    winds down cleanly; a second Ctrl-C interrupts at once."""
    import signal

    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, _frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.warning("stopping after the messages in flight (Ctrl-C again to abort)")
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["stop_on_signals"]
