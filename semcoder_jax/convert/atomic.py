"""All-or-nothing output folders: written beside the target, renamed into place when complete."""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from pathlib import Path
from typing import Iterator

from semcoder_jax.errors import SemcoderError


@contextlib.contextmanager
def atomic_output_dir(out_dir: str | Path) -> Iterator[Path]:
    """Yield a temporary folder on ``out_dir``'s file system; on success it becomes ``out_dir``.

    A failure (or an interrupt) removes the temporary folder, so nothing is left at ``out_dir``.
    """
    out = Path(out_dir).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SemcoderError(f"--out {out}: already exists and is not an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()  # with the umask's mode, as --out itself would be made: mkdtemp's 0o700 kept other users out
    try:
        yield tmp
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path, attempts: int = 20) -> None:
    """``rmtree`` that outlasts a writer thread still closing files inside ``path``."""
    for _ in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.1)
