"""KV-cache generation: left-padded prompt batches, prefill, then a jitted decode loop.

Shapes are bucketed (batch and prompt length to powers of two, new tokens to a multiple of the
chunk) so that the jitted prefill and decode compile once per bucket, not per prompt.
Stop strings are checked on the host on decoded text between chunks of decode steps.
As vLLM, a prompt and its new tokens stay within the model's ``max_position_embeddings`` (RoPE
positions past the trained range give garbage): a row's generation is capped there, and a prompt
that fills the context is an error.
Each row samples with a key of its own (from its own seed), so a row's sample does not depend on
the other rows of its batch, its position there or the batch size.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from semcoder_jax.errors import SemcoderError
from semcoder_jax.model.config import ModelConfig
from semcoder_jax.model.llama import Params, Transformer, init_cache

log = logging.getLogger(__name__)


def _next_pow2(n: int, minimum: int = 1) -> int:
    return max(minimum, 1 << (max(n, 1) - 1).bit_length())


def nucleus_logits(
    logits: jax.Array, temperature: jax.Array, top_p: jax.Array, top_k: jax.Array | int = 0
) -> jax.Array:
    """Logits [B, V] scaled by the temperature, -inf outside each row's top-k tokens (0: all) and
    then outside its top-p nucleus: Hugging Face's temperature, top-k, top-p warpers in their order."""
    logits = logits / jnp.maximum(temperature, 1e-6)
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    vocab = logits.shape[-1]
    k = jnp.where((top_k <= 0) | (top_k >= vocab), vocab, top_k)
    # As HF's top-k: every token scoring at least the k-th largest stays (ties included).
    kth = jnp.take_along_axis(sorted_logits, jnp.broadcast_to(k - 1, (logits.shape[0], 1)), axis=-1)
    sorted_logits = jnp.where(sorted_logits >= kth, sorted_logits, -jnp.inf)
    logits = jnp.where(logits >= kth, logits, -jnp.inf)
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    # The most likely token is always kept; top_p = 1 keeps all (the float32 running sum can reach
    # 1 before the tail).
    keep = (((jnp.cumsum(probs, axis=-1) - probs) < top_p) | (top_p >= 1.0)) & (sorted_logits > -jnp.inf)
    threshold = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits >= threshold, logits, -jnp.inf)


def sample_logits(
    logits: jax.Array, keys: jax.Array, temperature: jax.Array, top_p: jax.Array, *, greedy: bool,
    top_k: jax.Array | int = 0,
) -> jax.Array:
    """Next tokens [B] from float32 logits [B, V]: argmax, or temperature + top-k + nucleus (top-p)
    sampling with row i's noise drawn from ``keys[i]`` alone."""
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = nucleus_logits(logits, temperature, top_p, top_k)
    return jax.vmap(jax.random.categorical)(keys, logits).astype(jnp.int32)


def _step_keys(keys: jax.Array, step: jax.Array) -> jax.Array:
    """Each row's key for decode step ``step``: fresh noise every step, from the row's key alone."""
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, step)


def _eos_ids(value: int | Sequence[int] | None) -> list[int]:
    """EOS ids as a non-empty list (-1, which no token is, for none) for the jitted steps."""
    ids = [] if value is None else [value] if isinstance(value, (int, np.integer)) else list(value)
    ids = [int(i) for i in ids if i >= 0]
    return ids or [-1]


def _is_eos(token: jax.Array, eos_ids: jax.Array) -> jax.Array:
    return jnp.any(token[:, None] == eos_ids[None, :], axis=-1)


def _cut_at_eos(tokens: list[int], eos: Sequence[int]) -> list[int]:
    return tokens[: next((j for j, t in enumerate(tokens) if t in eos), len(tokens))]


