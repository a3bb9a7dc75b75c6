"""Sharded TFRecord writer and the ``manifest.json`` the trainer reads.

Manifest shape (kept stable for the trainer): ``{"seq_len": int, "max_segments": int, "splits":
{"train": {"files": [relative paths], "rows": N, ...}, "validation": {...} (with
validation_fraction > 0)}, ...}`` plus counts, tokens, padding, config, code version, checksums
(see ``build.finalize``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any, Sequence

from data_pipeline.packing import Example, build_row
from semcoder_jax.packed_schema import serialize_example


def shard_name(split: str, i: int, n: int) -> str:
    return f"{split}-{i:05d}-of-{n:05d}.tfrecord"


def write_shards(rows: Sequence[Sequence[Example]], out_dir: str | Path, *, split: str, num_shards: int, seq_len: int, pad_id: int = 0) -> list[dict[str, Any]]:
    """Contiguous blocks of rows per shard; each shard written to a temp name then renamed."""
    import tensorflow as tf

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    num_shards = max(1, min(num_shards, len(rows))) if rows else 1
    bounds = [round(i * len(rows) / num_shards) for i in range(num_shards + 1)]
    shards = []
    for i in range(num_shards):
        path = out_dir / shard_name(split, i, num_shards)
        tmp = path.with_name(path.name + ".tmp")
        with tf.io.TFRecordWriter(str(tmp)) as w:
            for row in rows[bounds[i] : bounds[i + 1]]:
                w.write(serialize_example(build_row(row, seq_len, pad_id)))
        os.replace(tmp, path)
        shards.append({"file": path.name, "rows": bounds[i + 1] - bounds[i], "sha256": sha256_file(path)})
    return shards


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def code_version() -> str:
    from semcoder_jax import PROJECT_ROOT, __version__

    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"{__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__
