"""The README's Python example runs as written, on the embedded default, in an empty folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

README = ROOT / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_library_example_runs_and_prints_the_forward_only_status(tmp_path: Path) -> None:
    """The example creates ./wastate.db, tracks a message, and a late 'delivered' leaves 'read'."""
    (example,) = [block for block in python_blocks() if "wastate.connect()" in block]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WASTATE_", "DB_", "REDIS_"))
    }
    result = subprocess.run(
        [sys.executable, "-c", example],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "read"
    assert (tmp_path / "wastate.db").exists()
