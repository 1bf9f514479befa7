"""The benchmark scripts start as the README says (`python benchmarks/<name>.py`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = {"__init__.py", "httpload.py", "page_load.py", "public_data.py"}  # imported by the scripts, not run
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name not in LIBRARIES)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_script_starts_from_the_repository(script: Path) -> None:
    # Opacus installs a top-level `benchmarks` package; ours must win when run as a script
    done = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout
