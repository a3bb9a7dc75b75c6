"""Backends: hf and jax agree greedily, sampling keeps the whole vocabulary, OpenAI and vLLM wiring."""

import contextlib

import pytest
from eval.backends import BackendConfig, get_backend


PROMPTS = ["def add(a, b):\n    return", "[PYTHON]\nassert f(1) == ??\n[/PYTHON]\n[MONOLOGUE]\n", "x"]


def test_hf_and_jax_backends_give_identical_greedy_generations(tiny_hf, tmp_path):
    from semcoder_jax.convert import hf_to_orbax

    kw = dict(n=1, temperature=0.0, max_new_tokens=16, stop=("\n\n\n",))
    hf = get_backend("hf", BackendConfig(hf_dir=str(tiny_hf), dtype="float32", batch_size=2))
    hf_out = hf.generate(PROMPTS, **kw)
    jx = get_backend("jax", BackendConfig(hf_dir=str(tiny_hf), dtype="float32", batch_size=2))
    jax_out = jx.generate(PROMPTS, **kw)
    assert hf_out == jax_out
    assert any(o[0] for o in hf_out)
    # both say how each ended and how many tokens they generated, alike
    ends = [(o[0].finish_reason, o[0].num_tokens) for o in hf_out]
    assert ends == [(o[0].finish_reason, o[0].num_tokens) for o in jax_out]
    assert all(r == "stop" and 0 < k <= 16 or (r, k) == ("length", 16) for r, k in ends), ends
    ckpt = tmp_path / "ckpt"
    hf_to_orbax(tiny_hf, ckpt)
    from_ckpt = get_backend("jax", BackendConfig(checkpoint=str(ckpt), tokenizer=str(tiny_hf), dtype="float32"))
    assert from_ckpt.generate(PROMPTS, **kw) == hf_out
    # --checkpoint with the hf (or vllm) backend converts to an HF folder in a temporary directory
    hf_from_ckpt = get_backend("hf", BackendConfig(checkpoint=str(ckpt), dtype="float32", batch_size=2))
    assert hf_from_ckpt.generate(PROMPTS, **kw) == hf_out


def test_hf_samples_of_a_prompt_depend_only_on_its_seed_not_on_batching(tiny_hf):
    """Prompt i samples with seed ``seed + i * n`` (sample j: ``+ j``) as the other backends, whatever
    the batch size and the prompts beside it: the generation cache keys on neither."""
    kw = dict(n=2, temperature=1.0, top_p=0.9, max_new_tokens=8)
    by_bs = {
        bs: get_backend("hf", BackendConfig(hf_dir=str(tiny_hf), dtype="float32", batch_size=bs)).generate(PROMPTS, seed=7, **kw)
        for bs in (1, 3)
    }
    assert by_bs[1] == by_bs[3]
    hf = get_backend("hf", BackendConfig(hf_dir=str(tiny_hf), dtype="float32", batch_size=3))
    assert [hf.generate([p], seed=7 + i * 2, **kw)[0] for i, p in enumerate(PROMPTS)] == by_bs[3]
    assert len({s for samples in by_bs[3] for s in samples}) == 6  # sampled, each row with its own noise


