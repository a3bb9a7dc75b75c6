"""transformers ``generate``: batched, left-padded prompts; greedy or temperature/top-p sampling."""

from __future__ import annotations

import contextlib
import tempfile
from typing import Any, Sequence

from eval.backends import BackendConfig, cut_at_stop, model_identity, pin_step, resolve_tokenizer
from semcoder_jax.errors import SemcoderError


@contextlib.contextmanager
def hf_model_dir(config: BackendConfig):
    """The HF folder to load: ``hf_dir``, or an Orbax checkpoint converted into a temporary folder."""
    if config.hf_dir:
        yield config.hf_dir
        return
    if not config.checkpoint:
        raise SemcoderError("give --hf-dir or --checkpoint")
    from semcoder_jax.convert import orbax_to_hf

    with tempfile.TemporaryDirectory(prefix="semcoder-hf-") as tmp:
        orbax_to_hf(config.checkpoint, tmp, step=config.step, tokenizer=config.tokenizer, dtype=config.dtype or "bfloat16")
        yield tmp


class HFBackend:
    name = "hf"

    def __init__(self, config: BackendConfig):
        import torch
        from transformers import AutoModelForCausalLM

        config = pin_step(config)
        self.config, self.source = config, model_identity(config)
        self._stack = contextlib.ExitStack()
        model_dir = self._stack.enter_context(hf_model_dir(config))
        self.tokenizer = resolve_tokenizer(config, model_dir)
        dtype = getattr(torch, config.dtype) if config.dtype else (torch.bfloat16 if torch.cuda.is_available() else torch.float32)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(self.device).eval()
        self._stack.close()  # weights are in memory; a temporary conversion can go

    def identity(self) -> dict[str, Any]:
        return {"backend": "hf", **self.source, "dtype": str(self.model.dtype)}

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
    ) -> list[list[str]]:
        import torch

        out: list[list[str]] = []
        pad = self.tokenizer.pad_token_id
        pad = self.tokenizer.eos_token_id if pad is None else pad
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        torch.manual_seed(seed)
        bs = max(1, self.config.batch_size)
        for start in range(0, len(prompts), bs):
            batch = [self.tokenizer(p).input_ids for p in prompts[start : start + bs]]
            width = max(len(ids) for ids in batch)
            input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=self.device)
            mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=self.device)
            kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": pad, "eos_token_id": eos}
            if temperature > 0:
                # top_k=0: no top-k cut, as the other backends, whatever the model's generation config says.
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0, num_return_sequences=n)
            else:
                kwargs.update(do_sample=False, num_return_sequences=1, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                gen = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
            gen = gen[:, width:].tolist()
            per = n if temperature > 0 else 1
            for i in range(len(batch)):
                texts = []
                for row in gen[i * per : (i + 1) * per]:
                    if eos is not None:
                        eos_ids = eos if isinstance(eos, list) else [eos]
                        cut = next((j for j, t in enumerate(row) if t in eos_ids), len(row))
                        row = row[:cut]
                    texts.append(cut_at_stop(self.tokenizer.decode(row, skip_special_tokens=True), stop))
                out.append(texts * (n // per))
        return out

    def close(self) -> None:
        self.model = None
