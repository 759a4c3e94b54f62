"""`publish draft --from-feed`: saved sample feeds, a local HTTP server, and
hostile content that must not reach the draft."""

from __future__ import annotations

import http.server
import re
import socket
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.blogfeed import BlogPost
from pipeline.cli import app
from pipeline.context import Context
from pipeline.draft import choose_posts, draft_from_feed, markdown_text, summary_markdown
from pipeline.errors import FeedError, PublishError
from pipeline.issue import load_issue
from pipeline.lint import check_issue
from pipeline.render import render_issue

FEEDS = Path(__file__).resolve().parent / "data" / "feeds"
TODAY = date(2026, 11, 30)
FRONT_MATTER_KEYS = ["title", "date", "subject", "preheader", "slug", "author", "tags", "publish_at"]


def draft(settings, name, **options):
    return draft_from_feed(settings, str(FEEDS / name), today=TODAY, **options)


def front_matter_keys(text: str) -> list[str]:
    front = text.split("---\n")[1]
    return [line.split(":", 1)[0] for line in front.splitlines()]


def links_in(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]*)"', html)


def markdown_targets(text: str) -> list[str]:
    """Every link and image target in a markdown document."""
    from pipeline.body import markdown

    found = []
    for token in markdown().parse(text.split("---\n", 2)[2]):
        for child in token.children or ():
            if child.type in ("link_open", "image"):
                found.append(str(child.attrGet("href") or child.attrGet("src")))
    return found


def assert_publishable(settings, path: Path) -> None:
    result = check_issue(path, Context.load(settings))
    assert result.errors == (), [str(f) for f in result.findings]


@pytest.mark.parametrize(
    ("name", "titles"),
    [
        (
            "blog.rss",
            [
                "Why your heel hurts first thing in the morning",
                "Foam rolling: how hard is too hard?",
                "Three questions to ask before you buy a standing desk",
            ],
        ),
        (
            "blog.atom",
            [
                "Neck tension and the way you hold your phone",
                "What a physical therapist keeps in her desk drawer",
            ],
        ),
        ("relative.rss", ['Shoulder blades & the "desk hunch"', "Wall angels, step by step"]),
    ],
)
def test_a_draft_from_each_sample_feed_is_ready_to_finish(settings, name, titles):
    result = draft(settings, name)

    assert result.warnings == ()
    assert [post.title for post in result.posts] == titles
    assert result.path == settings.issues_dir / result.path.name
    assert result.path.name.startswith("2026-11-30-from-the-blog-")
    text = result.path.read_text()
    assert front_matter_keys(text) == FRONT_MATTER_KEYS  # the shape `publish new` writes
    issue = load_issue(result.path)
    assert issue.title == f"From the blog: {titles[0]}, and more"
    assert issue.date == TODAY
    assert issue.author == settings.author
    assert issue.publish_at is None
    assert issue.preheader.startswith(f"New on the blog: {titles[0]}; ")
    assert len(issue.preheader) <= 130
    assert_publishable(settings, result.path)

    rendered = render_issue(issue, Context.load(settings))
    for post in result.posts:
        assert post.link in rendered.text  # each post links to the blog
        assert post.title.split('"')[0] in rendered.text
    for url in links_in(rendered.web_html):
        assert url.startswith(("https://", "mailto:")), url


def test_images_come_from_media_enclosures_or_the_first_img(settings):
    rss = draft(settings, "blog.rss")
    assert [post.image for post in rss.posts] == [
        "https://painfreeliving.example.com/blog/images/towel-stretch.jpg",
        "https://painfreeliving.example.com/blog/images/foam-roller.png",
        "",
    ]
    text = rss.path.read_text()
    assert (
        "![Why your heel hurts first thing in the morning]"
        "(https://painfreeliving.example.com/blog/images/towel-stretch.jpg)" in text
    )
    atom = draft_from_feed(settings, str(FEEDS / "blog.atom"), today=date(2026, 12, 1))
    assert atom.posts[0].image == "https://painfreeliving.example.com/blog/images/chin-tuck.jpg"
    assert "![A chin tuck, seen from the side](" in atom.path.read_text()


