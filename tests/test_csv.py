"""Importing and exporting subscribers as CSV."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from subscribers.csvio import export_csv, export_file, import_csv
from subscribers.errors import SubscriberError
from subscribers.models import Status
from subscribers.store import Store

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
