"""run -> score -> report offline, the generation cache across crashes, seeds per call."""

import json
import typing

import pytest
from eval.backends import BackendConfig
from eval.config import EvalConfig, GenerationSettings
from eval.runner import run_eval


def test_run_score_report_offline(tmp_path, sandbox, gt_cache, scripted_backend, humaneval_oracle):
    from eval.report import bar_chart, collect, markdown_table

    cfg = EvalConfig(benchmark="humaneval", limit=6, generation=GenerationSettings(batch_size=4))
    res = run_eval(cfg, scripted_backend(humaneval_oracle), tmp_path / "he", model_name="oracle", sandbox=sandbox)
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

    res = run_eval(crux, scripted_backend(crux_answer), tmp_path / "crux", model_name="oracle", sandbox=sandbox)
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


def test_other_stop_strings_are_another_run_in_the_generation_cache(tmp_path, sandbox, monkeypatch, scripted_backend):
    # Generations are stored already cut at the stop strings: new stops must not reuse the old cuts.
    import eval.runner as runner

    cfg = EvalConfig(benchmark="cruxeval-o", limit=2)
    backend = scripted_backend(lambda prompt: "[ANSWER]\nassert f(x) == 1\n[/ANSWER]")
    for _ in range(2):
        run_eval(cfg, backend, tmp_path, sandbox=sandbox)
    assert backend.prompts == 2  # the rerun came from the cache
    monkeypatch.setattr(runner, "stop_strings", lambda benchmark, style: ("[/ANSWER]", "\nassert"))
    run_eval(cfg, backend, tmp_path, sandbox=sandbox)
    assert backend.prompts == 4