def test_sampling_keeps_the_whole_vocabulary_in_every_backend(tmp_path, tokenizer):
    """Temperature/top-p sampling means no top-k cut, whatever the model's generation config says
    (transformers 4.x's default is top_k=50): every backend samples from the same distribution.
    ``top_k=5`` cuts it to the five tokens the model favours, in every backend alike."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32256, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      max_position_embeddings=64, bos_token_id=32013, eos_token_id=32014, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    favoured = tokenizer.convert_tokens_to_ids(list("abcde"))
    with torch.no_grad():
        model.lm_head.weight.mul_(1e-3)  # a next-token distribution close to uniform, without ties ...
        h = model.model(torch.tensor([tokenizer("x").input_ids])).last_hidden_state[0, -1]
        model.lm_head.weight[favoured] += 5 * h / h.norm() ** 2  # ... but for five logits 5 higher (2% of it)
    model.generation_config.top_k = 50
    model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer.save_pretrained(tmp_path)
    for name in ("hf", "jax"):
        backend = get_backend(name, BackendConfig(hf_dir=str(tmp_path), dtype="float32", batch_size=128))
        [samples] = backend.generate(["x"], n=100, temperature=1.0, top_p=1.0, max_new_tokens=1, seed=3)
        assert len(set(samples)) > 60, (name, len(set(samples)))
        [cut] = backend.generate(["x"], n=100, temperature=1.0, top_k=5, max_new_tokens=1, seed=3)
        assert set(cut) == set("abcde"), (name, set(cut))

def test_openai_backend_completions_and_chat_against_a_local_server(llm_server, monkeypatch):
    """Replies come back in prompt order and choice order, cut at every stop string (the API takes
    four), with ``batch_size`` requests in flight; retries are the client's; a failing request names its prompt."""
    import time

    from semcoder_jax.errors import SemcoderError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    deadline = time.monotonic() + 20

    def reply(messages, n):
        while state.max_active < 4 and time.monotonic() < deadline:  # however slowly the client's threads start
            time.sleep(0.01)
        return [f"{messages[-1]['content']}|{i} A\nB\nC\nD\nE" for i in range(n)]

    state, url = llm_server(reply)
    state.delay_s = 0.2  # time for a fifth request in flight, if there were one, to arrive
    stops = ["\nE", "\nD", "\nC", "\nX", "\nB"]  # the fifth is cut on our side
    prompts = [f"p{i}" for i in range(8)]
    for chat in (False, True):
        backend = get_backend("openai", BackendConfig(base_url=url, model="m", chat=chat, batch_size=4, max_retries=0))
        rows = []  # each prompt's reply reported as it comes (a progress bar)
        out = backend.generate(prompts, n=2, temperature=0.7, max_new_tokens=9, stop=stops, seed=5, on_row=lambda: rows.append(1))
        assert out == [[f"p{i}|0 A", f"p{i}|1 A"] for i in range(8)] and len(rows) == 8
        assert backend.identity()["chat"] is chat
        assert {(c.finish_reason, c.num_tokens) for o in out for c in o} == {("stop", None)}  # cut here; n=2: usage is per request
    assert state.max_active == 4
    sent = state.bodies[-1]
    assert sent["stop"] == stops[:4] and sent["n"] == 2 and sent["max_tokens"] == 9
    seeds = {b.get("prompt") or b["messages"][-1]["content"]: b["seed"] for b in state.bodies[-8:]}
    assert seeds == {f"p{i}": 5 + 2 * i for i in range(8)}  # a seed per request (i * n apart), or every prompt draws the same noise
    assert "messages" in sent and "prompt" in state.bodies[0]
    # off, said explicitly, so a vLLM server does not fill them from the model's generation_config.json
    assert all((b["top_k"], b["min_p"], b["repetition_penalty"]) == (-1, 0.0, 1.0) for b in state.bodies)

    greedy = get_backend("openai", BackendConfig(base_url=url, model="m", batch_size=4, max_retries=0))
    [g] = greedy.generate(["g"], n=3, max_new_tokens=9, stop=stops)
    assert g == ["g|0 A"] * 3  # were g|0, g|1, g|2
    assert (g[0].finish_reason, g[0].num_tokens) == ("stop", 1)  # cut here at "\nB"; usage counts the one choice
    assert state.bodies[-1]["n"] == 1  # one greedy choice repeated, as every backend does
    for chat in (False, True):  # on: top_k at the body's top level, where vLLM's server reads it
        top_k = get_backend("openai", BackendConfig(base_url=url, model="m", chat=chat, max_retries=0))
        assert top_k.generate(["k"], n=2, temperature=0.7, top_k=40) == [["k|0 A\nB\nC\nD\nE", "k|1 A\nB\nC\nD\nE"]]
        assert state.bodies[-1]["top_k"] == 40 and ("messages" in state.bodies[-1]) is chat
        top_k.generate(["k"], n=2, temperature=0.0, top_k=40)
        assert state.bodies[-1]["top_k"] == -1  # greedy: no cut, as the other backends

    state.errors = [503, 500]
    retrying = get_backend("openai", BackendConfig(base_url=url, model="m", batch_size=1, max_retries=2))
    [[q]] = retrying.generate(["q"], max_new_tokens=4)
    assert q == "q|0 A\nB\nC\nD\nE" and (q.finish_reason, q.num_tokens) == (None, 1)  # "stop": a stop string or EOS
    state.errors = [400]
    with pytest.raises(SemcoderError, match=f"request for prompt 0 to {url}/? failed.*BadRequestError"):
        retrying.generate(["a", "b"], max_new_tokens=4)


