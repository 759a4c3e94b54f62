"""How fast an editor's loop is: `publish check` as a whole process, and one render.

Targets: `publish check` on a sample issue under 0.5 s as a whole process;
rendering one issue in-process under 50 ms.

    python3 bench/bench_authoring.py [--runs 10]

Whole-process figures come from /usr/bin/time -v around the installed
`publish` script (resolved past any version-manager shim, whose own start-up
is reported separately).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ISSUE = ROOT / "issues" / "2026-12-01-calf-stretch.md"


def publish_script() -> str:
    script = Path(sys.executable).parent / "publish"
    if script.exists():
        return str(script)
    found = shutil.which("publish")
    if not found:
        sys.exit("publish is not installed: pip install -e .")
    return found


def timed(command: list[str]) -> tuple[float, int]:
    """(elapsed seconds, max RSS in KB) of one whole process."""
    out = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if out.returncode not in (0, 1):
        sys.exit(out.stderr)
    elapsed = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", out.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    assert elapsed and rss, out.stderr
    hours, minutes, seconds = elapsed.groups()
    total = float(seconds) + 60 * int(minutes) + 3600 * int(hours or 0)
    return total, int(rss.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    script = publish_script()
    timed([script, "check", str(ISSUE)])  # warm the OS cache
    runs = [timed([script, "check", str(ISSUE)]) for _ in range(args.runs)]
    seconds = [r[0] for r in runs]
    python_only = [timed([sys.executable, "-c", "pass"])[0] for _ in range(args.runs)]
    print(f"publish check {ISSUE.name} (whole process, {args.runs} runs)")
    print(
        f"  median {statistics.median(seconds):.3f} s   max {max(seconds):.3f} s   "
        f"peak RSS {max(r[1] for r in runs) / 1024:.1f} MiB   target < 0.5 s"
    )
    print(f"  (a bare `python -c pass` takes {statistics.median(python_only):.3f} s here)")

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
    first = time.perf_counter() - start
    samples = []
    for _ in range(50):
        start = time.perf_counter()
        render_issue(issue, context)
        samples.append(time.perf_counter() - start)
    print("Context.load (templates and issues/ read once)")
    print(f"  {loaded * 1000:.1f} ms")
    print("render_issue in-process (email HTML + text + web page)")
    print(
        f"  first {first * 1000:.1f} ms   median of 50 {statistics.median(samples) * 1000:.1f} ms"
        f"   target < 50 ms"
    )


if __name__ == "__main__":
    main()
