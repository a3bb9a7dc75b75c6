"""Best-fit packing of examples into fixed-length rows."""

import numpy as np
import pytest
from data_pipeline import packing


def _examples(lengths):
    return [packing.Example(f"e{i}", tuple(range(1, n + 1)), (0,) * (n // 2) + (1,) * (n - n // 2)) for i, n in enumerate(lengths)]


def test_best_fit_packing_is_valid_and_tight():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 700, size=400).tolist()
    rows = packing.pack(_examples(lengths), 1024, seed=1)
    assert sorted(e.id for r in rows for e in r) == sorted(f"e{i}" for i in range(400))
    assert all(sum(len(e) for e in r) <= 1024 for r in rows)
    assert len(rows) <= np.ceil(sum(lengths) / 1024) * 1.02 + 1  # near the lower bound
    assert packing.padding_fraction(rows, 1024) < 0.02
    assert packing.pack(_examples(lengths), 1024, seed=1) == rows  # deterministic
    pad_rows = packing.pack(_examples(lengths), 1024, mode="pad")
    assert len(pad_rows) == 400 and packing.padding_fraction(pad_rows, 1024) > 0.4
    with pytest.raises(ValueError, match="example 1 has 2000 tokens > capacity 1024"):
        packing.best_fit([10, 2000], 1024)


def test_packing_bounds_segment_runs_per_row():
    lengths = [30] * 40 + [900] * 3
    free = packing.pack(_examples(lengths), 1024)
    assert packing.max_segment_runs(free, 1024) > 8
    rows = packing.pack(_examples(lengths), 1024, max_segments=8)
    assert sorted(e.id for r in rows for e in r) == sorted(f"e{i}" for i in range(len(lengths)))
    assert max(len(r) for r in rows) == 7 and packing.max_segment_runs(rows, 1024) == 8
    full = [packing.Example("a", (1,) * 512, (1,) * 512), packing.Example("b", (1,) * 512, (1,) * 512)]
    assert packing.max_segment_runs([full], 1024) == 2  # no padding run


def test_build_row_segments_and_positions():
    exs = _examples([3, 4])
    row = packing.build_row(exs, 10, pad_id=7)
    assert row["input_ids"].tolist() == [1, 2, 3, 1, 2, 3, 4, 7, 7, 7]
    assert row["segment_ids"].tolist() == [1, 1, 1, 2, 2, 2, 2, 0, 0, 0]
    assert row["positions"].tolist() == [0, 1, 2, 0, 1, 2, 3, 0, 0, 0]
    assert row["loss_mask"].tolist() == [0, 1, 1, 0, 0, 1, 1, 0, 0, 0]
