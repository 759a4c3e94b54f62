"""`publish report` and the headline of `publish status ISSUE`, on a
newsletter with four weeks of real history (tests/support/report_samples.py):
exact figures on SQLite and PostgreSQL, weeks without activity as zeros,
rates against SES's and Gmail's lines, the page self-contained and valid,
its figures the same as ``--json``'s, and the status warnings in words, in
colour only on a terminal."""

from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_settings
from pipeline.report.charts import axis
from pipeline.report.limits import BOUNCE_THRESHOLDS, COMPLAINT_THRESHOLDS, judge
from subscribers.events import Policy, apply_feedback
from subscribers.store import Store
from tests.support.report_samples import (
    FIRST,
    ISSUES,
    LINKS,
    SECOND,
    build_history,
    feedback,
    message_ids,
)
from tests.test_site_validators import nu_errors

runner = CliRunner()
NO_REASONS = {"too_often": 0, "not_relevant": 0, "never_signed_up": 0, "other": 0}


def run(*args: str, color: bool = False):
    return runner.invoke(app, list(args), color=color)


def ok(*args: str, color: bool = False) -> str:
    result = run(*args, color=color)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def tracked(newsletter, database_url, monkeypatch):
    """The history, in an SQLite file and then a PostgreSQL database, tracking on."""
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    monkeypatch.setenv("NEWSLETTER_TOKEN_SECRET", "a-secret-for-the-report-tests-0123456789")
    monkeypatch.setenv("NEWSLETTER_TRACKING", "true")
    return build_history(load_settings(newsletter))


@pytest.fixture
def history(newsletter, monkeypatch):
    """The history on SQLite, tracking on."""
    monkeypatch.setenv("NEWSLETTER_TRACKING", "true")
    return build_history(load_settings(newsletter))


def report_json(*args: str) -> dict:
    return json.loads(ok("report", "--json", *args))


def test_the_list_is_counted_week_by_week_and_a_quiet_week_is_zeros(tracked):
    weeks = report_json("--weeks", "4")["weeks"]
    assert weeks == [
        {"start": tracked.monday(3), "active": 20, "signups": 20, "confirmations": 0,
         "unsubscribes": 0, "bounces": 0, "complaints": 0},
        {"start": tracked.monday(2), "active": 20, "signups": 0, "confirmations": 0,
         "unsubscribes": 0, "bounces": 0, "complaints": 0},
        {"start": tracked.monday(1), "active": 16, "signups": 0, "confirmations": 0,
         "unsubscribes": 2, "bounces": 1, "complaints": 1},
        {"start": tracked.monday(0), "active": 16, "signups": 2, "confirmations": 1,
         "unsubscribes": 1, "bounces": 0, "complaints": 0},
    ]
    # No week before the list's history began; fewer weeks are the latest.
    assert report_json("--weeks", "9")["weeks"] == weeks
    assert report_json("--weeks", "2")["weeks"] == weeks[2:]


def test_each_issue_has_its_rates_reasons_opens_and_top_links(tracked):
    first, second = report_json()["issues"]
    assert first == {
        "issue": FIRST,
        "subject": first["subject"],
        "sent_on": tracked.at(1, 0).date().isoformat(),
        "status": "done",
        "sent": 20, "failed": 0, "delivered": 19, "bounced": 1, "complained": 1,
        # r01 said why and r02 did not: both left after it reached them.
        "unsubscribed": 2,
        "delivered_rate": 0.95, "bounce_rate": 0.05, "complaint_rate": 0.05,
        "unsubscribe_rate": 0.1,
        "bounce_level": "over", "complaint_level": "over",
        "unsubscribe_reasons": {**NO_REASONS, "too_often": 1},
        "tracking": {"opens": 0, "unique_opens": 0, "machine_opens": 0, "clicks": 0,
                     "unique_clicks": 0, "open_rate": 0.0, "click_rate": 0.0, "top_links": []},
    }
    assert second["sent"] == 16 and second["delivered"] == 16 and second["unsubscribed"] == 1
    assert (second["bounce_rate"], second["complaint_rate"]) == (0.0, 0.0)
    assert second["unsubscribe_rate"] == 0.0625 and second["bounce_level"] == "ok"
    assert second["unsubscribe_reasons"] == NO_REASONS
    assert second["tracking"] == {
        "opens": 10, "unique_opens": 10, "machine_opens": 4, "clicks": 11, "unique_clicks": 5,
        "open_rate": 0.625, "click_rate": 0.3125,
        "top_links": [{"url": url, "clicks": n, "unique": n} for url, n in LINKS.items()],
    }


