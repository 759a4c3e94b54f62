"""The committed locks, and the one command that refreshes them.

Two locks, both pip requirements files with every version pinned and every
file's hash, so an install is the same on every machine whatever PyPI has
released since:

- ``requirements.lock``: what ``publish`` needs to run, and the build backend
  that installs it;
- ``requirements-test.lock``: that, at the same versions, plus the test tools.

Each starts with a digest of the dependency tables of ``pyproject.toml`` it
was made from, so a change to those tables without a fresh lock is caught
before anything installs.

    python3 tests/lock.py           refresh both locks from pyproject.toml, on purpose
    python3 tests/lock.py --check   exit 1 with one line when pyproject.toml and a lock disagree

Refreshing needs the network and pip-tools, which it installs into a
throwaway virtual environment at the version pinned below.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
RUNTIME_LOCK = ROOT / "requirements.lock"
TEST_LOCK = ROOT / "requirements-test.lock"
PIP_TOOLS = "pip-tools==7.6.2"
DIGEST_PREFIX = "# pyproject.toml dependencies: sha256:"
REFRESH = "python3 tests/lock.py"


def pyproject_digest(pyproject: Path = PYPROJECT) -> str:
    """The digest of everything in pyproject.toml that decides what a lock holds."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data.get("project", {})
    tables = {
        "build-system.requires": data.get("build-system", {}).get("requires", []),
        "project.requires-python": project.get("requires-python"),
        "project.dependencies": project.get("dependencies", []),
        "project.optional-dependencies": project.get("optional-dependencies", {}),
    }
    encoded = json.dumps(tables, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def recorded_digest(lock: Path) -> str | None:
    """The digest a lock was made from, or None for a lock without one."""
    with lock.open(encoding="utf-8") as lines:
        for line in lines:
            if line.startswith(DIGEST_PREFIX):
                return line[len(DIGEST_PREFIX) :].strip()
    return None


def disagreement(pyproject: Path = PYPROJECT, locks: tuple[Path, ...] = (RUNTIME_LOCK, TEST_LOCK)) -> str | None:
    """One line saying which lock does not match pyproject.toml, or None."""
    expected = pyproject_digest(pyproject)
    for lock in locks:
        name = lock.name
        if not lock.exists():
            return f"{name} is missing: run `{REFRESH}` to make it"
        if recorded_digest(lock) != expected:
            return (
                f"{name} does not match the dependencies in {pyproject.name}:"
                f" run `{REFRESH}` to refresh it"
            )
    return None


def compile_lock(pip_compile: Path, output: Path, *options: str) -> None:
    """Run pip-compile into a temporary file, then put the digest on top."""
    draft = output.with_suffix(".draft")
    command = [
        str(pip_compile),
        "--quiet",
        "--generate-hashes",
        "--allow-unsafe",
        "--strip-extras",
        "--no-emit-index-url",
        "--no-emit-find-links",
        "--build-deps-for=editable",
        f"--output-file={draft.name}",
        *options,
        str(PYPROJECT.name),
    ]
    subprocess.run(command, cwd=ROOT, check=True)
    body = draft.read_text(encoding="utf-8").replace(draft.name, output.name)
    header = (
        f"{DIGEST_PREFIX}{pyproject_digest()}\n"
        f"# Made by `{REFRESH}`; do not edit by hand.\n"
    )
    output.write_text(header + body, encoding="utf-8")
    draft.unlink()


def refresh() -> None:
    with tempfile.TemporaryDirectory(prefix="lock-") as scratch:
        venv = Path(scratch) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = venv / "bin" / "pip"
        subprocess.run([str(pip), "install", "--quiet", PIP_TOOLS], check=True)
        pip_compile = venv / "bin" / "pip-compile"
        # The runtime lock first; the test lock is held to its versions, so
        # the tests run against exactly what an editor installs.
        compile_lock(pip_compile, RUNTIME_LOCK, "--upgrade")
        compile_lock(
            pip_compile, TEST_LOCK, "--upgrade", "--extra=test", f"--constraint={RUNTIME_LOCK.name}"
        )
    print(f"wrote {RUNTIME_LOCK.name} and {TEST_LOCK.name}")


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        problem = disagreement()
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(f"usage: {REFRESH} [--check]", file=sys.stderr)
        return 2
    refresh()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
