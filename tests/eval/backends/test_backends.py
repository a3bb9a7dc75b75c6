"""Backends: hf and jax agree greedily, sampling keeps the whole vocabulary, OpenAI and vLLM wiring."""

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
    (transformers 4.x's default is top_k=50): every backend samples from the same distribution."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=32256, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      max_position_embeddings=64, bos_token_id=32013, eos_token_id=32014, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(1e-3)  # a next-token distribution close to uniform, without ties
    model.generation_config.top_k = 50
    model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer.save_pretrained(tmp_path)
    for name in ("hf", "jax"):
        backend = get_backend(name, BackendConfig(hf_dir=str(tmp_path), dtype="float32", batch_size=1))
        [samples] = backend.generate(["x"], n=100, temperature=1.0, top_p=1.0, max_new_tokens=1, seed=3)
        assert len(set(samples)) > 60, (name, len(set(samples)))


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
        out = backend.generate(prompts, n=2, temperature=0.7, max_new_tokens=9, stop=stops, seed=5)
        assert out == [[f"p{i}|0 A", f"p{i}|1 A"] for i in range(8)]
        assert backend.identity()["chat"] is chat
    assert state.max_active == 4
    sent = state.bodies[-1]
    assert sent["stop"] == stops[:4] and sent["n"] == 2 and sent["max_tokens"] == 9
    seeds = {b.get("prompt") or b["messages"][-1]["content"]: b["seed"] for b in state.bodies[-8:]}
    assert seeds == {f"p{i}": 5 + 2 * i for i in range(8)}  # a seed per request (i * n apart), or every prompt draws the same noise
    assert "messages" in sent and "prompt" in state.bodies[0]

    greedy = get_backend("openai", BackendConfig(base_url=url, model="m", batch_size=4, max_retries=0))
    assert greedy.generate(["g"], n=3, max_new_tokens=9, stop=stops) == [["g|0 A"] * 3]  # were g|0, g|1, g|2
    assert state.bodies[-1]["n"] == 1  # one greedy choice repeated, as every backend does

    state.errors = [503, 500]
    retrying = get_backend("openai", BackendConfig(base_url=url, model="m", batch_size=1, max_retries=2))
    assert retrying.generate(["q"], max_new_tokens=4) == [["q|0 A\nB\nC\nD\nE"]]
    state.errors = [400]
    with pytest.raises(SemcoderError, match="request for prompt 0 failed.*BadRequestError"):
        retrying.generate(["a", "b"], max_new_tokens=4)


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
            out = lambda text: types.SimpleNamespace(text=text)  # noqa: E731
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
    assert backend.generate(["a"], n=2, temperature=0.8, top_p=0.9, seed=4) == [["a:0", "a:1"]]
    assert (seen["params"].n, seen["params"].top_p, seen["params"].seed) == (2, 0.9, 4)
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
    assert get_backend("hf", BackendConfig(checkpoint=str(ckpt), tokenizer=str(tiny_hf))).generate(PROMPTS, **kw) == want
