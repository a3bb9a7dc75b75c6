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


@pytest.mark.parametrize("mode", ["pad", "best_fit"])
def test_an_example_longer_than_a_row_is_an_error_naming_it(mode):
    """In ``pad`` mode it was packed alone, and writing its row failed with numpy's broadcast error."""
    with pytest.raises(ValueError, match="example 'e1' has 2000 tokens > seq_len 1024"):
        packing.pack(_examples([10, 2000]), 1024, mode=mode)


def test_rows_hold_every_token_once_with_its_loss_mask():
    """Each packed example comes back from its row's arrays whole: ids and loss mask in place, nothing
    lost, duplicated or shifted; runs within ``max_segments``."""
    rng = np.random.default_rng(3)
    exs = [packing.Example(f"e{i}", tuple(rng.integers(1, 30000, n).tolist()), tuple(rng.integers(0, 2, n).tolist()))
           for i, n in enumerate(rng.integers(2, 300, size=120).tolist())]
    rows = packing.pack(exs, 512, seed=2, max_segments=4)
    by_id = {e.id: e for e in exs}
    seen = []
    for r in rows:
        arr = packing.build_row(r, 512, pad_id=0)
        segs = arr["segment_ids"]
        assert len({s for s in segs.tolist() if s}) == len(r) <= 3
        for seg, ex in enumerate(r, start=1):
            at = segs == seg
            assert tuple(arr["input_ids"][at].tolist()) == by_id[ex.id].input_ids
            assert tuple(arr["loss_mask"][at].tolist()) == by_id[ex.id].loss_mask
            assert arr["positions"][at].tolist() == list(range(len(ex)))
            seen.append(ex.id)
        assert not arr["loss_mask"][segs == 0].any()
    assert sorted(seen) == sorted(by_id)
