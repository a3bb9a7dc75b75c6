"""Training input: TFRecord folders and globs, JSONL packing, deterministic positions, host shares."""

import json
import re

import numpy as np
import pytest

from semcoder_jax.packed_schema import SchemaError
from semcoder_jax.train.config import DataConfig
from semcoder_jax.train.input import (
    BatchIterator,
    DataError,
    DataPosition,
    check_segment_runs,
    count_segment_runs,
    make_source,
    pack_examples,
    read_jsonl_rows,
    resolve_tfrecords,
    synthetic_rows,
)

SEQ = 16


def _rows(n, seed=0):
    return [{k: v[i] for k, v in synthetic_rows(n, SEQ, 64, seed=seed).items()} for i in range(n)] if n else []


def _dataset(tiny, root, n_files=4, rows_per_file=6):
    files = []
    for f in range(n_files):
        rows = _rows(rows_per_file, seed=f)
        for i, r in enumerate(rows):
            r["input_ids"] = r["input_ids"].copy()
            r["input_ids"][0] = 1000 + f * 100 + i  # a unique tag per row
        files.append(tiny.write_tfrecords(root / "tfrecords" / f"train-{f:05d}-of-{n_files:05d}.tfrecord", rows))
    manifest = {"seq_len": SEQ, "splits": {"train": {"files": [str(p.relative_to(root)) for p in files], "rows": n_files * rows_per_file,
                                    "shard_rows": [rows_per_file] * n_files}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _tags(batches):
    return [b["input_ids"][:, 0].tolist() for b in batches]


def test_tfrecord_folder_epochs_are_permutations_and_positions_resume(tiny, tmp_path):
    root = _dataset(tiny, tmp_path / "data")
    cfg = DataConfig(path=str(root), seq_len=SEQ, global_batch_size=4, shuffle_seed=3, shuffle_buffer=8)
    source = make_source(cfg, vocab_size=64)
    assert source.rows == 24
    it = BatchIterator(source, 4)
    run = _tags([next(it) for _ in range(12)])  # two epochs of 6 batches
    assert it.position == DataPosition(1, 6)
    epoch0, epoch1 = sum(run[:6], []), sum(run[6:], [])
    assert sorted(epoch0) == sorted(epoch1) == sorted(1000 + f * 100 + i for f in range(4) for i in range(6))
    assert epoch0 != epoch1  # reshuffled per epoch
    assert _tags([next(BatchIterator(make_source(cfg, 64), 4)) for _ in range(1)]) == run[:1]  # deterministic
    resumed = BatchIterator(make_source(cfg, 64), 4, DataPosition(0, 4))
    assert _tags([next(resumed) for _ in range(5)]) == run[4:9]  # across the epoch boundary too


def test_hosts_read_disjoint_shares(tiny, tmp_path):
    root = _dataset(tiny, tmp_path / "data")
    cfg = DataConfig(path=str(root / "tfrecords" / "*.tfrecord"), seq_len=SEQ, global_batch_size=4)
    shares = []
    for host in range(2):
        source = make_source(cfg, 64, process_index=host, process_count=2)
        shares.append(set(sum(_tags(BatchIterator(source, 4).__next__() for _ in range(6)), [])))
        assert all(len(b) == 2 for b in _tags([next(BatchIterator(source, 4))]))  # per-host batch
    assert shares[0] and shares[1] and not shares[0] & shares[1]


@pytest.mark.parametrize("tensorflow", [True, False], ids=["tf.data", "python"])
@pytest.mark.parametrize("layout, n_files, rows_per_file, per_host", [("folder", 3, 4, 4), ("glob", 3, 4, 4), ("glob", 1, 5, 2)])
def test_hosts_read_each_row_once_an_epoch_when_shares_differ(tiny, tmp_path, monkeypatch, tensorflow, layout, n_files, rows_per_file, per_host):
    """Files or rows that do not divide among the hosts: every host takes as many batches, the
    smallest share's, and none repeats a row to keep up with the others."""
    import sys

    root = _dataset(tiny, tmp_path / "data", n_files=n_files, rows_per_file=rows_per_file)
    if not tensorflow:
        monkeypatch.setitem(sys.modules, "tensorflow", None)
    path = str(root) if layout == "folder" else str(root / "tfrecords" / "*.tfrecord")
    cfg = DataConfig(path=path, seq_len=SEQ, global_batch_size=2)
    epochs = []
    for host in range(2):
        it = BatchIterator(make_source(cfg, 64, process_index=host, process_count=2), 2)
        epochs.append(sum(_tags(next(it) for _ in range(it.per_epoch)), []))
    assert len(epochs[0]) == len(epochs[1]) == per_host
    assert all(len(set(e)) == len(e) for e in epochs) and not set(epochs[0]) & set(epochs[1])


def test_jsonl_unpacked_rows_are_packed_into_segments(tmp_path):
    path = tmp_path / "rows.jsonl"
    examples = [([5, 6, 7, 8, 9], [0, 0, 1, 1, 1]), ([10, 11, 12], [0, 1, 1]), ([13] * 9, [1] * 9), ([1] * 40, [1] * 40)]
    path.write_text("\n".join(json.dumps({"input_ids": i, "loss_mask": m}) for i, m in examples) + "\n")
    rows = read_jsonl_rows(path, SEQ)  # the 40-token row is longer than SEQ and skipped
    assert rows["input_ids"].shape == (2, SEQ)
    np.testing.assert_array_equal(rows["segment_ids"][0], [1] * 5 + [2] * 3 + [0] * 8)
    np.testing.assert_array_equal(rows["positions"][0][:8], [0, 1, 2, 3, 4, 0, 1, 2])
    np.testing.assert_array_equal(rows["loss_mask"][0][:8], [0, 0, 1, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(rows["input_ids"][1][:9], [13] * 9)
    packed = pack_examples([(np.arange(3), np.ones(3))], 4)
    assert packed["segment_ids"].tolist() == [[1, 1, 1, 0]]


def test_jsonl_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"input_ids": [1, 2], "loss_mask": [1, 1]}) + "\n" + json.dumps({"input_ids": [1, 2], "loss_mask": [1]}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: 'loss_mask' length 1"):
        read_jsonl_rows(path, SEQ)


@pytest.mark.parametrize("row, message", [
    ({"input_ids": [1, 2, "x"], "loss_mask": [0, 1, 1]}, "'input_ids' is not a list of integers"),
    ({"input_ids": [1, 2, 3], "loss_mask": None}, "'loss_mask' is not a list of integers"),
    ({"input_ids": [[1, 2], [3]]}, "'input_ids' is not a list of integers"),
    ({"input_ids": [1, 2.5, 3]}, r"'input_ids' is not a list of integers \(found floats\)"),
    ({"input_ids": ["1", "2", "3"]}, r"'input_ids' is not a list of integers \(found text\)"),
    ({k: [1] * SEQ for k in ("input_ids", "loss_mask", "segment_ids")} | {"positions": [None] * SEQ}, "feature 'positions' is not a list of integers"),
], ids=["string", "null", "ragged", "fraction", "text", "packed"])
def test_jsonl_values_that_are_not_integers_name_file_line_and_field(tmp_path, row, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"input_ids": [1, 2], "loss_mask": [1, 1]}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises((DataError, SchemaError), match=rf"bad\.jsonl:2: {message}"):
        read_jsonl_rows(path, SEQ)


def test_jsonl_packing_and_training_respect_max_segments(make_config, tmp_path, monkeypatch):
    examples = [(np.arange(1, 4), np.ones(3)) for _ in range(10)]
    assert count_segment_runs(pack_examples(examples, SEQ)["segment_ids"]).max() == 6  # 5 examples + padding
    assert count_segment_runs(pack_examples(examples, SEQ, max_segments=3)["segment_ids"]).max() == 3
    with pytest.raises(DataError, match=r"epoch 0, batch 2, row 1: 5 runs .* exceed model.max_segments=4"):
        check_segment_runs(np.array([[1, 1, 2, 2, 0], [1, 2, 3, 4, 0], [1, 2, 3, 4, 4]]), 4, "epoch 0, batch 2")
    check_segment_runs(np.array([[1, 2, 3, 4]]), 4, "fine")

    import semcoder_jax.train.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "make_train_step", lambda *a, **k: pytest.fail("compiled a step"))
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"input_ids": [1, 2, 3], "loss_mask": [0, 1, 1]}) + "\n" for _ in range(40)))
    source = make_source(DataConfig(path=str(path), seq_len=SEQ, global_batch_size=4), 64, max_segments=4)
    assert source.max_runs == 4  # 3 examples + padding a row
    from semcoder_jax.model.attention import packed_cudnn_available

    if not packed_cudnn_available():
        pytest.skip("this JAX has no packed cuDNN entry point, so the trainer sets no bound")
    with pytest.raises(DataError, match=r"up to 4 runs .* model.max_segments=3"):  # synthetic rows: 4 segments
        trainer_mod.Trainer(make_config("model.attention=cudnn", "model.max_segments=3"))


