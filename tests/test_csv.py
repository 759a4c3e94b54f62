"""Importing and exporting subscribers as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subscribers.csvio import export_csv, export_file, import_csv
from subscribers.errors import SubscriberError
from subscribers.models import Status
from subscribers.store import Store
from subscribers.text import clean_name

SAMPLE = Path(__file__).resolve().parent.parent / "subscribers" / "sample.csv"


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(f"sqlite:///{tmp_path / 'list.db'}", tmp_path) as opened:
        yield opened


def write(tmp_path: Path, text: str, name: str = "list.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_the_sample_list_imports_cleanly_and_idempotently(store):
    report = import_csv(store, SAMPLE)
    assert report.ok and report.added == 25
    assert store.count(Status.ACTIVE) == 21 and store.count(Status.UNSUBSCRIBED) == 3
    events = sum(len(store.history(s.id)) for s in store.iter())
    again = import_csv(store, SAMPLE)
    assert (again.added, again.unchanged, again.updated) == (0, 25, 0)
    assert sum(len(store.history(s.id)) for s in store.iter()) == events


def test_mailchimp_columns_map_by_header(store, tmp_path):
    path = write(
        tmp_path,
        '"Email Address","First Name","Last Name","MEMBER_RATING","OPTIN_TIME","OPTIN_IP",'
        '"CONFIRM_TIME","CONFIRM_IP","LATITUDE"\n'
        '"Ana@Example.com","Ana","Lima",2,"2024-03-04 10:01:22","192.0.2.1",'
        '"2024-03-04 10:05:00","192.0.2.2",\n',
        name="subscribed_members_export.csv",
    )
    assert import_csv(store, path).added == 1
    ana = store.find("ana@example.com")
    assert ana.name == "Ana Lima" and ana.status == Status.ACTIVE
    assert ana.consent.at.isoformat() == "2024-03-04T10:01:22+00:00"
    assert ana.consent.ip == "192.0.2.1"
    assert ana.consent.confirmed_at.isoformat() == "2024-03-04T10:05:00+00:00"
    assert ana.consent.confirmed_ip == "192.0.2.2"
    assert ana.consent.text == "Imported from subscribed_members_export.csv"


def test_mailchimp_unsubscribed_and_cleaned_exports_keep_their_meaning(store, tmp_path):
    unsubscribed = write(
        tmp_path, "Email Address,UNSUB_TIME\nleft@example.com,2024-05-01 08:00:00\n", "u.csv"
    )
    cleaned = write(tmp_path, "Email Address,CLEAN_TIME\ndead@example.com,2024-05-01\n", "c.csv")
    import_csv(store, unsubscribed)
    import_csv(store, cleaned)
    assert store.find("left@example.com").status == Status.UNSUBSCRIBED
    assert store.find("dead@example.com").status == Status.BOUNCED


def test_listmonk_columns_and_statuses(store, tmp_path):
    path = write(
        tmp_path,
        "uuid,email,name,attributes,status,created_at,updated_at\n"
        'a1,one@example.com,One,"{""city"": ""Oslo""}",enabled,2023-01-02 03:04:05.123+00,x\n'
        "a2,two@example.com,Two,{},blocklisted,2023-01-02T03:04:05Z,x\n",
    )
    report = import_csv(store, path)
    assert report.ok, report.problems
    assert store.find("one@example.com").status == Status.ACTIVE
    assert store.find("one@example.com").created_at.year == 2023
    assert store.find("two@example.com").status == Status.UNSUBSCRIBED


def test_bad_rows_are_reported_by_line_and_the_rest_imported(store, tmp_path):
    path = write(
        tmp_path,
        "email,name,status,created_at\n"
        "good@example.com,Good,,\n"
        "not-an-email,,,\n"
        '"multi@example.com","Two\nLines",active,\n'
        "worse@,,,\n"
        "odd@example.com,,sleeping,\n"
        "when@example.com,,,yesterday\n"
        f"long@example.com,{'x' * 201},,\n"
        "GOOD@example.com,Again,,\n"
        "\n"
        "last@example.com\n",
    )
    report = import_csv(store, path)
    assert not report.ok
    assert [(p.line, p.reason.split(":")[0]) for p in report.problems] == [
        (3, "email"),
        (6, "email"),
        (7, "status"),
        (8, "created_at"),
        (9, "name"),
        (10, "GOOD@example.com"),
    ]
    assert "duplicate of line 2" in report.problems[-1].reason
    assert report.added == 3
    assert store.find("multi@example.com").name == "Two Lines"
    assert store.find("last@example.com").status == Status.ACTIVE


@pytest.mark.parametrize(
    ("content", "encoding", "message"),
    [
        ("email\nfine@example.com\ncaf\u00e9@example.com\n", "latin-1", "list.csv:3: not UTF-8"),
        ("address,name\nsam@example.com,Sam\n", "utf-8", "list.csv:1: no email column"),
        ("\n\n", "utf-8", "list.csv: empty"),
    ],
)
def test_a_wrong_file_is_one_error_and_imports_nothing(store, tmp_path, content, encoding, message):
    path = write(tmp_path, content, encoding=encoding)
    with pytest.raises(SubscriberError, match=message) as caught:
        import_csv(store, path)
    assert "\n" not in str(caught.value)
    assert store.count() == 0


def test_a_missing_file_is_one_error(store, tmp_path):
    with pytest.raises(SubscriberError, match="No such file"):
        import_csv(store, tmp_path / "nope.csv")


def test_a_byte_order_mark_is_fine(store, tmp_path):
    path = write(tmp_path, "\ufeffEmail,Name\nbom@example.com,Bom\n")
    assert import_csv(store, path).added == 1


def test_reimport_never_reactivates_without_being_asked(store, tmp_path):
    first = write(tmp_path, "email,status\na@example.com,unsubscribed\nb@example.com,bounced\n")
    import_csv(store, first)
    all_active = write(tmp_path, "email,status\na@example.com,active\nb@example.com,active\n", "2.csv")
    report = import_csv(store, all_active)
    assert report.ok and report.kept == 2
    assert store.find("a@example.com").status == Status.UNSUBSCRIBED
    report = import_csv(store, all_active, reactivate=True)
    assert report.reactivated == 2
    assert store.find("b@example.com").status == Status.ACTIVE
    assert [e.kind for e in store.history(store.find("b@example.com").id)] == [
        "imported", "reactivated",
    ]


def test_an_unsubscribe_in_the_file_is_honoured(store, tmp_path):
    store.add("sam@example.com")
    path = write(tmp_path, "email,status\nsam@example.com,unsubscribed\n")
    assert import_csv(store, path).updated == 1
    assert store.find("sam@example.com").status == Status.UNSUBSCRIBED


def test_export_round_trips_through_import(store, tmp_path):
    import_csv(store, SAMPLE)
    store.add("formula@example.com", name="=HYPERLINK(\"http://evil\")")
    out = io.StringIO()
    assert export_csv(store, out) == 26
    text = out.getvalue()
    assert text.splitlines()[0].startswith("email,name,status,source,created_at")
    assert '"\'=HYPERLINK' in text  # a spreadsheet will not run it

    path = write(tmp_path, text, "export.csv")
    with Store.open(f"sqlite:///{tmp_path / 'copy.db'}", tmp_path) as copy:
        assert import_csv(copy, path).added == 26
        for original in store.iter():
            twin = copy.find(original.email)
            assert (twin.name, twin.status, twin.created_at) == (
                original.name, original.status, original.created_at.replace(microsecond=0),
            )


def test_export_by_status(store):
    import_csv(store, SAMPLE)
    out = io.StringIO()
    assert export_csv(store, out, Status.UNSUBSCRIBED) == 3
    assert len(out.getvalue().splitlines()) == 4


def test_export_to_a_file_is_private_and_complete_or_absent(store, tmp_path):
    import_csv(store, SAMPLE)
    path = tmp_path / "out.csv"
    assert export_file(store, path) == 25
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().splitlines()) == 26

    class Broken(Store):
        def iter(self, status=None, batch=1000):
            yield from list(super().iter(status))[:3]
            raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        export_file(Broken(store.engine), tmp_path / "broken.csv")
    assert sorted(p.name for p in tmp_path.iterdir() if "csv" in p.name) == ["out.csv"]


# ---------------------------------------------------------------------------
# Other services' exports, as they export them (tests/data/csv/)
# ---------------------------------------------------------------------------

DATA = Path(__file__).resolve().parent / "data" / "csv"


def statuses(store: Store) -> dict[str, Status]:
    return {subscriber.email: subscriber.status for subscriber in store.iter()}


@pytest.mark.parametrize(
    ("name", "expected", "ignored"),
    [
        (
            "mailchimp_subscribed.csv",
            {"ana@example.com": Status.ACTIVE, "ben@example.com": Status.ACTIVE},
            ["Favourite colour", "MEMBER_RATING", "LATITUDE", "LONGITUDE", "GMTOFF", "DSTOFF",
             "TIMEZONE", "CC", "REGION", "LAST_CHANGED", "LEID", "EUID", "NOTES", "TAGS"],
        ),
        (
            "mailchimp_unsubscribed.csv",
            {"cara@example.com": Status.UNSUBSCRIBED},
            ["MEMBER_RATING", "LATITUDE", "LONGITUDE", "GMTOFF", "DSTOFF", "TIMEZONE", "CC",
             "REGION", "UNSUB_CAMPAIGN_TITLE", "UNSUB_CAMPAIGN_ID", "UNSUB_REASON",
             "UNSUB_REASON_OTHER", "LEID", "EUID", "NOTES", "TAGS"],
        ),
        (
            "mailchimp_cleaned.csv",
            {"dead@example.com": Status.BOUNCED},
            ["MEMBER_RATING", "LATITUDE", "LONGITUDE", "GMTOFF", "DSTOFF", "TIMEZONE", "CC",
             "REGION", "CLEAN_CAMPAIGN_TITLE", "CLEAN_CAMPAIGN_ID", "LEID", "EUID", "NOTES",
             "TAGS"],
        ),
        (
            "substack.csv",
            {"reader@example.com": Status.ACTIVE, "patron@example.com": Status.ACTIVE,
             "muted@example.com": Status.UNSUBSCRIBED},
            ["active_subscription", "expiry", "plan", "first_payment_at"],
        ),
        (
            "buttondown.csv",
            {"regular@example.com": Status.ACTIVE, "premium@example.com": Status.ACTIVE,
             "waiting@example.com": Status.PENDING, "left@example.com": Status.UNSUBSCRIBED,
             "gone@example.com": Status.BOUNCED, "spam@example.com": Status.COMPLAINED,
             "removed@example.com": Status.UNSUBSCRIBED},
            ["id", "notes", "metadata", "tags", "secondary_id", "utm_campaign", "utm_medium",
             "utm_source"],
        ),
        (
            "listmonk.csv",
            {"one@example.com": Status.ACTIVE, "two@example.com": Status.UNSUBSCRIBED,
             "three@example.com": Status.UNSUBSCRIBED},
            ["uuid", "attributes", "updated_at"],
        ),
        (
            "ghost.csv",
            {"dana@example.com": Status.ACTIVE, "quiet@example.com": Status.UNSUBSCRIBED,
             "paying@example.com": Status.ACTIVE},
            ["id", "note", "complimentary_plan", "stripe_customer_id", "labels", "tiers"],
        ),
    ],
)
def test_known_exports_keep_who_left_and_name_what_they_ignore(store, name, expected, ignored):
    report = import_csv(store, DATA / name)
    assert report.ok, report.problems
    assert report.added == len(expected)  # multi-line notes stay in their row
    assert statuses(store) == expected
    assert report.ignored_columns == ignored


def test_known_exports_keep_dates_names_and_where_consent_came_from(store):
    for name in ("buttondown.csv", "listmonk.csv", "ghost.csv", "substack.csv"):
        assert import_csv(store, DATA / name).ok
    regular = store.find("regular@example.com")
    assert regular.created_at.isoformat() == "2023-05-06T07:08:09.123456+00:00"
    assert regular.consent.ip == "203.0.113.9"
    assert regular.consent.text == (
        "Imported from buttondown.csv (source: embedded_form, "
        "referrer: https://example.com/subscribe)"
    )
    one = store.find("one@example.com")  # Go's time format, as listmonk writes it
    assert one.name == "One Reader"
    assert one.created_at.isoformat() == "2023-01-02T03:04:05.123456+00:00"
    assert store.find("two@example.com").created_at.isoformat() == "2023-02-03T03:05:06+00:00"
    dana = store.find("dana@example.com")
    assert dana.name == "Dana Scott" and dana.created_at.year == 2026
    assert dana.consent.text == "Imported from ghost.csv"
    assert store.find("muted@example.com").created_at.isoformat() == "2024-03-01T10:00:00+00:00"


def test_buttondown_s_newer_column_names(store, tmp_path):
    path = write(
        tmp_path,
        "email_address,type,creation_date,unsubscription_date,undeliverability_date\n"
        "a@example.com,regular,2024-01-01T00:00:00Z,,\n"
        "b@example.com,churned,2024-01-01T00:00:00Z,,\n"
        "c@example.com,blocked,2024-01-01T00:00:00Z,,\n"
        "d@example.com,upcoming,2024-01-01T00:00:00Z,,\n",
    )
    report = import_csv(store, path)
    assert report.ok, report.problems
    assert statuses(store) == {
        "a@example.com": Status.ACTIVE, "b@example.com": Status.UNSUBSCRIBED,
        "c@example.com": Status.UNSUBSCRIBED, "d@example.com": Status.PENDING,
    }


@pytest.mark.parametrize(
    ("header", "row"),
    [
        ("email,email_disabled", "x@example.com,TRUE"),
        ("email,subscribed_to_emails", "x@example.com,false"),
        ("email,status,deleted_at", "x@example.com,active,2024-01-01T00:00:00Z"),
        ("email,status,email_disabled", "x@example.com,subscribed,true"),
    ],
)
def test_a_sign_that_someone_left_is_never_read_as_active(store, tmp_path, header, row):
    assert import_csv(store, write(tmp_path, f"{header}\n{row}\n")).ok
    assert store.find("x@example.com").status == Status.UNSUBSCRIBED


def test_a_yes_no_column_that_is_neither_is_a_bad_row(store, tmp_path):
    path = write(tmp_path, "email,email_disabled\nx@example.com,perhaps\ny@example.com,false\n")
    report = import_csv(store, path)
    assert [(p.line, p.reason) for p in report.problems] == [
        (2, "email_disabled: 'perhaps' is not true or false"),
    ]
    assert report.added == 1


def test_our_own_export_keeps_its_consent_wording_on_the_way_back(store, tmp_path):
    path = write(
        tmp_path,
        "email,name,status,source,created_at,consent_at,consent_ip,consent_user_agent,"
        "consent_text,confirmed_ip\n"
        "r@example.com,R,active,form,2025-01-01T00:00:00+00:00,2025-01-01T00:00:00+00:00,"
        "192.0.2.5,Firefox,\"Yes, send me Pain Free Living\",192.0.2.6\n",
    )
    report = import_csv(store, path)
    assert report.ok and report.ignored_columns == []
    consent = store.find("r@example.com").consent
    assert consent.text == "Yes, send me Pain Free Living"
    assert (consent.ip, consent.user_agent, consent.confirmed_ip) == (
        "192.0.2.5", "Firefox", "192.0.2.6",
    )


def test_unknown_columns_are_named_once_in_the_order_of_the_header(store, tmp_path):
    rows = "".join(f"r{n}@example.com,Reader,blue,x\n" for n in range(50))
    path = write(tmp_path, "email,name,Favourite colour,Tags,,Tags\n" + rows)
    report = import_csv(store, path)
    assert report.ok and report.added == 50
    assert report.ignored_columns == ["Favourite colour", "Tags"]


# ---------------------------------------------------------------------------
# Separators, encodings, broken quoting, huge fields
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "separator", [";", "\t", "|"], ids=["semicolon", "tab", "pipe"]
)
def test_the_separator_is_detected(store, tmp_path, separator):
    lines = [
        separator.join(["email", "name", "created_at"]),
        separator.join(["a@example.com", '"Lima, Ana"', "2024-01-01"]),
        separator.join(["b@example.com", "Ben", "2024-01-02"]),
    ]
    report = import_csv(store, write(tmp_path, "\n".join(lines) + "\n"))
    assert report.ok and report.added == 2, report.problems
    assert store.find("a@example.com").name == "Lima, Ana"


def test_the_separator_and_encoding_can_be_given(store, tmp_path):
    path = write(tmp_path, "email;name\na@example.com;Anaïs\n", encoding="cp1252")
    with pytest.raises(SubscriberError, match=r"list\.csv:2: not UTF-8 text;.*--encoding"):
        import_csv(store, path)
    with pytest.raises(SubscriberError, match="no email column"):
        import_csv(store, path, delimiter=",", encoding="cp1252")  # as told: one column
    report = import_csv(store, path, delimiter=";", encoding="cp1252")
    assert report.ok and report.added == 1, report.problems
    assert store.find("a@example.com").name == "Anaïs"
    tabbed = write(tmp_path, "email\tname\nc@example.com\tC, D\n", "tabs.csv")
    assert import_csv(store, tabbed, delimiter="tab").added == 1
    assert store.find("c@example.com").name == "C, D"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delimiter": "ab"}, "--delimiter: 'ab' is not one character"),
        ({"delimiter": '"'}, "--delimiter"),
        ({"encoding": "klingon"}, "--encoding: 'klingon' is not an encoding Python knows"),
    ],
)
def test_wrong_options_are_one_error(store, tmp_path, options, message):
    with pytest.raises(SubscriberError, match=message):
        import_csv(store, write(tmp_path, "email\na@example.com\n"), **options)
    assert store.count() == 0


def test_a_file_in_utf16_with_its_byte_order_mark_is_read(store, tmp_path):
    path = write(tmp_path, "\ufeffemail\tname\nzoe@example.com\tZoë\n", encoding="utf-16-le")
    report = import_csv(store, path)
    assert report.ok and store.find("zoe@example.com").name == "Zoë"


def test_an_undecodable_row_far_into_the_file_is_one_bad_row(store, tmp_path):
    rows = "".join(f"r{n}@example.com,Reader {n}\n" for n in range(3000))  # ~90 KB of ASCII
    path = tmp_path / "list.csv"
    path.write_bytes(b"email,name\n" + rows.encode() + "late@example.com,Jos\xe9\n".encode(
        "latin-1") + b"last@example.com,Last\n")
    report = import_csv(store, path)
    assert [(p.line, p.reason.split(";")[0]) for p in report.problems] == [
        (3002, "not UTF-8 text"),
    ]
    assert "--encoding" in report.problems[0].reason
    assert report.added == 3001


def test_an_unbalanced_quote_is_reported_where_it_opened_and_merges_nothing(store, tmp_path):
    path = write(
        tmp_path,
        "email,name\n"
        "a@example.com,Ann\n"
        'b@example.com,"Bob\n'  # never closed
        "c@example.com,Cy\n"
        'd@example.com,"Dee"\n'
        "e@example.com,Eve\n",
    )
    report = import_csv(store, path)
    assert [(p.line, p.reason.split(":")[0]) for p in report.problems] == [
        (3, "unclosed quote"),
    ]
    assert sorted(statuses(store)) == [
        "a@example.com", "c@example.com", "d@example.com", "e@example.com",
    ]
    assert store.find("d@example.com").name == "Dee"


def test_a_stray_quote_closed_by_another_merges_nothing(store, tmp_path):
    """Two stray quotes make a well-formed CSV record out of three rows: csv
    alone would import one subscriber with a name three lines long."""
    path = write(
        tmp_path,
        "email,name,status\n"
        'a@example.com,"Ann,active\n'
        "b@example.com,Bob,active\n"
        'c@example.com,Cy",active\n'
        "d@example.com,Dee,active\n",
    )
    report = import_csv(store, path)
    assert [(p.line, p.reason.split(":")[0]) for p in report.problems] == [
        (2, "unclosed quote"),
    ]
    # Line 4's quote, in the middle of a cell, is only a character once line 2's is refused.
    assert sorted(statuses(store)) == ["b@example.com", "c@example.com", "d@example.com"]
    assert store.find("b@example.com").name == "Bob"


def test_a_quote_left_open_at_the_end_of_the_file(store, tmp_path):
    report = import_csv(store, write(tmp_path, 'email,name\na@example.com,A\nb@example.com,"B'))
    assert [(p.line, p.reason.split(":")[0]) for p in report.problems] == [(3, "unclosed quote")]
    assert report.added == 1


def test_a_quote_left_open_in_a_long_file_stops_nothing(store, tmp_path):
    """Open until csv's field limit: every row after it still imports."""
    rows = "".join(f"r{n}@example.com,Reader {n}\n" for n in range(6000))
    path = write(tmp_path, 'email,name\nfirst@example.com,"First\n' + rows)
    report = import_csv(store, path)
    assert [(p.line, p.reason.split(":")[0]) for p in report.problems] == [(2, "unclosed quote")]
    assert report.added == 6000