class Sampler:
    """Batched generation with a fixed-size KV cache, using the training model's param tree."""

    def __init__(
        self,
        config: ModelConfig,
        params: Params,
        tokenizer: Any = None,
        *,
        chunk_size: int = 64,
        min_prompt_bucket: int = 16,
        pad_id: int = 0,
    ):
        self.config = config.replace(remat_policy="none")
        self.params = params
        self.tokenizer = tokenizer
        self.chunk_size = chunk_size
        self.min_prompt_bucket = min_prompt_bucket
        self.pad_id = pad_id
        self.model = Transformer(self.config)
        self._prefill = jax.jit(self._prefill_fn, static_argnames=("greedy", "buffer"))
        self._decode = jax.jit(self._decode_fn, static_argnames=("greedy",), donate_argnums=(1,))

    # ---- jitted pieces ------------------------------------------------------------------------
    def _prefill_fn(self, params, tokens, lengths, limits, seeds, temperature, top_p, top_k, eos_ids, *, greedy, buffer):
        b, p = tokens.shape
        pad = p - lengths[:, None]
        idx = jnp.arange(p)[None, :]
        segment_ids = (idx >= pad).astype(jnp.int32)
        positions = jnp.maximum(idx - pad, 0)
        cache = init_cache(self.config, b, p + buffer)
        logits, cache = self.model.apply(
            {"params": params}, tokens, positions, segment_ids, cache=cache, last_only=True
        )
        keys = jax.vmap(jax.random.PRNGKey)(seeds)
        token = sample_logits(logits[:, -1], _step_keys(keys, 0), temperature, top_p, greedy=greedy, top_k=top_k)
        out = jnp.full((b, buffer), self.pad_id, jnp.int32).at[:, 0].set(token)
        return {
            "cache": cache,
            "out": out,
            "lengths": lengths,
            "step": jnp.ones((), jnp.int32),
            "done": _is_eos(token, eos_ids) | (limits <= 1),
            "limits": limits,
            "keys": keys,
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "eos_ids": eos_ids,
        }

    def _decode_fn(self, params, state, until, *, greedy):
        """Decode steps until ``step == until`` or every row is done (a ``lax.while_loop``)."""

        def cond(s):
            return (s["step"] < until) & ~jnp.all(s["done"])

        def body(s):
            step = s["step"]
            prev = jax.lax.dynamic_slice_in_dim(s["out"], step - 1, 1, axis=1)
            positions = (s["lengths"] + step - 1)[:, None]
            logits, cache = self.model.apply(
                {"params": params}, prev, positions, jnp.ones_like(prev), cache=s["cache"]
            )
            token = sample_logits(logits[:, -1], _step_keys(s["keys"], step), s["temperature"], s["top_p"],
                                  greedy=greedy, top_k=s["top_k"])
            token = jnp.where(s["done"], self.pad_id, token)
            out = jax.lax.dynamic_update_slice_in_dim(s["out"], token[:, None], step, axis=1)
            done = s["done"] | _is_eos(token, s["eos_ids"]) | (step + 1 >= s["limits"])
            return {**s, "cache": cache, "out": out, "step": step + 1, "done": done}

        return jax.lax.while_loop(cond, body, state)

    # ---- host loop ------------------------------------------------------------------------------
    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
        seeds: Optional[Sequence[int]] = None,
        stop: Sequence[str] = (),
        eos_id: Optional[int | Sequence[int]] = None,
    ) -> list[list[int]]:
        """New tokens for each prompt (EOS excluded), cut after the first stop string if any.

        A row ends at any of the EOS ids, or at ``max_new_tokens``, or where prompt + new tokens
        reach the model's ``max_position_embeddings`` (as vLLM; logged); a prompt of that many
        tokens or more is an error.

        Prompt i samples with seed ``seeds[i]`` (default ``seed + i``; taken mod 2**32), as vLLM
        seeds each request: the same prompt and seed give the same tokens whatever else is in the
        batch, so prompts split into batches at ``start`` with ``seed + start`` sample as one call.
        ``eos_id`` (one id or several) defaults to the config's ``eos_token_ids``; pass -1 or
        ``[]`` to generate exactly ``max_new_tokens``. As in Hugging Face, temperature 0 is greedy,
        and ``top_p=1`` / ``top_k=0`` turn those filters off.
        """
        if not prompt_ids:
            return []
        vocab, context = self.config.vocab_size, self.config.max_position_embeddings
        for i, ids in enumerate(prompt_ids):
            if len(ids) == 0:
                raise SemcoderError(f"generate: prompt {i} is empty (needs at least one token, e.g. BOS)")
            if len(ids) >= context:
                raise SemcoderError(f"generate: prompt {i} has {len(ids)} tokens: no room for any of max_new_tokens="
                                    f"{max_new_tokens} within the model's max_position_embeddings of {context}")
            # an id outside the embedding reads NaN (or another row): the completion would be garbage
            bad = [j for j, t in enumerate(ids) if not 0 <= t < vocab]
            if bad:
                raise SemcoderError(f"generate: prompt {i} has token id {ids[bad[0]]} at position {bad[0]}, outside the "
                                    f"model's vocabulary of {vocab} (a tokenizer of another model?)")
        if stop and self.tokenizer is None:
            raise SemcoderError("generate: stop strings need a tokenizer (Sampler(..., tokenizer=...))")
        if any(not s for s in stop):  # "" is in every text: each completion would be cut to nothing
            raise SemcoderError(f"generate: stop strings must not be empty, got {list(stop)!r}")
        if max_new_tokens < 1:
            raise SemcoderError(f"generate: max_new_tokens must be >= 1, got {max_new_tokens}")
        if seeds is not None and len(seeds) != len(prompt_ids):
            raise SemcoderError(f"generate: {len(seeds)} seeds for {len(prompt_ids)} prompts")
        if temperature < 0 or not 0 < top_p <= 1:
            raise SemcoderError(f"generate: need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
            raise SemcoderError(f"generate: top_k must be an integer >= 0 (0: off), got {top_k!r}")
        eos = _eos_ids(self.config.eos_token_ids if eos_id is None else eos_id)
        n = len(prompt_ids)
        b = _next_pow2(n)
        p = _next_pow2(max(len(x) for x in prompt_ids), self.min_prompt_bucket)
        buffer = -(-max_new_tokens // self.chunk_size) * self.chunk_size
        tokens = np.full((b, p), self.pad_id, np.int32)
        lengths = np.ones((b,), np.int32)
        limits = np.full((b,), max_new_tokens, np.int32)
        row_seeds = np.zeros((b,), np.uint32)
        for i, ids in enumerate(prompt_ids):
            tokens[i, p - len(ids) :] = ids
            lengths[i] = len(ids)
            limits[i] = min(max_new_tokens, context - len(ids))
            row_seeds[i] = (seed + i if seeds is None else seeds[i]) & 0xFFFFFFFF
        capped = [i for i in range(n) if limits[i] < max_new_tokens]
        if capped:
            log.warning("generate: %d prompt(s) (first: prompt %d, %d tokens) get fewer than max_new_tokens=%d "
                        "new tokens: prompt + completion stop at max_position_embeddings=%d",
                        len(capped), capped[0], lengths[capped[0]], max_new_tokens, context)
        greedy = temperature == 0.0
        state = self._prefill(
            self.params, jnp.asarray(tokens), jnp.asarray(lengths), jnp.asarray(limits), jnp.asarray(row_seeds),
            jnp.float32(temperature), jnp.float32(top_p), jnp.int32(min(top_k, self.config.vocab_size)),
            jnp.asarray(eos, jnp.int32), greedy=greedy, buffer=buffer,
        )
        finished = np.zeros((b,), bool)
        finished[n:] = True  # batch padding rows
        state["done"] = state["done"] | jnp.asarray(finished)
        chunk = self.chunk_size if stop else max_new_tokens
        step = 1
        while step < max_new_tokens:
            until = min(step + chunk, max_new_tokens)
            state = self._decode(self.params, state, jnp.int32(until), greedy=greedy)
            step = int(state["step"])
            done = np.array(state["done"])
            if stop and not done.all():
                out = np.asarray(state["out"])
                hits = [i for i in range(n) if not done[i] and self._stop_index(out[i, :step].tolist(), eos, stop)]
                if hits:
                    done[hits] = True
                    state["done"] = jnp.asarray(done)
            if done.all():
                break
        out = np.asarray(state["out"])
        results = []
        for i in range(n):
            row = _cut_at_eos(out[i, : min(step, limits[i])].tolist(), eos)
            if stop:
                cut = self._stop_index(row, eos, stop)
                row = row[:cut] if cut else row
            results.append(row)
        return results

    def _stop_index(self, tokens: list[int], eos: Sequence[int], stop: Sequence[str]) -> int:
        """Length of the shortest prefix of ``tokens`` whose text holds a stop string (0: none)."""
        tokens = _cut_at_eos(tokens, eos)
        decode = functools.partial(self.tokenizer.decode, skip_special_tokens=True)
        if not any(s in decode(tokens) for s in stop):
            return 0
        lo, hi = 1, len(tokens)
        while lo < hi:
            mid = (lo + hi) // 2
            if any(s in decode(tokens[:mid]) for s in stop):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def generate_text(self, prompts: Sequence[str], *, stop: Sequence[str] = (), **kwargs: Any) -> list[str]:
        """Completions (text after the prompt), cut before the first stop string."""
        if self.tokenizer is None:
            raise SemcoderError("generate_text: the Sampler has no tokenizer")
        ids = [self.tokenizer(p).input_ids for p in prompts]
        outs = self.generate(ids, stop=stop, **kwargs)
        texts = []
        for row in outs:
            text = self.tokenizer.decode(row, skip_special_tokens=True)
            cuts = [text.find(s) for s in stop if s in text]
            texts.append(text[: min(cuts)] if cuts else text)
        return texts
