"""How fast an editor's loop is: `publish check` as a whole process, and one render.

Targets: `publish check` on the sample newsletter's calf-stretch issue within
2x the start-up of `python -c 'import typer'` (the baseline: no CLI built on
Typer starts faster), both whole processes timed in this same session, runs
interleaved (baseline, check, baseline, check, ...) so that a busy machine
slows both alike; the figures are medians of ``--runs`` each. Rendering one
issue in-process under 50 ms.

    python3 bench/bench_authoring.py [--runs 15]

`publish check` keeps its findings with the stats and digests of what it
read (pipeline/checking.py), so it is timed three ways, each in a copy of
the newsletter of its own: nothing changed since the last check (the
record answers), the issue edited before each run (it is checked again,
the usual edit-and-check loop), and with no record at all (the first check
in a fresh clone, or after the code changed). Beside `import typer`, a
process that only imports the libraries an edited issue's check needs
(:data:`LIBRARIES`) shows how much of that case is theirs. Last, the
same edit under `publish check --watch`, which checks again in the process
it started: the time from each save to the summary line, against the same
`import typer`.

Whole processes run the installed `publish` script and the venv's python
directly (no shell, no version-manager shim); the wall clock is taken around
start and exit, CPU time and peak RSS from the child's own rusage. Both read
cached bytecode, as an editor's runs do: the children get a bytecode cache of
their own in a temporary folder (PYTHONPYCACHEPREFIX), filled by the warm-up
round, even where PYTHONDONTWRITEBYTECODE is set.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
ISSUE = ROOT / "issues" / "2026-12-01-calf-stretch.md"
LIBRARIES = ("typer", "markdown_it", "yaml", "jinja2", "mjml")
"""What checking an edited issue cannot do without: the CLI, and the
parser, front matter, templates and renderer of the issue it reads. A
process that imports them and does nothing is the floor of that case."""


def publish_script() -> str:
    script = Path(sys.executable).parent / "publish"
    if script.exists():
        return str(script)
    found = shutil.which("publish")
    if not found:
        sys.exit("publish is not installed: pip install -e .")
    return found


def timed(command: list[str]) -> tuple[float, int]:
    """(elapsed seconds, max RSS in KB) of one whole process, run in ROOT with
    its output discarded; exits with the process's status unless 0 or 1."""
    elapsed, _, rss = run(command)
    return elapsed, rss


def run(command: list[str], before: Callable[[], None] | None = None) -> tuple[float, float, int]:
    """(elapsed seconds, CPU seconds, max RSS in KB) of one whole process, as
    :func:`timed`, after ``before`` (untimed). CPU time (user + system) is the
    steadier figure when other work shares the machine."""
    if before is not None:
        before()
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)  # the child's own rusage
    elapsed = time.perf_counter() - start
    process.returncode = code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"{' '.join(command)} exited {code}")
    return elapsed, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss)


@contextmanager
def bytecode_cache() -> Iterator[None]:
    """Child processes read and write cached bytecode in a temporary folder
    of their own until the block ends, as an editor's runs would in
    __pycache__, even where PYTHONDONTWRITEBYTECODE is set."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = cache
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


Timed = tuple[list[str], Callable[[], None] | None]
"""A command, and what to do before each run of it (untimed)."""


def interleaved(commands: list[Timed], runs: int) -> list[list[tuple[float, float, int]]]:
    """``runs`` :func:`run` figures of each command, taken in turn (a, b, a,
    b, ...) after one untimed warm-up round that fills the OS cache."""
    for command, before in commands:
        run(command, before)
    results: list[list[tuple[float, float, int]]] = [[] for _ in commands]
    for _ in range(runs):
        for (command, before), result in zip(commands, results, strict=True):
            result.append(run(command, before))
    return results


def newsletter_copy(folder: Path) -> Path:
    """The newsletter's issues, templates and settings copied into ``folder``."""
    folder.mkdir()
    for name in ("issues", "templates"):
        shutil.copytree(ROOT / name, folder / name)
    shutil.copy(ROOT / "newsletter.toml", folder / "newsletter.toml")
    return folder


def editing(issue: Path) -> Callable[[], None]:
    """An edit before each run: the issue's text with and without one more
    blank line at its end, in turn, so that each run finds it changed."""
    text = issue.read_text(encoding="utf-8")
    turn = [0]

    def edit() -> None:
        turn[0] += 1
        issue.write_text(text + "\n" * (turn[0] % 2), encoding="utf-8")

    return edit


def forgetting(root: Path) -> Callable[[], None]:
    """No record of an earlier check before each run."""
    return lambda: (root / ".cache" / "check.json").unlink(missing_ok=True)


def archive(script: str, count: int, runs: int) -> None:
    """`publish check` of every issue in an archive of ``count`` (made as
    bench_site.py makes its site), after one issue was edited, against the
    same check with no record (every issue linted, as before each issue's
    findings were kept apart)."""
    from bench_site import make_root

    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp, bytecode_cache():
        root = Path(tmp)
        make_root(root, count)
        newest = max((root / "issues").glob("*.md"))
        command = [script, "--root", str(root), "check"]
        edited, first = interleaved(
            [(command, editing(newest)), (command, forgetting(root))], runs
        )
    wall = [statistics.median(f[0] for f in figures) for figures in (edited, first)]
    print(f"publish check of all {count} issues (median of {runs} interleaved runs)")
    print(f"  one issue edited            {wall[0]:7.3f}s")
    print(f"  no earlier record           {wall[1]:7.3f}s   (ratio {wall[0] / wall[1]:.2f}x)")