def test_relative_links_resolve_against_the_feeds_link_and_html_becomes_text(settings):
    result = draft(settings, "relative.rss")

    first, second = result.posts
    assert first.link == "https://clinic.example.org/notes/desk-hunch"
    assert second.link == "https://clinic.example.org/notes/wall-angels"
    assert first.image == "https://clinic.example.org/notes/images/hunch.jpg"
    text = result.path.read_text()
    assert "[our posture guide](https://clinic.example.org/guides/posture.html)" in text
    assert "[wall angels how-to](https://clinic.example.org/notes/wall-angels)" in text
    assert "[the steps](https://clinic.example.org/notes/wall-angels#steps)" in text
    assert "sit like a question mark by 3 pm \\& don't notice." in text
    assert "Sit back in the chair. Screen at eye level. Try this. Squeeze" in " ".join(text.split())
    assert "<" not in text.split("---\n", 2)[2].replace("\\<", "")
    assert "## Shoulder blades \\& the \"desk hunch\"" in text


def test_a_malformed_feed_gives_a_warning_and_what_could_be_read(settings):
    result = draft(settings, "malformed.rss")

    assert len(result.warnings) == 1
    assert result.warnings[0].startswith(f"{FEEDS / 'malformed.rss'}: the feed is malformed (")
    assert result.warnings[0].endswith("using the 2 posts that could be read")
    assert [post.title for post in result.posts] == [
        "Hamstrings & the sit-and-reach test",
        "Ankle circles for stiff mornings",
    ]
    assert_publishable(settings, result.path)


def test_hostile_feed_content_never_reaches_the_draft(settings):
    result = draft(settings, "hostile.rss")
    text = result.path.read_text()
    flat = " ".join(text.split())

    for gone in (
        "document.cookie",
        "document.location",
        "alert(document",
        "vbscript:",
        "data:",
        "display:none",
        "pixel.gif",
        "open.gif",
        "~r/",
        "iframe",
        "Your browser does not support",
        "onclick",
        "onmouseover",
        "steal()",
        "password",
        "phish",
        "x.swf",
        'alert("title")',
    ):
        assert gone not in text, gone
    # The one javascript: left is text in a title, never a link or an image.
    targets = markdown_targets(text)
    assert targets and all(t.startswith("https://") for t in targets), targets
    assert [post.image for post in result.posts] == ["", ""]  # pixels and scripts are no images
    assert result.posts[0].link == ""  # a javascript: link is no link
    assert "[A real link](https://hostile.example.com/real)" in flat
    # Markdown in the feed's text stays text.
    assert "\\# Not a heading, \\*not emphasis\\*, \\`not code\\`, \\!\\[not an" in flat
    assert "\\<script\\>alert('escaped')\\</script\\>" in flat
    # A summary starting "P.S." must not become the issue's postscript.
    assert "&#80;.S. and so does this summary" in flat
    assert_publishable(settings, result.path)

    issue = load_issue(result.path)
    rendered = render_issue(issue, Context.load(settings))
    assert "<script" not in rendered.html and "<script" not in rendered.web_html
    assert "&lt;script&gt;alert(" in rendered.web_html  # shown as text
    hosts = {re.sub(r"^https?://([^/]+).*", r"\1", url) for url in links_in(rendered.web_html)}
    assert "evil.example.com" not in hosts and "tracker.hostile.example.com" not in hosts
    assert "P.S. and so does this summary" in rendered.text
    assert rendered.text.count("P.S. Know someone") == 1


def test_an_empty_feed_is_an_error_and_writes_nothing(settings):
    before = sorted(settings.issues_dir.iterdir())
    with pytest.raises(FeedError, match=rf"^{re.escape(str(FEEDS / 'empty.rss'))}: no posts$"):
        draft(settings, "empty.rss")
    with pytest.raises(FeedError, match=r": no posts since 2027-01-01$"):
        draft(settings, "blog.rss", since=date(2027, 1, 1))
    assert sorted(settings.issues_dir.iterdir()) == before


