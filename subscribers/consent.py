"""The words a reader agrees to by subscribing: what the signup form shows
beside its button, and what each signup's consent record keeps
(:class:`subscribers.models.Consent`).

A module of its own, importing nothing: an issue's web page puts the signup
form on it, and rendering an issue needs the wording, not the store's records.
"""

from __future__ import annotations


def consent_wording(newsletter_name: str, configured: str = "") -> str:
    """The words a reader agrees to by subscribing: ``newsletter.consent_text``
    when set, else a default naming the newsletter. The signup form shows
    them and each signup keeps them."""
    return configured.strip() or (
        f"Yes, send me {newsletter_name} by email, about twice a month. "
        "I can unsubscribe at any time with the link in every issue."
    )
