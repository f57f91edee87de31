"""Shared test fixtures: the third-party corpus, small fixtures, and service requirements."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.conftest_store",
    "tests.conftest_api",
    "tests.conftest_archive",
    "tests.conftest_pipeline",
    "tests.conftest_sftp",
    "tests.conftest_as2",
    "tests.conftest_outbound",
]

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
CORPUS = REPO.parent / "shared" / "corpus"


def services_required() -> bool:
    """True in CI, where a missing PostgreSQL or Redis must fail the run instead of skipping."""
    return bool(os.environ.get("EDIGATE_REQUIRE_SERVICES") or os.environ.get("CI"))


def corpus_files() -> list[Path]:
    """Every X12 file of ../shared/corpus (empty on a bare clone)."""
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.glob("*/*") if p.is_file() and p.suffix != ".tsv")


@pytest.fixture
def fixture_bytes() -> object:
    """Read a file of tests/fixtures by name."""
    return lambda name: (FIXTURES / name).read_bytes()
