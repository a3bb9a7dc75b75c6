"""Hugging Face ``LlamaForCausalLM`` folder -> our params (in memory, or streamed to a checkpoint)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from semcoder_jax.convert.atomic import atomic_output_dir
from semcoder_jax.convert.hf_io import HFWeights, dtype_name, numpy_dtype
from semcoder_jax.convert.mapping import ParamMapping, ignored_hf_tensor, param_mappings, set_path
from semcoder_jax.errors import SemcoderError
from semcoder_jax.model.config import DTYPES, ModelConfig, token_ids


def read_hf_config(hf_dir: str | Path) -> ModelConfig:
    """The ``ModelConfig`` of ``hf_dir/config.json``; an unknown or missing key is an error naming it.

    Unknown keys are refused rather than ignored: in a LLaMA-family config they usually change
    the architecture (biases, another RoPE, quantisation) and would convert into a wrong model.
    """
    path = Path(hf_dir) / "config.json"
    if not path.exists():
        raise SemcoderError(f"{path}: not found")
    hf = _read_json_object(path)
    try:
        config = ModelConfig.from_hf_config(hf)
    except KeyError as e:
        raise SemcoderError(f"{path}: missing config key {e.args[0]!r}") from None
    except SemcoderError as e:
        raise SemcoderError(f"{path}: {str(e).removeprefix('config.json: ')}") from None
    if config.name in ("hf", "custom"):
        config = dataclasses.replace(config, name=Path(hf_dir).absolute().name)
    eos = config.eos_token_ids + _generation_eos_ids(Path(hf_dir) / "generation_config.json")
    eos = tuple(dict.fromkeys(eos))
    return dataclasses.replace(config, eos_token_id=eos[0] if eos else None, extra_eos_token_ids=list(eos[1:]))


def _generation_eos_ids(path: Path) -> tuple[int, ...]:
    """The EOS ids of ``generation_config.json``, which HF ``generate`` stops at (instruct models
    often list an end-of-turn id there that ``config.json`` lacks); none without the file."""
    if not path.exists():
        return ()
    gen = _read_json_object(path)
    try:
        return token_ids(gen.get("eos_token_id"), "eos_token_id")
    except SemcoderError as e:
        raise SemcoderError(f"{path}: {str(e).removeprefix('config.json: ')}") from None


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SemcoderError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(data, dict):
        raise SemcoderError(f"{path}: must be a JSON object")
    return data


def check_weights(weights: HFWeights, config: ModelConfig) -> list[ParamMapping]:
    """Every tensor the config implies is present with its shape, and nothing else is there."""
    maps = param_mappings(config)
    expected: set[str] = set()
    for m in maps:
        want = m.hf_shape(config)
        for name in m.hf_names(config):
            expected.add(name)
            info = weights.tensors.get(name)
            if info is None:
                raise SemcoderError(f"{weights.dir}: missing tensor {name}")
            if info.shape != want:
                raise SemcoderError(
                    f"{info.file}: tensor {name} has shape {list(info.shape)}, config.json implies {list(want)}"
                )
    extra = sorted(n for n in weights.tensors if n not in expected and not ignored_hf_tensor(n, config))
    if extra:
        more = f" (and {len(extra) - 3} more)" if len(extra) > 3 else ""
        raise SemcoderError(f"{weights.dir}: unexpected tensor(s) {', '.join(extra[:3])}{more} for this config")
    return maps


def _source_dtype(weights: HFWeights, maps: list[ParamMapping], config: ModelConfig) -> np.dtype:
    """The tensors' own dtype, if a checkpoint can hold it: a float64 one would be written, then
    refused by every reader of its ``model_config``."""
    info = weights.tensors[maps[0].hf_names(config)[0]]
    if dtype_name(info.dtype) not in DTYPES:
        raise SemcoderError(f"{info.file}: tensor {info.name} is {dtype_name(info.dtype)}, which a checkpoint cannot "
                            f"hold; give a dtype (--dtype {'|'.join(DTYPES)})")
    return info.dtype


# Layers of a param asked of the page cache ahead of the one converted (input not in memory).
_READ_AHEAD = 3


def _convert(
    weights: HFWeights, m: ParamMapping, name: str, config: ModelConfig, dtype: np.dtype, *, forget: bool = False
) -> np.ndarray:
    # a transposed tensor is read straight from the file's pages: its transpose is the one copy
    out = m.to_ours(weights.read(name, mapped=m.copies), config).astype(dtype, copy=False)
    if forget:  # the mapping is gone with the temporary above
        weights.forget(name)
    return out


def load_hf_params(hf_dir: str | Path, dtype: Any = None) -> tuple[Any, ModelConfig]:
    """All params of a HF folder in memory as ``jax.Array`` s (small models, the sampler's ``--hf-dir``)."""
    import jax.numpy as jnp

    config = read_hf_config(hf_dir)
    weights = HFWeights(hf_dir)
    maps = check_weights(weights, config)
    target = np.dtype(jnp.dtype(dtype)) if dtype is not None else _source_dtype(weights, maps, config)
    params: dict = {}
    for m in maps:
        if m.stacked:
            value = np.stack([_convert(weights, m, n, config, target) for n in m.hf_names(config)])
        else:
            value = _convert(weights, m, m.hf_name, config, target)
        set_path(params, m.path, jnp.asarray(value))
    return params, dataclasses.replace(config, param_dtype=dtype_name(target))


def hf_to_orbax(hf_dir: str | Path, out_dir: str | Path, dtype: str | None = None, *, compress: bool = False) -> Path:
    """Write ``hf_dir`` as step 0 of a checkpoint at ``out_dir``, one layer slice in memory at a time."""
    from semcoder_jax.convert.orbax_io import StreamedArray, save_streamed_params

    config = read_hf_config(hf_dir)
    weights = HFWeights(hf_dir)
    maps = check_weights(weights, config)
    target = numpy_dtype(dtype) if dtype else _source_dtype(weights, maps, config)
    config = dataclasses.replace(config, param_dtype=dtype_name(target))

    tree: dict = {}
    for m in maps:
        names = m.hf_names(config)
        if m.stacked:
            def block(i, m=m, names=names):
                for j in range(i + 1, i + _READ_AHEAD + 1) if i == 0 else [i + _READ_AHEAD]:
                    if j < len(names):
                        weights.will_need(names[j])
                return _convert(weights, m, names[i], config, target, forget=True)[None]

            value = StreamedArray(m.full_shape(config), target, block, block_rows=1)
        else:
            shape = m.full_shape(config)
            block = lambda i, m=m: _convert(weights, m, m.hf_name, config, target, forget=True)  # noqa: E731
            value = StreamedArray(shape, target, block, block_rows=shape[0])
        set_path(tree, m.path, value)

    with atomic_output_dir(out_dir) as tmp:
        save_streamed_params(tmp, 0, tree, config, compress=compress)
    return Path(out_dir)
