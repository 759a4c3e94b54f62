"""How fast `publish site` is over a large archive, as a whole process.

Targets: 500 issues built from scratch under 10 s; an unchanged rebuild
under 0.5 s (nothing it is made from changed since the last build: nothing
is read, parsed or rendered, see pipeline/rebuild.py). Also shown: a
rebuild after one issue changed, and each figure's CPU time (user +
system), steadier than the wall clock on a machine doing other work.

    python3 bench/bench_site.py [--issues 500] [--runs 3]

A temporary newsletter root gets the repository's settings, templates and
images and ``--issues`` generated issues, every fifth one with a picture and
a link to the issue before it, all with a publish_at in the past (so the
send ledger, a fresh SQLite database, stays empty). Figures come from the
child's own rusage around the installed `publish` script, which reads
cached bytecode (bench_authoring.bytecode_cache).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

from bench_authoring import bytecode_cache, publish_script, run

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = (ROOT / "issues" / "2026-12-01-calf-stretch.md").read_text(encoding="utf-8")
BODY = SAMPLE.split("\n---\n", 1)[1]
NO_PICTURE = re.sub(r"^!\[.*$", "", BODY, flags=re.MULTILINE)


def make_root(folder: Path, count: int) -> None:
    shutil.copy(ROOT / "newsletter.toml", folder / "newsletter.toml")
    shutil.copytree(ROOT / "templates", folder / "templates")
    (folder / "issues").mkdir()
    shutil.copytree(ROOT / "issues" / "images", folder / "issues" / "images")
    start = date(2006, 1, 1)
    previous = ""
    for n in range(count):
        day = start + timedelta(days=14 * n)
        name = f"{day.isoformat()}-issue-{n}.md"
        body = BODY if n % 5 == 0 else NO_PICTURE
        if n % 5 == 0 and previous:
            body += f"\nLast time: [the previous issue]({previous}).\n"
        (folder / "issues" / name).write_text(
            "---\n"
            f'title: "Issue {n}: an easy stretch for chronic calf pain"\n'
            f"date: {day.isoformat()}\n"
            f'preheader: "Number {n}: why tight calves keep aching, and a gentle wall stretch."\n'
            "author: Dana Whitfield, PT\n"
            f"tags: [calves, stretching, issue-{n % 7}]\n"
            f"publish_at: {day.isoformat()}T07:00:00+00:00\n"
            f"---\n{body}",
            encoding="utf-8",
        )
        previous = name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    script = publish_script()

    cold: list[tuple[float, float]] = []
    unchanged: list[tuple[float, float]] = []
    one_changed: list[tuple[float, float]] = []
    peak = 0

    def timed_build(command: list[str], into: list[tuple[float, float]]) -> None:
        nonlocal peak
        seconds, cpu, rss = run(command)
        into.append((seconds, cpu))
        peak = max(peak, rss)

    with bytecode_cache():
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bench-site-") as tmp:
                root = Path(tmp)
                make_root(root, args.issues)
                command = [script, "--root", str(root), "site"]
                timed_build(command, cold)
                pages = list((root / "public" / "issues").iterdir())
                if len(pages) != args.issues:
                    sys.exit(f"expected {args.issues} issue pages, found {len(pages)}")
                timed_build(command, unchanged)
                edited = sorted((root / "issues").glob("*-issue-*.md"))[-1]
                edited.write_text(edited.read_text().replace("good company", "fine company"))
                timed_build(command, one_changed)

    def show(label: str, values: list[tuple[float, float]], target: float | None) -> None:
        walls = [wall for wall, _ in values]
        verdict = "" if target is None else (" ok" if max(walls) < target else " TOO SLOW")
        goal = "" if target is None else f" (target < {target:g} s){verdict}"
        print(
            f"{label:<34} median {statistics.median(walls):6.2f} s   "
            f"max {max(walls):6.2f} s   cpu {statistics.median(c for _, c in values):6.2f} s{goal}"
        )

    print(f"publish site over {args.issues} issues, {args.runs} runs, whole process:")
    show("first build", cold, 10)
    show("unchanged rebuild (writes nothing)", unchanged, 0.5)
    show("rebuild after one issue changed", one_changed, None)
    print(f"peak RSS {peak / 1024:.0f} MB")


if __name__ == "__main__":
    main()
