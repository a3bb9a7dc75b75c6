"""The eval CLI: run then report with a tiny model, score files, early refusals."""

import json
import pytest


def test_cli_run_then_report_with_a_tiny_model(tiny_hf, tmp_path, capsys, sandbox):
    from semcoder_jax.cli.main import main

    out = tmp_path / "run"
    argv = ["eval", "run", "--benchmark", "cruxeval-o", "--backend", "hf", "--hf-dir", str(tiny_hf), "--dtype", "float32",
            "--limit", "3", "--out", str(out), "--name", "tiny", "generation.max_new_tokens=8"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["benchmark"] == "cruxeval-o" and summary["n_problems"] == 3 and 0.0 <= summary["pass@1"] <= 100.0
    rows = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert sum("task_id" in r for r in rows) == 3 and sum("run" in r for r in rows) == 1  # and what keyed them
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


def test_cli_scores_semcoders_raw_cruxeval_generations_as_semcoder_does(tmp_path, capsys, sandbox):
    """SemCoder's generations_raw.json holds prompt + completion per sample; `eval score` took each as
    the answer itself (every sample failed) where SemCoder's process_cruxeval.py extracts it."""
    from eval.benchmarks import load_problems
    from eval.samples_io import read_samples
    from eval.tasks import build_prompt
    from semcoder_jax.cli.main import main
    from semcoder_jax.prompts import double_quotes

    def plain(p):  # literals that survive the double-quote round trip
        return "'" not in p.input + p.output or '"' not in p.input + p.output

    for benchmark in ("cruxeval-o", "cruxeval-i"):
        crux = [p for p in load_problems(benchmark)[:8] if plain(p)][:3]
        raw = {}
        for k, p in enumerate(crux):
            line = f"assert f({double_quotes(p.input)}) == {double_quotes(p.output)}\n"
            monologue, direct = build_prompt(benchmark, p, "semcoder"), build_prompt(benchmark, p, "direct")
            # a monologue answer; a direct one after few-shot [ANSWER]s, cut by the token limit
            raw[p.task_id] = [monologue + f"Step 1...\n[ANSWER]\n{line}"] if k % 2 else [direct + line.rstrip("\n")]
        path = tmp_path / benchmark / "generations_raw.json"
        path.parent.mkdir()
        path.write_text(json.dumps(raw))
        want = {p.task_id: [p.output if benchmark == "cruxeval-o" else f"f({p.input})"] for p in crux}
        assert read_samples(path, benchmark, crux) == want
        assert main(["eval", "score", "--benchmark", benchmark, "--samples", str(path), "--json"]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["n_problems"] == 3 and out["pass@1"] == 100.0, out


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


def test_cli_score_reads_raw_completions_as_eval_run_does(tmp_path, capsys, sandbox):
    """A raw SemCoder-style answer copying the call, `f("x")`, is CRUXEval's skipped `f('x')` once
    its quotes are swapped back as `eval run` swaps them; `eval score` used to run it unswapped (and pass it)."""
    from eval.benchmarks import load_problems
    from semcoder_jax.cli.main import main

    p = load_problems("cruxeval-o")[2]
    call = f"f({p.input.replace(chr(39), chr(34))})"
    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps({"task_id": p.task_id, "completion": f"[ANSWER]\nassert {call} == {call}\n"}) + "\n")
    for extra, expected in (([], 0.0), (["--prompt-style", "direct"], 100.0), (["--no-quotes"], 100.0)):
        assert main(["eval", "score", "--benchmark", "cruxeval-o", "--samples", str(raw), "--json", *extra]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["pass@1"] == expected, extra
    assert main(["eval", "score", "--benchmark", "cruxeval-o", "--samples", str(raw), "--prompt-style", "generic"]) == 2
    assert "prompt style 'generic' is not available for cruxeval-o" in capsys.readouterr().err


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


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_a_limit_below_one_fails_before_the_model_loads(monkeypatch, capsys, limit):
    # `--limit -1` used to run all problems but the last (a Python slice), reported as "first -1
    # problems"; `--limit 0` ran nothing and reported no pass@1.
    import eval.backends
    from semcoder_jax.cli.main import main

    def no_backend(*a, **k):
        raise AssertionError("the backend must not be built for an invalid config")

    monkeypatch.setattr(eval.backends, "get_backend", no_backend)
    assert main(["eval", "run", "--benchmark", "cruxeval-o", "--backend", "openai", "--model", "m", "--limit", limit]) == 2
    err = capsys.readouterr().err
    assert "limit must be >= 1" in err and limit in err


@pytest.mark.parametrize("setting", ["generation.temperature=-0.5", "generation.top_p=0", "generation.top_p=1.5",
                                     "generation.max_new_tokens=0", "generation.top_k=-1", "refine_temperature=-1", "refine_top_p=0",
                                     "refine_max_new_tokens=0"])
def test_sampling_settings_no_backend_takes_fail_before_the_model_loads(monkeypatch, capsys, setting):
    """They passed validation: HF decoded greedily (temperature < 0) or sampled without a top-p cut
    (top_p > 1) where vLLM and JAX refuse them, and only after loading (converting) the model."""
    import eval.backends
    from semcoder_jax.cli.main import main

    def no_backend(*a, **k):
        raise AssertionError("the backend must not be built for an invalid config")

    monkeypatch.setattr(eval.backends, "get_backend", no_backend)
    assert main(["eval", "run", "--benchmark", "humaneval", "--backend", "openai", "--model", "m", setting]) == 2
    err = capsys.readouterr().err
    assert setting.split("=")[0].split(".")[-1] in err and len(err.strip().splitlines()) == 1, err


def test_eval_refine_keeps_a_refine_rounds_override(monkeypatch, tmp_path, capsys):
    """`eval refine ... refine_rounds=2` ran 5 rounds: the command's default came after the overrides."""
    import eval.backends
    import eval.runner
    from semcoder_jax.cli.main import main

    rounds = []
    monkeypatch.setattr(eval.backends, "get_backend", lambda *a: type("B", (), {"close": lambda self: None})())
    monkeypatch.setattr(eval.runner, "run_eval", lambda cfg, *a, **k: rounds.append(cfg.refine_rounds) or {"summary": {}})
    base = ["eval", "refine", "--benchmark", "humaneval", "--backend", "openai", "--model", "m", "--out", "unused"]
    for extra in ([], ["refine_rounds=2"], ["--refine-rounds", "3", "refine_rounds=2"], ["--refine-rounds", "0"]):
        assert main(base + extra) == 0
    assert main(["eval", "run", *base[2:]]) == 0
    assert rounds == [5, 2, 3, 0, 0]
    config = tmp_path / "three.yaml"
    config.write_text("benchmark: humaneval\nrefine_rounds: 3\n")
    rounds.clear()
    for extra in ([], ["refine_rounds=1"]):
        assert main(base + ["--config", str(config)] + extra) == 0
    assert rounds == [3, 1]  # the file's rounds, not the command's default
    assert main(["eval", "run", "--benchmark", "mbpp", *base[4:], "--config", str(config)]) == 2
    assert "three.yaml: is for benchmark 'humaneval', not 'mbpp'" in capsys.readouterr().err  # ran MBPP with its settings
    assert main(base + ["benchmark=mbpp"]) == 2  # ran MBPP, labelled and filed as HumanEval
    assert "benchmark=mbpp: give the benchmark with --benchmark" in capsys.readouterr().err


def test_a_benchmark_or_data_override_with_several_benchmarks_is_refused(monkeypatch, capsys):
    """`--benchmark humaneval,mbpp benchmark=humaneval` passed the check (one of the names), and the
    override came after each run's own name: MBPP's run evaluated HumanEval, filed under mbpp/. A
    `data=FILE` override, unlike `--data`, gave every benchmark one file."""
    import eval.backends
    import eval.runner
    from semcoder_jax.cli.main import main

    ran = []
    monkeypatch.setattr(eval.backends, "get_backend", lambda *a: type("B", (), {"close": lambda self: None})())
    monkeypatch.setattr(eval.runner, "run_eval", lambda cfg, backend, out, **k: ran.append((cfg.benchmark, out.name)) or {"summary": {}})
    args = ["eval", "run", "--benchmark", "humaneval,mbpp", "--backend", "openai", "--model", "m", "--out", "o"]
    assert main(args + ["benchmark=humaneval"]) == 2 and ran == []
    assert "benchmark=humaneval: give the benchmark with --benchmark" in capsys.readouterr().err
    assert main(args + ["data=he.jsonl"]) == 2 and ran == []
    assert "--data belong to one benchmark (a data= override too)" in capsys.readouterr().err
    assert main(args) == 0 and ran == [("humaneval", "humaneval"), ("mbpp", "mbpp")]


def test_a_task_with_no_samples_in_a_generations_json_is_an_error_naming_it(tmp_path):
    """An empty list made n = 0 for that task, so every pass@k was left out of the summary without a word."""
    from eval.benchmarks import load_problems
    from eval.samples_io import SamplesError, read_samples

    path = tmp_path / "generations.json"
    path.write_text(json.dumps({"sample_0": ["3"], "sample_1": []}))
    with pytest.raises(SamplesError, match=r"generations\.json: key 'sample_1': expected a non-empty list"):
        read_samples(path, "cruxeval-o", load_problems("cruxeval-o")[:2])


def test_a_generations_json_that_is_not_utf8_is_an_error_naming_it(tmp_path, capsys):
    """It used to end `eval score` with a UnicodeDecodeError traceback naming no file."""
    from semcoder_jax.cli.main import main

    path = tmp_path / "generations.json"
    path.write_bytes(b'{"sample_0": ["\xff"]}')
    assert main(["eval", "score", "--benchmark", "cruxeval-o", "--samples", str(path)]) == 2
    err = capsys.readouterr().err
    assert "generations.json: not UTF-8 (byte 15)" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("bench", ["cruxeval-i", "cruxeval-o", "lcb-exec"])
def test_preset_quotes_follow_the_prompt_style(bench):
    """The presets leave quotes to the style: semcoder swaps them, direct (the official prompt) does not,
    so `eval run prompt_style=direct` and `eval score --prompt-style direct` read answers alike."""
    from eval.config import EvalConfig
    from semcoder_jax.config import load_config, preset_path

    load = lambda *o: load_config(EvalConfig, preset_path("eval", bench), [f"benchmark={bench}", *o])  # noqa: E731
    assert load().use_quotes
    assert not load("prompt_style=direct").use_quotes
    assert load("prompt_style=direct", "quotes=true").use_quotes


@pytest.mark.parametrize("config", ["cruxeval-i", "configs/eval/cruxeval-i.yaml"])
def test_config_takes_a_preset_name_or_the_readme_path_from_any_folder(monkeypatch, tmp_path, capsys, config):
    """`--config cruxeval-i` was read as a file ("config file not found"), and the README's repo-relative
    path worked only from the repository root."""
    import eval.backends
    import eval.runner
    from semcoder_jax.cli.main import main

    class Backend:
        def close(self) -> None:
            pass

    seen = []
    monkeypatch.setattr(eval.backends, "get_backend", lambda *a, **k: Backend())
    monkeypatch.setattr(eval.runner, "run_eval", lambda cfg, *a, **k: seen.append(cfg) or {"summary": {}})
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "run", "--benchmark", "cruxeval-i", "--backend", "openai", "--model", "m", "--config", config]) == 0
    assert [(c.benchmark, c.generation.max_new_tokens) for c in seen] == [("cruxeval-i", 3072)]  # the preset's, not 512


