"""The harness itself: a missing server skips its tests, or fails them when required."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TESTS

UNREACHABLE = {
    "WASTATE_TEST_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/postgres",
    "WASTATE_TEST_REDIS_URL": "redis://127.0.0.1:1/0",
}
PROBE = """
def test_needs_postgres(postgres_url):
    assert postgres_url

def test_needs_redis(redis_url):
    assert redis_url
"""


def run_probe(tmp_path: Path, *, required: bool) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    (tmp_path / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    env = {**os.environ, **UNREACHABLE, "WASTATE_REQUIRE_SERVICES": "1" if required else "0"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("required", [False, True])
def test_unreachable_servers_skip_or_fail(tmp_path: Path, required: bool) -> None:
    """Unreachable PostgreSQL/Redis: skipped normally, failed with WASTATE_REQUIRE_SERVICES=1."""
    result = run_probe(tmp_path, required=required)
    if required:
        assert result.returncode == 1, result.stdout
        assert "2 failed" in result.stdout or "2 errors" in result.stdout, result.stdout
        assert "WASTATE_REQUIRE_SERVICES=1" in result.stdout
    else:
        assert result.returncode == 0, result.stdout
        assert "2 skipped" in result.stdout, result.stdout
