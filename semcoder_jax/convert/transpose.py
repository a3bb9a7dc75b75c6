"""Fast 2-D transposes of weight matrices, and the buffer pool they draw their outputs from.

Conversion is bound by transposing ~13 GB of bf16 kernels on a few cores; numpy's element-by-element
copy of a transposed view manages ~0.15 GB/s here. Moving neighbouring columns as 16-byte words and
reusing buffers (fresh memory is zeroed by the kernel on first touch) makes it ~10x faster.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

# A transpose splits into this many pieces (threads) once it is at least _PARALLEL_BYTES.
_MAX_THREADS = 4
_PARALLEL_BYTES = 4 << 20
_ROWS = 16  # rows of the source per band
_PAD = 8  # extra elements per scratch row: a power-of-two row length would alias cache sets
_SCRATCH_BYTES = 64 << 20  # per thread, kept between calls
_local = threading.local()
_pool: ThreadPoolExecutor | None = None
# buffers (transpose outputs and others) handed back with ``recycle``, by size in bytes
_MAX_FREE_PER_SIZE = 4
_MAX_FREE_BYTES = 1 << 30
_free: dict[int, list[np.ndarray]] = {}
_free_bytes = 0
_lent: "weakref.WeakValueDictionary[int, np.ndarray]" = weakref.WeakValueDictionary()
_pool_lock = threading.Lock()


def _threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(_MAX_THREADS, cpus))


def _run_parallel(fn: Callable[[int, int], None], n: int, pieces: int) -> None:
    """``fn(start, stop)`` over ``range(n)`` cut into ``pieces``, all but the first on a thread pool."""
    global _pool
    bounds = [n * i // pieces for i in range(pieces + 1)]
    spans = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    if len(spans) <= 1:
        for a, b in spans:
            fn(a, b)
        return
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_MAX_THREADS - 1, thread_name_prefix="transpose")
    futures = [_pool.submit(fn, a, b) for a, b in spans[1:]]
    try:
        fn(*spans[0])
    finally:
        for f in futures:
            f.result()


def transpose2d(x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """``x.T`` made contiguous, bit for bit, several times faster than ``np.ascontiguousarray(x.T)``.

    Neighbouring columns are moved together: the rows are viewed as 16-byte (else 8-byte) words of
    ``k`` elements, the word matrix is transposed a band of 16 rows at a time into a scratch buffer
    whose rows are padded (a 4096-element row would put every row in the same cache sets), and
    each scratch row, ``R`` groups of ``k`` elements, is then de-interleaved into ``k`` output rows.
    Output rows are split between threads (numpy releases the GIL in these copies). A row
    length that no word size divides falls back to 16-row bands of single elements.
    """
    if x.ndim != 2:
        raise ValueError(f"transpose2d needs a 2-D array, got shape {x.shape}")
    n_rows, n_cols = x.shape
    size = x.dtype.itemsize
    bits = np.dtype(f"u{size}")  # plain integers copy faster than e.g. ml_dtypes.bfloat16
    src = np.ascontiguousarray(x).view(bits)
    out = pooled_empty((n_cols, n_rows), bits)
    if threads is None:
        threads = _threads() if x.nbytes >= _PARALLEL_BYTES else 1
    for word in (np.dtype(np.complex128), np.dtype(np.uint64)):  # copied as raw bytes by numpy
        k = word.itemsize // size
        if k >= 2 and word.itemsize % size == 0 and n_cols % k == 0:
            break
    else:
        word, k = None, 1
    if word is None or n_rows == 0 or n_cols == 0:
        def bands(c0: int, c1: int) -> None:
            for r in range(0, n_rows, _ROWS):
                out[c0:c1, r:r + _ROWS] = src[r:r + _ROWS, c0:c1].T

        _run_parallel(bands, n_cols, threads)
        return out.view(x.dtype)

    words = src.view(word)  # (R, C/k)
    out3 = out.reshape(n_cols // k, k, n_rows)
    step = max(16, _SCRATCH_BYTES // ((n_rows + _PAD) * word.itemsize))  # word columns per scratch fill

    def part(c0: int, c1: int) -> None:
        for a in range(c0, c1, step):
            b = min(c1, a + step)
            scratch = _scratch((b - a, n_rows + _PAD), word)
            for r in range(0, n_rows, _ROWS):
                scratch[:, r:min(r + _ROWS, n_rows)] = words[r:r + _ROWS, a:b].T
            groups = scratch.view(bits)[:, :n_rows * k].reshape(b - a, n_rows, k)
            out3[a:b] = groups.transpose(0, 2, 1)

    _run_parallel(part, n_cols // k, threads)
    return out.view(x.dtype)


def pooled_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """``np.empty``, reusing a buffer given back with ``recycle`` if there is one of this size."""
    global _free_bytes
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    with _pool_lock:
        free = _free.get(nbytes)
        buf = free.pop() if free else None
        if buf is not None:
            _free_bytes -= nbytes
    if buf is None:
        buf = np.empty(nbytes, np.uint8)
    with _pool_lock:
        _lent[id(buf)] = buf
    return buf.view(dtype).reshape(shape)


def _base(x: np.ndarray) -> np.ndarray:
    """The array that owns ``x``'s memory (``x`` itself, or the end of its chain of views)."""
    while isinstance(x.base, np.ndarray):
        x = x.base
    return x


def recycle(x: np.ndarray) -> None:
    """Hand back a ``transpose2d`` or ``pooled_empty`` array that nothing uses any more, for reuse.

    Fresh memory is zeroed by the kernel on first touch, which on a small VM costs more than the
    transpose; an array that did not come from ``pooled_empty`` is ignored.
    """
    global _free_bytes
    root = _base(x)
    with _pool_lock:
        if _lent.get(id(root)) is not root:
            return
        del _lent[id(root)]
        free = _free.setdefault(root.nbytes, [])
        if len(free) < _MAX_FREE_PER_SIZE and _free_bytes + root.nbytes <= _MAX_FREE_BYTES:
            free.append(root)
            _free_bytes += root.nbytes


def pooled_root(x: np.ndarray) -> np.ndarray | None:
    """The ``pooled_empty`` buffer under ``x``, or None."""
    root = _base(x)
    with _pool_lock:
        return root if _lent.get(id(root)) is root else None


def recycle_unreferenced(roots: list[np.ndarray]) -> None:
    """``recycle`` each of ``roots`` (``pooled_root`` s) that nothing refers to but this list; drop it from the list.

    For buffers lent to a consumer that gives no word when it is done (TensorStore keeping a
    written array): every view of a buffer refers to it, so its reference count tells.
    """
    sentinel = np.empty(0)
    unused = sys.getrefcount(sentinel) + 1  # a local, the call's argument, and the list's entry
    keep = []
    for root in roots:
        if sys.getrefcount(root) <= unused:
            recycle(root)
        else:
            keep.append(root)
        del root
    roots[:] = keep


def _scratch(shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """This thread's scratch buffer, reused: a fresh one would be page-faulted and zeroed each time."""
    need = shape[0] * shape[1] * dtype.itemsize
    buf = getattr(_local, "scratch", None)
    if buf is None or buf.size < need:
        buf = _local.scratch = np.empty(max(need, 1 << 20), np.uint8)
    return buf[:need].view(dtype).reshape(shape)