def test_not_a_feed_is_an_error(settings, tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><body><p>Not a feed at all</p></body></html>")
    with pytest.raises(FeedError, match=r"page\.html: not an RSS or Atom feed$"):
        draft_from_feed(settings, str(page), today=TODAY)
    with pytest.raises(FeedError, match=r"missing\.rss: cannot read: No such file or directory"):
        draft_from_feed(settings, str(tmp_path / "missing.rss"), today=TODAY)


def test_since_and_limit_pick_the_newest_posts(settings):
    result = draft(settings, "blog.rss", since=date(2026, 11, 16), limit=5)
    assert [post.title for post in result.posts] == [
        "Why your heel hurts first thing in the morning",
        "Foam rolling: how hard is too hard?",
    ]
    one = draft_from_feed(settings, str(FEEDS / "blog.rss"), today=date(2026, 12, 2), limit=1)
    assert len(one.posts) == 1
    assert load_issue(one.path).title == "Why your heel hurts first thing in the morning"


def test_undated_posts_follow_dated_ones_and_are_left_out_by_since():
    dated = BlogPost("new", "https://b.example/new", "", "", datetime(2026, 11, 2, tzinfo=UTC))
    older = BlogPost("old", "https://b.example/old", "", "", datetime(2026, 10, 2, tzinfo=UTC))
    undated = BlogPost("undated", "https://b.example/u", "", "")
    assert choose_posts([undated, older, dated]) == (dated, older, undated)
    assert choose_posts([undated, older, dated], since=date(2026, 11, 1)) == (dated,)
    assert choose_posts([undated, older, dated], limit=2) == (dated, older)


def test_a_draft_never_overwrites(settings):
    first = draft(settings, "blog.rss")
    first.path.write_text(first.path.read_text() + "\nThe editor's own words.\n")
    with pytest.raises(PublishError, match=r"already exists; finish or remove that draft first$"):
        draft(settings, "blog.rss")
    assert first.path.read_text().endswith("The editor's own words.\n")


def test_summaries_become_short_markdown_safe_text():
    long_html = "<p>" + " ".join(f"word{n}" for n in range(200)) + "</p>"
    short = summary_markdown(long_html, "https://b.example/", limit=60)
    assert short.endswith("…") and len(short) <= 61
    assert summary_markdown('<a href="/x">a [b] *c*</a>', "https://b.example/post") == (
        "[a \\[b\\] \\*c\\*](https://b.example/x)"
    )
    assert summary_markdown("P.S. hello", "https://b.example/") == "&#80;.S. hello"
    assert summary_markdown("<p>One</p><p>Two</p>", "") == "One. Two."
    assert summary_markdown('<a href="/a b(c)">x</a>', "https://b.example/") == (
        "[x](https://b.example/a%20b%28c%29)"
    )
    assert markdown_text("a_b | c ~ d & e\n  f") == "a\\_b \\| c \\~ d \\& e f"


# ---------------------------------------------------------------------------
# Over HTTP, on loopback
# ---------------------------------------------------------------------------


class FeedServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.agents: list[str] = []
        super().__init__(("127.0.0.1", 0), FeedHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FeedHandler(http.server.BaseHTTPRequestHandler):
    server: FeedServer

    def do_GET(self):
        self.server.agents.append(self.headers.get("User-Agent", ""))
        path = FEEDS / self.path.lstrip("/")
        if not self.path.endswith((".rss", ".atom")) or not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def feed_server():
    server = FeedServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_feed_fetched_over_http_with_a_descriptive_user_agent(settings, feed_server):
    result = draft_from_feed(settings, f"{feed_server.url}/blog.atom", today=TODAY)

    assert len(result.posts) == 2
    assert len(feed_server.agents) == 1
    agent = feed_server.agents[0]
    assert agent.startswith("painfree-publish/")
    assert "https://painfreeliving.example.com" in agent
    assert_publishable(settings, result.path)


def test_a_fetched_feed_resolves_relative_links_against_its_own_link(settings, feed_server):
    result = draft_from_feed(settings, f"{feed_server.url}/relative.rss", today=TODAY)
    assert result.posts[0].link == "https://clinic.example.org/notes/desk-hunch"


def test_http_errors_are_one_line(settings, feed_server):
    with pytest.raises(FeedError, match=r"/missing\.rss: the server answered 404 Not Found$"):
        draft_from_feed(settings, f"{feed_server.url}/missing.rss", today=TODAY)


def test_an_unreachable_feed_is_a_one_line_error(settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(FeedError, match=rf"^http://127\.0\.0\.1:{port}/feed\.rss: cannot fetch: "):
        draft_from_feed(settings, f"http://127.0.0.1:{port}/feed.rss", today=TODAY)


def test_a_server_that_never_answers_hits_the_timeout(settings):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts connections, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/feed.rss"
        with pytest.raises(FeedError, match=rf"^{re.escape(url)}: no complete answer within 0.3 seconds$"):
            draft_from_feed(settings, url, today=TODAY, timeout=0.3)


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def test_cli_draft_writes_the_issue_and_prints_warnings(newsletter):
    runner = CliRunner()
    result = runner.invoke(app, ["draft", "--from-feed", str(FEEDS / "malformed.rss"), "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: ")
    assert re.fullmatch(
        r"wrote issues/\d{4}-\d\d-\d\d-hamstrings-the-sit-and-reach-test\.md from 1 post\n",
        result.stdout,
    )


def test_cli_draft_errors_are_one_line(newsletter):
    runner = CliRunner()
    empty = runner.invoke(app, ["draft", "--from-feed", str(FEEDS / "empty.rss")])
    assert empty.exit_code == 1
    assert empty.stderr == f"error: {FEEDS / 'empty.rss'}: no posts\n"
    bad_date = runner.invoke(
        app, ["draft", "--from-feed", str(FEEDS / "blog.rss"), "--since", "last week"]
    )
    assert bad_date.exit_code == 1
    assert bad_date.stderr == "error: --since: 'last week' is not a date like 2026-11-15\n"


# ---------------------------------------------------------------------------
# Staying on the public web: redirects, addresses, size, time
# ---------------------------------------------------------------------------

BLOG_RSS = (FEEDS / "blog.rss").read_bytes()
MB = 1024 * 1024


class Site(http.server.ThreadingHTTPServer):
    """A web server on a loopback address that answers from :attr:`routes`
    and records every request it gets."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.routes: dict[str, tuple] = {}
        self.requests: list[tuple[str, str]] = []  # (Host header, path)
        self.done = threading.Event()
        super().__init__((host, 0), SiteHandler)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request, client_address):
        pass  # a client that gave up (too large, too slow) breaks the pipe: expected

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        self.routes[path] = ("redirect", status, location)
        return f"{self.url}{path}"

    def chain(self, count: int) -> str:
        """A URL that redirects ``count`` times before the feed."""
        self.routes["/feed.rss"] = ("feed", BLOG_RSS, True)
        for hop in range(count):
            self.redirect(f"/hop/{hop}", "/feed.rss" if hop == 0 else f"/hop/{hop - 1}")
        return f"{self.url}/hop/{count - 1}"


class SiteHandler(http.server.BaseHTTPRequestHandler):
    server: Site
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.requests.append((self.headers.get("Host", ""), self.path))
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
        elif route[0] == "redirect":
            self.send_response(route[1])
            self.send_header("Location", route[2])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route[0] == "feed":
            _, data, with_length = route
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            if with_length:
                self.send_header("Content-Length", str(len(data)))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            for start in range(0, len(data), 256 * 1024):
                if self.server.done.is_set():
                    break
                self.wfile.write(data[start:start + 256 * 1024])
            self.close_connection = True
        elif route[0] == "trickle":
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(BLOG_RSS)))
            self.end_headers()
            for byte in BLOG_RSS:  # a byte every 50 ms: about two minutes for the feed
                if self.server.done.wait(0.05):
                    break
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture
def sites():
    """Start web servers on loopback: ``sites()``, ``sites("127.0.0.2")``."""
    started: list[tuple[Site, threading.Thread]] = []

    def start(host: str = "127.0.0.1") -> Site:
        site = Site(host)
        thread = threading.Thread(target=site.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        started.append((site, thread))
        return site

    yield start
    for site, thread in started:
        site.done.set()
        site.shutdown()
        site.server_close()
        thread.join(timeout=10)


def run_draft(url: str, *options: str):
    return CliRunner().invoke(app, ["draft", "--from-feed", url, "--timeout", "5", *options])


def assert_refused(result, url: str, why: str, newsletter: Path, before: list[Path]) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {url}: "), result.stderr
    assert why in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert sorted((newsletter / "issues").iterdir()) == before  # no draft written


def test_a_feed_typed_on_loopback_may_redirect_within_its_own_host(newsletter, sites):
    site = sites()
    site.routes["/blog/feed.rss"] = ("feed", BLOG_RSS, True)
    url = site.redirect("/feed", "/blog/feed.rss", status=301)
    result = run_draft(url, "--limit", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("wrote issues/")
    assert [path for _, path in site.requests] == ["/feed", "/blog/feed.rss"]


@pytest.mark.parametrize("count", [5, 6])
def test_at_most_five_redirects_are_followed(newsletter, sites, count):
    site = sites()
    url = site.chain(count)
    before = sorted((newsletter / "issues").iterdir())
    result = run_draft(url, "--limit", "1")
    if count == 5:
        assert result.exit_code == 0, result.output
        assert len(site.requests) == 6
    else:
        assert_refused(result, url, "more than 5 redirects (the last to ", newsletter, before)
        assert len(site.requests) == 6  # the sixth redirect is never followed


def test_a_redirect_to_another_loopback_port_or_host_is_refused(newsletter, sites):
    site, other_port, other_host = sites(), sites(), sites("127.0.0.2")
    for other in (other_port, other_host):
        other.routes["/blog.rss"] = ("feed", BLOG_RSS, True)
        before = sorted((newsletter / "issues").iterdir())
        url = site.redirect(f"/to-{other.server_address[1]}", f"{other.url}/blog.rss")
        result = run_draft(url)
        assert_refused(
            result,
            url,
            f"redirected to {other.url}/blog.rss: a URL on a local address may only redirect "
            f"within its own host (127.0.0.1:{site.server_address[1]})",
            newsletter,
            before,
        )
        assert other.requests == []


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("ftp://127.0.0.1/blog.rss", "only http and https are fetched, not ftp"),
        ("file:///etc/passwd", "only http and https are fetched, not file"),
        ("http://169.254.169.254/latest/meta-data/",
         "a URL on a local address may only redirect within its own host"),
        ("http://user:secret@127.0.0.1/blog.rss", "a URL with a user name or password"),
    ],
)
def test_redirects_off_http_or_off_the_typed_host_are_refused(newsletter, sites, location, why):
    site = sites()
    url = site.redirect("/feed", location)
    before = sorted((newsletter / "issues").iterdir())
    assert_refused(run_draft(url), url, f"redirected to {location}: {why}", newsletter, before)
    assert len(site.requests) == 1


@pytest.mark.parametrize("with_length", [True, False])
def test_a_body_over_five_megabytes_is_refused(newsletter, sites, with_length):
    site = sites()
    padding = b"<!-- " + b"x" * (5 * MB) + b" -->\n"
    big = BLOG_RSS.replace(b"<channel>", b"<channel>" + padding, 1)
    assert len(big) > 5 * MB
    site.routes["/big.rss"] = ("feed", big, with_length)
    url = f"{site.url}/big.rss"
    before = sorted((newsletter / "issues").iterdir())
    assert_refused(run_draft(url), url, "the answer is larger than 5 MB", newsletter, before)


def test_a_feed_just_under_the_cap_is_read(newsletter, sites):
    site = sites()
    padding = b"<!-- " + b"x" * (5 * MB - len(BLOG_RSS) - 20) + b" -->\n"
    site.routes["/big.rss"] = ("feed", BLOG_RSS.replace(b"<channel>", b"<channel>" + padding, 1), False)
    result = run_draft(f"{site.url}/big.rss", "--limit", "1")
    assert result.exit_code == 0, result.output


def test_the_timeout_covers_the_whole_fetch(settings, sites):
    site = sites()
    site.routes["/slow.rss"] = ("trickle",)
    url = f"{site.url}/slow.rss"
    started = time.monotonic()
    with pytest.raises(FeedError, match=rf"^{re.escape(url)}: no complete answer within 0.5 seconds$"):
        draft_from_feed(settings, url, today=TODAY, timeout=0.5)
    assert time.monotonic() - started < 2.5


# -- a public host, played on loopback -----------------------------------------


class PublicWeb:
    """Names that resolve as the test says, public addresses served by a
    loopback site; a connection to any other address is recorded and refused."""

    def __init__(self, site: Site, names: dict[str, list[str]]):
        self.site = site
        self.names = names
        self.connected: list[str] = []

    @property
    def network(self):
        from pipeline.fetch import Network

        return Network(resolve=self._resolve, connect=self._connect)

    def _resolve(self, host: str) -> list[str]:
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.names[host]

    def _connect(self, address: str, port: int, timeout: float) -> socket.socket:
        from pipeline.fetch import address_problem

        self.connected.append(address)
        if address_problem(address):
            raise ConnectionRefusedError(111, "Connection refused (a test stand-in)")
        return socket.create_connection((self.site.host, self.site.port), timeout=timeout)


NAMES = {
    "blog.example.com": ["93.184.215.14"],
    "cdn.example.net": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", "93.184.215.15"],
    "localhost": ["127.0.0.1", "::1"],
    "half-private.example.com": ["93.184.215.16", "10.0.0.7"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "router.example.com": ["192.168.1.1"],
    "shared.example.com": ["100.64.0.1"],
    "2130706433": ["127.0.0.1"],  # as the C library reads 127.0.0.1 written as one number
    "xn--bcher-kva.example": ["93.184.215.18"],
}


@pytest.fixture
def public_web(sites):
    site = sites()
    return site, PublicWeb(site, NAMES)


def test_a_public_feed_may_redirect_to_another_public_host(settings, public_web):
    site, web = public_web
    site.routes["/feed.rss"] = ("feed", BLOG_RSS, True)
    site.redirect("/feed", "http://cdn.example.net/feed.rss")
    result = draft_from_feed(settings, "http://blog.example.com/feed", today=TODAY, network=web.network)
    assert len(result.posts) == 3
    assert result.path.is_file()
    assert site.requests == [("blog.example.com", "/feed"), ("cdn.example.net", "/feed.rss")]
    assert web.connected == ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]


def test_a_redirect_to_an_international_name_and_path_is_sent_as_ascii(settings, public_web):
    site, web = public_web
    site.routes["/neue%20beitr%C3%A4ge.rss"] = ("feed", BLOG_RSS, True)
    site.redirect("/feed", "http://bücher.example/neue beiträge.rss")
    draft_from_feed(settings, "http://blog.example.com/feed", today=TODAY, network=web.network)
    assert site.requests[1] == ("xn--bcher-kva.example", "/neue%20beitr%C3%A4ge.rss")


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("http://127.0.0.1:8080/feed.rss", "127.0.0.1 is on a loopback address (127.0.0.1)"),
        ("http://localhost/feed.rss", "localhost is on a loopback address (127.0.0.1)"),
        ("http://[::1]/feed.rss", "::1 is on a loopback address (::1)"),
        ("http://mapped.example.com/", "is on a loopback address inside an IPv6 address"),
        ("http://[::ffff:169.254.169.254]/", "is on a link-local address inside an IPv6 address"),
        ("http://169.254.169.254/latest/meta-data/", "is on a link-local address (169.254.169.254)"),
        ("http://[fe80::1]/", "is on a link-local address"),
        ("http://half-private.example.com/feed.rss", "is on a private address (10.0.0.7)"),
        ("http://router.example.com/", "is on a private address (192.168.1.1)"),
        ("http://shared.example.com/", "is on a shared (carrier-grade NAT) address"),
        ("http://224.0.0.1/", "is on a multicast address"),
        ("http://0.0.0.0:8000/", "is on an unspecified address"),
        ("http://[::]/", "is on an unspecified address"),
        ("http://2130706433/", "2130706433 is on a loopback address (127.0.0.1)"),
    ],
)
def test_a_public_feed_redirecting_off_the_public_web_is_refused(settings, public_web, location, why):
    site, web = public_web
    site.redirect("/feed", location)
    url = "http://blog.example.com/feed"
    before = sorted(settings.issues_dir.iterdir())
    with pytest.raises(FeedError) as caught:
        draft_from_feed(settings, url, today=TODAY, network=web.network)
    message = str(caught.value)
    assert message.startswith(f"{url}: ") and why in message and "\n" not in message
    assert web.connected == ["93.184.215.14"]  # never a connection off the public web
    assert sorted(settings.issues_dir.iterdir()) == before


def test_a_public_feed_redirected_through_public_hosts_is_checked_at_every_hop(settings, public_web):
    site, web = public_web
    site.redirect("/feed", "http://cdn.example.net/next")
    site.redirect("/next", "http://router.example.com/feed.rss")
    with pytest.raises(FeedError, match=r"router\.example\.com is on a private address"):
        draft_from_feed(settings, "http://blog.example.com/feed", today=TODAY, network=web.network)
    assert len(site.requests) == 2


def test_a_name_lookup_that_hangs_is_bounded_by_the_timeout(settings):
    from pipeline.fetch import Network

    release = threading.Event()

    def resolve(host: str) -> list[str]:
        release.wait(10)
        return ["93.184.215.14"]

    started = time.monotonic()
    try:
        with pytest.raises(FeedError, match=r"no complete answer within 0\.5 seconds$"):
            draft_from_feed(settings, "http://blog.example.com/feed", today=TODAY, timeout=0.5,
                            network=Network(resolve=resolve))
    finally:
        release.set()
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("93.184.215.14", ""),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", ""),
        ("127.0.0.2", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.0.1", "a private address"),
        ("fd00::1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("240.0.0.1", "a private address"),
        ("::ffff:10.0.0.1", "a private address inside an IPv6 address"),
        ("::ffff:127.0.0.1", "a loopback address inside an IPv6 address"),
        ("2002:7f00:1::", "a loopback address inside an IPv6 address"),  # 6to4
        ("64:ff9b::a9fe:a9fe", "a link-local address inside an IPv6 address"),  # NAT64
        ("192.0.2.1", "a private address"),  # documentation
    ],
)
def test_what_counts_as_off_the_public_web(address, problem):
    from pipeline.fetch import address_problem

    assert address_problem(address) == problem


@pytest.fixture
def https_site(sites, tmp_path, monkeypatch):
    """A loopback site over TLS with a certificate for blog.example.com,
    which this process trusts (through SSL_CERT_FILE) and nothing else does."""
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.support.certs import self_signed

    key = ec.generate_private_key(ec.SECP256R1())
    certificate = self_signed(key, "blog.example.com", [
        (x509.SubjectAlternativeName([x509.DNSName("blog.example.com")]), False),
        (x509.BasicConstraints(ca=True, path_length=None), True),
    ])
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    site = sites()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    site.socket = context.wrap_socket(site.socket, server_side=True)
    site.routes["/feed.rss"] = ("feed", BLOG_RSS, True)
    return site


def test_a_public_feed_over_https_is_fetched_with_its_certificate_checked(settings, https_site):
    web = PublicWeb(https_site, {**NAMES, "blog.example.org": ["93.184.215.17"]})
    result = draft_from_feed(settings, "https://blog.example.com/feed.rss", today=TODAY, network=web.network)
    assert len(result.posts) == 3
    assert https_site.requests == [("blog.example.com", "/feed.rss")]
    url = "https://blog.example.org/feed.rss"  # the same server, not its name
    with pytest.raises(FeedError, match=rf"^{re.escape(url)}: cannot fetch: the server's "
                                        "certificate is not valid: "):
        draft_from_feed(settings, url, today=TODAY, network=web.network)