def test_token_ids_outside_the_vocabulary_are_refused_before_a_step(make_config, tmp_path):
    """Out-of-vocabulary ids embed as NaN: the loss and then every weight would be NaN, silently."""
    from semcoder_jax.train.trainer import Trainer
    from semcoder_jax.train.validation import load_validation_rows

    path = tmp_path / "rows.jsonl"
    rows = [{"input_ids": list(range(i, i + 16)), "loss_mask": [0] * 4 + [1] * 12} for i in range(16)]  # 8 rows: one batch
    rows[7]["input_ids"][9] = 600  # the tiny config's vocabulary has 512 ids
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = make_config(f"data.path={path}", "max_steps=2")
    trainer = Trainer(cfg)
    trainer.step_fn = lambda *a: pytest.fail("ran a step on out-of-vocabulary ids")
    try:
        with pytest.raises(DataError, match=r"rows\.jsonl'?: epoch 0, batch \d+, row \d+: token id 600 at position \d+ .*vocab_size=512"):
            trainer.run()
    finally:
        trainer.close()
    cfg.validation.path = str(path)
    with pytest.raises(DataError, match=r"validation .*rows\.jsonl, row \d+: token id 600"):
        load_validation_rows(cfg, 512)


@pytest.mark.parametrize("defect, message", [("missing", "missing feature 'positions'"), ("short", "feature 'loss_mask' has length 12, expected 16")])
def test_bad_tfrecord_fails_before_any_compute(tiny, make_config, tmp_path, monkeypatch, defect, message):
    rows = _rows(8)
    for r in rows:
        if defect == "missing":
            del r["positions"]
        else:
            r["loss_mask"] = r["loss_mask"][:12]
    import semcoder_jax.packed_schema as schema

    def lenient(row):  # write what the schema would refuse
        from tensorflow.core.example import example_pb2, feature_pb2

        feats = {k: feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=np.asarray(v).tolist())) for k, v in row.items()}
        return example_pb2.Example(features=feature_pb2.Features(feature=feats)).SerializeToString()

    monkeypatch.setattr(schema, "serialize_example", lenient)
    bad = tiny.write_tfrecords(tmp_path / "bad" / "part-0.tfrecord", rows)
    import semcoder_jax.train.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "make_train_step", lambda *a, **k: pytest.fail("compiled a step"))
    cfg = make_config(f"data.path={bad.parent}/*.tfrecord", f"data.seq_len={SEQ}")
    with pytest.raises(SchemaError, match=rf"{bad}: record 0: {message}"):
        trainer_mod.Trainer(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_tfrecords_without_tensorflow_read_the_same_rows(tiny, tmp_path, monkeypatch):
    import sys

    from semcoder_jax.train.input import read_tfrecord_rows

    root = _dataset(tiny, tmp_path / "data", n_files=2, rows_per_file=4)
    files = sorted(str(p) for p in (root / "tfrecords").iterdir())
    cfg = DataConfig(path=str(root), seq_len=SEQ, global_batch_size=8, shuffle_buffer=100)
    with_tf = next(BatchIterator(make_source(cfg, 64), 8))
    py_rows = read_tfrecord_rows(files, SEQ)
    order = np.argsort(py_rows["input_ids"][:, 0])
    tf_order = np.argsort(with_tf["input_ids"][:, 0])
    for k in py_rows:
        np.testing.assert_array_equal(py_rows[k][order], with_tf[k][tf_order])
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as on the GPU image
    source = make_source(cfg, 64)
    assert source.rows == 8
    assert sorted(next(BatchIterator(source, 8))["input_ids"][:, 0].tolist()) == sorted(py_rows["input_ids"][:, 0].tolist())
    bad = tmp_path / "short.tfrecord"
    bad.write_bytes(open(files[0], "rb").read()[:-3])
    with pytest.raises(SchemaError, match="short.tfrecord: truncated record"):
        read_tfrecord_rows([str(bad)], SEQ)


@pytest.mark.parametrize("layout", ["folder", "glob"])
def test_truncated_tfrecord_with_tensorflow_names_the_file(tiny, tmp_path, layout):
    """A cut-off shard (an interrupted copy) is a SchemaError naming it, when rows are counted
    (glob) and when a manifest spares the count and the cut shows only while reading."""
    root = _dataset(tiny, tmp_path / "data", n_files=2, rows_per_file=4)
    cut = root / "tfrecords" / "train-00001-of-00002.tfrecord"
    cut.write_bytes(cut.read_bytes()[:-3])
    path = str(root) if layout == "folder" else str(root / "tfrecords" / "*.tfrecord")
    cfg = DataConfig(path=path, seq_len=SEQ, global_batch_size=2)
    with pytest.raises(SchemaError, match=rf"{cut}"):
        it = BatchIterator(make_source(cfg, 64), 2)
        for _ in range(it.per_epoch):
            next(it)


@pytest.mark.parametrize("payload", [b"\x0a\x05\x0a\x03\x0a", b"\x0b\x01", b"\xff"], ids=["overrun", "wire-type", "varint"])
def test_corrupt_record_without_tensorflow_names_file_and_record(tmp_path, payload):
    """The Python reader's protobuf errors name the file and record, not a bare IndexError."""
    import struct

    from semcoder_jax.train.input import read_tfrecord_rows

    def frame(data):
        return struct.pack("<Q", len(data)) + b"\0" * 4 + data + b"\0" * 4

    bad = tmp_path / "part-0.tfrecord"
    bad.write_bytes(frame(payload))
    with pytest.raises(SchemaError, match=rf"{bad}: record 0: not a tf.train.Example"):
        read_tfrecord_rows([str(bad)], SEQ)


@pytest.mark.parametrize("length", [1 << 40, 1 << 62, (1 << 64) - 1])
def test_a_record_header_giving_more_bytes_than_the_file_holds_names_file_and_record(tiny, tmp_path, length):
    """A corrupt length header (record 1 here) is a ``SchemaError`` naming the file, for the Python
    reader and the record count alike, before any read of that length (a MemoryError, or an OSError
    naming nothing)."""
    import struct

    from semcoder_jax.train.input import count_records, read_tfrecord_rows

    bad = tiny.write_tfrecords(tmp_path / "part-0.tfrecord", _rows(1))
    with bad.open("ab") as f:
        f.write(struct.pack("<Q", length) + b"\0" * 4 + b"x" * 20)
    message = rf"^{re.escape(str(bad))}: truncated record 1 \(its header gives {length:,} bytes and a 4-byte checksum; 20 bytes are left\)"
    with pytest.raises(SchemaError, match=message):
        count_records(str(bad))
    with pytest.raises(SchemaError, match=message):
        read_tfrecord_rows([str(bad)], SEQ)


def test_a_record_header_cut_short_names_file_and_record(tiny, tmp_path):
    """A file ending inside a record's 12-byte header (an interrupted copy) names that record, for
    the record count and the Python reader alike."""
    from semcoder_jax.train.input import count_records, read_tfrecord_rows

    bad = tiny.write_tfrecords(tmp_path / "part-0.tfrecord", _rows(2))
    with bad.open("ab") as f:
        f.write(b"\x01" * 5)
    message = rf"^{re.escape(str(bad))}: truncated record 2 \(5 bytes of its 12-byte header\)$"
    with pytest.raises(SchemaError, match=message):
        count_records(str(bad))
    with pytest.raises(SchemaError, match=message):
        read_tfrecord_rows([str(bad)], SEQ)


def test_folder_without_manifest_keeps_validation_and_unfinished_files_out_of_training(tiny, tmp_path):
    for name in ("train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord", "validation-00000-of-00001.tfrecord",
                 "train-00002-of-00003.tfrecord.tmp"):  # the last: an interrupted build's unfinished shard
        tiny.write_tfrecords(tmp_path / "tfrecords" / name, _rows(1))
    names = lambda split: [f.rsplit("/", 1)[-1] for f in resolve_tfrecords(str(tmp_path), split)[0]]  # noqa: E731
    assert names("train") == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert names("validation") == ["validation-00000-of-00001.tfrecord"]
    other = tmp_path / "other"  # files not named by split are all read
    tiny.write_tfrecords(other / "part-0.tfrecord", _rows(1))
    assert [f.rsplit("/", 1)[-1] for f in resolve_tfrecords(str(other), "train")[0]] == ["part-0.tfrecord"]


def test_hosts_take_file_rows_from_the_manifest_without_counting(tiny, tmp_path, monkeypatch):
    """With a manifest's per-file rows, no host reads every file's record headers at start."""
    from semcoder_jax.train import input as train_input

    root = _dataset(tiny, tmp_path / "data", n_files=3, rows_per_file=4)
    found = resolve_tfrecords(str(root), "train")
    assert found.file_rows == [4, 4, 4] and found.rows == 12
    monkeypatch.setattr(train_input, "count_records", lambda path: pytest.fail(f"counted {path}"))
    cfg = DataConfig(path=str(root), seq_len=SEQ, global_batch_size=2)
    assert make_source(cfg, 64, process_index=1, process_count=2).rows == 8  # 4 of one file, 8 of two: 2 x 4


def test_a_built_folder_of_another_row_length_says_which_to_set(tmp_path):
    (tmp_path / "train-00000-of-00001.tfrecord").write_bytes(b"")
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"seq_len": 2048, "splits": {"train": {"files": ["train-00000-of-00001.tfrecord"], "rows": 0}}}))
    with pytest.raises(DataError, match=r"manifest seq_len is 2048 but data.seq_len is 64; set data.seq_len=2048"):
        make_source(DataConfig(path=str(tmp_path), seq_len=64, global_batch_size=1), vocab_size=512, process_index=0, process_count=1)