def test_a_bad_quote_in_the_header_is_one_error(store, tmp_path):
    path = write(tmp_path, 'email,"name\na@example.com,A\n')
    with pytest.raises(SubscriberError, match=r"list\.csv:1: unclosed quote"):
        import_csv(store, path)
    assert store.count() == 0


def test_a_huge_field_is_one_bad_row(store, tmp_path):
    path = write(
        tmp_path,
        "email,name\n"
        "a@example.com,A\n"
        f"b@example.com,{'x' * 1_000_000}\n"
        f'c@example.com,"{"y" * 1_000_000}"\n'
        "d@example.com,D\n",
    )
    report = import_csv(store, path)
    assert [(p.line, p.reason.split(" (")[0]) for p in report.problems] == [
        (3, "field too long"),
        (4, "field too long"),
    ]
    assert sorted(statuses(store)) == ["a@example.com", "d@example.com"]


def test_the_file_is_read_once_so_a_pipe_works(store, tmp_path):
    read, written = os.pipe()
    with os.fdopen(written, "w") as pipe:
        pipe.write("email,name\n" + "".join(f"p{n}@example.com,P\n" for n in range(100)))
    try:
        report = import_csv(store, Path(f"/dev/fd/{read}"))
    finally:
        os.close(read)
    assert report.ok and report.added == 100


