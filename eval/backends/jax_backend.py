"""Our own sampler, straight from an Orbax training checkpoint (or an HF folder): no conversion,
so it also runs where vLLM does not (TPU)."""

from __future__ import annotations

from typing import Any, Sequence

from eval.backends import (
    BackendConfig, Completion, cut_at_stop, finish_reason_of, library_versions, model_dir, model_identity,
    pin_step, tokenizer_identity, tokenizer_source,
)


class JaxBackend:
    name = "jax"
    revision = 1

    def __init__(self, config: BackendConfig):
        from semcoder_jax.sampling import Sampler, load_model_for_inference

        config = pin_step(config)
        self.config, self.source = config, model_identity(config)
        hf_dir = model_dir(config) if config.hf_dir and not config.checkpoint else None  # a hub id's snapshot
        model_config, params = load_model_for_inference(
            checkpoint=config.checkpoint, step=config.step, hf_dir=hf_dir, dtype=config.dtype
        )
        from semcoder_jax.tokenizer import load_tokenizer

        tokenizer = tokenizer_source(config, hf_dir)
        self.tokenizer = load_tokenizer(tokenizer)
        self.source.update(tokenizer_identity(tokenizer))
        self.model_config = model_config
        self.sampler = Sampler(model_config, params, self.tokenizer)

    def identity(self) -> dict[str, Any]:
        return {"backend": "jax", "revision": self.revision, **self.source, "dtype": self.model_config.dtype,
                **library_versions("jax", "jaxlib")}

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
        per = n if temperature > 0 else 1
        ids = [self.tokenizer(p).input_ids for p in prompts for _ in range(per)]
        rows: list[list[int]] = []
        bs = max(1, self.config.batch_size)
        for start in range(0, len(ids), bs):
            rows += self.sampler.generate(
                ids[start : start + bs], max_new_tokens=max_new_tokens, temperature=temperature,
                top_p=top_p, top_k=top_k, seed=seed + start, stop=tuple(stop),
                eos_id=self.tokenizer.eos_token_id if self.model_config.eos_token_id is None else None,
            )
        context = self.model_config.max_position_embeddings
        texts = []
        for prompt_ids, r in zip(ids, rows):
            # The sampler drops EOS: a row shorter than its token limit (the context caps it) ended there.
            eos_hit = len(r) < min(max_new_tokens, context - len(prompt_ids))
            text = self.tokenizer.decode(r, skip_special_tokens=True)
            cut = cut_at_stop(text, stop)
            reason = finish_reason_of(text, cut, eos=eos_hit)
            texts.append(Completion(cut, reason, len(r) + (reason == "eos")))
        return [texts[i * per : (i + 1) * per] * (n // per) for i in range(len(prompts))]

    def close(self) -> None:
        self.sampler = None
