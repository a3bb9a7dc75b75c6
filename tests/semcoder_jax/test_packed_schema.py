"""The packed row contract: what a record that breaks it is told."""

import pytest

from semcoder_jax.packed_schema import SchemaError, parse_example, serialize_example


def _example(loss_mask_feature) -> bytes:
    from tensorflow.core.example import example_pb2, feature_pb2

    feats = {name: feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=[1, 2, 3, 4]))
             for name in ("input_ids", "segment_ids", "positions")}
    feats["loss_mask"] = loss_mask_feature
    return example_pb2.Example(features=feature_pb2.Features(feature=feats)).SerializeToString()


def test_round_trip():
    row = {"input_ids": [5, 6, 0], "loss_mask": [0, 1, 0], "segment_ids": [1, 1, 0], "positions": [0, 1, 0]}
    assert {k: v.tolist() for k, v in parse_example(serialize_example(row), 3).items()} == row


@pytest.mark.parametrize("kind,found", [("float_list", "floats"), ("bytes_list", "text")])
def test_a_feature_of_another_type_is_named_as_such(kind, found):
    """Not "has length 0": the feature holds values, just not integers."""
    from tensorflow.core.example import feature_pb2

    values = [1.0, 1.0, 0.0, 0.0] if kind == "float_list" else [b"1", b"1", b"0", b"0"]
    lists = {"float_list": feature_pb2.FloatList, "bytes_list": feature_pb2.BytesList}
    feature = feature_pb2.Feature(**{kind: lists[kind](value=values)})
    with pytest.raises(SchemaError, match=rf"x\.tfrecord: record 3: feature 'loss_mask' is not a list of integers \(found {found}\)"):
        parse_example(_example(feature), 4, where="x.tfrecord: record 3")


def test_a_record_that_is_not_an_example_names_where():
    """protobuf's DecodeError names no file; the trainer checks each file's first record with this."""
    with pytest.raises(SchemaError, match=r"x\.tfrecord: record 0: not a tf.train.Example"):
        parse_example(b"\xff", 4, where="x.tfrecord: record 0")


ROW = {"input_ids": [5, 6, 7, 8, 9, 0], "loss_mask": [0, 1, 0, 1, 1, 0], "segment_ids": [1, 1, 2, 2, 2, 0],
       "positions": [0, 1, 0, 1, 2, 0]}


@pytest.mark.parametrize("change, message", [
    ({"positions": [0, 1, 2, 3, 4, 0]}, r"positions\[2\] is 2 where segment 2 starts; positions restart at 0"),
    ({"positions": [0, 1, 0, 2, 3, 0]}, r"positions\[3\] is 2 after 0 inside segment 2; they rise by 1"),
    ({"positions": [1, 2, 0, 1, 2, 0]}, r"positions\[0\] is 1 where segment 1 starts"),
    ({"segment_ids": [1, 1, 2, 2, 1, 0], "positions": [0, 1, 0, 1, 0, 0]}, r"segment 1 starts again at position 4, after segment 2"),
    ({"segment_ids": [2, 2, 1, 1, 1, 0]}, r"segment 1 starts again at position 2, after segment 2"),
    ({"segment_ids": [-1, -1, 2, 2, 2, 0]}, r"segment id -1 at position 0 is negative"),
    ({"loss_mask": [0, 1, 0, 2, 1, 0]}, r"loss_mask\[3\] is 2, not 0 or 1"),
], ids=["runs on", "skips", "starts at 1", "id comes back", "ids fall", "negative", "mask of 2"])
def test_segments_positions_and_loss_mask_must_agree(change, message):
    """What the model would otherwise read without an error: examples at wrong RoPE positions, or
    attending to each other (the xla kernel by segment id, cuDNN by run)."""
    assert {k: v.tolist() for k, v in parse_example(serialize_example(ROW), 6).items()} == ROW
    with pytest.raises(SchemaError, match=rf"^x\.tfrecord: record 3: {message}"):
        parse_example(serialize_example({**ROW, **change}), 6, where="x.tfrecord: record 3")


def test_the_first_bad_row_of_a_batch_is_named():
    import numpy as np

    from semcoder_jax.packed_schema import check_packing

    rows = {k: np.array([ROW[k]] * 3) for k in ROW}
    rows["loss_mask"][2, 1] = 3
    rows["positions"][1, 2] = 4
    rows["segment_ids"][0] = [0, 0, 1, 1, 1, 0]  # leading padding is fine
    rows["positions"][0] = [0, 0, 0, 1, 2, 0]
    with pytest.raises(SchemaError, match=r"^row 1: positions\[2\] is 4 where segment 2 starts"):
        check_packing(rows, lambda r: f"row {r}")
