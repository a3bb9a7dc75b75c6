"""Packing tokenised examples into fixed-length rows (the ``semcoder_jax.packed_schema`` contract).

Best-fit decreasing: longest first, each into the open row with the least room that still fits it.
``pad`` mode puts one example per row (right-padded), for comparison and for evaluation sets.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Example:
    id: str
    input_ids: tuple[int, ...]
    loss_mask: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.input_ids)


def best_fit(lengths: Sequence[int], capacity: int, max_items: int = 0) -> list[list[int]]:
    """Bins of example indices, best-fit decreasing; ties broken by index for determinism.

    ``max_items`` > 0 closes a bin once it holds that many examples.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    room_keys: list[tuple[int, int]] = []  # sorted (room left, bin index)
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"example {i} has {n} tokens > capacity {capacity}")
        j = bisect.bisect_left(room_keys, (n, -1))
        if j < len(room_keys):
            room, b = room_keys.pop(j)
            bins[b].append(i)
            if len(bins[b]) != max_items:
                bisect.insort(room_keys, (room - n, b))
        else:
            bins.append([i])
            if max_items != 1:
                bisect.insort(room_keys, (capacity - n, len(bins) - 1))
    return bins


def build_row(examples: Sequence[Example], seq_len: int, pad_id: int = 0) -> dict[str, np.ndarray]:
    row = {k: np.zeros(seq_len, np.int64) for k in ("input_ids", "loss_mask", "segment_ids", "positions")}
    row["input_ids"][:] = pad_id
    pos = 0
    for seg, ex in enumerate(examples, start=1):
        n = len(ex)
        row["input_ids"][pos : pos + n] = ex.input_ids
        row["loss_mask"][pos : pos + n] = ex.loss_mask
        row["segment_ids"][pos : pos + n] = seg
        row["positions"][pos : pos + n] = np.arange(n)
        pos += n
    return row


def pack(examples: Sequence[Example], seq_len: int, *, mode: str = "best_fit", seed: int = 0, pad_id: int = 0,
         max_segments: int = 0) -> list[list[Example]]:
    """Rows of examples (not yet arrays), shuffled deterministically with ``seed``; an example longer
    than ``seq_len`` is an error naming it (in any mode: ``pad`` rows were cut short by ``build_row``).

    ``max_segments`` > 0 bounds a row's runs of equal segment id, its trailing padding counted as
    one: rows then hold at most ``max_segments - 1`` examples (see ``model.max_segments``).
    """
    too_long = next((ex for ex in examples if len(ex) > seq_len), None)
    if too_long is not None:  # ``tokenize_records`` rejects these, counted as ``too_long``; none is cut here
        raise ValueError(f"example {too_long.id!r} has {len(too_long)} tokens > seq_len {seq_len}")
    if mode == "pad":
        rows = [[ex] for ex in examples]
    elif mode == "best_fit":
        max_items = max_segments - 1 if max_segments else 0
        rows = [[examples[i] for i in b] for b in best_fit([len(e) for e in examples], seq_len, max_items)]
    else:
        raise ValueError(f"unknown packing mode {mode!r}")
    random.Random(seed).shuffle(rows)
    return rows


def max_segment_runs(rows: Sequence[Sequence[Example]], seq_len: int) -> int:
    """The most runs of equal segment id in any row: its examples, plus one for trailing padding."""
    return max((len(r) + (sum(len(e) for e in r) < seq_len) for r in rows), default=0)


def padding_fraction(rows: Sequence[Sequence[Example]], seq_len: int) -> float:
    used = sum(len(e) for r in rows for e in r)
    total = len(rows) * seq_len
    return 1.0 - used / total if total else 0.0


def right_pad_batches_fraction(lengths: Sequence[int], batch_size: int) -> float:
    """SemCoder's collator: each batch right-padded to its longest example (dataset order)."""
    used = padded = 0
    for s in range(0, len(lengths), batch_size):
        batch = lengths[s : s + batch_size]
        used += sum(batch)
        padded += max(batch) * len(batch)
    return 1.0 - used / padded if padded else 0.0
