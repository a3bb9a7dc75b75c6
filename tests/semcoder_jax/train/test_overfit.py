"""The tiny model memorises a small packed dataset (a JSONL of prompt/response examples)."""

import json

import numpy as np


def test_tiny_model_overfits_small_packed_dataset(make_config, tiny, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.jsonl"
    with open(path, "w") as f:
        for _ in range(32):  # 32 examples of 8 tokens -> 8 packed rows of 4 segments
            f.write(json.dumps({"input_ids": rng.integers(1, 512, 8).tolist(), "loss_mask": [0, 0] + [1] * 6}) + "\n")
    cfg = make_config(f"data.path={path}", *tiny.ONE_DEVICE, "max_steps=40", "optimizer.lr=1e-2",
                      "optimizer.min_lr=1e-3", "optimizer.warmup_steps=10", "log_every=10", "checkpoint.every=1000")
    losses, _, trainer = tiny.train(cfg)
    assert trainer.source.rows == 8
    assert losses[0] > 3.0, losses
    assert losses[-1] < 0.1, losses
