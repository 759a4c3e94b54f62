"""`publish check --watch`: the check again after each change to what it
reads, in one process, until Ctrl-C; a setting or issue broken meanwhile is
said and watched past, and a change to the code starts a new process."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import checking, inputs, watching
from pipeline.config import load_settings
from pipeline.errors import ConfigError
from pipeline.filestate import RACY_NS
from tests.support.newsletter import REPO

CALF = Path("issues") / "2026-12-01-calf-stretch.md"
DEADLINE = 60.0
PUBLISH = ["-c", "from pipeline.cli import main; main()"]


class Watch:
    """A `publish check --watch` process, its output read line by line (its
    findings and its other lines in one pipe, so in the order written)."""

    def __init__(self, root: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *PUBLISH, "check", "--watch", *args],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, text: str | tuple[str, ...]) -> list[str]:
        """The lines up to the first that starts with ``text``."""
        got: list[str] = []
        end = time.monotonic() + DEADLINE
        while True:
            line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            got.append(line)
            self.seen.append(line)
            if line.startswith(text):
                return got

    def round(self) -> tuple[list[str], str]:
        """The next check's findings and summary line."""
        got = self.until(SUMMARY)
        return [line for line in got if FINDING.match(line)], got[-1]

    def stop(self) -> int:
        """Ctrl-C; the exit status, once every line left is in :attr:`seen`."""
        self.process.send_signal(signal.SIGINT)
        status = self.process.wait(timeout=DEADLINE)
        self.reader.join(timeout=DEADLINE)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return status


FINDING = re.compile(r"\S+:\d+: (error|warning): ")
SUMMARY = ("1 issue checked", "2 issues checked", "3 issues checked")


@pytest.fixture
def watch(newsletter: Path) -> Iterator[Watch]:
    """A watch of the calf-stretch issue, past its first round (clean)."""
    started = Watch(newsletter, str(CALF))
    try:
        assert started.round() == ([], "1 issue checked: 0 errors, 0 warnings")
        started.until("watching for changes")
        yield started
    finally:
        if started.process.poll() is None:
            started.process.kill()
            started.process.wait()