# ---------------------------------------------------------------------------
# Whatever the file holds: one line per problem, no row merged into another
# ---------------------------------------------------------------------------

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_runs = itertools.count()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("fuzz")
    with Store.open(f"sqlite:///{folder / 'list.db'}", folder) as opened:
        yield opened, folder


@FUZZ
@given(
    cells=st.lists(
        st.lists(st.text(alphabet='ab ,;"\t|\r\n\'@.=\x00\xe9', max_size=12), max_size=4),
        min_size=1,
        max_size=12,
    ),
    header=st.sampled_from(["email,name", "email;name;status", "Email Address\tNotes", "name"]),
)
def test_no_file_makes_a_traceback(shared, cells, header):
    store, folder = shared
    path = folder / "fuzz.csv"
    path.write_text(header + "\n" + "\n".join(",".join(row) for row in cells), newline="")
    try:
        report = import_csv(store, path)
    except SubscriberError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))
    else:
        assert all(p.line >= 1 and "\n" not in p.reason for p in report.problems)


@FUZZ
@given(
    data=st.binary(max_size=300),
    options=st.sampled_from([{}, {"encoding": "latin-1"}, {"delimiter": ";"}, {"encoding": "utf-16"}]),
)
def test_no_bytes_make_a_traceback(shared, data, options):
    store, folder = shared
    path = folder / "bytes.csv"
    path.write_bytes(b"email,name\n" + data)
    try:
        report = import_csv(store, path, **options)
    except SubscriberError as exc:
        assert "\n" not in str(exc)
    else:
        assert all("\n" not in p.reason for p in report.problems)