def test_signups_are_counted_by_the_source_kept_with_their_consent(tracked):
    assert report_json()["sources"] == [
        {"source": "blog sidebar", "readers": 1, "active": 1, "pending": 0, "left": 0},
        {"source": "issue page", "readers": 1, "active": 0, "pending": 1, "left": 0},
        {"source": "not recorded", "readers": 20, "active": 15, "pending": 0, "left": 5},
    ]


class Page(HTMLParser):
    """The parts of the report page the tests look at."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self._table = dict(attrs)["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def rows(self, table: str) -> list[list[str]]:
        return self.tables[table][1:]  # under the header


def test_the_page_shows_the_figures_json_prints(history, newsletter):
    said = ok("report")
    assert said.strip() == "wrote preview/report.html: 2 issues, 4 weeks of the list; open it in any browser"
    text = (newsletter / "preview" / "report.html").read_text(encoding="utf-8")
    page = Page(text)
    data = report_json()
    assert page.rows("weekly-table") == [
        [w["start"], *(str(w[k]) for k in ("active", "signups", "confirmations", "unsubscribes",
                                           "bounces", "complaints"))]
        for w in data["weeks"]
    ]
    assert page.rows("bounce-table") == [
        [FIRST, data["issues"][0]["sent_on"], "20", "1", "5.00%", "over the SES review line (5%)"],
        [SECOND, data["issues"][1]["sent_on"], "16", "0", "0.00%", "under half of every line"],
    ]
    assert page.rows("complaint-table")[0][-2:] == ["5.00%", "over the Gmail spam rate line (0.3%)"]
    assert page.rows("issues-table")[0][:10] == [
        FIRST, data["issues"][0]["sent_on"], "20", "0", "19 (95.00%)", "5.00%", "5.00%", "2",
        "10.00%", "1 too often",
    ]
    assert page.rows("links-2") == [[url, str(n), str(n)] for url, n in list(LINKS.items())[:5]]
    assert page.rows("sources-table")[-1] == ["not recorded", "20", "15", "0", "5"]

    # The crossed lines are drawn red and say so; the bars over them too.
    bounce = text.split('id="bounce-rate"', 1)[1].split("</svg>", 1)[0]
    assert '<g class="limit crossed">' in bounce and "SES review 5%: crossed" in bounce
    assert bounce.count('class="bar over"') == 1 and bounce.count('class="bar ok"') == 1
    assert '<text class="flag over"' in bounce and ">over</text>" in bounce
    complaint = text.split('id="complaint-rate"', 1)[1].split("</svg>", 1)[0]
    assert "SES review 0.1%: crossed" in complaint and "Gmail spam rate 0.3%: crossed" in complaint
    assert "Apple Mail" in text and "proxies" in text and "block pictures" in text


def test_every_chart_is_named_described_and_has_a_table_under_it(history, newsletter):
    ok("report", "-o", "out/report.html")
    text = (newsletter / "out" / "report.html").read_text(encoding="utf-8")
    page = Page(text)
    svgs = [attrs for tag, attrs in page.tags if tag == "svg"]
    assert len(svgs) == 11  # active + 5 weekly measures, bounce, complaint, unsubscribe, opens, sources
    ids = {attrs.get("id") for _, attrs in page.tags}
    for svg in svgs:
        assert svg["role"] == "img" and "width" not in svg
        assert str(svg["viewbox"]).startswith("0 0 ")
        title, desc = str(svg["aria-labelledby"]).split()
        assert {title, desc} <= ids
        # Between the chart and the next heading: the table of its data.
        after = re.split(r"<h[1-6]|</main>", text.split(f'id="{svg["id"]}"', 1)[1], maxsplit=1)[0]
        assert "<table" in after, svg["id"]
    desc = text.split('id="bounce-rate-desc">', 1)[1].split("<", 1)[0]
    assert f"highest 5.00% ({FIRST})" in desc and "1 of 2 over the SES review line (5%)" in desc


def test_the_page_fetches_nothing_and_passes_the_nu_html_checker(history, newsletter):
    ok("report")
    path = newsletter / "preview" / "report.html"
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "picture"}
    assert not [attrs for _, attrs in page.tags if "src" in attrs or "href" in attrs]
    assert "@import" not in text and "url(" not in text and "@font-face" not in text
    assert nu_errors([path]) == []


def test_with_tracking_off_the_report_and_status_say_so(newsletter, monkeypatch):
    settings = load_settings(newsletter)
    build_history(settings)
    data = report_json()
    assert data["tracking"] is False and [i["tracking"] for i in data["issues"]] == [None, None]
    ok("report")
    text = (newsletter / "preview" / "report.html").read_text(encoding="utf-8")
    assert "Tracking is off" in text and 'id="open-rate"' not in text
    assert "top links: tracking is off (tracking.enabled)" in ok("status", SECOND)


def test_an_empty_list_gets_a_report_of_this_week(settings):
    data = report_json()
    assert data["issues"] == [] and data["sources"] == []
    assert [(w["active"], w["signups"]) for w in data["weeks"]] == [(0, 0)]
    ok("report")
    text = (settings.root / "preview" / "report.html").read_text(encoding="utf-8")
    assert "No issue has been sent yet." in text and text.count("<svg") == 6


def test_a_report_that_cannot_be_written_is_one_line_and_leaves_nothing(settings):
    (settings.root / "taken").mkdir()
    result = run("report", "-o", "taken")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip() == "error: taken: is a folder; name the report's file (-o report.html)"
    (settings.root / "a-file").write_text("kept")
    result = run("report", "-o", "a-file/report.html")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.fullmatch(r"error: a-file/report\.html: cannot write the report: .+\n", result.stderr)
    assert (settings.root / "a-file").read_text() == "kept"
    assert not (settings.root / "preview").exists()


# -- publish status ISSUE: the headline ----------------------------------------------


def test_status_shows_the_headline_with_warnings_in_words(history):
    out = ok("status", FIRST)
    assert "\x1b[" not in out, "no colour when standard output is not a terminal"
    assert "headline:  95.00% delivered, 5.00% bounced, 5.00% complained, 2 unsubscribed (10.00%)" in out
    assert "top links: no clicks counted yet" in out
    assert "warning:   bounce rate 5.00% is over the SES review line (5.00%)" in out
    assert "warning:   complaint rate 5.00% is over the Gmail spam rate line (0.30%)" in out
    second = ok("status", SECOND)
    assert "headline:  100.00% delivered, 0.00% bounced, 0.00% complained, 1 unsubscribed" in second
    links = [line for line in second.splitlines() if "clicks (" in line]
    assert links == [
        f"{'top links:' if i == 0 else '':<10} {n} clicks ({n} unique)  {url}"
        for i, (url, n) in enumerate(list(LINKS.items())[:3])
    ]
    assert "warning" not in second


def test_status_json_of_one_issue_has_the_headline_the_report_has(history):
    status = json.loads(ok("status", FIRST, "--json"))
    report = next(i for i in report_json()["issues"] if i["issue"] == FIRST)
    assert status["headline"] == report
    assert status["headline"]["bounce_rate"] == 0.05
    assert status["headline"]["bounce_level"] == "over"
    assert "headline" not in json.loads(ok("status", "--json"))[0]


def test_on_a_terminal_a_rate_over_a_limit_is_red(history):
    out = ok("status", FIRST, color=True)
    assert "\x1b[31m\x1b[1mwarning:   bounce rate 5.00% is over" in out


def test_a_rate_from_half_a_limit_is_near_and_yellow(settings):
    """40 readers and one bounce: 2.5%, half SES's 5%."""
    with Store.open(settings.database_url, settings.root) as store:
        for i in range(40):
            store.add(f"n{i:02d}@example.com")
        ok("issue", ISSUES[FIRST], "--yes")
        ids = message_ids(store, FIRST)
        apply_feedback(store, [feedback("bounce", "n07@example.com", ids["n07@example.com"],
                                         dt.datetime.now(dt.UTC), bounce_type="Permanent")],
                       Policy())
    plain = ok("status", FIRST)
    assert "warning:   bounce rate 2.50% is near the SES review line (5.00%)" in plain
    assert "\x1b[33mwarning:   bounce rate 2.50% is near" in ok("status", FIRST, color=True)