def test_the_backend_loads_with_orbax_warnings_quiet(monkeypatch):
    """`--checkpoint` loads printed Orbax's "Given directory is read only" warnings, which read like errors."""
    import logging

    import eval.backends
    from semcoder_jax.cli.main import main

    class Loaded(Exception):
        pass

    def backend(*a, **k):
        record = logging.LogRecord("absl", logging.WARNING, __file__, 1, "Given directory is read only=ckpt", (), None)
        raise Loaded(logging.getLogger("absl").filter(record))

    monkeypatch.setattr(eval.backends, "get_backend", backend)
    monkeypatch.setattr(logging.getLogger("absl"), "filters", [])  # as in a fresh process
    with pytest.raises(Loaded) as e:
        main(["eval", "run", "--benchmark", "cruxeval-o", "--backend", "jax", "--checkpoint", "ckpt"])
    assert not e.value.args[0]  # dropped


def test_an_unknown_dtype_is_refused_before_any_backend_loads(capsys):
    """`--dtype bf16` reached the backend: a traceback from jax, or after a conversion in hf."""
    from semcoder_jax.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["eval", "run", "--benchmark", "humaneval", "--backend", "jax", "--hf-dir", "x", "--dtype", "bf16"])
    assert exit_.value.code == 2 and "--dtype: invalid choice: 'bf16'" in capsys.readouterr().err


