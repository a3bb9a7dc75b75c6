"""The validation loss: held-out rows batched in order and padded, evaluated on schedule while training."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from semcoder_jax.train.input import DataError, synthetic_rows
from semcoder_jax.train.validation import eval_batches, load_validation_rows


def test_eval_batches_cover_every_row_once_across_hosts():
    rows = synthetic_rows(11, 16, 64, seed=0)
    rows["input_ids"][:, 0] = np.arange(100, 111)  # a tag per row
    seen = []
    for host in range(2):
        batches = list(eval_batches(rows, 4, host, 2, pad_id=7))
        assert len(batches) == 3 and all(b["input_ids"].shape == (2, 16) for b in batches)
        seen.append([b["input_ids"][:, 0].tolist() for b in batches])
    tags = [t for b in range(3) for host in range(2) for t in seen[host][b]]
    assert tags[:11] == list(range(100, 111)) and tags[11:] == [7]  # global order, then one empty row
    last = list(eval_batches(rows, 4, 1, 2))[-1]
    assert last["segment_ids"][1].max() == 0 and last["loss_mask"][1].max() == 0  # padding has no target
    assert len(list(eval_batches(rows, 4, max_batches=2))) == 2


def test_training_logs_the_validation_loss_of_its_parameters(tiny, make_config, tmp_path):
    from semcoder_jax.model import llama
    from semcoder_jax.train.loss import next_token_loss_sums

    rows = synthetic_rows(11, 32, 512, seed=5)  # 11 rows: two eval batches of 8, the second padded
    path = tmp_path / "val.jsonl"
    path.write_text("".join(json.dumps({k: v[i].tolist() for k, v in rows.items()}) + "\n" for i in range(11)))
    cfg = make_config(*tiny.DP_FSDP_TP, *tiny.FIVE_STEPS, "validation.every=2", f"validation.path={path}", "log_every=3")
    records, params, trainer = tiny.train(cfg)
    logged = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [2, 3, 4, 5]  # every 3rd step, plus each evaluation
    assert [r["step"] for r in logged if "eval_loss" in r] == [2, 4, 5]
    assert all("loss" in r for r in logged)

    ids, mask, seg = (jnp.asarray(rows[k]) for k in ("input_ids", "loss_mask", "segment_ids"))
    sums = next_token_loss_sums(llama.apply(cfg.model, params, ids, jnp.asarray(rows["positions"]), seg), ids, mask, seg)
    assert logged[-1]["eval_tokens"] == int(sums.weight)
    np.testing.assert_allclose(logged[-1]["eval_loss"], float(sums.loss / sums.weight), rtol=1e-5)
    assert logged[-1]["eval_loss"] < logged[0]["eval_loss"]  # the synthetic rule generalises to held-out rows


def test_synthetic_validation_rows_are_held_out(make_config):
    cfg = make_config("validation.every=1")
    val = load_validation_rows(cfg, cfg.model.vocab_size)
    train = synthetic_rows(cfg.data.synthetic_rows, cfg.data.seq_len, cfg.model.vocab_size, cfg.data.shuffle_seed)
    assert len(val["input_ids"]) == cfg.data.synthetic_rows // 4
    assert not {r.tobytes() for r in val["input_ids"]} & {r.tobytes() for r in train["input_ids"]}


def test_validation_without_a_split_fails_before_any_compute(make_config, tmp_path, monkeypatch):
    from semcoder_jax.train import trainer as trainer_mod

    rows = synthetic_rows(8, 32, 512)
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({k: v[i].tolist() for k, v in rows.items()}) + "\n" for i in range(8)))
    monkeypatch.setattr(trainer_mod, "make_train_step", lambda *a, **k: pytest.fail("compiled before the check"))
    with pytest.raises(DataError, match=r"train\.jsonl.*validation\.path"):
        trainer_mod.Trainer(make_config(f"data.path={path}", "validation.every=5"))
    folder = tmp_path / "built"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"seq_len": 32, "splits": {"train": {"files": []}}}))
    with pytest.raises(DataError, match=r"manifest\.json: no split 'validation' \(it has train\); build with validation_fraction="):
        load_validation_rows(make_config(f"data.path={folder}", "validation.every=5"), 512)


def test_validation_rows_other_than_the_manifest_gives_are_refused(tiny, make_config, tmp_path):
    """A validation shard cut short (or another build's) gave an eval loss over fewer rows, without a word."""
    rows = synthetic_rows(3, 32, 512)
    folder = tmp_path / "built"
    tiny.write_tfrecords(folder / "validation-00000-of-00001.tfrecord", [{k: v[i] for k, v in rows.items()} for i in range(2)])
    split = {"files": ["validation-00000-of-00001.tfrecord"], "rows": 3}
    (folder / "manifest.json").write_text(json.dumps({"seq_len": 32, "splits": {"validation": split}}))
    config = make_config(f"data.path={folder}", "validation.every=5")
    with pytest.raises(DataError, match=r"manifest\.json: splits\.validation\.rows is 3 but its files hold 2"):
        load_validation_rows(config, 512)
    split["rows"] = 2
    (folder / "manifest.json").write_text(json.dumps({"seq_len": 32, "splits": {"validation": split}}))
    assert len(load_validation_rows(config, 512)["input_ids"]) == 2


def test_a_split_listing_no_files_is_named(make_config, tmp_path):
    """A manifest split with ``files: []`` failed inside TensorFlow (an empty name list is float32)."""
    folder = tmp_path / "built"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"seq_len": 32, "splits": {"validation": {"files": [], "rows": 0}}}))
    with pytest.raises(DataError, match=r"manifest\.json: splits\.validation\.files lists no files$"):
        load_validation_rows(make_config(f"data.path={folder}", "validation.every=5"), 512)


def test_the_record_reader_reads_an_empty_file_list_as_no_records():
    from semcoder_jax.train.input import record_dataset

    assert list(record_dataset([])) == []
