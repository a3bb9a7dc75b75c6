"""The one table between Hugging Face ``LlamaForCausalLM`` tensor names and our param tree.

Our kernels are HF weights transposed, with the attention ones split into heads; RoPE uses HF's
rotate_half layout so no rows are permuted. Stacked params (leading axis = layer) map to one HF
tensor per layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from semcoder_jax.convert.transpose import transpose2d
from semcoder_jax.model.config import ModelConfig

Path_ = tuple[str, ...]


@dataclass(frozen=True)
class ParamMapping:
    path: Path_  # in our tree
    hf_name: str  # ``{i}`` is the layer index for stacked params
    stacked: bool
    hf_shape: Callable[[ModelConfig], tuple[int, ...]]
    our_shape: Callable[[ModelConfig], tuple[int, ...]]  # of one layer slice when stacked
    to_ours: Callable[[np.ndarray, ModelConfig], np.ndarray]
    to_hf: Callable[[np.ndarray, ModelConfig], np.ndarray]

    def hf_names(self, config: ModelConfig) -> list[str]:
        if self.stacked:
            return [self.hf_name.format(i=i) for i in range(config.num_layers)]
        return [self.hf_name]

    def full_shape(self, config: ModelConfig) -> tuple[int, ...]:
        shape = self.our_shape(config)
        return (config.num_layers, *shape) if self.stacked else shape

    @property
    def key(self) -> str:
        return "/".join(self.path)

    @property
    def copies(self) -> bool:
        """``to_ours`` and ``to_hf`` return new arrays (transposes), never their argument."""
        return self.to_ours is not _same


def _t(x: np.ndarray, c: ModelConfig) -> np.ndarray:
    return transpose2d(x)


def _same(x: np.ndarray, c: ModelConfig) -> np.ndarray:
    return x


def _heads_in(n_heads: Callable[[ModelConfig], int]):
    """HF [heads*hd, D] <-> ours [D, heads, hd]."""

    def to_ours(x, c):
        return transpose2d(x).reshape(c.hidden_size, n_heads(c), c.head_size)

    def to_hf(x, c):
        return transpose2d(x.reshape(c.hidden_size, n_heads(c) * c.head_size))

    return to_ours, to_hf


def _o_to_ours(x, c):
    return transpose2d(x).reshape(c.num_heads, c.head_size, c.hidden_size)


def _o_to_hf(x, c):
    return transpose2d(x.reshape(c.num_heads * c.head_size, c.hidden_size))


def _heads(c: ModelConfig) -> int:
    return c.num_heads


def _kv_heads(c: ModelConfig) -> int:
    return c.num_kv_heads


_q = _heads_in(_heads)
_kv = _heads_in(_kv_heads)
_L = "model.layers.{i}."


def param_mappings(config: ModelConfig) -> list[ParamMapping]:
    """Every param of ``config``'s model, in HF checkpoint order (embedding, layers, norm, head)."""
    d = lambda c: c.hidden_size  # noqa: E731
    maps = [
        ParamMapping(("embed", "embedding"), "model.embed_tokens.weight", False,
                     lambda c: (c.vocab_size, c.hidden_size), lambda c: (c.vocab_size, c.hidden_size), _same, _same),
        ParamMapping(("layers", "attn", "q_proj", "kernel"), _L + "self_attn.q_proj.weight", True,
                     lambda c: (c.num_heads * c.head_size, d(c)),
                     lambda c: (d(c), c.num_heads, c.head_size), *_q),
        ParamMapping(("layers", "attn", "k_proj", "kernel"), _L + "self_attn.k_proj.weight", True,
                     lambda c: (c.num_kv_heads * c.head_size, d(c)),
                     lambda c: (d(c), c.num_kv_heads, c.head_size), *_kv),
        ParamMapping(("layers", "attn", "v_proj", "kernel"), _L + "self_attn.v_proj.weight", True,
                     lambda c: (c.num_kv_heads * c.head_size, d(c)),
                     lambda c: (d(c), c.num_kv_heads, c.head_size), *_kv),
        ParamMapping(("layers", "attn", "o_proj", "kernel"), _L + "self_attn.o_proj.weight", True,
                     lambda c: (d(c), c.num_heads * c.head_size),
                     lambda c: (c.num_heads, c.head_size, d(c)), _o_to_ours, _o_to_hf),
        ParamMapping(("layers", "mlp", "gate_proj", "kernel"), _L + "mlp.gate_proj.weight", True,
                     lambda c: (c.intermediate_size, d(c)), lambda c: (d(c), c.intermediate_size), _t, _t),
        ParamMapping(("layers", "mlp", "up_proj", "kernel"), _L + "mlp.up_proj.weight", True,
                     lambda c: (c.intermediate_size, d(c)), lambda c: (d(c), c.intermediate_size), _t, _t),
        ParamMapping(("layers", "mlp", "down_proj", "kernel"), _L + "mlp.down_proj.weight", True,
                     lambda c: (d(c), c.intermediate_size), lambda c: (c.intermediate_size, d(c)), _t, _t),
        ParamMapping(("layers", "attn_norm", "scale"), _L + "input_layernorm.weight", True,
                     lambda c: (d(c),), lambda c: (d(c),), _same, _same),
        ParamMapping(("layers", "mlp_norm", "scale"), _L + "post_attention_layernorm.weight", True,
                     lambda c: (d(c),), lambda c: (d(c),), _same, _same),
        ParamMapping(("final_norm", "scale"), "model.norm.weight", False,
                     lambda c: (d(c),), lambda c: (d(c),), _same, _same),
    ]
    if not config.tie_word_embeddings:
        maps.append(ParamMapping(("lm_head", "kernel"), "lm_head.weight", False,
                                 lambda c: (c.vocab_size, d(c)), lambda c: (d(c), c.vocab_size), _t, _t))
    return maps


# Tensors some HF checkpoints carry that hold no weights of ours (recomputed buffers).
IGNORED_HF_SUFFIXES = (".rotary_emb.inv_freq",)


def ignored_hf_tensor(name: str, config: ModelConfig) -> bool:
    if name.endswith(IGNORED_HF_SUFFIXES):
        return True
    return config.tie_word_embeddings and name == "lm_head.weight"


def get_path(tree: dict, path: Path_):
    for key in path:
        tree = tree[key]
    return tree


def set_path(tree: dict, path: Path_, value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value