def test_an_interrupted_eval_run_says_a_rerun_resumes(monkeypatch, capsys):
    """Ctrl-C ended `eval run` with exit code 130 and not a word about the generations it had kept."""
    import eval.cli
    from semcoder_jax.cli.main import main

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(eval.cli, "_run", interrupted)
    for action in ("run", "refine"):
        assert main(["eval", action, "--benchmark", "humaneval", "--backend", "hf"]) == 130
        assert capsys.readouterr().err.strip() == (f"semcoder eval {action}: interrupted; rerun the same command to "
                                                   "resume: the generations so far (OUT/generations.jsonl) are reused")


def test_an_out_that_is_a_file_fails_before_the_model_loads(monkeypatch, tmp_path, capsys):
    """`--out report.md` (a file) was a FileExistsError traceback, after the model had loaded."""
    import eval.backends
    from semcoder_jax.cli.main import main

    def no_backend(*a, **k):
        raise AssertionError("the backend must not be built for an --out it cannot write")

    monkeypatch.setattr(eval.backends, "get_backend", no_backend)
    taken = tmp_path / "report.md"
    taken.write_text("# kept\n")
    for benchmarks, out in (("cruxeval-o", taken), ("cruxeval-o,cruxeval-i", taken), ("cruxeval-o", taken / "sub")):
        assert main(["eval", "run", "--benchmark", benchmarks, "--backend", "openai", "--model", "m",
                     "--out", str(out)]) == 2
        assert capsys.readouterr().err.strip().endswith(f"{taken} is a file; give a folder for the results")
    assert taken.read_text() == "# kept\n"
    assert main(["eval", "run", "--benchmark", "cruxeval-o", "--backend", "openai", "--model", "m",
                 "--out", "/proc/no-such-folder"]) == 2
    assert capsys.readouterr().err.strip().startswith("semcoder eval: error: --out /proc/no-such-folder: cannot make")


