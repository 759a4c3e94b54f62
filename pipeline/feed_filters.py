"""Text and dates as the feeds write them: the filters every site template
is filled with (``xml``, ``cdata``, ``rfc822``, ``rfc3339``), and
:data:`NOT_XML`, the characters an XML document may not carry.

Apart from :mod:`pipeline.feeds`, which builds the feeds' data: loading the
site's templates (every command that renders an issue) needs these four
functions, not the feed builder's HTML parser and records.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from markupsafe import Markup

NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
"""Characters XML 1.0 forbids, and the C1 controls the W3C validator reports."""


def xml_text(value: object) -> Markup:
    """Text for XML: forbidden characters dropped, ``& < > "`` written as
    hexadecimal references, the form the RSS Best Practices Profile asks for."""
    text = NOT_XML.sub("", str(value))
    text = (
        text.replace("&", "&#x26;")
        .replace("<", "&#x3C;")
        .replace(">", "&#x3E;")
        .replace('"', "&#x22;")
    )
    return Markup(text)  # noqa: S704 - every markup character is escaped above


def xml_cdata(value: object) -> Markup:
    """HTML for an XML element, as a CDATA section (readable in the file)."""
    text = NOT_XML.sub("", str(value)).replace("]]>", "]]]]><![CDATA[>")
    return Markup(f"<![CDATA[{text}]]>")  # noqa: S704 - CDATA holds any text but "]]>"


def rfc822(moment: datetime) -> str:
    """``Tue, 01 Dec 2026 07:00:00 GMT``"""
    # email.utils brings socket, calendar and email's charsets: only a feed needs it.
    from email.utils import format_datetime

    return format_datetime(_utc(moment), usegmt=True)


def rfc3339(moment: datetime) -> str:
    """``2026-12-01T07:00:00Z``"""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


FILTERS = {"xml": xml_text, "cdata": xml_cdata, "rfc822": rfc822, "rfc3339": rfc3339}