def test_a_file_that_is_not_a_tfrecord_names_the_file(tmp_path):
    """tf.data's own error for it names no file; a SchemaError is also what every host stops on."""
    bad = tmp_path / "part-0.tfrecord"
    bad.write_bytes(b"not a TFRecord file, just some text\n" * 3)
    with pytest.raises(SchemaError, match=rf"{bad}: record 0"):
        make_source(DataConfig(path=str(tmp_path / "*.tfrecord"), seq_len=SEQ, global_batch_size=1), 64, 0, 1)


def test_a_resume_with_another_tf_data_shuffle_buffer_is_refused(tiny, make_config, tmp_path):
    """tf.data's shuffle buffer decides which rows a data position means, as the seed does."""
    from semcoder_jax.config import ConfigError
    from semcoder_jax.train.trainer import Trainer

    root = _dataset(tiny, tmp_path / "data", n_files=2, rows_per_file=8)

    def config(buffer):
        return make_config(f"data.path={root}", f"data.seq_len={SEQ}", f"data.shuffle_buffer={buffer}")

    cfg = DataConfig(path=str(root), seq_len=SEQ, global_batch_size=8, shuffle_buffer=4)
    assert _tags([next(BatchIterator(make_source(cfg, 64), 8))]) != _tags(
        [next(BatchIterator(make_source(DataConfig(**{**cfg.__dict__, "shuffle_buffer": 16}), 64), 8))])
    saved = Trainer(config(4))
    saved.close()
    trainer = Trainer(config(16))
    try:
        with pytest.raises(ConfigError, match="data.shuffle_buffer was 4 but is 16 now"):
            trainer._check_same_data_order(saved._data_order(), "checkpoint")
    finally:
        trainer.close()


