"""A newsletter folder to run commands in: the test newsletter's settings and
sample issues from tests/fixtures/newsletter, and the repository's own
templates, in a temporary directory.

Nothing here reads the repository's newsletter.toml or issues/: those are the
editor's, and change with every issue. tests/test_own_newsletter.py is the one
test that looks at them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "newsletter"


def copy_newsletter(root: Path) -> Path:
    """Lay out the test newsletter at ``root``; return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE / "newsletter.toml", root / "newsletter.toml")
    shutil.copytree(FIXTURE / "issues", root / "issues")
    shutil.copytree(REPO / "templates", root / "templates")
    return root


def ses_child_env(root: Path, database_url: str, endpoint: str, secret: str) -> dict[str, str]:
    """The environment of a ``publish`` process started on the newsletter at
    ``root``: none of this one's NEWSLETTER_ or AWS_ variables, but its
    database, token secret, and SES at ``endpoint`` (a stand-in) with keys
    made up for it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "AWS_"))}
    env.update(
        NEWSLETTER_ROOT=str(root),
        NEWSLETTER_DATABASE_URL=database_url,
        NEWSLETTER_TOKEN_SECRET=secret,
        NEWSLETTER_TRANSPORT="ses",
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    return env


@contextmanager
def isolated(root: Path | None = None) -> Iterator[None]:
    """No NEWSLETTER_* variable of the environment reaches the settings, and
    with ``root`` the working directory is that newsletter's, until the block
    ends: the ``newsletter`` fixture's rule, also for a build a whole module
    shares."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("NEWSLETTER_"):
                patch.delenv(name)
        if root is not None:
            patch.chdir(root)
        yield


@pytest.fixture
def newsletter(tmp_path: Path) -> Iterator[Path]:
    """A fresh newsletter root with the sample issues; the working directory."""
    root = copy_newsletter(tmp_path / "newsletter")
    with isolated(root):
        yield root


@pytest.fixture
def settings(newsletter: Path):  # type: ignore[no-untyped-def]
    from pipeline.config import load_settings

    return load_settings(newsletter)
