"""feed.xml and feed.atom: each rule the W3C feed validator checks, read back
with feedparser, and item ids that survive re-rendering and a move of the site."""

from __future__ import annotations

import calendar
import html
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from urllib.parse import urlsplit

import feedparser

from pipeline.config import with_overrides
from pipeline.context import Context
from pipeline.feed_filters import rfc822, rfc3339, xml_text
from pipeline.feeds import clean_feed_html, issue_guid
from pipeline.issue import find_issue, load_issue
from pipeline.site import FEED_SIZE, build_site

NOW = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
SENT = {
    "calf-stretch": datetime(2026, 12, 1, 7, 0, tzinfo=UTC),
    "desk-wrist-routine": datetime(2026, 12, 15, 7, 0, tzinfo=UTC),
}
NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "dc": "http://purl.org/dc/elements/1.1/",
}
RFC822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d (GMT|[+-]\d{4})$"
)
# The W3C validator's lists of HTML it accepts in a feed without a warning.
VALIDATOR_SAFE_ELEMENTS = {
    "a", "abbr", "acronym", "address", "b", "bdi", "big", "blockquote", "br", "caption",
    "center", "cite", "code", "col", "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em",
    "figcaption", "figure", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strike",
    "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u",
    "ul", "var",
}
VALIDATOR_SAFE_ATTRIBUTES = {
    "abbr", "align", "alt", "border", "cellpadding", "cellspacing", "class", "colspan", "dir",
    "height", "href", "hreflang", "lang", "rowspan", "start", "summary", "title", "valign",
    "width", "src",
}


def build(settings, sent=SENT, now=NOW):
    build_site(Context.load(settings), sent, now)
    public = settings.public_dir
    return (public / "feed.xml").read_bytes(), (public / "feed.atom").read_bytes()


def text(element: ET.Element | None, path: str) -> str:
    """The text of ``path`` under ``element``, which must be there."""
    assert element is not None
    found = element.findtext(path, namespaces=NS)
    assert found is not None, path
    return found


def utc(parsed) -> datetime:
    """feedparser's parsed time (a UTC time.struct_time) as a datetime."""
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


def channel(rss: bytes) -> ET.Element:
    root = ET.fromstring(rss)
    assert root.tag == "rss" and root.get("version") == "2.0"
    found = root.find("channel")
    assert found is not None
    return found


class Markup(HTMLParser):
    def __init__(self):
        super().__init__()
        self.elements, self.attributes, self.urls = set(), set(), []

    def handle_starttag(self, tag, attrs):
        self.elements.add(tag)
        for name, value in attrs:
            self.attributes.add(name)
            if name in ("href", "src"):
                self.urls.append(value)


def markup_of(fragment: str) -> Markup:
    parser = Markup()
    parser.feed(fragment)
    return parser


def expected_items(settings):
    """What went in: the published issues, newest first."""
    items = []
    for slug in ("desk-wrist-routine", "calf-stretch"):
        issue = load_issue(find_issue(slug, settings.issues_dir))
        items.append(
            {
                "title": issue.title,
                "link": f"https://painfreeliving.example.com/issues/{slug}/",
                "id": issue_guid(issue.date, slug),
                "published": SENT[slug],
                "summary": issue.preheader,
                "tags": list(issue.tags),
            }
        )
    return items


def items_read_back(parsed) -> list[dict]:
    """The same fields as expected_items, as feedparser read them."""
    return [
        {
            "title": entry.title,
            "link": entry.link,
            "id": entry.id,
            "published": utc(entry.published_parsed),
            "summary": entry.summary,
            "tags": [tag.term for tag in entry.tags],
        }
        for entry in parsed.entries
    ]


def test_rss_reads_back_with_feedparser_unchanged(settings):
    rss, _ = build(settings)
    parsed = feedparser.parse(rss)

    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    assert parsed.feed.title == "Pain Free Living"
    assert parsed.feed.link == "https://painfreeliving.example.com/"
    assert parsed.feed.language == "en"
    assert items_read_back(parsed) == expected_items(settings)
    assert all(entry.guidislink is False for entry in parsed.entries)
    assert parsed.entries[0].author == "Dana Whitfield, PT"


def test_atom_reads_back_with_feedparser_unchanged(settings):
    _, atom = build(settings)
    parsed = feedparser.parse(atom)

    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Pain Free Living"
    assert parsed.feed.id.startswith("urn:uuid:")
    self_links = [link.href for link in parsed.feed.links if link.rel == "self"]
    assert self_links == ["https://painfreeliving.example.com/feed.atom"]
    assert utc(parsed.feed.updated_parsed) == SENT["desk-wrist-routine"]
    assert items_read_back(parsed) == expected_items(settings)
    rss_content = [e.content[0].value for e in feedparser.parse(build(settings)[0]).entries]
    assert [e.content[0].value for e in parsed.entries] == rss_content


