"""The seed's examples, made executable under examples/, run as written in a fresh folder
against the embedded default (`StateManager()` → ./wastate.db), checked by their output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

EXAMPLES = ROOT / "examples"

EXPECTED: dict[str, list[str]] = {
    "01_basic_usage.py": ["Session invalid, QR scan required"],
    "02_session_management.py": [
        "Using existing session",
        r"Last authenticated: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00",
        "QR scan required after invalidation: True",
        "Reason: Connection lost",
    ],
    "03_message_management.py": [
        "Pending: 0",
        r"Sent: \['msg123'\] body='Hello!'",
        "Sent after clearing: 0",
    ],
    "04_statistics.py": [
        "Total incoming: 4",
        "Total sent: 3",
        "Success rate: 75.0%",
        "Total incoming after reset: 0",
    ],
    "05_configuration.py": [
        "human_in_the_loop before: None",
        "human_in_the_loop now: True",
        "poll interval: 10",
        "human_in_the_loop after update: False",
    ],
    "06_backup_export.py": [
        r"Backup created: whatsapp_state_backup_\d{8}_\d{6}\.json",
        r"Exported incoming: \['msg1'\]",
        "State sections: session, account_info, messages, statistics, config",
    ],
    "07_lifecycle.py": [
        "3a approved: True",
        "4 sent: True",
        "3b rejected: True",
        "4b failed: True",
        "again: False",
        "refused: cannot move a message from rejected to sent",
        "history of a: incoming -> pending_approval -> approved -> sent",
    ],
    "08_complete_example.py": ["Messages processed: 1", "Messages sent: 1"],
}


def test_every_example_is_checked() -> None:
    """No example under examples/ escapes this test."""
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_as_written(name: str, tmp_path: Path) -> None:
    """The example exits 0 in an empty folder and prints what the seed says it does."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WASTATE_", "DB_", "REDIS_"))
    }
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for pattern in EXPECTED[name]:
        assert any(re.fullmatch(pattern, line) or line.startswith(pattern) for line in lines), (
            pattern,
            result.stdout,
        )
    assert (tmp_path / "wastate.db").is_file()
