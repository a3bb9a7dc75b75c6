"""vLLM offline inference (``LLM.generate``), tensor parallel; a training checkpoint is converted
to an HF folder in a temporary directory first. vLLM is imported only here."""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

from eval.backends import BackendConfig, Completion, library_versions, model_identity, pin_step, tokenizer_identity, tokenizer_source
from eval.backends.hf import hf_model_dir
from semcoder_jax.errors import SemcoderError


class VLLMBackend:
    name = "vllm"
    revision = 1

    def __init__(self, config: BackendConfig):
        try:
            from vllm import LLM
        except ImportError:
            raise SemcoderError("the vllm backend needs vLLM (pip install vllm); use --backend hf or jax otherwise") from None
        config = pin_step(config)
        self.config, self.source = config, model_identity(config)
        self._stack = contextlib.ExitStack()
        model_dir = self._stack.enter_context(hf_model_dir(config))
        tokenizer = tokenizer_source(config, model_dir)
        self.source.update(tokenizer_identity(tokenizer))
        kwargs: dict[str, Any] = {
            "model": model_dir,
            "tensor_parallel_size": config.tensor_parallel_size,
            "gpu_memory_utilization": config.gpu_memory_utilization,
            "dtype": config.dtype or "bfloat16",
            "tokenizer": tokenizer,
        }
        if config.max_model_len:
            kwargs["max_model_len"] = config.max_model_len
        self.llm = LLM(**kwargs)

    def identity(self) -> dict[str, Any]:
        return {"backend": "vllm", "revision": self.revision, **self.source, "dtype": self.config.dtype or "bfloat16",
                **library_versions("vllm")}

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
        from vllm import SamplingParams

        greedy = temperature == 0
        # Top-k off is -1: vLLM 0.8.5 and older refuse 0 ("must be -1 (disable), or at least 1");
        # later versions prefer 0 but still take -1 as off. Every sampling field is given: explicit
        # SamplingParams are what runs (the model's generation_config.json only fills
        # ``LLM.get_default_sampling_params``), so no min-p or repetition penalty of the model's applies.
        k = top_k if top_k > 0 and not greedy else -1
        # A seed per prompt: vLLM seeds each request's generator, so one shared seed would give every
        # prompt of the batch the same noise.
        params = [
            SamplingParams(
                n=1 if greedy else n, temperature=temperature, top_p=1.0 if greedy else top_p, top_k=k,
                min_p=0.0, repetition_penalty=1.0, max_tokens=max_new_tokens, stop=list(stop) or None,
                seed=seed + i * n,
            )
            for i in range(len(prompts))
        ]
        outputs = self.llm.generate(list(prompts), params)
        return [[_completion(o) for o in out.outputs] * (n if greedy else 1) for out in outputs]

    def close(self) -> None:
        self.llm = None
        self._stack.close()


def _completion(output: Any) -> Completion:
    """A vLLM ``CompletionOutput`` as a :class:`Completion`: its ``finish_reason`` is "stop" for EOS
    and stop strings alike; ``stop_reason`` tells them apart (the string matched; None or a token
    id for EOS). Its ``token_ids`` are all it generated, EOS included."""
    reason = getattr(output, "finish_reason", None)
    if reason == "stop":
        reason = "stop" if isinstance(getattr(output, "stop_reason", None), str) else "eos"
    elif reason != "length":
        reason = None  # "abort", or an older vLLM
    tokens = getattr(output, "token_ids", None)
    return Completion(output.text, reason, None if tokens is None else len(tokens))