@contextlib.contextmanager
def _refusing_server(status: int, payload: dict):
    """The base URL of a local server answering every POST with ``status`` and the JSON ``payload``."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = json.dumps(payload).encode()

    class Refusing(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_openai_backend_sends_vllm_fields_to_any_server_but_openais(llm_server, monkeypatch):
    """vLLM's server fills top_k, min_p and repetition_penalty a request leaves out from the model's
    generation_config.json (``--generation-config auto``, its default since 0.8), so they go off
    explicitly; OpenAI's API refuses them, so it gets ``top_k`` only when asked for. The identity
    says which, so generations a server drew with its model's defaults are not reused."""
    from eval.backends.openai_backend import is_openai_api
    from semcoder_jax.errors import SemcoderError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert is_openai_api("api.openai.com") and is_openai_api("me.openai.azure.com")
    assert not any(map(is_openai_api, ("127.0.0.1", "localhost", "notopenai.com", "openai.com.example.org")))
    openai_api = get_backend("openai", BackendConfig(base_url="https://api.openai.com/v1", model="m"))
    local = get_backend("openai", BackendConfig(base_url="http://127.0.0.1:8000/v1", model="m"))
    assert "pinned" not in openai_api.identity() and local.identity()["pinned"] == ["top_k", "min_p", "repetition_penalty"]

    state, url = llm_server(lambda messages, n: ["x"] * n)
    as_openai = get_backend("openai", BackendConfig(base_url=url, model="m", max_retries=0, vllm_fields=False))
    as_openai.generate(["a"], n=2, temperature=0.7)
    assert not {"top_k", "min_p", "repetition_penalty"} & set(state.bodies[-1])
    as_openai.generate(["a"], n=2, temperature=0.7, top_k=40)
    assert state.bodies[-1]["top_k"] == 40 and not {"min_p", "repetition_penalty"} & set(state.bodies[-1])

    refusal = {"object": "error", "message": "top_k must be 0 (disable), or at least 1, got -1.",  # as vLLM's refuses 0
               "type": "BadRequestError", "code": 400}
    with _refusing_server(400, refusal) as url:
        refused = get_backend("openai", BackendConfig(base_url=url, model="m", max_retries=0))
        with pytest.raises(SemcoderError, match=r"BadRequestError.*top_k must be.*carried vLLM's sampling fields "
                                                r"\(top_k, min_p, repetition_penalty\).*refused one: give --vllm-fields off"):
            refused.generate(["a"], max_new_tokens=4)


def test_openai_backend_connection_error_names_the_url():
    """"Connection error." alone left the user guessing which server was asked (--base-url, else
    OPENAI_BASE_URL, else OpenAI's)."""
    import re
    import socket

    from semcoder_jax.errors import SemcoderError

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    backend = get_backend("openai", BackendConfig(base_url=url, model="m", batch_size=1, max_retries=0))
    with pytest.raises(SemcoderError) as info:
        backend.generate(["a"], max_new_tokens=4)
    message = str(info.value)
    assert re.search(rf"request for prompt 0 to {re.escape(url)}/? failed .*APIConnectionError: Connection error\. "
                     r"\(.*refused.*\); check --base-url$", message, re.IGNORECASE), message


