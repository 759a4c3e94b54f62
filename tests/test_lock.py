"""The committed locks agree with pyproject.toml, and `tests/lock.py --check`
says so in one line when they do not."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def lay_out(root: Path) -> Path:
    """A copy of the lock script, pyproject.toml and both locks."""
    (root / "tests").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "lock.py", root / "tests" / "lock.py")
    for name in ("pyproject.toml", "requirements.lock", "requirements-test.lock"):
        shutil.copy(REPO / name, root / name)
    return root


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "tests" / "lock.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_committed_locks_match_pyproject():
    result = check(REPO)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_a_new_dependency_without_a_fresh_lock_is_one_line_and_exit_1(tmp_path):
    root = lay_out(tmp_path / "clone")
    assert check(root).returncode == 0
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(text.replace('"jinja2>=3.1,<4",', '"jinja2>=3.1,<4",\n    "rich-click",'), encoding="utf-8")

    result = check(root)

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "requirements.lock does not match the dependencies in pyproject.toml" in result.stderr
    assert "python3 tests/lock.py" in result.stderr


def test_a_changed_test_tool_is_caught_too(tmp_path):
    root = lay_out(tmp_path / "clone")
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(re.sub(r'"ruff[^"]*"', '"ruff>=0.7,<1"', text), encoding="utf-8")
    assert check(root).returncode == 1


def test_settings_outside_the_dependencies_do_not_need_a_new_lock(tmp_path):
    root = lay_out(tmp_path / "clone")
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(text.replace("line-length = 100", "line-length = 99"), encoding="utf-8")
    assert check(root).returncode == 0


def test_a_missing_lock_says_how_to_make_it(tmp_path):
    root = lay_out(tmp_path / "clone")
    (root / "requirements-test.lock").unlink()
    result = check(root)
    assert result.returncode == 1
    assert "requirements-test.lock is missing" in result.stderr


def test_every_locked_requirement_is_pinned_with_hashes():
    for name in ("requirements.lock", "requirements-test.lock"):
        text = (REPO / name).read_text(encoding="utf-8")
        requirements = re.findall(r"^([A-Za-z0-9._-]+)(\S*) \\$", text, flags=re.M)
        assert requirements, name
        for package, pin in requirements:
            assert pin.startswith("=="), f"{name}: {package} is not pinned"
        blocks = re.split(r"\n(?=[A-Za-z0-9._-]+==)", text)[1:]
        assert all("--hash=sha256:" in block for block in blocks), name


def test_the_test_lock_holds_the_runtime_lock_at_the_same_versions():
    def pins(name: str) -> dict[str, str]:
        text = (REPO / name).read_text(encoding="utf-8")
        return dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\$", text, flags=re.M))

    runtime, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert {name: test.get(name) for name in runtime} == runtime
    assert {"pytest", "ruff", "mypy"} <= set(test) - set(runtime)
