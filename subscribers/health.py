"""The list's health: its recent bounce and complaint rates against what
Amazon SES and the mailbox providers tolerate from a bulk sender.

    Store.stats() ──> Stats (rates over the last 30 days) ──> health() ──> [(level, message)]

SES reviews an account whose bounce rate reaches 5%; mailbox providers
expect complaints under 0.1% and block senders at 0.3%, at which SES may
pause sending too. :func:`health` warns as a rate nears a limit and reports
an error once it is past one; `publish subscribers stats` prints what it
finds.
"""

from __future__ import annotations

from subscribers.models import Stats

BOUNCE_LIMIT = 0.05
"""The bounce rate at which SES puts an account under review."""
BOUNCE_NEAR = 0.02
"""The bounce rate from which :func:`health` warns."""
COMPLAINT_LIMIT = 0.001
"""The complaint rate mailbox providers expect a sender to stay under."""
COMPLAINT_NEAR = 0.0008
"""The complaint rate from which :func:`health` warns."""
COMPLAINT_NEVER = 0.003
"""The complaint rate at which mailbox providers block senders."""


def health(figures: Stats) -> list[tuple[str, str]]:
    """``(level, message)`` when the last days' bounce or complaint rate nears
    or passes what SES and mailbox providers tolerate: complaints under
    0.1% and never 0.3%, bounces under 5%. Level ``error`` past the hard
    limits, ``warning`` near them; nothing when nothing was sent."""
    found = (
        _bounces(figures.bounce_rate) if figures.bounce_rate is not None else None,
        _complaints(figures.complaint_rate) if figures.complaint_rate is not None else None,
    )
    return [finding for finding in found if finding is not None]


def _bounces(rate: float) -> tuple[str, str] | None:
    if rate >= BOUNCE_LIMIT:
        return (
            "error",
            f"bounce rate {rate:.2%} is over the {BOUNCE_LIMIT:.0%} at which SES puts an "
            "account under review; clean the list before the next issue",
        )
    if rate >= BOUNCE_NEAR:
        return (
            "warning",
            f"bounce rate {rate:.2%} is near the {BOUNCE_LIMIT:.0%} at which SES reviews "
            "an account",
        )
    return None


def _complaints(rate: float) -> tuple[str, str] | None:
    if rate >= COMPLAINT_NEVER:
        return (
            "error",
            f"complaint rate {rate:.2%} is over {COMPLAINT_NEVER:.1%}, at which mailbox "
            "providers block senders and SES may pause sending",
        )
    if rate >= COMPLAINT_NEAR:
        where = "over" if rate >= COMPLAINT_LIMIT else "near"
        return (
            "warning",
            f"complaint rate {rate:.2%} is {where} {COMPLAINT_LIMIT:.1%}; mailbox "
            f"providers expect under {COMPLAINT_LIMIT:.1%} and block senders at "
            f"{COMPLAINT_NEVER:.1%}",
        )
    return None