def test_vllm_backend_wiring_with_a_stand_in_vllm(tiny_hf, tmp_path, monkeypatch):
    """vLLM needs a GPU; a stand-in module checks what the backend hands it: the converted folder and
    a tokenizer (the shipped one when the checkpoint carries none), and greedy = one sample repeated."""
    import sys
    import types

    from semcoder_jax import DEFAULT_TOKENIZER_DIR
    from semcoder_jax.convert import hf_to_orbax

    seen = {}

    class LLM:
        def __init__(self, **kwargs):
            seen["kwargs"] = kwargs
            seen["files"] = sorted(p.name for p in __import__("pathlib").Path(kwargs["model"]).iterdir())

        def generate(self, prompts, params):
            assert len(params) == len(prompts)
            seen["params"] = params[0]
            seen["seeds"] = [p.seed for p in params]
            out = lambda text: types.SimpleNamespace(text=text, finish_reason="length", stop_reason=None, token_ids=[1, 2])  # noqa: E731
            return [types.SimpleNamespace(outputs=[out(f"{p}:{i}") for i in range(sp.n)]) for p, sp in zip(prompts, params)]

    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = LLM, lambda **kw: types.SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    ckpt = tmp_path / "ckpt"
    hf_to_orbax(tiny_hf, ckpt)
    backend = get_backend("vllm", BackendConfig(checkpoint=str(ckpt), dtype="float32"))
    assert seen["kwargs"]["tokenizer"] == str(DEFAULT_TOKENIZER_DIR)
    assert "config.json" in seen["files"] and any(f.endswith(".safetensors") for f in seen["files"])
    assert backend.generate(["a", "b"], n=3, temperature=0.0, stop=["\n"]) == [["a:0"] * 3, ["b:0"] * 3]
    assert seen["params"].n == 1 and seen["params"].stop == ["\n"]
    [[first, *_]] = backend.generate(["a"], n=3, temperature=0.0)
    assert (first.finish_reason, first.num_tokens) == ("length", 2)
    assert backend.generate(["a"], n=2, temperature=0.8, top_p=0.9, seed=4) == [["a:0", "a:1"]]
    assert (seen["params"].n, seen["params"].top_p, seen["params"].seed) == (2, 0.9, 4)
    assert seen["params"].top_k == -1  # off: vLLM 0.8.5 and older refuse 0, later ones take -1 as off still
    # every sampling field given: none of the model's generation_config.json defaults can apply
    assert (seen["params"].min_p, seen["params"].repetition_penalty) == (0.0, 1.0)
    backend.generate(["a"], n=2, temperature=0.8, top_k=40)
    assert seen["params"].top_k == 40
    backend.generate(["a"], n=2, temperature=0.0, top_k=40)
    assert seen["params"].top_k == -1  # greedy: no cut, as top_p=1
    backend.generate(["a", "b", "c"], n=2, temperature=0.8, seed=4)
    assert seen["seeds"] == [4, 6, 8]  # vLLM seeds each request (i * n apart): a shared seed is shared noise
    backend.close()
    get_backend("vllm", BackendConfig(hf_dir=str(tiny_hf)))
    assert seen["kwargs"]["tokenizer"] == str(tiny_hf)


def test_a_dtype_torch_does_not_know_is_an_error_naming_it(tmp_path):
    """`--dtype bf16` ended the hf backend with an AttributeError traceback (after any conversion)."""
    from semcoder_jax.errors import SemcoderError

    with pytest.raises(SemcoderError, match=r"--dtype 'bf16' is not a torch dtype"):
        get_backend("hf", BackendConfig(hf_dir=str(tmp_path), dtype="bf16"))


