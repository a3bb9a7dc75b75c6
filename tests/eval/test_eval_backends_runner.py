"""Backends agree (hf vs jax, greedy), run → score → report works offline, a crashed run resumes
from the generation cache, and the CLI handles bad samples files."""

import json

import pytest

from eval.backends import BackendConfig, get_backend
from eval.config import EvalConfig, GenerationSettings
from eval.runner import run_eval

PROMPTS = ["def add(a, b):\n    return", "[PYTHON]\nassert f(1) == ??\n[/PYTHON]\n[MONOLOGUE]\n", "x"]


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory, tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=32256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=10000.0,
        bos_token_id=32013, eos_token_id=32014, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # larger weights so greedy paths are not near-ties
        for p in model.parameters():
            p.mul_(3.0) if p.dim() > 1 else None
    path = tmp_path_factory.mktemp("tiny_hf")
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


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


def test_cli_run_then_report_with_a_tiny_model(tiny_hf, tmp_path, capsys, sandbox):
    from semcoder_jax.cli.main import main

    out = tmp_path / "run"
    argv = ["eval", "run", "--benchmark", "cruxeval-o", "--backend", "hf", "--hf-dir", str(tiny_hf), "--dtype", "float32",
            "--limit", "3", "--out", str(out), "--name", "tiny", "generation.max_new_tokens=8"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["benchmark"] == "cruxeval-o" and summary["n_problems"] == 3 and 0.0 <= summary["pass@1"] <= 100.0
    assert len((out / "generations.jsonl").read_text().splitlines()) == 3
    assert main(["eval", "report", str(tmp_path), "--out", str(tmp_path / "table.md")]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "| tiny (first 3 problems) |" in table and (tmp_path / "table.png").exists()  # not a full-benchmark row
    assert main(["eval", "run", "--benchmark", "humaneval", "--backend", "hf"]) == 2
    assert "needs --checkpoint DIR or --hf-dir DIR" in capsys.readouterr().err

    # Several benchmarks with one model load: OUT/<benchmark> each, one summary line each.
    both = tmp_path / "both"
    argv = ["eval", "run", "--benchmark", "cruxeval-i,cruxeval-o", "--backend", "hf", "--hf-dir", str(tiny_hf),
            "--dtype", "float32", "--limit", "2", "--out", str(both), "generation.max_new_tokens=4"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [(r["benchmark"], r["n_problems"]) for r in lines] == [("cruxeval-i", 2), ("cruxeval-o", 2)]
    assert all((both / b / "results.json").exists() for b in ("cruxeval-i", "cruxeval-o"))
    assert main([*argv[:4], "--config", "x.yaml", *argv[4:]]) == 2
    assert "--config and --data belong to one benchmark" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "run", "--benchmark", "humaneval,nope", "--backend", "hf"])
    assert "unknown benchmark nope" in capsys.readouterr().err


class ScriptedBackend:
    """Answers with the reference (or junk) and counts what it is asked; can crash after k calls."""

    name = "scripted"

    def __init__(self, answers, crash_after=None):
        self.answers, self.crash_after = answers, crash_after
        self.calls, self.prompts = 0, 0

    def identity(self):
        return {"backend": "scripted", "model": "oracle"}

    def generate(self, prompts, *, n=1, temperature=0.0, top_p=1.0, max_new_tokens=512, stop=(), seed=0):
        if self.crash_after is not None and self.calls >= self.crash_after:
            raise RuntimeError("simulated crash")
        self.calls += 1
        self.prompts += len(prompts)
        return [[self.answers(p)] * n for p in prompts]

    def close(self):
        pass


def _humaneval_oracle():
    from eval.benchmarks import load_problems
    from semcoder_jax import prompts as P

    by_prompt = {}
    for p in load_problems("humaneval")[:6]:
        instr, prefix = P.nl2code_humaneval(p.prompt)
        by_prompt[P.nl2code_prompt(instr, prefix)] = p.canonical_solution + "```\njunk after the block"
    return lambda prompt: by_prompt.get(prompt, "    return None\n")


def test_run_score_report_offline(tmp_path, sandbox, gt_cache):
    from eval.report import bar_chart, collect, markdown_table

    cfg = EvalConfig(benchmark="humaneval", limit=6, generation=GenerationSettings(batch_size=4))
    res = run_eval(cfg, ScriptedBackend(_humaneval_oracle()), tmp_path / "he", model_name="oracle", sandbox=sandbox)
    assert res["summary"]["pass@1"] == 100.0 and res["summary"]["plus_pass@1"] == 100.0
    lines = (tmp_path / "he" / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 6 and "junk" not in json.loads(lines[0])["solution"]

    crux = EvalConfig(benchmark="cruxeval-o", limit=5)
    from eval.benchmarks import load_problems

    outputs = {p.code.replace("'", '"')[:60]: p.output for p in load_problems("cruxeval-o")[:5]}

    def crux_answer(prompt):
        from semcoder_jax.prompts import label_lines

        for code, out in outputs.items():
            if label_lines(code).split("\n")[0] in prompt:
                return f"monologue...\n[ANSWER]\nassert f(x) == {out.replace(chr(39), chr(34))}\n"
        return "[ANSWER]\nassert f(x) == None\n"

    res = run_eval(crux, ScriptedBackend(crux_answer), tmp_path / "crux", model_name="oracle", sandbox=sandbox)
    assert res["summary"]["pass@1"] >= 80.0  # quote round-trip may alter a literal holding both quote kinds
    assert json.loads((tmp_path / "crux" / "generations.json").read_text()).keys() == {f"sample_{i}" for i in range(5)}

    rows = collect([tmp_path])
    table = markdown_table(rows)
    assert "| oracle (first 6 problems) | 100.0 (100.0) |" in table and "SemCoder-S (paper) | 79.3 (74.4)" in table
    bar_chart(rows, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
    import shutil

    from semcoder_jax.errors import SemcoderError

    shutil.copytree(tmp_path / "he", tmp_path / "he-again")  # which of the two would the table show?
    with pytest.raises(SemcoderError, match=r"he/results.json and .*he-again/results.json both hold humaneval results of oracle"):
        collect([tmp_path])


def test_other_stop_strings_are_another_run_in_the_generation_cache(tmp_path, sandbox, monkeypatch):
    # Generations are stored already cut at the stop strings: new stops must not reuse the old cuts.
    import eval.runner as runner

    cfg = EvalConfig(benchmark="cruxeval-o", limit=2)
    backend = ScriptedBackend(lambda prompt: "[ANSWER]\nassert f(x) == 1\n[/ANSWER]")
    for _ in range(2):
        run_eval(cfg, backend, tmp_path, sandbox=sandbox)
    assert backend.prompts == 2  # the rerun came from the cache
    monkeypatch.setattr(runner, "stop_strings", lambda benchmark, style: ("[/ANSWER]", "\nassert"))
    run_eval(cfg, backend, tmp_path, sandbox=sandbox)
    assert backend.prompts == 4


def test_crashed_run_resumes_without_regenerating(tmp_path, sandbox, gt_cache):
    cfg = EvalConfig(benchmark="humaneval", limit=6, generation=GenerationSettings(batch_size=2, n=2, temperature=0.8, top_p=0.95))
    crashing = ScriptedBackend(_humaneval_oracle(), crash_after=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_eval(cfg, crashing, tmp_path, sandbox=sandbox)
    assert crashing.prompts == 4
    # a torn last line, as a kill mid-write leaves it
    with open(tmp_path / "generations.jsonl", "a") as f:
        f.write('{"key": "torn')
    resumed = ScriptedBackend(_humaneval_oracle())
    res = run_eval(cfg, resumed, tmp_path, sandbox=sandbox)
    assert resumed.prompts == 2  # only the 2 problems that were never generated
    assert res["summary"]["pass@1"] == 100.0
    again = ScriptedBackend(_humaneval_oracle())
    run_eval(cfg, again, tmp_path, sandbox=sandbox)
    assert again.calls == 0
    # other generation settings are another run: nothing reused
    other = ScriptedBackend(_humaneval_oracle())
    cfg.generation.temperature = 0.2
    run_eval(cfg, other, tmp_path, sandbox=sandbox)
    assert other.prompts == 6


def test_refinement_rounds_improve_and_never_show_the_reference(tmp_path, sandbox, gt_cache):
    from eval.benchmarks import load_problems

    problems = {p.task_id: p for p in load_problems("humaneval")[:3]}
    seen = []

    def answer(prompt):
        seen.append(prompt)
        if prompt.startswith("Debug and Refine"):
            for p in problems.values():
                if p.prompt.strip() in prompt:
                    return f"The bug is ...\n[Refined]\n```python\n{p.prompt}{p.canonical_solution}```\n"
        return "    return None\n"

    cfg = EvalConfig(benchmark="humaneval", limit=3, refine_rounds=2)
    res = run_eval(cfg, ScriptedBackend(answer), tmp_path, sandbox=sandbox)
    assert res["refine"]["pass@1"] == [0.0, 100.0, 100.0]
    assert res["refine"]["refined"] == [3, 0]
    refine_prompts = [s for s in seen if s.startswith("Debug and Refine")]
    assert len(refine_prompts) == 3 and all("### Failed Test\n```python\nassert " in s for s in refine_prompts)
    for p in problems.values():
        body = p.canonical_solution.strip()
        assert all(body not in s for s in seen)


def test_cli_score_json_and_bad_samples(tmp_path, capsys, sandbox, gt_cache):
    from eval.benchmarks import load_problems
    from semcoder_jax.cli.main import main

    probs = load_problems("humaneval")[:3]
    good = tmp_path / "s.jsonl"
    good.write_text("\n".join(json.dumps({"task_id": p.task_id, "completion": p.canonical_solution}) for p in probs) + "\n")
    assert main(["eval", "score", "--benchmark", "humaneval", "--samples", str(good), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["benchmark"] == "humaneval" and out["n_problems"] == 3
    assert out["pass@1"] == 100.0 and out["plus_pass@1"] == 100.0

    crux = load_problems("cruxeval-o")[:4]
    gen = tmp_path / "generations.json"
    gen.write_text(json.dumps({p.task_id: [p.output, "0"] for p in crux}))
    assert main(["eval", "score", "--benchmark", "cruxeval-o", "--samples", str(gen), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = 100 * sum((1 + (p.output == "0")) / 2 for p in crux) / len(crux)
    assert out["n_problems"] == 4 and out["pass@1"] == pytest.approx(expected)

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "x"}) + "\n" + json.dumps({"task_id": "HumanEval/999", "completion": "x"}) + "\n")
    assert main(["eval", "score", "--benchmark", "humaneval", "--samples", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:2" in err and "HumanEval/999" in err and len(err.strip().splitlines()) == 1
    bad.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "x"}) + "\n{not json\n")
    assert main(["eval", "score", "--benchmark", "humaneval", "--samples", str(bad)]) == 2
    assert "bad.jsonl:2: not valid JSON" in capsys.readouterr().err
    bad.write_text(json.dumps({"task_id": "HumanEval/0", "completion": 3}) + "\n")
    assert main(["eval", "score", "--benchmark", "humaneval", "--samples", str(bad)]) == 2
    assert "bad.jsonl:1: field completion must be a string" in capsys.readouterr().err
    bad.write_text(json.dumps({"sample_9999": ["1"]}))
    bad_json = tmp_path / "bad.json"
    bad.rename(bad_json)
    assert main(["eval", "score", "--benchmark", "cruxeval-i", "--samples", str(bad_json)]) == 2
    assert "sample_9999" in capsys.readouterr().err


def test_checkpoint_identity_names_the_step_loaded_so_newer_steps_are_not_served_from_cache(tmp_path):
    # `--checkpoint DIR` without `--step` loads the newest step: the cache identity must name that step,
    # or evaluating the same folder after more training would reuse the older step's generations.
    import numpy as np

    from eval.backends import model_source, pin_step
    from eval.cache import run_key
    from semcoder_jax.checkpoint import save_params
    from semcoder_jax.convert.mapping import param_mappings, set_path
    from semcoder_jax.model.config import get_model_config

    config = get_model_config("tiny", ["vocab_size=256", "hidden_size=32", "intermediate_size=48"])
    params: dict = {}
    for m in param_mappings(config):
        set_path(params, m.path, np.zeros(m.full_shape(config), np.float32))
    ckpt = tmp_path / "ckpt"
    save_params(ckpt, 1, params, config)
    first = pin_step(BackendConfig(checkpoint=str(ckpt)))
    assert first.step == 1 and model_source(first).endswith("@1")
    backend = get_backend("jax", BackendConfig(checkpoint=str(ckpt), dtype="float32"))
    assert backend.identity()["model"] == model_source(first)
    save_params(ckpt, 2, params, config)
    later = get_backend("jax", BackendConfig(checkpoint=str(ckpt), dtype="float32"))
    assert later.identity()["model"].endswith("@2")
    assert run_key(later.identity(), {}) != run_key(backend.identity(), {})
    assert model_source(pin_step(BackendConfig(checkpoint=str(ckpt), step=1))) == model_source(first)


def test_a_model_exported_again_into_the_same_folder_is_another_model(tmp_path):
    import os

    from eval.backends import model_identity

    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    weights = hf / "model.safetensors"
    weights.write_bytes(b"a" * 16)
    before = model_identity(BackendConfig(hf_dir=str(hf)))
    assert before["model"] == str(hf)  # results name the folder; the weights only key the cache
    assert model_identity(BackendConfig(hf_dir=str(hf))) == before  # the same files: cached generations apply
    weights.write_bytes(b"b" * 16)
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000))
    assert model_identity(BackendConfig(hf_dir=str(hf))) != before
    assert model_identity(BackendConfig(hf_dir="deepseek-ai/deepseek-coder-6.7b-base")) == {"model": "deepseek-ai/deepseek-coder-6.7b-base"}


def test_refinement_cache_is_keyed_by_the_refinement_token_budget(tmp_path, sandbox, gt_cache):
    # A rerun with a larger refine_max_new_tokens must not be served the truncated refinements of a
    # smaller budget from generations.jsonl.
    from eval.benchmarks import load_problems

    p = load_problems("humaneval")[0]
    budgets = []

    class Budgeted(ScriptedBackend):
        def generate(self, prompts, *, n=1, temperature=0.0, top_p=1.0, max_new_tokens=512, stop=(), seed=0):
            if prompts[0].startswith("Debug and Refine"):
                budgets.append(max_new_tokens)
            return super().generate(prompts, n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, stop=stop, seed=seed)

    def answer(prompt):
        if prompt.startswith("Debug and Refine"):
            code = f"{p.prompt}{p.canonical_solution}" if budgets[-1] >= 1024 else p.prompt + "    return"
            return f"[Refined]\n```python\n{code}```\n"
        return "    return None\n"

    cfg = EvalConfig(benchmark="humaneval", limit=1, refine_rounds=1, refine_max_new_tokens=16)
    assert run_eval(cfg, Budgeted(answer), tmp_path, sandbox=sandbox)["refine"]["pass@1"] == [0.0, 0.0]
    cfg.refine_max_new_tokens = 1024
    assert run_eval(cfg, Budgeted(answer), tmp_path, sandbox=sandbox)["refine"]["pass@1"] == [0.0, 100.0]
    assert budgets == [16, 1024]


def test_a_backend_returning_too_few_completions_is_an_error_not_empty_samples(tmp_path):
    # e.g. an OpenAI-compatible server that ignores `n`: the missing samples must not be scored as "".
    from semcoder_jax.errors import SemcoderError

    class OneOnly(ScriptedBackend):
        def generate(self, prompts, **kw):
            return [outs[:1] for outs in super().generate(prompts, **kw)]

    cfg = EvalConfig(benchmark="cruxeval-o", limit=2, generation=GenerationSettings(n=3, temperature=0.8))
    with pytest.raises(SemcoderError, match=r"fewer than n=3 completions for 2 of 2 prompts \(sample_0: 1, sample_1: 1\)"):
        run_eval(cfg, OneOnly(lambda p: "[ANSWER]\nassert f(x) == 1\n"), tmp_path)
    assert not (tmp_path / "results.json").exists()


def test_batch_size_zero_still_generates_every_problem(tmp_path):
    from eval.cache import GenerationCache
    from eval.runner import generate_cached

    backend = ScriptedBackend(lambda p: p.upper())
    prompts = {"a": "x", "b": "y"}
    out = generate_cached(backend, prompts, GenerationCache(tmp_path / "g.jsonl", "k"), n=1, temperature=0.0, top_p=1.0,
                          max_new_tokens=8, stop=(), seed=0, batch_size=0)
    assert out == {"a": ["X"], "b": ["Y"]} and backend.prompts == 2


def test_each_batch_gets_its_own_seed(tmp_path):
    """Row i of every batch must not reuse the same random stream (correlated samples across problems)."""
    from eval.cache import GenerationCache
    from eval.runner import generate_cached

    seeds = []

    class Seeded(ScriptedBackend):
        def generate(self, prompts, *, seed=0, **kw):
            seeds.append(seed)
            return super().generate(prompts, seed=seed, **kw)

    prompts = {t: t for t in "abcde"}
    generate_cached(Seeded(lambda p: p), prompts, GenerationCache(tmp_path / "g.jsonl", "k"), n=1, temperature=0.8,
                    top_p=1.0, max_new_tokens=8, stop=(), seed=7, batch_size=2)
    assert seeds == [7, 9, 11]


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
    assert seeds == {f"p{i}": 5 + i for i in range(8)}  # a seed per request, or every prompt draws the same noise
    assert "messages" in sent and "prompt" in state.bodies[0]

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
    assert seen["seeds"] == [4, 5, 6]  # vLLM seeds each request: a shared seed is shared noise
    backend.close()
    get_backend("vllm", BackendConfig(hf_dir=str(tiny_hf)))
    assert seen["kwargs"]["tokenizer"] == str(tiny_hf)


def test_refining_a_benchmark_without_refinement_fails_before_the_model_loads(monkeypatch, capsys):
    # `eval refine` on an execution-prediction benchmark used to generate and score everything, then
    # die with a traceback in refine() before results.json was written.
    import eval.backends
    from semcoder_jax.cli.main import main

    def no_backend(*a, **k):
        raise AssertionError("the backend must not be built for an invalid config")

    monkeypatch.setattr(eval.backends, "get_backend", no_backend)
    assert main(["eval", "refine", "--benchmark", "humaneval,cruxeval-o", "--backend", "openai", "--model", "m"]) == 2
    err = capsys.readouterr().err
    assert "cruxeval-o" in err and "refine" in err and len(err.strip().splitlines()) == 1


def test_no_two_sampler_calls_of_a_sampled_run_share_a_seed(tmp_path):
    """The same seed draws the same noise: across the runner's batches and the jax backend's
    sub-batches (n rows a prompt) every sampler call needs its own seed, or problems' samples correlate."""
    import types

    from eval.backends.jax_backend import JaxBackend
    from eval.cache import GenerationCache
    from eval.runner import generate_cached

    seeds = []

    class Sampler:
        def generate(self, ids, *, seed, **kw):
            seeds.append(seed)
            return [[1] for _ in ids]

    class Tokenizer:
        eos_token_id = 0

        def __call__(self, text):
            return types.SimpleNamespace(input_ids=[1])

        def decode(self, ids, skip_special_tokens=True):
            return "x"

    backend = JaxBackend.__new__(JaxBackend)
    backend.config, backend.tokenizer, backend.sampler = BackendConfig(batch_size=4), Tokenizer(), Sampler()
    backend.model_config = types.SimpleNamespace(eos_token_id=0)
    prompts = {f"t{i}": f"p{i}" for i in range(6)}
    out = generate_cached(backend, prompts, GenerationCache(tmp_path / "g.jsonl", "k"), n=3, temperature=0.8, top_p=1.0,
                          max_new_tokens=4, stop=(), seed=0, batch_size=2)
    assert out == {t: ["x"] * 3 for t in prompts}
    assert len(seeds) == 6 and len(set(seeds)) == 6, seeds


def test_a_different_tokenizer_is_a_different_run_in_the_generation_cache():
    # A rerun with --tokenizer after a run with the wrong (default) one must not be served its generations.
    import types

    from eval.backends import model_identity
    from eval.backends.jax_backend import JaxBackend
    from eval.cache import run_key

    def identity(tokenizer):
        backend = JaxBackend.__new__(JaxBackend)
        backend.config = BackendConfig(checkpoint="/c", step=1, tokenizer=tokenizer)
        backend.source = model_identity(backend.config)
        backend.model_config = types.SimpleNamespace(dtype="bfloat16")
        return backend.identity()

    keys = {run_key(identity(t), {}) for t in (None, "/tok/a", "/tok/b")}
    assert len(keys) == 3


def test_refinement_prompt_is_the_pyx_r_training_format(tmp_path, sandbox, gt_cache):
    # The refine model is trained on PYX-R records in the layout of SemCoder's run_refine_evalplus.py
    # ("### Problem / ### Buggy Solution / ### Failed Test" with an assertion); evaluation must ask in that format.
    from eval.benchmarks import load_problems
    from semcoder_jax import prompts as P

    p = load_problems("humaneval")[0]
    seen = []

    def answer(prompt):
        seen.append(prompt)
        return "    return None\n"

    cfg = EvalConfig(benchmark="humaneval", limit=1, refine_rounds=1)
    run_eval(cfg, ScriptedBackend(answer), tmp_path, sandbox=sandbox)
    code = json.loads((tmp_path / "samples.jsonl").read_text())["solution"]
    failed = "assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True"
    instruction = (f"### Problem\n{p.prompt.strip()}\n\n### Buggy Solution\n```python\n{code.strip()}\n```\n\n"
                   f"### Failed Test\n```python\n{failed}\n```\n")
    assert seen[1] == P.REFINE_TEMPLATE.format(instruction=instruction, response="")


@pytest.mark.parametrize("fence", ["```python", "```py", "```Python ", "```"])
def test_refined_code_is_read_whatever_the_fence_language_tag(fence):
    from eval.refine import extract_refined

    text = f"The bug ...\n[Refined]\n{fence}\ndef f(x):\n    return x + 1\n```\n"
    assert extract_refined(text) == "def f(x):\n    return x + 1"


def test_refinement_shows_the_failed_test_as_python_the_model_could_run():
    """LCB inputs are JSON lines (true, null) and LeetCode methods live on Solution; shortened
    inputs cannot be spelled as a call and stay a report."""
    import types

    from eval.refine import failure_text

    lcb = types.SimpleNamespace(func_name="pick")
    code = "class Solution:\n    def pick(self, xs, flag, other):\n        return xs[0]\n"
    detail = {"inputs": "[1, 2]\ntrue\nnull", "expected": "2", "output": "1"}
    assert failure_text("lcb-lite", lcb, code, detail) == "assert Solution().pick([1, 2], True, None) == 2"
    he = types.SimpleNamespace(entry_point="f")
    long = {"failure": {"input": "[[1, 2, ... , 9]]", "expected": "3", "output": "1"}}
    assert failure_text("humaneval", he, "def f(xs): return 1", long).splitlines()[0] == "Input: [[1, 2, ... , 9]]"
