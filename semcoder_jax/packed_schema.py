"""The packed training row: the contract between ``data_pipeline`` (writer) and the trainer (reader).

A row is ``seq_len`` tokens holding one or more whole examples (segments). All four features are
int64 of length ``seq_len`` in a ``tf.train.Example``:

- ``input_ids``: token ids; padding uses ``pad_id`` (0 unless configured).
- ``loss_mask``: 1 where the *next-token target at this position* is a response token, i.e. the
  token at ``i`` is predicted from ``0..i-1`` and counts in the loss when ``loss_mask[i] == 1``.
- ``segment_ids``: 1, 2, ... per packed example; 0 on padding.
- ``positions``: restart at 0 at the start of each segment; 0 on padding.

Readers check the last three against each other (``check_packing``): positions that run on across a
segment boundary, or a segment id that comes back after another example's, would let the model see
its examples at wrong positions or attend across them without any error.

TensorFlow is imported lazily so that JAX-only machines (GPU images) can import this module.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from semcoder_jax.errors import SemcoderError

FEATURES: tuple[str, ...] = ("input_ids", "loss_mask", "segment_ids", "positions")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class SchemaError(SemcoderError):
    pass


def int64_array(value: Any, what: str) -> np.ndarray:
    """``value`` as int64, or a ``SchemaError`` saying that ``what`` is not a list of integers
    (floats and strings too: ``1.5`` or ``"12"`` would otherwise be read as 1 and 12 without a word)."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = None
    if arr is None or (arr.size and arr.dtype.kind not in "iub"):
        kinds = {"f": "floats", "U": "text", "S": "text", "c": "complex numbers"}
        found = f" (found {kinds[arr.dtype.kind]})" if arr is not None and arr.dtype.kind in kinds else ""
        raise SchemaError(f"{what} is not a list of integers{found}")
    arr = arr.astype(np.int64)
    check_int32(arr, what)
    return arr


def check_int32(arr: np.ndarray, what: str) -> None:
    """Refuse values the trainer's int32 arrays cannot hold: cast, 2**32 + 5 would be read as 5."""
    if arr.size and (arr.min() < INT32_MIN or arr.max() > INT32_MAX):
        bad = arr.flat[int(np.argmax((arr < INT32_MIN) | (arr > INT32_MAX)))]
        raise SchemaError(f"{what} holds {int(bad)}, outside the int32 range the trainer reads")


def validate_row(row: Mapping[str, Any], seq_len: int, where: str = "row") -> dict[str, np.ndarray]:
    """Check a row's features and lengths; returns int64 arrays."""
    out = {}
    for name in FEATURES:
        if name not in row:
            raise SchemaError(f"{where}: missing feature {name!r}")
        arr = int64_array(row[name], f"{where}: feature {name!r}")
        if arr.shape != (seq_len,):
            raise SchemaError(f"{where}: feature {name!r} has length {arr.shape[0] if arr.ndim else 0}, expected {seq_len}")
        out[name] = arr
    extra = set(row) - set(FEATURES)
    if extra:
        raise SchemaError(f"{where}: unknown feature(s) {sorted(extra)}")
    check_packing(out, lambda _: where)
    return out


def check_packing(rows: Mapping[str, np.ndarray], where: Callable[[int], str]) -> None:
    """Refuse rows (``[seq_len]`` or ``[rows, seq_len]``) whose ``segment_ids``, ``positions`` and
    ``loss_mask`` disagree: ``where(row)`` names the row. Each example's positions count 0, 1, 2, ...;
    segment ids are >= 0 and rise from one example to the next (one coming back would attend to the
    earlier example's tokens with the xla kernel but not with cuDNN's); ``loss_mask`` is 0 or 1."""
    seg, pos, mask = (np.atleast_2d(np.asarray(rows[k])) for k in ("segment_ids", "positions", "loss_mask"))
    if not seg.size:
        return
    start = np.ones(seg.shape, bool)
    start[:, 1:] = seg[:, 1:] != seg[:, :-1]
    prev_pos = np.zeros_like(pos)
    prev_pos[:, 1:] = pos[:, :-1]
    earlier = np.zeros_like(seg)  # the highest segment id before each position
    earlier[:, 1:] = np.maximum.accumulate(seg, axis=1)[:, :-1]
    real = seg > 0
    problems = (
        (seg < 0, lambda r, c: f"segment id {seg[r, c]} at position {c} is negative"),
        (real & start & (seg <= earlier), lambda r, c: f"segment {seg[r, c]} starts again at position {c}, after "
                                                       f"segment {earlier[r, c]}; each example needs an id of its own, "
                                                       "rising along the row"),
        (real & start & (pos != 0), lambda r, c: f"positions[{c}] is {pos[r, c]} where segment {seg[r, c]} starts; "
                                                 "positions restart at 0 in each packed example"),
        (real & ~start & (pos != prev_pos + 1), lambda r, c: f"positions[{c}] is {pos[r, c]} after {prev_pos[r, c]} "
                                                             f"inside segment {seg[r, c]}; they rise by 1"),
        ((mask != 0) & (mask != 1), lambda r, c: f"loss_mask[{c}] is {mask[r, c]}, not 0 or 1"),
    )
    # ``any`` first: ``nonzero`` of a clean [512, 2048] batch's five masks took half the check's time
    found = [(int(rs[0]), int(cs[0]), describe) for bad, describe in problems if bad.any() for rs, cs in [np.nonzero(bad)]]
    if found:
        r, c, describe = min(found, key=lambda f: f[0])  # the first bad row, named by its first problem
        raise SchemaError(f"{where(r)}: {describe(r, c)}")


def serialize_example(row: Mapping[str, Any]) -> bytes:
    """A ``tf.train.Example`` of the four int64 features, serialised deterministically (protobuf's
    map order otherwise varies between processes, and a resumed build must be byte-identical)."""
    from tensorflow.core.example import example_pb2, feature_pb2  # protobuf only, no TF runtime

    features = {
        name: feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=np.asarray(row[name], np.int64).tolist()))
        for name in FEATURES
    }
    return example_pb2.Example(features=feature_pb2.Features(feature=features)).SerializeToString(deterministic=True)


def feature_spec(seq_len: int) -> dict[str, Any]:
    import tensorflow as tf

    return {name: tf.io.FixedLenFeature([seq_len], tf.int64) for name in FEATURES}


def parse_example(record: bytes, seq_len: int, where: str = "record") -> dict[str, np.ndarray]:
    """Parse one serialised Example without TensorFlow ops (used for checks and tests)."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2

    ex = example_pb2.Example()
    try:
        ex.ParseFromString(record)
    except DecodeError:
        raise SchemaError(f"{where}: not a tf.train.Example") from None
    feats = ex.features.feature
    # A float or bytes list is passed on as such, so the error says so instead of "length 0".
    row = {name: list(getattr(feats[name], feats[name].WhichOneof("kind") or "int64_list").value) for name in feats}
    return validate_row(row, seq_len, where)