def settled(*paths: Path) -> None:
    """Wait until each of ``paths`` changed longer ago than a stat is trusted
    after, so an edit that follows is seen by its stat."""
    latest = max(max(p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in paths)
    wait_ns = latest + RACY_NS - time.time_ns()
    if wait_ns > 0:
        time.sleep(wait_ns / 1e9 + 0.001)


def add(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def test_an_edit_is_checked_again_and_ctrl_c_exits_as_the_last_check(watch, newsletter):
    original = CALF.read_text(encoding="utf-8")

    add(CALF, "\n![](nowhere.png)\n")
    findings, summary = watch.round()
    assert summary == "1 issue checked: 2 errors, 0 warnings"
    assert f"{CALF} changed" in watch.seen
    assert any("nowhere.png' not found" in line for line in findings)
    assert all(line.startswith(f"{CALF}:") for line in findings)

    settled(CALF)
    CALF.write_text(original, encoding="utf-8")
    assert watch.round() == ([], "1 issue checked: 0 errors, 0 warnings")
    add(CALF, "\n![](nowhere.png)\n")
    assert watch.round()[1] == "1 issue checked: 2 errors, 0 warnings"
    assert watch.stop() == 1, watch.seen
    assert not any("Traceback" in line for line in watch.seen)


def test_a_new_picture_in_the_folder_is_seen(watch, newsletter):
    settled(CALF)
    add(CALF, "\n![A calf](images/new-calf.png)\n")
    findings, summary = watch.round()
    assert summary.endswith("1 error, 0 warnings")
    assert "new-calf.png' not found" in findings[0]

    # Put in place whole, as a save by rename does (a copy being written
    # could be checked half-way).
    shutil.copy(newsletter / "issues" / "images" / "calf-stretch.png", newsletter / "new.png")
    os.replace(newsletter / "new.png", newsletter / "issues" / "images" / "new-calf.png")
    assert watch.round() == ([], "1 issue checked: 0 errors, 0 warnings")
    assert "issues/images/new-calf.png added" in watch.seen
    assert watch.stop() == 0, watch.seen


def test_settings_or_an_issue_broken_meanwhile_are_said_and_watched_past(watch, newsletter):
    toml = newsletter / "newsletter.toml"
    good = toml.read_text(encoding="utf-8")
    settled(toml, CALF)
    toml.write_text(good + "\n[site\n", encoding="utf-8")
    broken = watch.until("error:")[-1]
    assert "newsletter.toml" in broken and "\n" not in broken
    assert watch.process.poll() is None

    toml.write_text(good, encoding="utf-8")
    assert watch.round()[1] == "1 issue checked: 0 errors, 0 warnings"

    gone = newsletter / "aside.md"
    CALF.rename(gone)
    missing = watch.until("error:")[-1]
    assert "2026-12-01-calf-stretch" in missing
    gone.rename(CALF)
    assert watch.round()[1] == "1 issue checked: 0 errors, 0 warnings"
    assert watch.stop() == 0, watch.seen
    assert not any("Traceback" in line for line in watch.seen)


def test_a_change_to_the_code_checks_again_in_a_new_process(newsletter, tmp_path):
    code = tmp_path / "code"
    for package in ("pipeline", "subscribers"):
        shutil.copytree(
            REPO / package, code / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    env = {**os.environ, "PYTHONPATH": str(code)}
    started = Watch(newsletter, str(CALF), env=env)
    try:
        started.until("watching for changes")
        finding = code / "pipeline" / "finding.py"
        settled(finding)
        add(finding, "\n# edited\n")
        started.until("the code changed: checking again in a new process")
        # The new process: the same pid (exec), its own first round.
        assert started.round()[1] == "1 issue checked: 0 errors, 0 warnings"
        started.until("watching for changes")
        assert started.stop() == 0, started.seen
    finally:
        if started.process.poll() is None:
            started.process.kill()
            started.process.wait()


def test_an_edit_made_while_a_check_runs_starts_the_next_round(newsletter, monkeypatch):
    real = checking.check_newsletter
    edits = iter([lambda: add(CALF, "\n![](nowhere.png)\n")])

    def edited_meanwhile(settings, names=()):
        report = real(settings, names)
        next(edits, lambda: None)()  # after the check read the issue
        return report

    monkeypatch.setattr(watching, "check_newsletter", edited_meanwhile)
    settled(CALF)
    rounds = watching.rounds(lambda: load_settings(newsletter), [str(CALF)])
    first = next(rounds)
    assert first.report is not None and first.report.errors == 0
    second = next(rounds)
    assert second.because == (("changed", CALF.resolve()),)
    assert second.report is not None and second.report.errors == 2


def test_a_stat_is_taken_only_once_it_can_be_trusted(newsletter):
    # Modified "a quarter second from now" (a clock ahead, as on a network
    # share): however slow the machine, the stat is still too fresh when
    # first looked at.
    ahead = time.time_ns() + 250_000_000
    os.utime(CALF, ns=(ahead, ahead))
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    found = watching._settled([str(CALF)], sleep)
    returned = time.time_ns()
    assert found[str(CALF)] == watching.stamps([str(CALF)])[str(CALF)]
    assert ahead + RACY_NS < returned
    assert slept and sum(slept) < 1.0


def test_the_code_is_watched_and_its_change_ends_the_rounds(newsletter, tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    module = code / "module.py"
    module.write_text("x = 1\n", encoding="utf-8")
    monkeypatch.setattr(inputs, "CODE", (code,))
    monkeypatch.setattr(watching, "CODE", (code,))
    settled(module)
    rounds = watching.rounds(lambda: load_settings(newsletter), [str(CALF)])
    assert next(rounds).report is not None
    add(module, "y = 2\n")
    last = next(rounds)
    assert last.restart and last.because == (("changed", module.resolve()),)
    assert last.report is None
    assert next(rounds, None) is None


def test_changed_names_what_was_added_edited_or_removed():
    before = {"a": (1, 1, 1, 1), "b": (2, 2, 2, 2), "c": None}
    assert watching.changed(before, {"a": (1, 1, 1, 1), "b": (2, 3, 2, 2), "c": None}) == ["b"]
    assert watching.changed(before, {"a": None, "b": (2, 2, 2, 2), "c": (3, 3, 3, 3)}) == ["a", "c"]


def test_changes_name_files_edited_removed_and_added_and_folders_only_alone(tmp_path):
    folder, kept, gone, new = (
        tmp_path / n for n in ("issues", "issues/a.md", "issues/b.md", "issues/c.md")
    )
    folder.mkdir()
    kept.write_text("a")
    new.write_text("c")
    before = {str(folder): (1, 1, 1, 1), str(kept): (2, 2, 2, 2), str(gone): (3, 3, 3, 3)}
    found = [str(folder), str(kept), str(gone)]
    assert watching.changes(before, found, [str(folder), str(kept), str(new)]) == (
        ("changed", kept.resolve()),
        ("removed", gone.resolve()),
        ("added", new.resolve()),
    )
    # A swap file that came and went: only the folder's stat tells.
    assert watching.changes(before, [str(folder)], list(before)) == (("changed", folder.resolve()),)


def deadline_sleep(limit: float = 30.0):
    """time.sleep, failing the test once ``limit`` seconds were slept (a
    watch that never sees a change would otherwise wait for ever)."""
    slept = [0.0]

    def sleep(seconds: float) -> None:
        slept[0] += seconds
        assert slept[0] < limit, "no change seen"
        time.sleep(seconds)

    return sleep


def test_a_fix_saved_while_the_broken_file_is_read_starts_the_next_round(newsletter):
    toml = newsletter / "newsletter.toml"
    good = toml.read_text(encoding="utf-8")

    def load():
        try:
            return load_settings(newsletter)
        except ConfigError:
            toml.write_text(good, encoding="utf-8")  # the fix, saved meanwhile
            raise

    rounds = watching.rounds(load, [str(CALF)], sleep=deadline_sleep())
    assert next(rounds).report is not None
    toml.write_text(good + "\n[site\n", encoding="utf-8")
    broken = next(rounds)
    assert broken.report is None and "newsletter.toml" in broken.error
    fixed = next(rounds)
    assert fixed.report is not None and fixed.because == (("changed", toml.resolve()),)


def test_nothing_to_stamp_is_settled_at_once():
    assert watching._settled([], deadline_sleep(0.001)) == {}
