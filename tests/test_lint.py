"""The tree has no unused imports or names, undefined names or syntax errors (ruff's F and E9 rules)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_no_errors():
    ruff = shutil.which("ruff") or f"{sys.executable} -m ruff"
    cmd = [*ruff.split(), "check", "--no-cache", "--select", "F,E9", "--output-format", "concise",
           "semcoder_jax", "data_pipeline", "eval", "benchmarks", "tests"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