def test_the_channel_has_everything_the_validator_asks_for(settings):
    rss, _ = build(settings)
    source = rss.decode()
    assert source.startswith('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"')
    for prefix, uri in NS.items():
        assert f'xmlns:{prefix}="{uri}"' in source

    feed = channel(rss)
    assert feed.findtext("title") == "Pain Free Living"
    assert feed.findtext("link") == "https://painfreeliving.example.com/"
    assert feed.findtext("description") == "Gentle self-treatment for repetitive strain, twice a month"
    assert feed.findtext("language") == "en"
    self_link = feed.find("atom:link", NS)
    assert self_link is not None
    assert self_link.attrib == {
        "href": "https://painfreeliving.example.com/feed.xml",
        "rel": "self",
        "type": "application/rss+xml",
    }
    last_build = text(feed, "lastBuildDate")
    assert RFC822.match(last_build)
    assert parsedate_to_datetime(last_build) == SENT["desk-wrist-routine"]  # the newest item
    image = feed.find("image")
    assert image is not None
    # The validator wants the image's title and link to match the channel's.
    assert image.findtext("title") == feed.findtext("title")
    assert image.findtext("link") == feed.findtext("link")
    assert image.findtext("url") == "https://painfreeliving.example.com/static/logo.png"
    assert 0 < int(text(image, "width")) <= 144 and 0 < int(text(image, "height")) <= 400
    logo = settings.public_dir / "static" / "logo.png"
    assert logo.read_bytes().startswith(b"\x89PNG")


def test_each_item_follows_the_rules(settings):
    rss, _ = build(settings)
    items = channel(rss).findall("item")
    assert len(items) == 2
    for item in items:
        children = [child.tag for child in item]
        guid = item.find("guid")
        assert guid is not None and guid.get("isPermaLink") == "false"
        assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", text(item, "guid"))
        assert RFC822.match(text(item, "pubDate"))
        # content:encoded comes after description (NeedDescriptionBeforeContent).
        assert children.index("description") < children.index(f"{{{NS['content']}}}encoded")
        assert item.findtext("dc:creator", namespaces=NS) == "Dana Whitfield, PT"
        assert item.find("author") is None  # no real address configured
        assert item.findall("category")

        markup = markup_of(text(item, "content:encoded"))
        assert markup.elements <= VALIDATOR_SAFE_ELEMENTS
        assert markup.attributes <= VALIDATOR_SAFE_ATTRIBUTES  # no style, no role
        assert markup.urls
        for url in markup.urls:
            assert urlsplit(url).scheme in ("https", "mailto"), url
    calf = items[1]
    assert [c.text for c in calf.findall("category")] == ["calves", "stretching", "self-treatment"]
    content = text(calf, "content:encoded")
    assert (
        '<img src="https://painfreeliving.example.com/media/images/calf-stretch.png" '
        'alt="A woman leaning against a wall' in content
    )
    assert "<figcaption>The wall stretch: back heel down" in content
    assert "Stay well and keep moving" in content and "P.S. Know someone" in content


def test_a_real_author_address_is_used_as_rss_author(settings, newsletter):
    config = with_overrides(settings, author_email="dana@painfreeliving.example.com")
    path = newsletter / "issues" / "2027-01-05-guest.md"
    path.write_text(
        "---\ntitle: A guest post\ndate: 2027-01-05\nauthor: Sam Guest\n"
        "publish_at: 2027-01-05T07:00:00Z\n---\nHello from a guest.\n"
    )
    rss, atom = build(config)

    items = {item.findtext("title"): item for item in channel(rss).findall("item")}
    calf = items["An easy stretch for chronic calf pain"]
    assert calf.findtext("author") == "dana@painfreeliving.example.com (Dana Whitfield, PT)"
    assert calf.find("dc:creator", NS) is None  # one or the other, never both
    guest = items["A guest post"]
    assert guest.find("author") is None
    assert guest.findtext("dc:creator", namespaces=NS) == "Sam Guest"
    parsed = feedparser.parse(atom)
    assert parsed.feed.author_detail.email == "dana@painfreeliving.example.com"


def test_ids_survive_rebuilds_a_new_scheme_and_a_new_host(settings):
    rss, atom = build(settings)
    ids = [e.id for e in feedparser.parse(rss).entries]
    assert ids == [e.id for e in feedparser.parse(atom).entries]

    assert build(settings, now=NOW + timedelta(days=3)) == (rss, atom)  # byte for byte

    template = settings.templates_dir / "web" / "issue.html.j2"
    template.write_text(template.read_text().replace("next issue by", "next issue, reader, by"))
    rerendered = feedparser.parse(build(settings)[0])
    page = (settings.public_dir / "issues/calf-stretch/index.html").read_text()
    assert "next issue, reader, by" in page
    assert [e.id for e in rerendered.entries] == ids

    for site_url in ("http://painfreeliving.example.com", "https://newsletter.example.org/pfl"):
        moved = with_overrides(settings, site_url=site_url)
        moved_rss, moved_atom = build(moved)
        for document in (moved_rss, moved_atom):
            parsed = feedparser.parse(document)
            assert [e.id for e in parsed.entries] == ids
            assert all(e.link.startswith(site_url + "/issues/") for e in parsed.entries)
        assert f"{site_url}/feed.xml".encode() in moved_rss


def test_feed_text_is_escaped_and_reads_back_the_same(newsletter, settings):
    path = newsletter / "issues" / "2027-01-05-tricky.md"
    path.write_text(
        '---\ntitle: "Wrists & <kbd> keys: a \\"how-to\\" ]]>"\n'
        "date: 2027-01-05\n"
        'preheader: "Fish & chips <script>alert(1)</script> at the desk, ]]> and more words here"\n'
        'tags: ["R&D", "<b>bold</b>", "bell\\u0007"]\n'
        "publish_at: 2027-01-05T07:00:00Z\n---\n"
        "Text with `]]>` and <script>alert(1)</script> in it.\n"
    )
    rss, atom = build(settings)
    for document in (rss, atom):
        ET.fromstring(document)  # well-formed
        assert b"\x07" not in document
        parsed = feedparser.parse(document)
        assert not parsed.bozo
        entry = parsed.entries[0]
        assert entry.title == 'Wrists & <kbd> keys: a "how-to" ]]>'
        # RSS descriptions are HTML (the text escaped for it); Atom's summary is text.
        summary = html.unescape(entry.summary) if document is rss else entry.summary
        assert summary == "Fish & chips <script>alert(1)</script> at the desk, ]]> and more words here"
        assert [t.term for t in entry.tags] == ["R&D", "<b>bold</b>", "bell"]
    content = text(channel(rss).find("item"), "content:encoded")
    assert "<code>]]&gt;</code>" in content
    assert "<script>" not in content and "&lt;script&gt;alert(1)&lt;/script&gt;" in content


def test_the_feeds_carry_the_newest_issues_only(newsletter, settings):
    start = datetime(2025, 1, 1, 7, 0, tzinfo=UTC)
    for n in range(FEED_SIZE + 3):
        day = (start + timedelta(days=n)).date()
        (newsletter / "issues" / f"{day}-issue-{n}.md").write_text(
            f"---\ntitle: Issue {n}\ndate: {day}\npublish_at: {day}T07:00:00Z\n---\nNumber {n}.\n"
        )
    rss, atom = build(settings, sent={})
    titles = [e.title for e in feedparser.parse(rss).entries]
    assert len(titles) == FEED_SIZE
    assert titles[0] == f"Issue {FEED_SIZE + 2}" and titles[-1] == "Issue 3"
    assert [e.title for e in feedparser.parse(atom).entries] == titles
    index = (settings.public_dir / "index.html").read_text()
    assert index.count("<li>") == FEED_SIZE + 3  # the archive keeps every issue


def test_feeds_with_no_issue_yet_are_still_valid(settings):
    rss, atom = build(settings, sent={})
    assert channel(rss).find("lastBuildDate") is None
    assert channel(rss).findall("item") == []
    for document in (rss, atom):
        parsed = feedparser.parse(document)
        assert not parsed.bozo and parsed.entries == []


def test_feed_html_keeps_only_safe_markup_and_absolute_urls():
    fragment = (
        '<p style="color:red" onclick="x()">Hi <a href="../other/" style="x">there</a>'
        '<script>alert(1)</script><style>p{}</style></p>'
        '<table role="presentation" width="100%"><tr><td style="text-align:right;border:1px">1</td>'
        "</tr></table>"
        '<p><a href="javascript:alert(1)">bad</a> <img src="pic.png" alt="A &amp; B" '
        'style="max-width:100%"> <a href="mailto:dana@example.com">mail</a></p>'
        "<iframe src='https://evil.example.com/'>fallback text</iframe>"
    )
    cleaned = clean_feed_html(fragment, "https://site.example.com/issues/calf/")
    assert cleaned == (
        '<p>Hi <a href="https://site.example.com/issues/other/">there</a></p>'
        '<table><tr><td align="right">1</td></tr></table>'
        '<p><a>bad</a> <img src="https://site.example.com/issues/calf/pic.png" alt="A &amp; B">'
        ' <a href="mailto:dana@example.com">mail</a></p>'
    )


def test_dates_and_text_helpers():
    eastern = timezone(timedelta(hours=-5))
    moment = datetime(2026, 12, 1, 2, 30, 15, 999, tzinfo=eastern)
    assert rfc822(moment) == "Tue, 01 Dec 2026 07:30:15 GMT"
    assert rfc3339(moment) == "2026-12-01T07:30:15Z"
    assert rfc822(datetime(2026, 12, 1, 7, 0)) == "Tue, 01 Dec 2026 07:00:00 GMT"  # naive: UTC
    assert xml_text('a & b < c > "d"\x00\x85') == "a &#x26; b &#x3C; c &#x3E; &#x22;d&#x22;"
