"""The web service's routes, one module per part of a reader's way through it.

    signup.py       GET  /subscribe            the form (?ref= names the page it is from)
                    POST /subscribe            form or JSON; the same answer whether
                                               or not the address is known; honeypot;
                                               rate limits; from the site or the blog
                                               only (another site's post does nothing)
                    GET  /subscribe/thanks     where a post from the blog is sent
    confirm.py      GET  /confirm/{token}      a page with one button; changes nothing,
                                               because mail scanners follow links
                    POST /confirm/{token}      confirms, recording when and from where
    unsubscribe.py  GET  /unsubscribe/{token}  a page with one button; changes nothing
                    POST /unsubscribe/{token}  unsubscribes at once; the RFC 8058
                                               one-click target (no cookies, no CSRF token)
                    POST /unsubscribe/{token}/reason  why they left (optional), kept on
                                               their unsubscribe event
    ses.py          POST /ses/events           SES feedback posted by SNS, believed only
                                               when SNS signed it (403 otherwise)
    site.py         GET  /                     the built site's home, or the form
    errors.py       the error pages for what no handler answers

Each module has an ``APIRouter`` (``router``) that
:func:`subscribers.web.create_app` includes; the handlers are handed what
they share through the dependencies in ``deps.py``, and answer with the
pages in :mod:`subscribers.pages`. The pages also answer ``HEAD``, for link
checkers.

These modules do not use ``from __future__ import annotations``: FastAPI
reads the handlers' annotations at run time.
"""