def test_a_bad_row_in_a_later_epoch_names_that_epoch_and_batch(make_config, tmp_path):
    """12 rows, one batch of 8 an epoch: row 1 is first read at epoch 1, batch 0 (shuffle seed 0)."""
    from semcoder_jax.train.trainer import Trainer

    path = tmp_path / "rows.jsonl"
    rows = [{"input_ids": list(range(i, i + 20)), "loss_mask": [1] * 20} for i in range(12)]  # a row each
    rows[1]["input_ids"][9] = 600
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    trainer = Trainer(make_config(f"data.path={path}", "max_steps=2", "log_every=100"))
    trainer.step_fn = lambda state, batch: (state, {})
    try:
        with pytest.raises(DataError, match=r"rows\.jsonl'?: epoch 1, batch 0, row \d+: token id 600"):
            trainer.run()
    finally:
        trainer.close()


def _overstate_rows(root, rows):
    """A manifest that says each file holds ``rows`` rows (as after a shard was rewritten shorter)."""
    manifest = json.loads((root / "manifest.json").read_text())
    entry = manifest["splits"]["train"]
    entry["rows"], entry["shard_rows"] = rows * len(entry["files"]), [rows] * len(entry["files"])
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("tensorflow", [True, False], ids=["tf.data", "python"])
def test_a_manifest_with_more_rows_than_its_files_stops_the_epoch_instead_of_wrapping(tiny, tmp_path, monkeypatch, tensorflow):
    """4 files of 6 rows said to hold 8 each: 24 rows, 6 batches of 4, then an error naming the
    manifest and both counts, where the reader wrapped around into rows already read this epoch."""
    import sys

    root = _dataset(tiny, tmp_path / "data")
    _overstate_rows(root, 8)
    if not tensorflow:  # the rows are all in memory: refused before any batch
        monkeypatch.setitem(sys.modules, "tensorflow", None)
    cfg = DataConfig(path=str(root), seq_len=SEQ, global_batch_size=4)
    message = rf"{root / 'manifest.json'} gives 32 rows but its files hold 24 \(process 0 "
    with pytest.raises(DataError, match=message):
        it = BatchIterator(make_source(cfg, 64), 4)
        assert it.per_epoch == 8
        read = _tags(next(it) for _ in range(6))
        assert sorted(sum(read, [])) == sorted(1000 + f * 100 + i for f in range(4) for i in range(6))
        next(it)


@pytest.mark.parametrize("tensorflow", [True, False], ids=["tf.data", "python"])
@pytest.mark.parametrize("hosts", [1, 2])
def test_a_manifest_with_fewer_rows_than_its_files_is_refused_instead_of_leaving_rows_out(tiny, tmp_path, monkeypatch,
                                                                                         tensorflow, hosts):
    """4 files of 6 rows, the manifest giving the second one 4: every epoch left rows out, unseen. The
    host reading that file stops with the manifest and both counts: tf.data once its epoch's share is
    read (a count up front reads every file), the python reader, which holds its rows, at the start."""
    import re
    import sys

    root = _dataset(tiny, tmp_path / "data")
    manifest = json.loads((root / "manifest.json").read_text())
    entry = manifest["splits"]["train"]
    entry["rows"], entry["shard_rows"][1] = 22, 4
    (root / "manifest.json").write_text(json.dumps(manifest))
    if not tensorflow:
        monkeypatch.setitem(sys.modules, "tensorflow", None)
    cfg = DataConfig(path=str(root), seq_len=SEQ, global_batch_size=4)

    def epoch(host):
        it = BatchIterator(make_source(cfg, 64, process_index=host, process_count=hosts), 4)
        return [next(it) for _ in range(it.per_epoch)]

    if hosts == 2:  # host 0's files (0 and 2) are as the manifest says; its rows left over are not an error
        assert len(epoch(0)) == 5
    said, held = (22, 24) if hosts == 1 else (10, 12)  # 2 hosts: host 1's share (files 1 and 3)
    found = f"'s share holds {held} rows, {said} by the manifest" if tensorflow else f" read {held} rows, {said} by the manifest"
    message = rf"^{re.escape(str(root / 'manifest.json'))} gives 22 rows but its files hold 24 " \
              rf"\(process {hosts - 1}{re.escape(found)}"
    with pytest.raises(DataError, match=message):
        epoch(hosts - 1)


def test_a_glob_over_several_builds_takes_each_shards_checksum_from_its_own_manifest(tiny, tmp_path):
    """Two builds' shards by one glob: the first shard's manifest served them all, so a second build
    rebuilt with other rows of the same sizes resumed as the same data. One build's fingerprint, as
    old checkpoints recorded it, is unchanged."""
    import hashlib

    builds = [_dataset(tiny, tmp_path / "builds" / name) for name in ("a", "b")]

    def set_checksums(root, checksum):
        manifest = json.loads((root / "manifest.json").read_text())
        manifest["checksums"] = {f: checksum for f in manifest["splits"]["train"]["files"]}
        (root / "manifest.json").write_text(json.dumps(manifest))

    set_checksums(builds[0], "0" * 64)
    set_checksums(builds[1], "1" * 64)
    cfg = lambda path: DataConfig(path=str(path), seq_len=SEQ, global_batch_size=4)  # noqa: E731
    both = cfg(tmp_path / "builds" / "*" / "tfrecords" / "*.tfrecord")
    fingerprint = make_source(both, 64).fingerprint
    assert fingerprint.startswith("8 TFRecord files, ")
    set_checksums(builds[1], "2" * 64)
    assert make_source(both, 64).fingerprint != fingerprint
    shards = sorted((builds[0] / "tfrecords").iterdir())
    digest = hashlib.sha256()
    for f in shards:
        digest.update(json.dumps([f.name, f.stat().st_size, "0" * 64]).encode())
    one = f"4 TFRecord files, {sum(f.stat().st_size for f in shards):,} bytes, digest {digest.hexdigest()[:16]}"
    assert make_source(cfg(builds[0]), 64).fingerprint == one
    assert make_source(cfg(builds[0] / "tfrecords" / "*.tfrecord"), 64).fingerprint == one