@FUZZ
@given(
    names=st.lists(st.text(alphabet='ab ,"\t', max_size=8), min_size=1, max_size=15),
    separator=st.sampled_from([",", ";", "\t"]),
)
def test_every_line_is_its_own_row_or_its_own_problem(shared, names, separator):
    """Rows whose names hold stray quotes: each line is imported as itself
    or reported by its number, and no name swallows another row."""
    store, folder = shared
    run = next(_runs)
    emails = [f"f{run}-{n}@example.com" for n in range(len(names))]
    lines = [separator.join(("email", "name", "status"))] + [
        separator.join((email, name, "active")) for email, name in zip(emails, names, strict=True)
    ]
    path = folder / "rows.csv"
    path.write_text("\n".join(lines) + "\n", newline="")
    report = import_csv(store, path, delimiter=separator)
    reported = {problem.line for problem in report.problems}
    imported = {s.email: s for s in store.iter() if s.email.startswith(f"f{run}-")}
    for line, email in enumerate(emails, 2):
        assert (line in reported) != (email in imported), (line, lines, report.problems)
    for subscriber in imported.values():
        assert "@" not in subscriber.name and "active" not in subscriber.name, lines


@FUZZ
@given(
    notes=st.lists(st.text(alphabet='ab ,;"\t\n\r.', max_size=30), min_size=1, max_size=10),
    separator=st.sampled_from([",", ";", "\t"]),
)
def test_a_quoted_cell_may_span_lines(shared, notes, separator):
    """Notes as a spreadsheet writes them, quotes and line breaks in them:
    every row imports, with its own name."""
    store, folder = shared
    run = next(_runs)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=separator)
    writer.writerow(["id", "email", "name", "note", "subscribed_to_emails"])
    emails = [f"g{run}-{n}@example.com" for n in range(len(notes))]
    for n, (email, note) in enumerate(zip(emails, notes, strict=True)):
        writer.writerow([n, email, note[:10], note, "true"])
    path = folder / "notes.csv"
    path.write_text(out.getvalue(), newline="")
    report = import_csv(store, path, delimiter=separator)
    assert report.ok, (out.getvalue(), report.problems)
    imported = {s.email: s.name for s in store.iter() if s.email.startswith(f"g{run}-")}
    assert imported == {
        email: clean_name(note[:10]) for email, note in zip(emails, notes, strict=True)
    }


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r", "|", "＝", "＋", "－", "＠"])
def test_every_exported_cell_is_safe_to_open_in_a_spreadsheet(store, tmp_path, lead):
    """The address and the consent IP too: a signup form takes whatever a
    stranger types, and a spreadsheet runs a cell that starts like a formula."""
    from subscribers.models import Consent

    email = f"{lead}cmd@example.com" if lead.isascii() and lead not in "@\t\r" else "cmd@example.com"
    store.add(
        email,
        name=f"{lead}HYPERLINK(1)",
        consent=Consent(
            at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
            ip=f"{lead}1+1",
            user_agent=f"{lead}ua",
            text=f"{lead}wording",
            confirmed_ip=f"{lead}2+2",
        ),
    )
    out = io.StringIO()
    export_csv(store, out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    for cell in rows[1]:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r", "|", "＝", "＋", "－", "＠")), rows[1]

    path = write(tmp_path, out.getvalue(), "export.csv")
    with Store.open(f"sqlite:///{tmp_path / 'copy.db'}", tmp_path) as copy:
        assert import_csv(copy, path).added == 1
        twin, original = copy.find(email), store.find(email)
        # Import trims white space around a name, so a tab in front goes.
        assert twin.name == original.name.strip()
        assert (twin.consent.ip, twin.consent.confirmed_ip) == (f"{lead}1+1", f"{lead}2+2")