def test_a_report_out_that_cannot_be_written_is_one_line(tmp_path, capsys):
    """`eval report --out DIR` ended in an IsADirectoryError traceback, and `--out new_folder/table.md`
    in a FileNotFoundError one."""
    from semcoder_jax.cli.main import main

    results = tmp_path / "res"
    results.mkdir()
    (results / "results.json").write_text(json.dumps({"benchmark": "cruxeval-o", "model": "m", "summary": {
        "n_problems": 800, "n_samples": 800, "pass@1": 12.5}}))
    assert main(["eval", "report", str(results), "--out", str(results)]) == 2
    assert capsys.readouterr().err.strip() == f"semcoder eval: error: --out {results}: cannot write it (Is a directory)"
    table = tmp_path / "new" / "table.md"
    assert main(["eval", "report", str(results), "--out", str(table), "--no-paper"]) == 0
    assert "| m |" in table.read_text() and table.with_suffix(".png").is_file()


@pytest.mark.slow
def test_a_score_details_path_that_cannot_be_written_is_one_line(tmp_path, capsys):
    """`eval score --details DIR` ended in an IsADirectoryError traceback, after scoring."""
    from semcoder_jax.cli.main import main

    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": "sample_0", "answer": "''"}) + "\n")
    assert main(["eval", "score", "--benchmark", "cruxeval-o", "--samples", str(samples), "--details", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"--details {tmp_path}: cannot write it (Is a directory)")


def _backend_config(monkeypatch, argv):
    """The ``BackendConfig`` that ``semcoder eval`` builds from ``argv``, taken where the backend would load."""
    import eval.backends
    from semcoder_jax.cli.main import main

    class Loaded(Exception):
        pass

    def backend(name, config):
        raise Loaded(config)

    monkeypatch.setattr(eval.backends, "get_backend", backend)
    with pytest.raises(Loaded) as e:
        main(["eval", *argv])
    return e.value.args[0]


def test_revision_reaches_the_backend_config(monkeypatch, tmp_path):
    """`--revision` names a hub id's branch, tag or commit; the backends key and load the commit it names."""
    config = _backend_config(monkeypatch, ["run", "--benchmark", "cruxeval-o", "--backend", "hf", "--hf-dir", "org/name",
                                           "--revision", "v1", "--out", str(tmp_path / "out")])
    assert (config.hf_dir, config.revision) == ("org/name", "v1")


@pytest.mark.parametrize("flag, want", [([], None), (["--vllm-fields", "off"], False), (["--vllm-fields", "on"], True)])
def test_vllm_fields_reaches_the_backend_config(monkeypatch, tmp_path, flag, want):
    """A server that refuses top_k -1, min_p or repetition_penalty (the openai backend sends them to
    any server but OpenAI's API) had no way out but Python."""
    config = _backend_config(monkeypatch, ["run", "--benchmark", "cruxeval-o", "--backend", "openai", "--model", "m", *flag,
                                           "--out", str(tmp_path / "out")])
    assert config.vllm_fields is want
