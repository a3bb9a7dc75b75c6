"""The packed training row: the contract between ``data_pipeline`` (writer) and the trainer (reader).

A row is ``seq_len`` tokens holding one or more whole examples (segments). All four features are
int64 of length ``seq_len`` in a ``tf.train.Example``:

- ``input_ids``: token ids; padding uses ``pad_id`` (0 unless configured).
- ``loss_mask``: 1 where the *next-token target at this position* is a response token, i.e. the
  token at ``i`` is predicted from ``0..i-1`` and counts in the loss when ``loss_mask[i] == 1``.
- ``segment_ids``: 1, 2, ... per packed example; 0 on padding.
- ``positions``: restart at 0 at the start of each segment; 0 on padding.

TensorFlow is imported lazily so that JAX-only machines (GPU images) can import this module.
"""

from __future__ import annotations

from typing import Any, Mapping

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
    return out


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
