"""Shared fixtures. Real parts live in tests/support/: moto's server for AWS,
a throwaway PostgreSQL, a local SMTP server, headless Chromium."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = [
    "tests.support.aws",
    "tests.support.browser",
    "tests.support.dns_server",
    "tests.support.faulty_proxy",
    "tests.support.newsletter",
    "tests.support.postgres",
    "tests.support.ses_standin",
    "tests.support.smtp",
    "tests.support.sns",
]

ROOT = Path(__file__).resolve().parent.parent
