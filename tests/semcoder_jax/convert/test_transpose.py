"""``convert.transpose``: bit-exact ``x.T`` on every path (16- and 8-byte words, element bands, threads), and the buffer pool."""

import ml_dtypes
import numpy as np
import pytest

from semcoder_jax.convert.transpose import pooled_root, recycle, recycle_unreferenced, transpose2d

SHAPES = [(1, 1), (3, 5), (17, 24), (33, 8), (8, 33), (50, 36), (129, 40), (300, 4096), (40, 1000), (0, 8), (8, 0)]
DTYPES = [ml_dtypes.bfloat16, np.float16, np.float32, np.float64, np.int8]


def _random_bits(shape, dtype):
    """Random bit patterns: NaNs, infinities and subnormals included, which a float copy might alter."""
    dtype = np.dtype(dtype)
    raw = np.random.default_rng(sum(shape) + dtype.itemsize).integers(0, 256, (*shape, dtype.itemsize), np.uint8)
    return raw.view(dtype).reshape(shape)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("threads", [1, 3])
def test_transpose_is_bit_exact(shape, dtype, threads):
    x = _random_bits(shape, dtype)
    y = transpose2d(x, threads=threads)
    bits = np.dtype(f"u{np.dtype(dtype).itemsize}")
    assert y.dtype == x.dtype and y.shape == shape[::-1] and y.flags.c_contiguous
    np.testing.assert_array_equal(y.view(bits), x.view(bits).T)


def test_transpose_of_a_view_and_default_threads():
    x = _random_bits((600, 4100), ml_dtypes.bfloat16)  # 4.9 MB: split between threads by default
    np.testing.assert_array_equal(transpose2d(x).view(np.uint16), x.view(np.uint16).T)
    view = x[::2, 2:]  # not contiguous, odd row length
    np.testing.assert_array_equal(transpose2d(view).view(np.uint16), view.view(np.uint16).T)


def test_transpose_rejects_other_ranks():
    with pytest.raises(ValueError, match=r"needs a 2-D array, got shape \(2, 3, 4\)"):
        transpose2d(np.zeros((2, 3, 4), np.float32))


def test_recycled_output_is_reused_and_other_arrays_ignored():
    x = _random_bits((64, 48), np.float32)
    first = transpose2d(x)
    address = first.__array_interface__["data"][0]
    recycle(first.reshape(-1))  # a view of the result counts
    recycle(np.zeros((48, 64), np.float32))  # not ours: ignored
    second = transpose2d(x[::-1])
    assert second.__array_interface__["data"][0] == address
    np.testing.assert_array_equal(second.view(np.uint32), x[::-1].view(np.uint32).T)
    third = transpose2d(x)  # the buffer is lent again: a new one
    assert third.__array_interface__["data"][0] != address


def test_recycle_unreferenced_waits_for_the_last_view():
    x = _random_bits((40, 24), np.float32)
    y = transpose2d(x)
    view = y[1:][None]
    root = pooled_root(view)
    assert root is not None and pooled_root(np.zeros(3)) is None
    roots = [root]
    del root, y
    recycle_unreferenced(roots)
    assert len(roots) == 1  # ``view`` still refers to it
    address = roots[0].__array_interface__["data"][0]
    del view
    recycle_unreferenced(roots)
    assert roots == []
    assert transpose2d(x).__array_interface__["data"][0] == address  # the buffer came back
