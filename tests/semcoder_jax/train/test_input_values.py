"""The packed rows across the data -> train boundary: what the trainer's readers refuse, and why."""

import json

import pytest

from semcoder_jax.packed_schema import FEATURES, SchemaError, serialize_example
from semcoder_jax.train.config import DataConfig
from semcoder_jax.train.input import (
    BatchIterator,
    DataError,
    make_source,
    read_jsonl_rows,
    read_tfrecord_rows,
)

SEQ = 4
BIG = 2**32 + 5  # int32 arrays would hold it as 5, a token id of every vocabulary


def _row(ids):
    return {"input_ids": ids, "loss_mask": [0, 1, 1, 0], "segment_ids": [1, 1, 1, 0], "positions": [0, 1, 2, 0]}


def _tfrecord(path, rows):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as w:
        for r in rows:
            w.write(serialize_example(r))
    return path


@pytest.mark.parametrize("row", [{"input_ids": [1, BIG, 3], "loss_mask": [0, 1, 1]}, _row([1, BIG, 3, 0])],
                         ids=["unpacked", "packed"])
def test_a_jsonl_value_beyond_int32_is_refused_not_wrapped(tmp_path, row):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"input_ids": [1, 2], "loss_mask": [0, 1]}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(SchemaError, match=rf"rows\.jsonl:2: .*'input_ids'.* holds {BIG}, outside the int32 range"):
        read_jsonl_rows(path, SEQ)


def test_a_tfrecord_value_beyond_int32_is_refused_not_wrapped(tmp_path):
    """Both readers: tf.data (a later record, past the first-record check) and the Python one."""
    path = _tfrecord(tmp_path / "train-00000-of-00001.tfrecord", [_row([1, 2, 3, 0]), _row([1, BIG, 3, 0])])
    with pytest.raises(SchemaError, match=rf"record 1: feature 'input_ids' holds {BIG}"):
        read_tfrecord_rows([str(path)], SEQ)
    source = make_source(DataConfig(path=str(path), seq_len=SEQ, global_batch_size=2), 64, 0, 1)
    with pytest.raises(SchemaError, match=rf"train-00000-of-00001\.tfrecord: record 1: feature 'input_ids' holds {BIG}"):
        next(BatchIterator(source, 2))


def test_in_range_rows_read_back_unchanged(tmp_path):
    rows = [_row([1, 2**31 - 1, 3, 0]), _row([7, 8, 9, 0])]
    path = _tfrecord(tmp_path / "train-00000-of-00001.tfrecord", rows)
    got = read_tfrecord_rows([str(path)], SEQ)
    assert {k: got[k].tolist() for k in FEATURES} == {k: [r[k] for r in rows] for k in FEATURES}


@pytest.mark.parametrize("kind,found", [("float_list", "floats"), ("bytes_list", "text")])
def test_the_python_reader_names_a_feature_of_another_type(tmp_path, kind, found):
    """As ``parse_example`` does (tf.data's path): not "has length 0" for a list of 4 values."""
    from tensorflow.core.example import example_pb2, feature_pb2

    feats = {n: feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=[1, 2, 3, 4])) for n in FEATURES}
    values = {"float_list": feature_pb2.FloatList(value=[1.0, 1.0, 0.0, 0.0]),
              "bytes_list": feature_pb2.BytesList(value=[b"1", b"1", b"0", b"0"])}
    feats["loss_mask"] = feature_pb2.Feature(**{kind: values[kind]})
    path = tmp_path / "x.tfrecord"
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as w:
        w.write(example_pb2.Example(features=feature_pb2.Features(feature=feats)).SerializeToString())
    with pytest.raises(SchemaError, match=rf"x\.tfrecord: record 0: feature 'loss_mask' is not a list of integers \(found {found}\)"):
        read_tfrecord_rows([str(path)], SEQ)


def test_an_empty_jsonl_row_is_skipped_not_an_empty_segment(tmp_path, caplog):
    """It took segment id 1 (the row's examples started at 2), and alone it made an all-padding row."""
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"input_ids": []}) + "\n" + json.dumps({"input_ids": [1, 2], "loss_mask": [0, 1]}) + "\n")
    rows = read_jsonl_rows(path, SEQ)
    assert rows["segment_ids"].tolist() == [[1, 1, 0, 0]] and "left out 1 rows of no tokens: line 1" in caplog.text
    path.write_text(json.dumps({"input_ids": [], "loss_mask": []}) + "\n")
    with pytest.raises(DataError, match=r"rows\.jsonl: no usable rows"):
        read_jsonl_rows(path, SEQ)


@pytest.mark.parametrize("row, name", [({"input_ids": 5}, "input_ids"), ({"input_ids": [1, 2], "loss_mask": 1}, "loss_mask")])
def test_a_jsonl_number_where_a_list_belongs_is_named(tmp_path, row, name):
    """Not "'loss_mask' length 1 differs from 'input_ids' length 1"."""
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=rf"rows\.jsonl:1: '{name}' is not a list of integers"):
        read_jsonl_rows(path, SEQ)


def test_a_glob_over_both_splits_reads_only_its_split(tmp_path):
    """``data.path=out/tfrecords/*.tfrecord`` trained on the validation split's shards too."""
    from semcoder_jax.train.input import resolve_tfrecords

    for name in ("train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord", "validation-00000-of-00001.tfrecord"):
        _tfrecord(tmp_path / name, [_row([1, 2, 3, 0])])
    pattern = str(tmp_path / "*.tfrecord")
    assert [p.rsplit("/", 1)[1] for p in resolve_tfrecords(pattern, "train").files] == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert [p.rsplit("/", 1)[1] for p in resolve_tfrecords(pattern, "validation").files] == ["validation-00000-of-00001.tfrecord"]
    only = resolve_tfrecords(str(tmp_path / "validation-*.tfrecord"), "train").files  # a glob of one split: as given
    assert [p.rsplit("/", 1)[1] for p in only] == ["validation-00000-of-00001.tfrecord"]
