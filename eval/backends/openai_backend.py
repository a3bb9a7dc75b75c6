"""Any OpenAI-compatible server (vLLM's, TGI's, OpenAI's) through the ``openai`` package, with
``batch_size`` requests in flight; the client retries rate limits and server errors itself."""

from __future__ import annotations

import concurrent.futures
import json
import os
from typing import Any, Callable, Sequence

from eval.backends import BackendConfig, Completion, cut_at_stop
from semcoder_jax.errors import SemcoderError

# What vLLM's server takes from the model's generation_config.json for a field a request leaves out
# (``--generation-config auto``, its default since 0.8), beyond the temperature, top_p and max_tokens
# every request sends: each is sent at its "off" value unless asked for. Top-k off is -1, which every
# vLLM takes (0.8.5 and older refuse 0; later ones prefer 0 and still take -1).
VLLM_FIELDS = ("top_k", "min_p", "repetition_penalty")


def vllm_fields(top_k: int, temperature: float) -> dict[str, Any]:
    """The request body's vLLM sampling fields: our ``top_k`` (0, or greedy: off) and no min-p or
    repetition penalty, whatever the served model's generation config recommends."""
    return {"top_k": top_k if top_k > 0 and temperature > 0 else -1, "min_p": 0.0, "repetition_penalty": 1.0}


def is_openai_api(host: str) -> bool:
    """OpenAI's own API (or Azure's) refuses fields it does not define, vLLM's among them."""
    return host == "openai.com" or host.endswith((".openai.com", ".openai.azure.com"))


class OpenAIBackend:
    name = "openai"
    revision = 1

    def __init__(self, config: BackendConfig):
        try:
            import openai
        except ImportError:
            raise SemcoderError("the openai backend needs the openai package (pip install openai)") from None
        if not config.model:
            raise SemcoderError("the openai backend needs --model NAME (and --base-url for a local server)")
        self.config = config
        self.client = openai.OpenAI(base_url=config.base_url, api_key=os.environ.get(config.api_key_env, "EMPTY"),
                                    max_retries=config.max_retries)
        forced = config.vllm_fields
        self.sends_vllm_fields = not is_openai_api(self.client.base_url.host) if forced is None else forced

    def identity(self) -> dict[str, Any]:
        """Names the pinned fields where they are sent: generations cached before, which a vLLM
        server may have drawn with its model's defaults, are not reused; OpenAI's are."""
        pinned = {"pinned": list(VLLM_FIELDS)} if self.sends_vllm_fields else {}
        return {"backend": "openai", "revision": self.revision, "model": self.config.model, "base_url": self.config.base_url,
                "chat": self.config.chat, **pinned}

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
        on_row: Callable[[], None] | None = None,
    ) -> list[list[Completion]]:
        """``on_row``: called as each prompt's reply arrives (any order), for a progress bar that
        moves with the requests rather than once a call. ``top_k`` is no OpenAI API parameter: to
        any server but OpenAI's (``BackendConfig.vllm_fields`` decides otherwise) the body carries
        :func:`vllm_fields`, ``top_k`` -1 when off, so a vLLM server's defaults from the model's
        ``generation_config.json`` do not apply; to OpenAI's, ``top_k`` only when on (it refuses it)."""
        import openai

        stop_list = list(stop)[:4] or None  # the API takes at most four; cut_at_stop applies them all
        # Greedy: one choice repeated, as the other backends (vLLM's server refused n > 1 greedy ones).
        per = n if temperature > 0 else 1
        common = {"model": self.config.model, "n": per, "temperature": temperature, "top_p": top_p,
                  "max_tokens": max_new_tokens, "stop": stop_list}
        if self.sends_vllm_fields:
            common["extra_body"] = vllm_fields(top_k, temperature)
        elif top_k > 0 and temperature > 0:
            common["extra_body"] = {"top_k": top_k}

        def complete(i: int) -> list[Completion]:
            seeded = {**common, "seed": seed + i * n}  # per prompt: a server seeds each request's sampling
            try:
                if self.config.chat:
                    resp = self.client.chat.completions.create(messages=[{"role": "user", "content": prompts[i]}], **seeded)
                    choices = sorted(resp.choices, key=lambda c: c.index)
                    texts = [c.message.content or "" for c in choices]
                else:
                    resp = self.client.completions.create(prompt=prompts[i], **seeded)
                    choices = sorted(resp.choices, key=lambda c: c.index)
                    texts = [c.text for c in choices]
            except openai.OpenAIError as e:
                raise SemcoderError(self._failed(i, e)) from None
            usage = getattr(resp, "usage", None)  # per request: one choice's count only when there is one
            tokens = usage.completion_tokens if usage is not None and per == 1 else None
            out = []
            for c, text in zip(choices, texts):
                cut = cut_at_stop(text, stop)
                out.append(Completion(cut, finish_reason(c, cut_here=len(cut) < len(text)), tokens))
            if on_row is not None:
                on_row()
            return out * (n // per)

        # ``batch_size`` requests in flight at once; results in prompt order.
        with concurrent.futures.ThreadPoolExecutor(max(1, self.config.batch_size)) as pool:
            return list(pool.map(complete, range(len(prompts))))

    def _failed(self, i: int, e: Exception) -> str:
        """Names the server: the client's "Connection error." alone does not say which one it asked
        (--base-url, else OPENAI_BASE_URL, else OpenAI's)."""
        import openai

        message = (f"openai backend: the request for prompt {i} to {self.client.base_url} failed "
                   f"(after the client's retries): {type(e).__name__}: {e}")
        body = json.dumps(e.body, default=str)[:500] if isinstance(e, openai.APIStatusError) and e.body is not None else ""
        if body and str(e) == f"Error code: {e.status_code}":  # a body with no "message", e.g. a 422's {"detail": ...}
            message += f" {body}"
        if isinstance(e, openai.APIConnectionError):
            message += (f" ({e.__cause__})" if e.__cause__ else "") + "; check --base-url"
        elif (self.sends_vllm_fields and isinstance(e, (openai.BadRequestError, openai.UnprocessableEntityError))
              and any(f in f"{e} {body}" for f in VLLM_FIELDS)):  # pydantic servers forbidding unknown fields: 422
            message += (f"; the request carried vLLM's sampling fields ({', '.join(VLLM_FIELDS)}) so that a vLLM "
                        "server's generation_config defaults do not apply, and this server refused one: "
                        "give --vllm-fields off to send top_k only when on")
        return message

    def close(self) -> None:
        self.client = None


def finish_reason(choice: Any, *, cut_here: bool = False) -> str | None:
    """A choice's end as a :class:`Completion` names it. The API's "stop" covers stop strings and
    EOS alike; vLLM's server adds ``stop_reason`` (the string matched; None or a token id for EOS),
    other servers nothing, and then it is unknown. ``cut_here``: a stop string past the four the
    API takes was found in the text, so a server given it would have stopped there."""
    if cut_here:
        return "stop"
    reason = getattr(choice, "finish_reason", None)
    if reason == "length":
        return "length"
    extra = getattr(choice, "model_extra", None) or {}
    if reason != "stop" or "stop_reason" not in extra:
        return None
    return "stop" if isinstance(extra["stop_reason"], str) else "eos"