# -- the figures, pure -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "level", "line"),
    [
        (0.0249, "ok", None),
        (0.025, "near", "SES review"),
        (0.0499, "near", "SES review"),
        (0.05, "over", "SES review"),
    ],
)
def test_bounce_rates_are_near_from_half_the_line_and_over_at_it(rate, level, line):
    judged = judge(rate, BOUNCE_THRESHOLDS)
    assert judged.level == level and (judged.threshold and judged.threshold.name) == line


@pytest.mark.parametrize(
    ("rate", "level", "line"),
    [
        (0.0004, "ok", None),
        (0.0005, "near", "SES review"),
        (0.001, "over", "SES review"),
        (0.0029, "over", "SES review"),
        (0.003, "over", "Gmail spam rate"),
    ],
)
def test_complaint_rates_name_the_highest_line_they_are_over(rate, level, line):
    judged = judge(rate, COMPLAINT_THRESHOLDS)
    assert judged.level == level and (judged.threshold and judged.threshold.name) == line


def test_axes_end_on_round_numbers():
    assert axis(20, whole=True) == [0, 5, 10, 15, 20]
    assert axis(3, whole=True) == [0, 1, 2, 3]
    assert axis(0, whole=True) == [0, 1]
    assert axis(0.0575, whole=False) == pytest.approx([0, 0.02, 0.04, 0.06])

