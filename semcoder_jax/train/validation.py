"""Held-out rows for the validation loss: read once into host memory, batched in order, padded.

Validation splits are small (a data-pipeline build holds out a fraction of its problems), so every
host keeps all rows and takes its slice of each global batch; the last batch is filled with empty
rows (segment 0, no target), which add nothing to the loss.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Iterator

import numpy as np

from semcoder_jax.packed_schema import FEATURES
from semcoder_jax.train.config import TrainConfig
from semcoder_jax.train.input import (
    Batch,
    DataError,
    check_segment_runs,
    check_token_ids,
    is_jsonl,
    numpy_batches,
    parsed_batches,
    read_jsonl_rows,
    read_tfrecord_rows,
    record_dataset,
    resolve_tfrecords,
    synthetic_rows,
)

log = logging.getLogger(__name__)


def _read_tfrecords(files: list[str], seq_len: int) -> Batch:
    """All rows of ``files``: with tf.data when TensorFlow is installed, else the Python reader."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return read_tfrecord_rows(files, seq_len)
    parts = list(numpy_batches(parsed_batches(record_dataset(files), 1024, seq_len), files, seq_len))
    if not parts:
        raise DataError(f"{files[0]}: no records")
    return {k: np.concatenate([p[k] for p in parts]) for k in FEATURES}


def _describe(cfg: TrainConfig) -> str:
    v, d = cfg.validation, cfg.data
    if v.path:
        return v.path if is_jsonl(v.path) else f"{v.path} (split {v.split!r})"
    return f"{d.path} (split {v.split!r})" if d.path else "<synthetic, held out>"


def load_validation_rows(cfg: TrainConfig, vocab_size: int, max_segments: int = 0) -> Batch:
    """The validation rows of ``cfg.validation`` (see ``ValidationConfig``), all four features;
    ``max_segments`` > 0: rows with more segment runs are refused, as for training data."""
    rows = _read_validation_rows(cfg, vocab_size, max_segments)
    where = f"validation {_describe(cfg)}"
    check_token_ids(rows["input_ids"], vocab_size, where)
    if max_segments:
        check_segment_runs(rows["segment_ids"], max_segments, where)
    log.info("%s: %d rows", where, len(rows["input_ids"]))
    return rows


def _read_validation_rows(cfg: TrainConfig, vocab_size: int, max_segments: int) -> Batch:
    v, d = cfg.validation, cfg.data
    if is_jsonl(v.path):
        return read_jsonl_rows(v.path, d.seq_len, d.pad_id, max_segments)
    if not v.path:
        if not d.path:
            return synthetic_rows(max(d.synthetic_rows // 4, 1), d.seq_len, vocab_size, seed=d.shuffle_seed + 1)
        if not (Path(d.path) / "manifest.json").exists():
            raise DataError(f"data.path {d.path!r} has no manifest.json to name a {v.split!r} split: set validation.path")
    path = v.path or d.path
    files, seq_len = (found := resolve_tfrecords(path, v.split)).files, found.seq_len
    if seq_len is not None and seq_len != d.seq_len:
        raise DataError(f"{path}: manifest seq_len is {seq_len} but data.seq_len is {d.seq_len}; set data.seq_len={seq_len}")
    rows = _read_tfrecords(files, d.seq_len)
    if found.rows is not None and len(rows["input_ids"]) != found.rows:  # a shard cut off, or another build's
        raise DataError(f"{Path(path) / 'manifest.json'}: splits.{v.split}.rows is {found.rows:,} but its files "
                        f"hold {len(rows['input_ids']):,}; rebuild the data, or correct the manifest")
    return rows


def eval_batches(rows: Batch, batch_rows: int, process_index: int = 0, process_count: int = 1,
                 max_batches: int = 0, pad_id: int = 0) -> Iterator[Batch]:
    """This host's part of each global batch of ``batch_rows`` rows, in order, the last one padded."""
    n = len(rows["input_ids"])
    count = math.ceil(n / batch_rows)
    if max_batches:
        count = min(count, max_batches)
    host = batch_rows // process_count
    for b in range(count):
        at = b * batch_rows + process_index * host
        part = {k: np.asarray(v[at : at + host], np.int32) for k, v in rows.items()}
        short = host - len(part["input_ids"])
        if short:
            part = {k: np.concatenate([v, np.full((short, v.shape[1]), pad_id if k == "input_ids" else 0, np.int32)])
                    for k, v in part.items()}
        yield part