def test_the_data_fingerprint_follows_the_rows_not_the_folder(tiny, tmp_path):
    """Shards copied to another folder (bucket) are the same data; a shard rewritten with other
    rows, or a manifest whose checksum for a shard of the same size differs, is not."""
    import shutil

    root = _dataset(tiny, tmp_path / "data")
    cfg = lambda path: DataConfig(path=str(path), seq_len=SEQ, global_batch_size=4)  # noqa: E731
    fingerprint = make_source(cfg(root), 64).fingerprint
    assert fingerprint.startswith("4 TFRecord files, ")
    moved = shutil.copytree(root, tmp_path / "other-bucket" / "data")
    assert make_source(cfg(moved), 64).fingerprint == fingerprint
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["checksums"] = {f: "0" * 64 for f in manifest["splits"]["train"]["files"]}
    (moved / "manifest.json").write_text(json.dumps(manifest))
    assert make_source(cfg(moved), 64).fingerprint != fingerprint
    manifest["checksums"] = {f: "1" * 64 for f in manifest["splits"]["train"]["files"]}
    (moved / "manifest.json").write_text(json.dumps(manifest))
    # The same shards named by a glob: the manifest's checksums are found from the files.
    assert make_source(cfg(moved / "tfrecords" / "train-*.tfrecord"), 64).fingerprint == make_source(cfg(moved), 64).fingerprint
    repacked = tmp_path / "repacked"
    _dataset(tiny, repacked)
    tiny.write_tfrecords(repacked / "tfrecords" / "train-00000-of-00004.tfrecord", _rows(6, seed=9))
    assert make_source(cfg(repacked), 64).rows == 24 and make_source(cfg(repacked), 64).fingerprint != fingerprint


def test_a_glob_beside_a_damaged_manifest_is_fingerprinted_without_its_checksums(tiny, tmp_path):
    """A glob trains without the manifest one folder up; one that is not UTF-8 stopped the run with a
    UnicodeDecodeError from the fingerprint (not JSON was already read as "no checksums")."""
    root = _dataset(tiny, tmp_path / "data")
    cfg = DataConfig(path=str(root / "tfrecords" / "train-*.tfrecord"), seq_len=SEQ, global_batch_size=4)
    (root / "manifest.json").write_text("{")
    not_json = make_source(cfg, 64).fingerprint
    (root / "manifest.json").write_bytes(b"\xff{}")
    assert make_source(cfg, 64).fingerprint == not_json


def test_a_resume_on_other_rows_of_the_same_count_is_refused(make_config, tmp_path):
    """Another JSONL of as many rows: the saved data position would mean other rows. A checkpoint
    from before the fingerprint was recorded still resumes. (A checkpoint's data state is
    ``_data_order()``, saved and checked on resume as test_init's batch-size case shows.)"""
    import dataclasses

    from semcoder_jax.config import ConfigError
    from semcoder_jax.train.trainer import Trainer

    paths = []
    for name, offset in (("a", 0), ("b", 1)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"input_ids": list(range(i + offset, i + offset + 20)), "loss_mask": [1] * 20}) + "\n"
                                for i in range(16)))
        paths.append(path)
    trainer = Trainer(make_config(f"data.path={paths[1]}"))
    try:
        assert trainer.source.rows == 16
        first = make_source(dataclasses.replace(trainer.cfg.data, path=str(paths[0])), trainer.cfg.model.vocab_size)
        saved = {**trainer._data_order(), "data": first.fingerprint}
        trainer._check_same_data_order({k: v for k, v in saved.items() if k != "data"}, "old checkpoint")
        with pytest.raises(ConfigError, match=r"checkpoint: the training data \(file names, sizes, checksums\) was "
                                              r"[\d,]+ bytes, digest \w+, packed to 32 \(max_segments 0\) but is [\d,]+ bytes.*init_from=orbax:"):
            trainer._check_same_data_order(saved, "checkpoint")
    finally:
        trainer.close()


def test_another_packing_of_the_same_jsonl_is_other_data(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps({"input_ids": list(range(i, i + 6)), "loss_mask": [1] * 6}) + "\n" for i in range(32)))
    cfg = lambda seq: DataConfig(path=str(path), seq_len=seq, global_batch_size=4)  # noqa: E731
    a, b, c = make_source(cfg(16), 64), make_source(cfg(12), 64), make_source(cfg(16), 64, max_segments=3)
    assert a.rows == b.rows == c.rows == 16
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3


def test_a_resume_with_the_other_tfrecord_reader_is_refused(tiny, make_config, tmp_path, monkeypatch):
    """tf.data's shuffle and the Python reader's differ: a position saved by one means other rows in the other."""
    import sys

    from semcoder_jax.config import ConfigError
    from semcoder_jax.train.trainer import Trainer

    root = _dataset(tiny, tmp_path / "data")
    trainer = Trainer(make_config(f"data.path={root}", f"data.seq_len={SEQ}"))
    try:
        saved = trainer._data_order()
    finally:
        trainer.close()
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    trainer = Trainer(make_config(f"data.path={root}", f"data.seq_len={SEQ}", run="run2"))
    try:
        trainer._check_same_data_order({k: v for k, v in saved.items() if k != "reader"}, "old checkpoint")
        with pytest.raises(ConfigError, match=r"the TFRecord reader .* was tf.data but is python now"):
            trainer._check_same_data_order(saved, "checkpoint")
    finally:
        trainer.close()


