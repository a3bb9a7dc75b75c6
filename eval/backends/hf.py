"""transformers ``generate``: batched, left-padded prompts; greedy or temperature/top-k/top-p sampling
with a seed per sample (``seed + i * n + j``), as the other backends."""

from __future__ import annotations

import contextlib
import tempfile
from typing import Any, Sequence

from eval.backends import (
    BackendConfig, Completion, cut_at_stop, finish_reason_of, library_versions, model_dir, model_identity,
    pin_step, tokenizer_identity, tokenizer_source,
)
from semcoder_jax.errors import SemcoderError
from semcoder_jax.tokenizer import load_tokenizer


@contextlib.contextmanager
def hf_model_dir(config: BackendConfig, dtype: str | None = None):
    """The HF folder to load: ``hf_dir`` (a hub id's snapshot at the pinned commit, see
    :func:`~eval.backends.model_dir`), or an Orbax checkpoint converted into a temporary folder at
    ``dtype`` (default: ``config.dtype``, else bfloat16), the dtype the loader computes in."""
    if config.hf_dir:
        yield model_dir(config)
        return
    if not config.checkpoint:
        raise SemcoderError("give --hf-dir or --checkpoint")
    from semcoder_jax.convert import orbax_to_hf

    with tempfile.TemporaryDirectory(prefix="semcoder-hf-") as tmp:
        orbax_to_hf(config.checkpoint, tmp, step=config.step, tokenizer=config.tokenizer, dtype=dtype or config.dtype or "bfloat16")
        yield tmp