def test_crashed_run_resumes_without_regenerating(tmp_path, sandbox, gt_cache, scripted_backend, humaneval_oracle):
    cfg = EvalConfig(benchmark="humaneval", limit=6, generation=GenerationSettings(batch_size=2, n=2, temperature=0.8, top_p=0.95))
    crashing = scripted_backend(humaneval_oracle, crash_after=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_eval(cfg, crashing, tmp_path, sandbox=sandbox)
    assert crashing.prompts == 4
    # a torn last line, as a kill mid-write leaves it
    with open(tmp_path / "generations.jsonl", "a") as f:
        f.write('{"key": "torn')
    resumed = scripted_backend(humaneval_oracle)
    res = run_eval(cfg, resumed, tmp_path, sandbox=sandbox)
    assert resumed.prompts == 2  # only the 2 problems that were never generated
    assert res["summary"]["pass@1"] == 100.0
    again = scripted_backend(humaneval_oracle)
    run_eval(cfg, again, tmp_path, sandbox=sandbox)
    assert again.calls == 0
    # other generation settings are another run: nothing reused
    other = scripted_backend(humaneval_oracle)
    cfg.generation.temperature = 0.2
    run_eval(cfg, other, tmp_path, sandbox=sandbox)
    assert other.prompts == 6


def test_a_backend_returning_too_few_completions_is_an_error_not_empty_samples(tmp_path, scripted_backend):
    # e.g. an OpenAI-compatible server that ignores `n`: the missing samples must not be scored as "".
    from semcoder_jax.errors import SemcoderError

    class OneOnly(scripted_backend):
        def generate(self, prompts, **kw):
            return [outs[:1] for outs in super().generate(prompts, **kw)]

    cfg = EvalConfig(benchmark="cruxeval-o", limit=2, generation=GenerationSettings(n=3, temperature=0.8))
    with pytest.raises(SemcoderError, match=r"fewer than n=3 completions for 2 of 2 prompts \(sample_0: 1, sample_1: 1\)"):
        run_eval(cfg, OneOnly(lambda p: "[ANSWER]\nassert f(x) == 1\n"), tmp_path)
    assert not (tmp_path / "results.json").exists()


def test_a_backend_error_names_the_tasks_of_its_batch(tmp_path, scripted_backend):
    """The JAX sampler refuses a prompt filling the context as "prompt 1" of its batch, which named no task."""
    from eval.cache import GenerationCache
    from eval.runner import generate_cached
    from semcoder_jax.errors import SemcoderError

    class TooLong(scripted_backend):
        def generate(self, prompts, **kw):
            raise SemcoderError("generate: prompt 1 has 9 tokens: no room for any of max_new_tokens=8")

    with pytest.raises(SemcoderError, match=r"generating tasks a, b \(in this order\): generate: prompt 1 has 9 tokens"):
        generate_cached(TooLong(str.upper), {"a": "x", "b": "y"}, GenerationCache(tmp_path / "g.jsonl", "k"), n=1,
                        temperature=0.0, top_p=1.0, max_new_tokens=8, stop=(), seed=0, batch_size=2)


def test_batch_size_zero_still_generates_every_problem(tmp_path, scripted_backend):
    from eval.cache import GenerationCache
    from eval.runner import generate_cached

    backend = scripted_backend(lambda p: p.upper())
    prompts = {"a": "x", "b": "y"}
    out = generate_cached(backend, prompts, GenerationCache(tmp_path / "g.jsonl", "k"), n=1, temperature=0.0, top_p=1.0,
                          max_new_tokens=8, stop=(), seed=0, batch_size=0)
    assert out == {"a": ["X"], "b": ["Y"]} and backend.prompts == 2


def test_each_batch_gets_its_own_seed(tmp_path, scripted_backend):
    """Row i of every batch must not reuse the same random stream (correlated samples across problems)."""
    from eval.cache import GenerationCache
    from eval.runner import generate_cached

    seeds = []

    class Seeded(scripted_backend):
        def generate(self, prompts, *, seed=0, **kw):
            seeds.append(seed)
            return super().generate(prompts, seed=seed, **kw)

    prompts = {t: t for t in "abcde"}
    generate_cached(Seeded(lambda p: p), prompts, GenerationCache(tmp_path / "g.jsonl", "k"), n=1, temperature=0.8,
                    top_p=1.0, max_new_tokens=8, stop=(), seed=7, batch_size=2)
    assert seeds == [7, 9, 11]


def test_a_tasks_seed_is_its_place_in_the_run_whatever_the_cache_held(tmp_path, scripted_backend):
    """Seeds counted over the tasks still to do gave a resumed run other samples than an
    uninterrupted one; now task k gets ``seed + k * n`` (backends add ``i * n`` for a call's i-th prompt)."""
    from eval.cache import GenerationCache
    from eval.runner import generate_cached

    class Seeded(scripted_backend):
        def __init__(self):
            super().__init__(lambda p: p)
            self.seed_of = {}

        def generate(self, prompts, *, n=1, seed=0, **kw):
            self.seed_of.update({p: seed + i * n for i, p in enumerate(prompts)})
            return super().generate(prompts, n=n, seed=seed, **kw)

    prompts = {t: t for t in "abcdefg"}
    settings = dict(n=3, temperature=0.8, top_p=1.0, max_new_tokens=8, stop=(), seed=5)
    whole = Seeded()
    generate_cached(whole, prompts, GenerationCache(tmp_path / "whole.jsonl", "k"), batch_size=3, **settings)
    assert whole.seed_of == {t: 5 + k * 3 for k, t in enumerate("abcdefg")}
    cache = GenerationCache(tmp_path / "resumed.jsonl", "k")
    cache.put_many([(t, i, t, t) for t in "bcf" for i in range(3)], whole.seed_of)  # what an earlier, interrupted run finished
    resumed = Seeded()
    generate_cached(resumed, prompts, cache, batch_size=3, **settings)
    assert resumed.seed_of == {t: whole.seed_of[t] for t in "adeg"} and resumed.calls == 3  # [a], [d, e], [g]


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
    backend.model_config = types.SimpleNamespace(eos_token_id=0, max_position_embeddings=64)
    prompts = {f"t{i}": f"p{i}" for i in range(6)}
    out = generate_cached(backend, prompts, GenerationCache(tmp_path / "g.jsonl", "k"), n=3, temperature=0.8, top_p=1.0,
                          max_new_tokens=4, stop=(), seed=0, batch_size=2)
    assert out == {t: ["x"] * 3 for t in prompts}
    assert len(seeds) == 6 and len(set(seeds)) == 6, seeds


def test_a_sample_drawn_with_another_seed_is_not_reused(tmp_path, scripted_backend):
    """A task's seed is its place in the run, which another problem set moves (an LCB date range, the
    problems still failing in a refinement round, whose seeds also depend on the run's size): a sample
    drawn at another place is another setting's sample. Greedy samples do not depend on the seed."""
    from eval.cache import GenerationCache
    from eval.runner import generate_cached

    settings = dict(n=2, top_p=1.0, max_new_tokens=8, stop=(), seed=5, batch_size=4)
    for temperature, calls in ((0.8, 1), (0.0, 0)):
        cache = GenerationCache(tmp_path / f"{temperature}.jsonl", "k")
        generate_cached(scripted_backend(lambda p: p), {t: t for t in "abc"}, cache, temperature=temperature, **settings)
        later = scripted_backend(lambda p: p)
        generate_cached(later, {"c": "c"}, GenerationCache(cache.path, "k"), temperature=temperature, **settings)
        assert later.calls == calls, temperature


def test_hf_samples_cached_before_row_seeding_are_drawn_again(tmp_path, scripted_backend):
    """HF samples once came from transformers' batch-wide sampling; cached rows of that scheme carry
    the same key and seed, so a rerun reused them. Sampled rows now name the backend's scheme; greedy
    rows do not depend on it and still hit."""
    from eval.backends.hf import HFBackend
    from eval.cache import GenerationCache
    from eval.runner import generate_cached

    class HFLike(scripted_backend):
        sampling_scheme = HFBackend.sampling_scheme

    prompts = {t: t for t in "abc"}
    settings = dict(n=2, top_p=1.0, max_new_tokens=8, stop=(), seed=5, batch_size=4)
    for temperature, calls in ((0.8, 1), (0.0, 0)):
        cache = GenerationCache(tmp_path / f"{temperature}.jsonl", "k")
        seed_of = {t: 5 + k * 2 for k, t in enumerate(prompts)} if temperature else {}
        cache.put_many([(t, i, t, "old") for t in prompts for i in range(2)], seed_of)  # as written before
        backend = HFLike(lambda p: "new")
        out = generate_cached(backend, prompts, GenerationCache(cache.path, "k"), temperature=temperature, **settings)
        assert backend.calls == calls and out["a"] == ["new" if calls else "old"] * 2, temperature
        again = HFLike(lambda p: "newer")
        assert generate_cached(again, prompts, GenerationCache(cache.path, "k"), temperature=temperature, **settings) == out
        assert again.calls == 0


def test_a_benchmark_with_no_problems_is_an_error_not_an_empty_result(tmp_path, scripted_backend):
    """An empty data file (or an LCB date window holding no problem) wrote a results.json with
    n_problems 0 and no pass@k, and `eval run` exited 0."""
    from semcoder_jax.errors import SemcoderError

    data = tmp_path / "empty.jsonl"
    data.write_text("")
    with pytest.raises(SemcoderError, match=r"empty\.jsonl.*no problems"):
        run_eval(EvalConfig(benchmark="cruxeval-o", data=str(data)), scripted_backend(lambda p: "1"), tmp_path / "out")
    assert not (tmp_path / "out" / "results.json").exists()


def test_finish_reasons_reach_samples_and_a_stale_cache_is_reported_not_reused(tmp_path, sandbox, scripted_backend):
    """A backend's finish reason and token count go through the cache into samples.jsonl; a rerun
    with another model identity (here a backend revision) regenerates and says why."""
    from eval.backends import Completion

    class Ending(scripted_backend):
        revision = 1

        def identity(self):
            return {**super().identity(), "revision": self.revision}

        def generate(self, prompts, **kw):
            return [[Completion(c, "stop", 5) for c in cs] for cs in super().generate(prompts, **kw)]

    cfg = EvalConfig(benchmark="cruxeval-o", limit=2)
    logs = []
    for _ in range(2):  # the second run is served from the cache, finish reasons included
        run_eval(cfg, Ending(lambda p: "[ANSWER]\nassert f(x) == 1\n"), tmp_path, sandbox=sandbox, log=logs.append)
        rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
        assert [(r["finish_reason"], r["tokens"]) for r in rows] == [("stop", 5)] * 2
    assert not any("not reused" in m for m in logs)
    fixed = Ending(lambda p: "[ANSWER]\nassert f(x) == 2\n")
    fixed.revision = 2
    run_eval(cfg, fixed, tmp_path, sandbox=sandbox, log=logs.append)
    assert fixed.prompts == 2
    assert any("2 cached generation(s) of these prompts not reused" in m and "model.revision: 1 -> 2" in m for m in logs), logs


class _Bar:
    """Stands in for tqdm: records each move of the bar."""

    made: typing.ClassVar[list["_Bar"]] = []

    def __init__(self, total, disable=False, **kw):
        self.total, self.disable, self.moves = total, disable, []
        _Bar.made.append(self)

    def update(self, k=1):
        self.moves.append(k)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("n, temperature, calls", [(1, 0.0, [6, 4]), (4, 0.8, [3, 3, 3, 1])])
def test_progress_moves_at_each_of_the_backends_own_batches(n, temperature, calls, tmp_path, scripted_backend, monkeypatch):
    """`--progress` moved once per generation.batch_size (64) problems, which read as a hang on a
    CPU; an hf/jax backend (6 rows a batch here) is now called a whole batch of its own at a time:
    4 samples a prompt make batches of 3 prompts (12 rows), each with the seed it had in one call."""
    from eval import runner
    from eval.cache import GenerationCache

    monkeypatch.setattr(runner, "tqdm", _Bar)
    _Bar.made = []
    sizes, seeds = [], []

    class RowBatched(scripted_backend):
        name = "hf"
        config = BackendConfig(batch_size=6)

        def generate(self, prompts, *, seed=0, **kw):
            sizes.append(len(prompts))
            seeds.append((prompts[0], seed))
            return super().generate(prompts, **kw)

    prompts = {f"t{k}": f"p{k}" for k in range(10)}
    kw = {"n": n, "temperature": temperature, "top_p": 1.0, "max_new_tokens": 8, "stop": (), "seed": 7, "batch_size": 64}
    cache = GenerationCache.for_run(tmp_path / "g.jsonl", {"backend": "hf"}, {"k": 1})
    out = runner.generate_cached(RowBatched(lambda p: p + "!"), prompts, cache, progress=True, **kw)
    assert out == {t: [p + "!"] * n for t, p in prompts.items()}
    assert sizes == calls and [b.moves for b in _Bar.made] == [calls] and _Bar.made[0].total == 10
    starts = [sum(calls[:j]) for j in range(len(calls))]
    assert seeds == [(f"p{k}", 7 + k * n) for k in starts]
    sizes.clear()
    cache = GenerationCache.for_run(tmp_path / "g2.jsonl", {"backend": "hf"}, {"k": 1})
    runner.generate_cached(RowBatched(lambda p: p + "!"), prompts, cache, progress=False, **kw)
    assert sizes == [10] and _Bar.made[-1].disable  # without --progress, one call as before


def test_progress_moves_at_each_prompt_a_backend_reports(tmp_path, scripted_backend, monkeypatch):
    """A backend that reports each completed prompt (``on_row``: openai) moves the bar per prompt,
    and its calls keep generation.batch_size prompts."""
    from eval import runner
    from eval.cache import GenerationCache

    monkeypatch.setattr(runner, "tqdm", _Bar)
    _Bar.made = []
    sizes = []

    class Rows(scripted_backend):
        def generate(self, prompts, *, on_row=None, **kw):
            sizes.append(len(prompts))
            out = super().generate(prompts, **kw)
            for _ in prompts:
                on_row()
            return out

    prompts = {f"t{k}": f"p{k}" for k in range(5)}
    cache = GenerationCache.for_run(tmp_path / "g.jsonl", {"backend": "rows"}, {"k": 1})
    runner.generate_cached(Rows(lambda p: "x"), prompts, cache, n=1, temperature=0.0, top_p=1.0, max_new_tokens=8,
                           stop=(), seed=0, batch_size=4, progress=True)
    assert sizes == [4, 1] and _Bar.made[0].moves == [1] * 5