def watched(script: str, runs: int) -> tuple[list[float], list[str]]:
    """Seconds from each save of the issue to the summary line of
    `publish check --watch`, which checks it again in the same process
    (its poll, the wait until the save's stat can be trusted, and the check),
    and the lines of any round no save of this bench started (a save seen
    half-written, say): each is drained before the next save, so that a
    stray round is shown instead of being timed as the next save's."""
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp, bytecode_cache():
        root = newsletter_copy(Path(tmp) / "watched")
        issue = root / "issues" / ISSUE.name
        edit = editing(issue)
        command = [script, "--root", str(root), "check", "--watch", str(issue)]
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=_timed_lines, args=(process.stderr, lines), daemon=True).start()
        try:
            _line_from(lines, "watching for changes")
            samples, stray = [], []
            for _ in range(runs + 1):  # the first round after a save warms the lint
                time.sleep(0.1)  # a pause between saves, as an editor's
                while not lines.empty():
                    stray.append(lines.get()[1])
                edit()
                start = time.perf_counter()
                samples.append(_line_from(lines, "1 issue checked") - start)
        finally:
            process.kill()
            process.wait()
    return samples[1:], stray


def _timed_lines(stream: IO[str], lines: queue.Queue[tuple[float, str]]) -> None:
    """Each line of ``stream`` with the moment it arrived, then an empty one at its end."""
    for line in stream:
        lines.put((time.perf_counter(), line))
    lines.put((time.perf_counter(), ""))


def _line_from(lines: queue.Queue[tuple[float, str]], start: str) -> float:
    """When the next line that starts with ``start`` arrived."""
    while True:
        arrived, line = lines.get(timeout=60)
        if not line:
            sys.exit(f"publish check --watch ended before printing {start!r}")
        if line.startswith(start):
            return arrived


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--archive", type=int, default=100, help="issues; 0: skip that case")
    parser.add_argument("--archive-runs", type=int, default=3)
    args = parser.parse_args()

    script = publish_script()

    def checking(root: Path) -> list[str]:
        return [script, "--root", str(root), "check", str(root / "issues" / ISSUE.name)]

    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp, bytecode_cache():
        same, edited, fresh = (newsletter_copy(Path(tmp) / name) for name in "abc")
        bare, baseline, libraries, unchanged, after_edit, first = interleaved(
            [
                ([sys.executable, "-c", "pass"], None),
                ([sys.executable, "-c", "import typer"], None),
                ([sys.executable, "-c", f"import {', '.join(LIBRARIES)}"], None),
                (checking(same), None),
                (checking(edited), editing(edited / "issues" / ISSUE.name)),
                (checking(fresh), forgetting(fresh)),
            ],
            args.runs,
        )

    def median(figures: list[tuple[float, float, int]], which: int) -> float:
        return statistics.median(f[which] for f in figures)

    print(f"publish check {ISSUE.name} (whole process, median of {args.runs} interleaved runs)")
    print(f"  {'':<28} {'wall':>8} {'cpu':>8} {'ratio':>7}")
    for label, figures in (
        ("check, nothing changed", unchanged),
        ("check, the issue edited", after_edit),
        ("check, no earlier record", first),
        ("import typer (baseline)", baseline),
        ("import its libraries", libraries),
        ("python -c pass", bare),
    ):
        ratio = median(figures, 0) / median(baseline, 0)
        print(f"  {label:<28} {median(figures, 0):7.3f}s {median(figures, 1):7.3f}s {ratio:6.2f}x")
    ratio = median(unchanged, 0) / median(baseline, 0)
    verdict = "ok" if ratio <= 2 else "TOO SLOW"
    print(
        f"  nothing changed: {ratio:.2f}x `import typer`"
        f" (cpu {median(unchanged, 1) / median(baseline, 1):.2f}x)   target <= 2x   {verdict}"
    )
    print(
        f"  the issue edited: {median(after_edit, 0) / median(baseline, 0):.2f}x `import typer`,"
        f" {median(after_edit, 0) / median(libraries, 0):.2f}x importing the libraries"
        f" it needs alone ({median(libraries, 0) / median(baseline, 0):.2f}x `import typer`)"
    )
    print(f"  peak RSS {max(f[2] for f in after_edit) / 1024:.1f} MiB (the issue edited)")
    saves, stray = watched(script, args.runs)
    ratio = statistics.median(saves) / median(baseline, 0)
    print(
        f"publish check --watch, from saving the issue to its findings (median of {args.runs})\n"
        f"  {statistics.median(saves):7.3f}s  {ratio:.2f}x `import typer`"
        f"  (fastest {min(saves):.3f}s, slowest {max(saves):.3f}s)"
    )
    for line in stray:
        print(f"  not started by a save: {line.rstrip()}")

    if args.archive:
        archive(script, args.archive, args.archive_runs)

    sys.path.insert(0, str(ROOT))
    from pipeline.config import load_settings
    from pipeline.context import Context
    from pipeline.render import render_issue

    settings = load_settings(ROOT)
    start = time.perf_counter()
    context = Context.load(settings, [ISSUE])
    loaded = time.perf_counter() - start
    issue = context.issues.load(ISSUE)
    start = time.perf_counter()
    render_issue(issue, context)
    first_render = time.perf_counter() - start
    samples = []
    for _ in range(50):
        start = time.perf_counter()
        render_issue(issue, context)
        samples.append(time.perf_counter() - start)
    print("Context.load (templates and issues/ read once)")
    print(f"  {loaded * 1000:.1f} ms")
    print("render_issue in-process (email HTML + text + web page)")
    print(
        f"  first {first_render * 1000:.1f} ms"
        f"   median of 50 {statistics.median(samples) * 1000:.1f} ms   target < 50 ms"
    )


if __name__ == "__main__":
    main()