@pytest.mark.parametrize("damage, field", [
    (lambda m: {**m, "seq_len": str(SEQ)}, "seq_len"),
    (lambda m: {**m, "splits": {"train": {**m["splits"]["train"], "rows": 24.0}}}, "splits.train.rows"),
    (None, "cannot read split 'train'"),
], ids=["seq_len as text", "rows as a float", "not UTF-8"])
def test_a_manifest_figure_that_cannot_be_read_names_the_manifest(tiny, tmp_path, damage, field):
    """A TypeError deep in the reader (or a UnicodeDecodeError) named neither the file nor the field."""
    root = _dataset(tiny, tmp_path / "data")
    manifest = root / "manifest.json"
    if damage is None:
        manifest.write_bytes(b"\xff" + manifest.read_bytes())
    else:
        manifest.write_text(json.dumps(damage(json.loads(manifest.read_text()))))
    with pytest.raises(DataError, match=rf"^{manifest}: {field}"):
        make_source(DataConfig(path=str(root), seq_len=SEQ, global_batch_size=4), 64)


def test_a_packed_jsonl_row_without_its_positions_is_refused(tmp_path):
    """Repacked as one example, its two segments would attend to each other and count on positions."""
    path = tmp_path / "packed.jsonl"
    path.write_text(json.dumps({"input_ids": [5, 6, 7, 8], "loss_mask": [0, 1, 0, 1], "segment_ids": [1, 1, 2, 2]}) + "\n")
    with pytest.raises(DataError, match=rf"^{path}:1: a packed row needs all of .*; it has no 'positions'$"):
        read_jsonl_rows(path, SEQ)


def test_synthetic_rows_of_another_length_are_other_data():
    """As many synthetic rows of another seq_len are other rows: a resume onto them is refused."""
    a, b = (make_source(DataConfig(seq_len=seq, global_batch_size=4, synthetic_rows=8), 64) for seq in (16, 32))
    assert a.rows == b.rows and a.fingerprint != b.fingerprint


def test_gzipped_jsonl_rows_are_read_as_jsonl(tmp_path):
    """``x.jsonl.gz`` went to the TFRecord reader."""
    import gzip

    text = "".join(json.dumps({"input_ids": list(range(i, i + 6)), "loss_mask": [1] * 6}) + "\n" for i in range(8))
    (tmp_path / "a.jsonl").write_text(text)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    plain, gz = (make_source(DataConfig(path=str(tmp_path / name), seq_len=16, global_batch_size=4), 64)
                 for name in ("a.jsonl", "a.jsonl.gz"))
    assert gz.rows == plain.rows == 4
    np.testing.assert_array_equal(next(gz.host_batches(0, 0))["input_ids"], next(plain.host_batches(0, 0))["input_ids"])


def _set_manifest(root, shard_rows, rows):
    """A manifest giving the files ``shard_rows`` (None: no shard_rows) and the split ``rows``."""
    manifest = json.loads((root / "manifest.json").read_text())
    entry = manifest["splits"]["train"]
    entry["rows"] = rows
    if shard_rows is None:
        del entry["shard_rows"]
    else:
        entry["shard_rows"] = shard_rows
    (root / "manifest.json").write_text(json.dumps(manifest))


def _epochs_until_refused(cfg, host, hosts, epochs=2):
    """``("start", message)``, ``(batches read, message)`` or ``(None, None)`` after ``epochs`` epochs."""
    try:
        it = BatchIterator(make_source(cfg, 64, process_index=host, process_count=hosts), cfg.global_batch_size)
    except DataError as e:
        return "start", str(e)
    read = 0
    try:
        for _ in range(epochs * it.per_epoch):
            next(it)
            read += 1
    except DataError as e:
        return ("epoch end" if read == it.per_epoch - 1 else read), str(e)
    return None, None


# (files, rows a file), the manifest's shard_rows and rows, and which hosts stop (2 hosts, tf.data):
# 3 files of 4 rows share unevenly (host 0: files 0 and 2, 8 rows; host 1: file 1), so every host
# takes 4 batches of 1 row an epoch and host 0 leaves 4 rows over.
MANIFEST_CASES = {
    "uneven, as held": ((3, 4), [4, 4, 4], 12, {}),
    "uneven, larger share understated": ((3, 4), [4, 4, 3], 11, {0: "epoch end"}),
    "uneven, larger share overstated": ((3, 4), [4, 4, 5], 13, {0: "epoch end"}),  # went unseen
    "uneven, smaller share overstated": ((3, 4), [4, 5, 4], 13, {1: "epoch end"}),  # runs out at its last batch
    "even, overstated within the last batch": ((4, 4), [4, 4, 4, 5], 17, {1: "epoch end"}),  # went unseen
    "rows unlike shard_rows": ((3, 4), [4, 4, 4], 13, {0: "start", 1: "start"}),
    "no shard_rows, rows understated": ((3, 4), None, 11, {0: "start", 1: "start"}),  # went unseen
    "fewer files than hosts": ((1, 5), [4], 4, {0: "epoch end"}),  # host 0 reads rows 0, 2, 4
}


@pytest.mark.parametrize("tensorflow", [True, False], ids=["tf.data", "python"])
@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_the_manifest_rows_must_be_what_the_files_hold_on_even_and_uneven_hosts(tiny, tmp_path, monkeypatch, tensorflow, case):
    """Each host checks its own share against what the manifest gives it (exactly: a share holding
    fewer rows lost some, one holding more leaves them out unseen), so together the hosts check the
    manifest's rows against all files, though each sees only its share. A larger share's surplus
    or a smaller one's shortfall within the last batch went unseen; the Python reader, holding its
    share in memory, stops at the start (with fewer files than hosts every host reads every file)."""
    import sys

    (n_files, per_file), shard_rows, rows, stops = MANIFEST_CASES[case]
    root = _dataset(tiny, tmp_path / "data", n_files=n_files, rows_per_file=per_file)
    _set_manifest(root, shard_rows, rows)
    if not tensorflow:
        monkeypatch.setitem(sys.modules, "tensorflow", None)
        stops = {0: "start", 1: "start"} if case == "fewer files than hosts" else dict.fromkeys(stops, "start")
    cfg = DataConfig(path=str(root), seq_len=SEQ, global_batch_size=2)
    for host in range(2):
        when, message = _epochs_until_refused(cfg, host, 2)
        assert when == stops.get(host), (host, message)
        if when is not None:
            manifest = re.escape(str(root / "manifest.json"))
            assert re.match(rf"^{manifest}(: splits\.train\.shard_rows add up to 12 but splits\.train\.rows is 13"
                            rf"| gives {rows} rows but its files hold {n_files * per_file} )", message), message


