"""Checkpoint -> Hugging Face ``LlamaForCausalLM`` folder (safetensors shards, configs, tokenizer)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from semcoder_jax.checkpoint import params_path, read_model_config
from semcoder_jax.convert.atomic import atomic_output_dir
from semcoder_jax.convert.hf_io import TensorPlan, numpy_dtype, write_sharded
from semcoder_jax.convert.mapping import ParamMapping, param_mappings
from semcoder_jax.convert.transpose import pooled_empty, recycle
from semcoder_jax.errors import SemcoderError
from semcoder_jax.model.config import ModelConfig, hf_token_ids

DEFAULT_MAX_SHARD_SIZE = "5GB"
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja",
)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str | int) -> int:
    """``5GB`` (10^9, as Hugging Face counts), ``2GiB``, ``500MB`` or a number of bytes."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    if not match or match.group(2).upper() not in _UNITS:
        raise SemcoderError(f"--max-shard-size {text!r}: expected a size such as 5GB, 2GiB or 1000000")
    size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if size <= 0:
        raise SemcoderError(f"--max-shard-size {text!r}: must be positive")
    return size


def _leaf_keys(tree: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(tree, dict):
        return [k for key, sub in tree.items() for k in _leaf_keys(sub, (*prefix, str(key)))]
    return [prefix]


def _check_params(reader, maps: list[ParamMapping], config: ModelConfig, where: str) -> None:
    expected = {m.path for m in maps}
    for m in maps:
        if not reader.has(m.path):
            raise SemcoderError(f"{where}: missing param {m.key}")
        if reader.shape(m.path) != m.full_shape(config):
            raise SemcoderError(
                f"{where}: param {m.key} has shape {list(reader.shape(m.path))}, "
                f"model_config implies {list(m.full_shape(config))}"
            )
    extra = sorted("/".join(k) for k in _leaf_keys(reader.metadata) if k not in expected)
    if extra:
        raise SemcoderError(f"{where}: unexpected param(s) {', '.join(extra[:3])} for this model_config")


def tensor_plans(reader, config: ModelConfig, dtype) -> list[TensorPlan]:
    """One plan per HF tensor, param by param, so a chunk spanning layers is decoded once."""
    plans: list[TensorPlan] = []
    for m in param_mappings(config):
        names = m.hf_names(config)
        for i, name in enumerate(names):
            last = i == len(names) - 1

            def produce(m=m, i=i, last=last):
                index = i if m.stacked else None
                if m.copies:  # read into a reused buffer: only the transpose looks at it
                    buf = pooled_empty(m.our_shape(config), reader.dtype(m.path))
                    out = m.to_hf(reader.read(m.path, index, out=buf), config).astype(dtype, copy=False)
                    recycle(buf)
                else:
                    out = m.to_hf(reader.read(m.path, index), config).astype(dtype, copy=False)
                if last:
                    reader.close(m.path)
                return out

            plans.append(TensorPlan(name, m.hf_shape(config), dtype, produce, recycle if m.copies else None))
    return plans


def generation_config(config: ModelConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"_from_model_config": True}
    ids = {"bos_token_id": config.bos_token_id, "eos_token_id": hf_token_ids(config.eos_token_ids),
           "pad_token_id": config.pad_token_id}
    out.update((key, value) for key, value in ids.items() if value is not None)
    return out


def save_tokenizer(tokenizer: str | Path, out_dir: Path) -> None:
    """Copy a local tokenizer folder's files, or save a hub tokenizer with ``AutoTokenizer``."""
    source = Path(tokenizer)
    if source.is_dir():
        files = [source / f for f in TOKENIZER_FILES if (source / f).is_file()]
        if not files:
            raise SemcoderError(f"--tokenizer {source}: no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...)")
        for f in files:
            shutil.copy2(f, out_dir / f.name)
        return
    from semcoder_jax.tokenizer import load_tokenizer

    load_tokenizer(str(tokenizer)).save_pretrained(str(out_dir))


def orbax_to_hf(
    checkpoint_dir: str | Path,
    out_dir: str | Path,
    *,
    step: int | None = None,
    tokenizer: str | Path | None = None,
    dtype: str = "bfloat16",
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
) -> Path:
    """Export a checkpoint step as a HF folder, one layer slice in memory at a time."""
    from semcoder_jax.convert.orbax_io import ParamReader

    target = numpy_dtype(dtype)
    max_bytes = parse_size(max_shard_size)
    config = read_model_config(checkpoint_dir, step)
    path, step = params_path(checkpoint_dir, step)
    where = f"checkpoint {checkpoint_dir}" + (f" step {step}" if step is not None else "")
    reader = ParamReader(path)
    maps = param_mappings(config)
    _check_params(reader, maps, config, where)

    with atomic_output_dir(out_dir) as tmp:
        if tokenizer is not None:  # first: a mistyped --tokenizer must not cost the whole export
            save_tokenizer(tokenizer, tmp)
        write_sharded(tmp, tensor_plans(reader, config, target), max_bytes, drop_cache=True)
        hf_config = config.to_hf_config(torch_dtype=target.name)
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps(generation_config(config), indent=2) + "\n")
    return Path(out_dir)
