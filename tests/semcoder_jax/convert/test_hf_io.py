"""Tensor-at-a-time safetensors I/O, torch .bin input, in-memory HF loading, size parsing."""

import json
import shutil

import jax
import ml_dtypes
import numpy as np
import pytest

from semcoder_jax.checkpoint import load_params
from semcoder_jax.convert import hf_to_orbax, load_hf_params
from semcoder_jax.convert.hf_io import HFWeights, TensorPlan, plan_shards, write_sharded
from semcoder_jax.convert.orbax_to_hf import parse_size
from semcoder_jax.errors import SemcoderError


def _plans(arrays):
    return [TensorPlan(n, a.shape, a.dtype, lambda a=a: a) for n, a in arrays.items()]


def _arrays():
    rng = np.random.default_rng(0)
    return {
        "a.f32": rng.standard_normal((3, 5)).astype(np.float32),
        "b.bf16": rng.standard_normal((7, 2, 3)).astype(ml_dtypes.bfloat16),
        "c.f16": rng.standard_normal((11,)).astype(np.float16),
        "d.i64": rng.integers(-9, 9, (2, 2)).astype(np.int64),
        "e.scalar": np.array(1.5, np.float32),
    }


def test_write_then_read_matches_safetensors_library(tmp_path):
    from safetensors.numpy import load_file

    arrays = _arrays()
    files = write_sharded(tmp_path, _plans(arrays), max_shard_bytes=10**9)
    assert [f.name for f in files] == ["model.safetensors"] and not (tmp_path / "model.safetensors.index.json").exists()
    theirs = load_file(str(tmp_path / "model.safetensors"))
    ours = HFWeights(tmp_path)
    for name, a in arrays.items():
        assert theirs[name].shape == a.shape and theirs[name].tobytes() == a.tobytes()
        got = ours.read(name)
        assert got.dtype == a.dtype and got.shape == a.shape and got.tobytes() == a.tobytes()


def test_sharded_write_groups_in_order_with_index(tmp_path):
    arrays = _arrays()
    files = write_sharded(tmp_path, _plans(arrays), max_shard_bytes=64)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert [f.name for f in files] == [f"model-{i:05d}-of-{len(files):05d}.safetensors" for i in range(1, len(files) + 1)]
    assert index["metadata"]["total_size"] == sum(a.nbytes for a in arrays.values())
    assert list(index["weight_map"]) == list(arrays)
    ours = HFWeights(tmp_path)
    assert {n: ours.tensors[n].file.name for n in arrays} == index["weight_map"]
    groups = plan_shards(_plans(arrays), 64)
    assert [[t.name for t in g] for g in groups] == [["a.f32"], ["b.bf16"], ["c.f16", "d.i64", "e.scalar"]]


def test_truncated_file_is_error(tmp_path):
    write_sharded(tmp_path, _plans(_arrays()), 10**9)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(SemcoderError, match="truncated"):
        HFWeights(tmp_path)


def test_git_lfs_pointer_is_a_one_line_error(tmp_path):
    """A repository cloned without Git LFS holds pointer files; their first 8 bytes read as a header
    length of exabytes, and reading that many raised MemoryError instead of naming the file."""
    (tmp_path / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n")
    with pytest.raises(SemcoderError, match=r"model\.safetensors: not a readable safetensors file .*Git LFS"):
        HFWeights(tmp_path)


def test_malformed_header_entry_names_file_and_tensor(tmp_path):
    import json
    import struct

    # no data_offsets; offsets that are not numbers (a TypeError); a negative one, which read the header as weights
    for entry in ({}, {"data_offsets": ["0", "8"]}, {"data_offsets": [-8, 0]}):
        header = json.dumps({"w": {"dtype": "F32", "shape": [2], **entry}}).encode()
        (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
        with pytest.raises(SemcoderError, match=r"model\.safetensors: tensor w has a malformed header entry"):
            HFWeights(tmp_path)


def test_no_weights_is_error(tmp_path):
    with pytest.raises(SemcoderError, match="no model.safetensors"):
        HFWeights(tmp_path)


def test_torch_bin_input_and_in_memory_load(hf_models, orbax_models, tmp_path):
    import torch

    hf_dir, model = hf_models["tied"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(hf_dir / "config.json", bin_dir / "config.json")
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    torch.save(state, bin_dir / "pytorch_model.bin")

    from_bin, config_bin = load_hf_params(bin_dir)
    from_safe, config_safe = load_hf_params(hf_dir)
    from_orbax, _ = load_params(orbax_models["tied"])
    assert config_bin.num_kv_heads == config_safe.num_kv_heads == 4 and config_bin.tie_word_embeddings
    assert jax.tree.structure(from_bin) == jax.tree.structure(from_safe) == jax.tree.structure(from_orbax)
    for a, b, c in zip(jax.tree.leaves(from_bin), jax.tree.leaves(from_safe), jax.tree.leaves(from_orbax)):
        assert np.array_equal(np.asarray(a), np.asarray(b)) and np.array_equal(np.asarray(b), np.asarray(c))

    hf_to_orbax(bin_dir, tmp_path / "orbax", dtype="bfloat16")
    params, config = load_params(tmp_path / "orbax")
    assert config.param_dtype == "bfloat16"
    want = np.asarray(from_safe["layers"]["mlp"]["down_proj"]["kernel"]).astype(ml_dtypes.bfloat16)
    assert np.array_equal(np.asarray(params["layers"]["mlp"]["down_proj"]["kernel"]), want)


@pytest.mark.parametrize("text, size", [("5GB", 5 * 10**9), ("2GiB", 2 * 2**30), ("40KB", 40_000), ("123", 123),
                                        ("1.5MB", 1_500_000)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["5 parsecs", "", "-1GB", "0"])
def test_parse_size_rejects(text):
    with pytest.raises(SemcoderError, match="max-shard-size"):
        parse_size(text)