def test_a_share_is_checked_once_a_run_not_every_epoch(tiny, tmp_path, monkeypatch):
    """Host 0's larger share reads its surplus rows (4 here) to check them at the first epoch's end only."""
    from semcoder_jax.train import input as train_input

    root = _dataset(tiny, tmp_path / "data", n_files=3, rows_per_file=4)
    checks = []
    check = train_input.TFRecordSource._check_host_rows
    monkeypatch.setattr(train_input.TFRecordSource, "_check_host_rows", lambda self, *a: checks.append(a[-1]) or check(self, *a))
    cfg = DataConfig(path=str(root), seq_len=SEQ, global_batch_size=2)
    assert _epochs_until_refused(cfg, 0, 2, epochs=3) == (None, None)
    assert checks == [0]


@pytest.mark.parametrize("tensorflow", [True, False], ids=["tf.data", "python"])
@pytest.mark.parametrize("hosts", [1, 2])
def test_a_resume_at_and_around_an_epoch_boundary_reads_what_the_run_would_have(tiny, tmp_path, monkeypatch, tensorflow, hosts):
    """Checkpoints saved at an epoch's last step (position (0, per_epoch)), one before, and at the
    next epoch's first steps resume onto the uninterrupted run's batches. Each epoch's order is
    seeded (the same from a new source) and differs from the last; 3 files over 2 hosts: uneven."""
    import sys

    root = _dataset(tiny, tmp_path / "data", n_files=3, rows_per_file=4)
    if not tensorflow:
        monkeypatch.setitem(sys.modules, "tensorflow", None)
    cfg = DataConfig(path=str(root), seq_len=SEQ, global_batch_size=2, shuffle_seed=5)
    for host in range(hosts):
        it = BatchIterator(make_source(cfg, 64, process_index=host, process_count=hosts), 2)
        per = it.per_epoch
        run = _tags(next(it) for _ in range(2 * per))
        assert run[:per] != run[per : 2 * per]
        if hosts == 1:
            assert sorted(np.concatenate(run[:per])) == sorted(np.concatenate(run[per:]))
        restarted = make_source(cfg, 64, process_index=host, process_count=hosts)  # a resumed process's
        for at in (DataPosition(0, per - 1), DataPosition(0, per), DataPosition(1, 0), DataPosition(1, 1)):
            done = at.epoch * per + at.batch
            resumed = BatchIterator(restarted, 2, at)
            assert _tags(next(resumed) for _ in range(len(run) - done)) == run[done:], (host, at)


def _write_rows(tiny, path, rows):
    return tiny.write_tfrecords(path, [{k: np.asarray(v) for k, v in r.items()} for r in rows])


@pytest.mark.parametrize("reader", ["tf.data", "python", "validation"])
@pytest.mark.parametrize("defect, message", [
    ("positions run on", r"positions\[5\] is 5 where segment 2 starts; positions restart at 0"),
    ("segment comes back", r"segment 1 starts again at position 8, after segment 2"),
])
def test_a_tfrecord_whose_segments_and_positions_disagree_names_file_and_record(tiny, tmp_path, monkeypatch, reader,
                                                                                 defect, message):
    """Positions running on across a packed boundary (RoPE then places the second example at
    5, 6, ...), or a segment id reused by a later example (the xla kernel lets it attend to the
    first), were read as they were: refused by every reader, naming the file and record (tf.data's
    shuffle notwithstanding)."""
    import sys

    good = _rows(8)
    bad = {k: v.copy() for k, v in good[3].items()}
    bad["segment_ids"] = np.array([1] * 5 + [2] * 3 + [0] * 8)
    bad["positions"] = np.array(list(range(5)) + [0, 1, 2] + [0] * 8)
    if defect == "positions run on":
        bad["positions"][5:8] = [5, 6, 7]
    else:
        bad["segment_ids"][8:10], bad["positions"][8:10] = 1, [0, 1]
    files = [_write_rows(tiny, tmp_path / "data" / f"part-{f}.tfrecord", good if f == 0 else good[:3] + [bad] + good[4:])
             for f in range(2)]
    where = rf"{re.escape(str(files[1]))}: record 3: {message}"
    if reader == "validation":
        from semcoder_jax.train.validation import _read_tfrecords

        with pytest.raises(SchemaError, match=where):
            _read_tfrecords([str(f) for f in files], SEQ)
        return
    if reader == "python":
        monkeypatch.setitem(sys.modules, "tensorflow", None)
    cfg = DataConfig(path=str(tmp_path / "data" / "*.tfrecord"), seq_len=SEQ, global_batch_size=4, shuffle_buffer=16)
    with pytest.raises(SchemaError, match=where):
        it = BatchIterator(make_source(cfg, 64), 4)
        for _ in range(it.per_epoch):
            next(it)