def test_an_hf_dir_that_is_no_model_is_one_line_naming_it(tmp_path, monkeypatch):
    """A folder without a model, or a hub id offline, ended `eval run --backend hf` in a transformers traceback."""
    from semcoder_jax.errors import SemcoderError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SemcoderError, match=r"cannot load model '.*empty'"):
        get_backend("hf", BackendConfig(hf_dir=str(tmp_path / "empty"), dtype="float32"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SemcoderError, match=r"cannot load model '.*empty'"):
        get_backend("hf", BackendConfig(hf_dir=str(tmp_path / "empty"), dtype="float32"))


def test_hf_backend_converts_a_checkpoint_at_the_dtype_it_computes_in(tiny_hf, tmp_path):
    """Without --dtype the hf backend computes in float32 on CPU, but converted a checkpoint to
    bfloat16 first: its weights were rounded, so it wrote other text than the same model read from
    an HF folder (or by the jax backend), under a cache identity that says float32."""
    from semcoder_jax.convert import hf_to_orbax

    ckpt = tmp_path / "ckpt"
    hf_to_orbax(tiny_hf, ckpt)
    kw = dict(n=1, temperature=0.0, max_new_tokens=24)
    want = get_backend("hf", BackendConfig(hf_dir=str(tiny_hf))).generate(PROMPTS, **kw)
    converted = get_backend("hf", BackendConfig(checkpoint=str(ckpt), tokenizer=str(tiny_hf)))
    assert converted.generate(PROMPTS, **kw) == want
    # generations cached before this fix carry no revision 2 in their key: they are not reused
    ident = converted.identity()
    assert ident["revision"] >= 2 and ident["dtype"] == "torch.float32" and {"weights", "tokenizer_files", "transformers", "torch"} <= set(ident)


@pytest.mark.slow  # loads a model: 2 to 4 s
def test_hf_backend_reports_eos_stop_and_length_with_the_tokens_it_generated(tiny_hf):
    """LCB-Exec reads an answer cut by the token limit otherwise than one closed by its stop
    string, and the throughput benchmark counts generated tokens: both come from the backend."""
    import torch

    hf = get_backend("hf", BackendConfig(hf_dir=str(tiny_hf), dtype="float32", batch_size=2))
    ids = hf.tokenizer("x", return_tensors="pt").input_ids
    with torch.no_grad():
        row = hf.model.generate(ids, max_new_tokens=6, do_sample=False, top_k=None, pad_token_id=0)[0, ids.shape[1]:].tolist()
    k = next(j for j in range(1, 6) if row[j] not in row[:j])  # a token first generated at step k
    [[free]] = hf.generate(["x"], max_new_tokens=6)
    assert (free.finish_reason, free.num_tokens) == ("length", 6)
    hf.eos_ids = [row[k]]
    [[ended]] = hf.generate(["x"], max_new_tokens=6)
    assert (ended.finish_reason, ended.num_tokens) == ("eos", k + 1)  # EOS counted
    assert ended == hf.tokenizer.decode(row[:k], skip_special_tokens=True)
    hf.eos_ids = [hf.tokenizer.eos_token_id]
    stop = free[len(free) // 2:][:2] or free
    [[stopped]] = hf.generate(["x"], max_new_tokens=6, stop=[stop])
    assert stopped.finish_reason == "stop" and stopped == free[: free.find(stop)]


def test_jax_backend_tells_eos_from_the_token_limit_and_the_context(tmp_path):
    """The sampler drops EOS: a row shorter than its limit ended there; the limit is the context's
    room where that is less than max_new_tokens."""
    import types

    from eval.backends.jax_backend import JaxBackend

    class Sampler:
        def generate(self, ids, *, max_new_tokens, **kw):
            return [[5] * lengths[len(i)] for i in ids]

    class Tokenizer:
        eos_token_id = 0

        def __call__(self, text):
            return types.SimpleNamespace(input_ids=[1] * len(text))

        def decode(self, ids, skip_special_tokens=True):
            return "ab" * len(ids)

    lengths = {1: 8, 2: 3, 60: 4}  # prompt length -> tokens the sampler returns
    backend = JaxBackend.__new__(JaxBackend)
    backend.config, backend.tokenizer, backend.sampler = BackendConfig(batch_size=4), Tokenizer(), Sampler()
    backend.model_config = types.SimpleNamespace(eos_token_id=0, max_position_embeddings=64)
    out = backend.generate(["x", "xy", "x" * 60], max_new_tokens=8)
    assert [(o[0].finish_reason, o[0].num_tokens) for o in out] == [("length", 8), ("eos", 4), ("length", 4)]
    [[cut]] = backend.generate(["x"], max_new_tokens=8, stop=["ba"])
    assert (cut, cut.finish_reason) == ("a", "stop")


def test_vllm_and_openai_finish_reasons_name_eos_apart_from_stop_strings():
    """vLLM's "stop" covers EOS and stop strings; its ``stop_reason`` tells them apart (None or a
    token id for EOS). Other OpenAI servers send only "stop": unknown, so the text decides."""
    import types

    from openai.types import CompletionChoice

    from eval.backends.openai_backend import finish_reason
    from eval.backends.vllm_backend import _completion

    def out(reason, stop_reason=None, tokens=(1, 2, 3)):
        return types.SimpleNamespace(text="t", finish_reason=reason, stop_reason=stop_reason, token_ids=list(tokens))

    got = [_completion(o) for o in (out("stop", "[/ANSWER]"), out("stop"), out("stop", 32021), out("length"), out("abort"))]
    assert [(c.finish_reason, c.num_tokens) for c in got] == [("stop", 3), ("eos", 3), ("eos", 3), ("length", 3), (None, 3)]

    def choice(reason, **extra):
        return CompletionChoice.model_validate({"index": 0, "text": "t", "finish_reason": reason, "logprobs": None, **extra})

    assert finish_reason(choice("length")) == "length"
    assert finish_reason(choice("stop")) is None  # a stop string or EOS: the server does not say
    assert finish_reason(choice("stop", stop_reason="\n")) == "stop"
    assert finish_reason(choice("stop", stop_reason=None)) == "eos"
    assert finish_reason(choice("length"), cut_here=True) == "stop"  # a fifth stop string, cut on our side


@pytest.mark.slow  # loads a model: 2 to 4 s
def test_generation_benchmark_counts_the_tokens_the_backend_generated(tiny_hf, monkeypatch, capsys):
    """benchmarks/eval_generation.py re-tokenised the completion text, which is not what was
    generated (a cut at a stop string, decoding that does not invert); it now sums the backend's counts."""
    import importlib.util
    import sys
    from pathlib import Path

    from eval.backends import Completion

    bench = Path(__file__).resolve().parents[3] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))
    spec = importlib.util.spec_from_file_location("eval_generation_bench", bench / "eval_generation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generated_tokens([[Completion("a", "eos", 3)], [Completion("b", "length", 4)]])[0] == 7
    assert module.generated_tokens([[Completion("a", "eos", 3)], ["b"]]) == (None, "the backend reports no token counts")
    monkeypatch.setattr(sys, "argv", ["eval_generation.py", "--hf-dir", str(tiny_hf), "--backends", "hf", "--prompts", "2",
                                      "--max-new-tokens", "5", "--batch-size", "2", "--dtype", "float32"])
    module.main()
    line = capsys.readouterr().out.splitlines()[0]
    assert "prompts=2 new_tokens=10 " in line and "(generated tokens as the backend counts them, EOS included)" in line, line


def test_a_server_refusing_the_vllm_fields_with_422_gets_the_way_out_too(monkeypatch):
    """Servers built on pydantic with unknown fields forbidden answer 422, not 400: the error said
    nothing of the fields the backend had added, nor of --vllm-fields off."""
    from semcoder_jax.errors import SemcoderError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    forbidden = {"detail": [{"type": "extra_forbidden", "loc": ["body", "top_k"], "msg": "Extra inputs are not permitted",
                             "input": -1}]}
    with _refusing_server(422, forbidden) as url:
        backend = get_backend("openai", BackendConfig(base_url=url, model="m", max_retries=0))
        with pytest.raises(SemcoderError, match=r"UnprocessableEntityError.*extra_forbidden.*carried vLLM's sampling fields"
                                                r".*refused one: give --vllm-fields off"):
            backend.generate(["a"], max_new_tokens=4)
