"""`publish draft --from-feed`: saved sample feeds, a local HTTP server, and
hostile content that must not reach the draft."""

from __future__ import annotations

import http.server
import re
import socket
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.draft import choose_posts, draft_from_feed, markdown_text, summary_markdown
from pipeline.errors import FeedError, PublishError
from pipeline.feeds import BlogPost
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
    result = check_issue(path, settings)
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

    rendered = render_issue(issue, settings)
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
    rendered = render_issue(issue, settings)
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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
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
        with pytest.raises(FeedError, match=rf"^{re.escape(url)}: (no answer within 0.3 seconds|"
                                            r"cannot fetch: timed out)$"):
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
