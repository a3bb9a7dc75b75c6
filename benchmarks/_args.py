"""Argument checks shared by the benchmark scripts: a bad value is one usage line, not a traceback
after minutes of setup, and a scratch folder is only ever one the script made."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def fresh_scratch(path: Path, owned: set[str]) -> None:
    """Empty ``path`` for a new run. Only a folder holding nothing but ``owned`` entries (an earlier
    run's) is removed: a mistyped path must not cost the user a folder of their own."""
    if path.exists():
        foreign = sorted(p.name for p in path.iterdir() if p.name not in owned) if path.is_dir() else [path.name]
        if foreign:
            raise SystemExit(f"{path} holds files this benchmark did not make ({', '.join(foreign[:5])}); "
                             "pass an empty or new folder")
        shutil.rmtree(path)
    path.mkdir(parents=True)