def test_jsonl_rows_left_out_are_named_by_line(tmp_path, caplog):
    """A row longer than seq_len is left out whole (cut, it would lose its response's end), as is
    one with no target token (loss_mask 1 only at its first token, or nowhere): the warning names
    each reason's lines. Packed rows with no target are left out too; a loss_mask of 2 is refused."""
    path = tmp_path / "rows.jsonl"
    lines = [{"input_ids": [1] * 40}, {"input_ids": [5, 6, 7], "loss_mask": [0, 0, 1]}, {"input_ids": [5, 6], "loss_mask": [0, 0]},
             {"input_ids": [5, 6], "loss_mask": [1, 0]}, {"input_ids": [2] * 17, "loss_mask": [1] * 17},
             {"input_ids": [5] * SEQ, "loss_mask": [0, 1] + [0] * 14, "segment_ids": [1] + [2] * 15, "positions": [0] + list(range(15))}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    rows = read_jsonl_rows(path, SEQ)
    assert rows["input_ids"].shape == (1, SEQ) and rows["input_ids"][0, :3].tolist() == [5, 6, 7]
    assert f"{path}: left out 2 rows longer than seq_len={SEQ}: lines 1, 5" in caplog.text
    assert f"{path}: left out 3 rows with no target token: lines 3, 4, 6" in caplog.text
    path.write_text(json.dumps(lines[0]) + "\n" + json.dumps(lines[2]) + "\n")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: no usable rows \(1 longer than seq_len={SEQ}; 1 with no target token\)$"):
        read_jsonl_rows(path, SEQ)
    path.write_text(json.dumps({"input_ids": [5, 6], "loss_mask": [0, 2]}) + "\n")
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:1: 'loss_mask' holds 2, not 0 or 1"):
        read_jsonl_rows(path, SEQ)
    packed = {"input_ids": [5] * SEQ, "loss_mask": [0, 1] + [0] * 14, "segment_ids": [1] * 4 + [2] * 12, "positions": list(range(SEQ))}
    path.write_text(json.dumps(packed) + "\n")
    with pytest.raises(SchemaError, match=rf"{re.escape(str(path))}:1: positions\[4\] is 4 where segment 2 starts"):
        read_jsonl_rows(path, SEQ)


def test_a_run_ending_before_its_first_epochs_end_checks_the_manifest_rows_at_the_start(tiny, make_config, tmp_path):
    """4 files of 6 rows, the manifest giving file 1 four (22 rows: 2 batches of 8 an epoch): with
    data.epochs=0.5 the run's one step never reaches the epoch's last batch, where tf.data checks the
    share, and 2 rows would go unseen; it stops before its first step, naming the manifest, the file
    and both counts."""
    from semcoder_jax.train.trainer import Trainer

    root = _dataset(tiny, tmp_path / "data")
    _set_manifest(root, [6, 4, 6, 6], 22)
    trainer = Trainer(make_config(f"data.path={root}", f"data.seq_len={SEQ}", "data.epochs=0.5", "log_every=100",
                                  "model.vocab_size=2048"))  # the rows are tagged with ids from 1000
    steps = []
    metrics = dict.fromkeys(("loss", "grad_norm", "target_tokens", "tokens"), 0.0)
    trainer.step_fn = lambda state, batch: steps.append(1) or (state, metrics)
    try:
        assert trainer.total_steps == 1
        message = (rf"^{re.escape(str(root / 'manifest.json'))} gives 22 rows but its files hold 24 \(process 0's share "
                   rf"holds 24 rows, 22 by the manifest, counted .*\): {re.escape(str(root / 'tfrecords' / 'train-00001-of-00004.tfrecord'))} "
                   rf"holds 6, 4 by shard_rows")
        with pytest.raises(DataError, match=message):
            trainer.run()
        assert not steps and not (tmp_path / "run" / "config.yaml").exists()
    finally:
        trainer.close()


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_a_share_is_checked_from_its_record_headers_when_the_run_ends_before_an_epochs_last_batch(tiny, tmp_path,
                                                                                                monkeypatch, case):
    """The hosts that tf.data stops at the first epoch's end stop at the start of a run of fewer
    batches, with the same message, counting records from their headers (no record decoded); a run
    that reaches the epoch's last batch, or reads on from epoch 1 (an earlier process checked),
    counts nothing up front."""
    from semcoder_jax.train import input as train_input

    (n_files, per_file), shard_rows, rows, stops = MANIFEST_CASES[case]
    root = _dataset(tiny, tmp_path / "data", n_files=n_files, rows_per_file=per_file)
    _set_manifest(root, shard_rows, rows)
    cfg = DataConfig(path=str(root), seq_len=SEQ, global_batch_size=2)
    counted = []
    count = train_input.count_records
    monkeypatch.setattr(train_input, "count_records", lambda f: counted.append(f) or count(f))
    for host in range(2):
        if stops.get(host) == "start":
            continue
        it = BatchIterator(make_source(cfg, 64, process_index=host, process_count=2), 2)
        for at, batches in ((DataPosition(0, 0), it.per_epoch), (DataPosition(1, 0), 1), (DataPosition(0, 1), it.per_epoch - 1)):
            counted.clear()
            BatchIterator(it.source, 2, at).check_rows_before(batches)
            assert not counted, (host, at)
        early = BatchIterator(it.source, 2, DataPosition(0, 0))
        with monkeypatch.context() as m:
            m.setattr(train_input, "parse_example", None)  # nothing is decoded
            if stops.get(host) is None:
                early.check_rows_before(it.per_epoch - 1)
                assert counted
                continue
            with pytest.raises(DataError) as refused:
                early.check_rows_before(it.per_epoch - 1)
        _, message = _epochs_until_refused(cfg, host, 2)
        assert str(refused.value).split(" (")[0] == message.split(" (")[0]
        assert "counted from the record headers at the start" in str(refused.value)


def test_a_global_batch_that_does_not_divide_among_the_hosts_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"data\.global_batch_size \(3\) must divide by the 2 hosts"):
        make_source(DataConfig(seq_len=SEQ, global_batch_size=3), 64, process_index=0, process_count=2)


@pytest.mark.parametrize("tensorflow", [True, False], ids=["tf.data", "python"])
def test_empty_shards_are_read_as_no_rows_and_a_share_left_empty_says_why(tiny, tmp_path, monkeypatch, tensorflow):
    """Empty files (a shard that got no rows) add no rows and no error. 2 hosts over files of 4, 0,
    4 and 0 rows: host 1's share is empty, so no host can take a batch; every host says so the same
    way, naming the 8 rows and the share (not '0 rows', nor one empty file), before reading a row."""
    import sys

    root = _dataset(tiny, tmp_path / "data", n_files=4, rows_per_file=4)
    for f in (1, 3):
        (root / "tfrecords" / f"train-{f:05d}-of-00004.tfrecord").write_bytes(b"")
    _set_manifest(root, [4, 0, 4, 0], 8)
    if not tensorflow:
        monkeypatch.setitem(sys.modules, "tensorflow", None)
    cfg = DataConfig(path=str(root), seq_len=SEQ, global_batch_size=2)
    it = BatchIterator(make_source(cfg, 64), 2)
    read = sorted(tag for batch in _tags(next(it) for _ in range(it.per_epoch)) for tag in batch)
    assert read == [1000 + i for i in range(4)] + [1200 + i for i in range(4)]
    for host in range(2):
        with pytest.raises(DataError, match=rf"^data\.path '{re.escape(str(root))}': 0 rows an epoch \(the smallest of the "
                                            rf"2 hosts' shares of its 4 files holds 0 of their 8 rows, and every host "
                                            rf"reads as many\), fewer than one global batch of 2"):
            make_source(cfg, 64, process_index=host, process_count=2)


def test_a_glob_of_empty_files_read_without_tensorflow_names_them_all(tiny, tmp_path, monkeypatch):
    import sys

    for f in range(2):
        tiny.write_tfrecords(tmp_path / f"part-{f}.tfrecord", [])
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / 'part-0.tfrecord'))} and 1 more file: no records"):
        make_source(DataConfig(path=str(tmp_path / "part-*.tfrecord"), seq_len=SEQ, global_batch_size=2), 64)