class HFBackend:
    name = "hf"
    # Samples drawn by transformers' batch-wide sampling (before RowSeededSampler) are other samples.
    sampling_scheme = "row-seeded"
    # 2: a checkpoint is converted at the compute dtype (it was rounded to bfloat16 first, under an
    # identity that said float32), so generations cached before are another model's.
    # 3: generation_config.json's fields (repetition_penalty, no_repeat_ngram_size, ...) no longer
    # apply, and EOS is config.json's ids and that file's together, as in the jax backend.
    revision = 3

    def __init__(self, config: BackendConfig):
        import torch
        from transformers import AutoModelForCausalLM, GenerationConfig

        dtype = getattr(torch, config.dtype, None) if config.dtype else (torch.bfloat16 if torch.cuda.is_available() else torch.float32)
        if not isinstance(dtype, torch.dtype):  # checked before a checkpoint is converted
            raise SemcoderError(f"--dtype {config.dtype!r} is not a torch dtype (e.g. bfloat16, float16, float32)")
        config = pin_step(config)
        self.config, self.source = config, model_identity(config)
        self._stack = contextlib.ExitStack()
        # converted at the dtype loaded (float32 on CPU by default), or its weights would be rounded
        model_dir = self._stack.enter_context(hf_model_dir(config, str(dtype).removeprefix("torch.")))
        tokenizer = tokenizer_source(config, model_dir)
        self.tokenizer = load_tokenizer(tokenizer)
        self.source.update(tokenizer_identity(tokenizer))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
        except (OSError, ValueError) as e:  # no such folder or hub id, no config.json: transformers' long message
            raise SemcoderError(f"cannot load model {model_dir!r}: {str(e).splitlines()[0]}") from None
        self.model = model.to(self.device).eval()
        self.eos_ids = model_eos_ids(model) or [self.tokenizer.eos_token_id]
        # generate() fills every field a passed GenerationConfig leaves None from model.generation_config
        # (generation_config.json): only our settings may remain there.
        self.model.generation_config = GenerationConfig(eos_token_id=self.eos_ids, pad_token_id=self._pad())
        self._stack.close()  # weights are in memory; a temporary conversion can go

    def _pad(self) -> int:
        pad = self.tokenizer.pad_token_id
        pad = self.tokenizer.eos_token_id if pad is None else pad
        return self.eos_ids[0] if pad is None else pad

    def identity(self) -> dict[str, Any]:
        return {"backend": "hf", "revision": self.revision, **self.source, "dtype": str(self.model.dtype),
                **library_versions("transformers", "torch")}

    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        stop: Sequence[str] = (),
        seed: int = 0,
        top_k: int = 0,
    ) -> list[list[Completion]]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        pad, eos_ids = self._pad(), list(self.eos_ids)
        # Greedy decoding either way, with nothing but these settings (see __init__): sampling is the
        # processor's, from a generator per row.
        settings = GenerationConfig(
            max_new_tokens=max_new_tokens, eos_token_id=eos_ids, pad_token_id=pad, do_sample=False, num_beams=1,
            num_return_sequences=1,
        )
        per = n if temperature > 0 else 1
        ids = [self.tokenizer(p).input_ids for p in prompts for _ in range(per)]
        rows: list[tuple[list[int], bool]] = []  # tokens before EOS, and whether EOS ended them
        bs = max(1, self.config.batch_size)
        for start in range(0, len(ids), bs):
            batch = ids[start : start + bs]
            width = max(len(r) for r in batch)
            input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in batch], device=self.device)
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in batch], device=self.device)
            kwargs: dict[str, Any] = {"generation_config": settings}
            if temperature > 0:
                seeds = range(seed + start, seed + start + len(batch))  # row k = prompt k // n, sample k % n
                kwargs["logits_processor"] = LogitsProcessorList([RowSeededSampler(seeds, temperature, top_p, self.device, top_k)])
            with torch.no_grad():
                gen = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
            for row in gen[:, width:].tolist():
                end = next((j for j, t in enumerate(row) if t in eos_ids), None)
                rows.append((row, False) if end is None else (row[:end], True))
        texts = []
        for r, eos_hit in rows:  # the text is cut at stop strings here: generation ran on to EOS or the limit
            text = self.tokenizer.decode(r, skip_special_tokens=True)
            cut = cut_at_stop(text, stop)
            texts.append(Completion(cut, finish_reason_of(text, cut, eos=eos_hit), len(r) + eos_hit))
        return [texts[i * per : (i + 1) * per] * (n // per) for i in range(len(prompts))]

    def close(self) -> None:
        self.model = None


def model_eos_ids(model: Any) -> list[int]:
    """The ids that end a sample: ``config.json``'s ``eos_token_id`` and ``generation_config.json``'s
    (instruct models list an end of turn there), as :func:`~semcoder_jax.convert.read_hf_config` reads
    them for the jax backend; empty when neither names one."""
    ids: list[int] = []
    for value in (getattr(model.config, "eos_token_id", None), model.generation_config.eos_token_id):
        ids += value if isinstance(value, list) else [] if value is None else [value]
    return list(dict.fromkeys(ids))


class RowSeededSampler:
    """Temperature / top-k (0: off) / top-p sampling (transformers' order and rules) with a ``torch.Generator``
    per row, as a logits processor for greedy ``generate``: transformers' own sampling draws the whole
    batch from the global generator, so a prompt's samples would depend on its batch and on the
    batch size, which the generation cache does not key on. Every logit but the drawn token's
    becomes -inf, so the greedy step picks it."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float, device: str, top_k: int = 0):
        import torch
        from transformers import TopKLogitsWarper

        self.temperature, self.top_p = temperature, top_p
        self.top_k = TopKLogitsWarper(top_k) if top_k > 0 else None
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        scores = scores.float() / self.temperature
        if self.top_k is not None:
            scores = self.top_k(input_ids, scores)
        if self.top_p < 1.0:
            sorted_logits, order = torch.sort(scores, descending=False)
            cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
            drop = cum <= 1 - self.top_p
            drop[..., -1:] = False
            scores = scores.masked_fill(drop.scatter(1, order, drop), float("-inf"))
        probs = scores.softmax(dim=-1)
        picks = torch.cat([torch.multinomial(probs[r], 1, generator=g) for r, g in enumerate(self.generators)])
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, picks[:, None], 0.0)
