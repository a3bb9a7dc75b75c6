"""Unit tests of the data pipeline's pure parts: JSONL IO, seeds, parsing, packing, tokenising."""

import json

import numpy as np
import pytest

from data_pipeline import packing
from data_pipeline.records import RecordError, read_jsonl
from data_pipeline.stages import Reject, annotator_trace, monologue, pyxr, synthesis
from data_pipeline.stages.seeds import extract_seeds
from data_pipeline.tokenization import tokenize_records
from semcoder_jax import prompts
from semcoder_jax.config import ConfigError


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"a": 1}\n{"a": 2\n[1, 2]\n{"a": 3}\n')
    with pytest.raises(RecordError, match=rf"{p}:2: not valid JSON"):
        read_jsonl(p)
    rejects = []
    rows = read_jsonl(p, skip_bad=True, rejects=rejects)
    assert rows == [{"a": 1}, {"a": 3}]
    assert [(r["line"], r["text"]) for r in rejects] == [(2, '{"a": 2'), (3, "[1, 2]")]
    assert "expected a JSON object" in rejects[1]["reason"]


def test_extract_seeds_kinds():
    src = "class A:\n    def m(self, x):\n        y = x + 1\n        return y\n\nfor i in range(3):\n    print(i)\n    print(i * 2)\n"
    seeds = extract_seeds(src, min_lines=3)
    assert [s["seed_kind"] for s in seeds] == ["class", "function", "block"]
    assert seeds[1]["code"].startswith("def m(self, x):\n    y = x + 1")


def test_parse_synthesis_reply():
    reply = ("[Problem Description]\nDouble a number.\n\n[Solution]\nMultiply by two.\n```python\ndef dbl(x):\n    return 2 * x\n```\n"
             "[Example Calls]\ndbl(3)\ndbl(-1)\nprint(1)\n")
    out = synthesis.parse_synthesis_reply(reply)
    assert out["problem"] == "Double a number."
    assert out["entry_point"] == "dbl" and out["seed_inputs"] == ["3", "-1"]
    assert synthesis.parse_synthesis_reply("no sections here") is None


def test_call_arguments_ignore_a_trailing_comment():
    assert synthesis.call_arguments("dbl(3)  # -> (6)", "dbl") == "3"
    assert synthesis.call_arguments(">>> dbl([1, (2)])  # gives (2, 4)", "dbl") == "[1, (2)]"
    assert synthesis.call_arguments('dbl("é)")', "dbl") == '"é)"'


@pytest.mark.parametrize("calls", ["sum_primes([1, 2, 3])\nsum_primes([4])\n",
                                   "```python\nprint(sum_primes([1, 2, 3]))  # 5\n>>> print(sum_primes([4]))\nprint(len([1]))\n```\n"],
                         ids=["bare", "printed"])
def test_synthesis_entry_point_is_the_function_the_example_calls_call(calls):
    """Example calls as written, or inside ``print(...)`` as LLMs often write them; a helper defined
    first is not the entry point."""
    reply = ("[Problem Description]\nSum the primes in a list.\n\n[Solution]\nUse a helper.\n```python\n"
             "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, n))\n\n"
             "def sum_primes(xs):\n    return sum(x for x in xs if is_prime(x))\n```\n"
             f"[Example Calls]\n{calls}")
    out = synthesis.parse_synthesis_reply(reply)
    assert out["entry_point"] == "sum_primes" and out["seed_inputs"] == ["[1, 2, 3]", "[4]"]
    assert synthesis.call_arguments("print(g(1), g(2))", "g") is None


def test_answer_checks_keep_the_given_side():
    test = {"input": "[1, 2], 3", "output": "6"}
    good = "[ANSWER]\nassert f([1, 2], 3) == 6\n[/ANSWER]"
    assert monologue.answer_acceptable("forward", good, test) == "assert f([1, 2], 3) == 6"
    assert monologue.answer_acceptable("forward", good.replace("3)", "4)"), test) is None  # input changed
    assert monologue.answer_acceptable("backward", good.replace("== 6", "== 7"), test) is None
    assert monologue.answer_acceptable("backward", "[ANSWER]\nassert f([0], 6) == 6\n[/ANSWER]", test) is not None
    assert monologue.answer_acceptable("forward", "no answer", test) is None


def test_forward_answer_must_state_the_real_output_as_a_typed_literal():
    test = {"input": "2", "output": "4"}
    wrap = "[MONOLOGUE]\n...\n[/MONOLOGUE]\n[ANSWER]\n{}\n[/ANSWER]".format
    # These all pass ``assert`` in the sandbox, but none states the real output 4.
    for bad in ("assert f(2) == f(2)", "assert f(2) == 4.0", "assert f(2) == 2 + 2"):
        assert monologue.answer_acceptable("forward", wrap(bad), test) is None, bad
    assert monologue.answer_acceptable("forward", wrap("assert f(True) == True"), {"input": "True", "output": "1"}) is None
    assert monologue.answer_acceptable("forward", wrap("assert f(2) == 4"), test) == "assert f(2) == 4"
    # Equal literals written differently are the same answer.
    assert monologue.answer_acceptable("forward", wrap('assert f("a") == ["a",  (1,)]'), {"input": "'a'", "output": "['a', (1,)]"})
    assert monologue.answer_acceptable("forward", wrap("assert f() == {'b': 1, 'a': 2}"), {"input": "", "output": "{'a': 2, 'b': 1}"})


def test_response_with_two_answers_is_rejected():
    test = {"input": "2", "output": "4"}
    two = "[MONOLOGUE]\n...\n[/MONOLOGUE]\n[ANSWER]\nassert f(2) == 4\n[/ANSWER]\nOr rather:\n[ANSWER]\nassert f(2) == 5\n[/ANSWER]"
    assert monologue.answer_acceptable("forward", two, test) is None
    assert monologue.answer_acceptable("backward", two.replace("== 5", "== 4"), test) is None


def test_forward_answer_with_keyword_input_is_accepted():
    test = {"input": "xs=[1, 2]", "output": "3"}
    good = "[ANSWER]\nassert f(xs=[1, 2]) == 3\n[/ANSWER]"
    assert monologue.answer_acceptable("forward", good, test) == "assert f(xs=[1, 2]) == 3"
    assert monologue.answer_acceptable("forward", good.replace("xs=", "ys="), test) is None


def test_as_f_renames_entry_and_recursion():
    code = "def fact(n):\n    return 1 if n <= 1 else n * fact(n - 1)"
    assert monologue.as_f(code, "fact") == "def f(n):\n    return 1 if n <= 1 else n * f(n - 1)"


def test_mutants_are_distinct_single_site_changes():
    code = "def f(xs):\n    t = 0\n    for x in xs:\n        if x > 1:\n            t += x\n    return t"
    ms = list(pyxr.mutants(code))
    assert len(ms) == len(set(ms)) >= 4
    assert "if x >= 1:" in "\n".join(ms) and "t = 1" in "\n".join(ms)


def test_builtin_monologue_from_a_recorded_trace():
    code = "def f(a):\n    s = 0\n    for x in a:\n        s += x\n    return s"
    trace = {"events": [
        {"kind": "call", "line": 1, "locals": {"a": "[2, 3]"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 2, "source": "s = 0", "locals": {"s": "0"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 3, "source": "for x in a:", "locals": {"x": "2"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 4, "source": "s += x", "locals": {"s": "2"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 3, "source": "for x in a:", "locals": {"x": "3"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 4, "source": "s += x", "locals": {"s": "5"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 3, "source": "for x in a:", "locals": {}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 5, "source": "return s", "locals": {}, "depth": 1, "frame": 0},
        {"kind": "return", "line": 5, "value": "5", "depth": 1, "frame": 0}], "return_repr": "5", "truncated": False}
    fwd = annotator_trace.forward_monologue(code, "[2, 3]", trace)
    for section in ("[MONOLOGUE]", "### Understanding the Function", "### Key Properties and Constraints",
                    "### Execution Simulation", "### Conclusion", "[/MONOLOGUE]"):
        assert section in fwd
    assert "- [L6]: `s = 0` sets `s` to `0`." in fwd  # line 2 of the code is labelled L6
    assert "- [L8]: `s += x` sets `s` to `5`." in fwd
    assert fwd.endswith("[ANSWER]\nassert f([2, 3]) == 5\n[/ANSWER]")
    assert "[L6]" in prompts.label_lines(code).splitlines()[1]
    bwd = annotator_trace.backward_monologue(code, "[2, 3]", "5", trace)
    assert "### Reverse Deduction" in bwd and "### Execution Simulation" not in bwd
    assert bwd.index("sets `s` to `5`") < bwd.index("sets `s` to `2`")  # reasons from the output back
    assert "binds `a` to `[2, 3]`" in bwd


def _examples(lengths):
    return [packing.Example(f"e{i}", tuple(range(1, n + 1)), (0,) * (n // 2) + (1,) * (n - n // 2)) for i, n in enumerate(lengths)]


def test_best_fit_packing_is_valid_and_tight():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 700, size=400).tolist()
    rows = packing.pack(_examples(lengths), 1024, seed=1)
    assert sorted(e.id for r in rows for e in r) == sorted(f"e{i}" for i in range(400))
    assert all(sum(len(e) for e in r) <= 1024 for r in rows)
    assert len(rows) <= np.ceil(sum(lengths) / 1024) * 1.02 + 1  # near the lower bound
    assert packing.padding_fraction(rows, 1024) < 0.02
    assert packing.pack(_examples(lengths), 1024, seed=1) == rows  # deterministic
    pad_rows = packing.pack(_examples(lengths), 1024, mode="pad")
    assert len(pad_rows) == 400 and packing.padding_fraction(pad_rows, 1024) > 0.4
    with pytest.raises(ValueError, match="example 1 has 2000 tokens > capacity 1024"):
        packing.best_fit([10, 2000], 1024)


def test_packing_bounds_segment_runs_per_row():
    lengths = [30] * 40 + [900] * 3
    free = packing.pack(_examples(lengths), 1024)
    assert packing.max_segment_runs(free, 1024) > 8
    rows = packing.pack(_examples(lengths), 1024, max_segments=8)
    assert sorted(e.id for r in rows for e in r) == sorted(f"e{i}" for i in range(len(lengths)))
    assert max(len(r) for r in rows) == 7 and packing.max_segment_runs(rows, 1024) == 8
    full = [packing.Example("a", (1,) * 512, (1,) * 512), packing.Example("b", (1,) * 512, (1,) * 512)]
    assert packing.max_segment_runs([full], 1024) == 2  # no padding run


def test_build_row_segments_and_positions():
    exs = _examples([3, 4])
    row = packing.build_row(exs, 10, pad_id=7)
    assert row["input_ids"].tolist() == [1, 2, 3, 1, 2, 3, 4, 7, 7, 7]
    assert row["segment_ids"].tolist() == [1, 1, 1, 2, 2, 2, 2, 0, 0, 0]
    assert row["positions"].tolist() == [0, 1, 2, 0, 1, 2, 3, 0, 0, 0]
    assert row["loss_mask"].tolist() == [0, 1, 1, 0, 0, 1, 1, 0, 0, 0]


def test_tokenize_masks_exactly_the_response(tokenizer):
    recs = [{"id": "a", "kind": "nl2code", "prompt": prompts.render("nl2code", "Add."), "response": "def add(a, b):\n    return a + b"},
            {"id": "b", "kind": "nl2code", "prompt": "x " * 400, "response": "y"}]
    exs, rejects = tokenize_records(recs, tokenizer, seq_len=128)
    assert [r["reason"] for r in rejects] == ["too_long"] and rejects[0]["record"]["id"] == "b"
    (ex,) = exs
    assert ex.input_ids[0] == tokenizer.bos_token_id == 32013 and ex.input_ids[-1] == tokenizer.eos_token_id == 32014
    target = [t for t, m in zip(ex.input_ids, ex.loss_mask) if m]
    assert tokenizer.decode(target[:-1]) == recs[0]["response"] and target[-1] == 32014
    prompt_part = [t for t, m in zip(ex.input_ids[1:], ex.loss_mask[1:]) if not m]
    assert tokenizer.decode(prompt_part) == recs[0]["prompt"]


def test_released_rows(tmp_path):
    from data_pipeline.config import DataConfig, ReleasedConfig
    from data_pipeline.released import released_records

    pyx = tmp_path / "pyx.jsonl"
    pyx.write_text("\n".join(json.dumps(r) for r in [
        {"nl": "Write add.", "fwd_mnl": "", "bwd_mnl": "", "response": "def add(a, b): return a + b"},
        {"nl": "", "fwd_mnl": "[PYTHON]\ndef f(x): return x\nassert f(1) == ??\n[/PYTHON]", "bwd_mnl": "", "response": "[ANSWER]assert f(1) == 1[/ANSWER]"},
        {"nl": "", "fwd_mnl": "", "bwd_mnl": "[PYTHON]...[/PYTHON]", "response": "r"},
        {"nl": "both", "fwd_mnl": "set", "bwd_mnl": "", "response": "r"}]) + "\n")
    pyxr_path = tmp_path / "pyxr.jsonl"
    pyxr_path.write_text(json.dumps({"fault": "### Problem\n...", "response": "[MONOLOGUE]..."}) + "\n")
    cfg = DataConfig(output_dir=str(tmp_path / "out"), source="released", released=ReleasedConfig(pyx=str(pyx), pyxr=str(pyxr_path)))
    with pytest.raises(RecordError, match="row 3: expected exactly one of nl/fwd_mnl/bwd_mnl"):
        released_records(cfg)
    cfg.skip_bad = True
    recs, stages = released_records(cfg)
    assert [r["kind"] for r in recs] == ["nl2code", "forward", "backward", "refine"]
    assert recs[1]["prompt"] == prompts.render("forward", "[PYTHON]\ndef f(x): return x\nassert f(1) == ??\n[/PYTHON]")
    assert stages["released_pyx"] == {"in": 4, "kept": 3, "out": 3, "rejected": {"malformed_row": 1}, "notes": {}}


def test_given_problems_skip_synthesis_in_any_mode():
    from data_pipeline.config import DataConfig
    from data_pipeline.stages.base import StageContext

    seed = {"id": "seed-x", "seed_kind": "problem", "problem": "Add.", "solution": "def add(a, b):\n    return a + b", "seed_inputs": ["1, 2"]}
    for mode in ("offline", "llm"):
        (out,) = synthesis.process(seed, StageContext(DataConfig(synthesis=mode)))
        assert out["id"] == "prob-x" and out["entry_point"] == "add" and out["seed_inputs"] == ["1, 2"]
    assert isinstance(synthesis.process({**seed, "solution": "x = 1"}, StageContext(DataConfig())), Reject)


def test_shipped_fewshot_examples_are_wellformed():
    for kind in ("forward", "backward", "refine"):
        msgs = monologue.fewshot_messages(kind)
        assert len(msgs) >= 2 and [m["role"] for m in msgs] == ["user", "assistant"] * (len(msgs) // 2)
        assert all(m["content"].startswith(prompts.TEMPLATES[kind].split("{")[0].strip()[:30]) for m in msgs[::2])
        for user, assistant in zip(msgs[::2], msgs[1::2]):
            if kind == "refine":
                assert pyxr.refined_code(assistant["content"])
            else:
                assert monologue.answer_parts(monologue.extract_answer(assistant["content"])) is not None


def test_validation_problems_are_stable_and_both_splits_nonempty():
    from data_pipeline import splits

    keys = [f"prob-{i:04d}" for i in range(400)]
    held = splits.validation_problems(keys, 0.1, seed=3)
    assert 20 < len(held) < 60 and held == splits.validation_problems(reversed(keys), 0.1, seed=3)
    assert splits.validation_problems(keys + [f"new-{i}" for i in range(100)], 0.1, seed=3) & set(keys) == held  # adding keeps
    assert held < splits.validation_problems(keys, 0.2, seed=3)  # a larger fraction only adds problems
    assert held != splits.validation_problems(keys, 0.1, seed=4)
    assert splits.validation_problems(keys, 0.0, seed=3) == set()
    # Too small a fraction still holds one out; too large still trains on one.
    (smallest,) = splits.validation_problems(["a", "b", "c"], 1e-9, seed=0)
    assert smallest == min("abc", key=lambda k: splits.problem_hash(k, 0))
    assert len(splits.validation_problems(["a", "b", "c"], 0.999999999, seed=0)) == 2
    with pytest.raises(ConfigError, match="validation_fraction"):
        splits.validation_problems(["a"], 0.5, seed=0)


def test_split_assignment_keeps_a_problems_records_together():
    from data_pipeline import splits
    from data_pipeline.stages.format import format_problem

    problems = [{"id": f"prob-{i}", "problem": "P.", "response": "r", "code": "def f(x): return x",
                 "forward": [{"input": "1", "output": "1", "response": "m"}], "backward": [{"input": "2", "output": "2", "response": "m"}],
                 "refine": [{"buggy": "def f(x): return 0", "failed_test": "assert f(1) == 1", "response": "m"}]} for i in range(30)]
    records = [r for p in problems for r in format_problem(p)]
    assert {r["problem_id"] for r in records[:4]} == {"prob-0"} and len(records) == 4 * 30
    split_of = splits.assign(records, 0.3, seed=0)
    assert set(split_of) == {r["id"] for r in records} and set(split_of.values()) == {"train", "validation"}
    by_problem = {}
    for r in records:
        by_problem.setdefault(r["problem_id"], set()).add(split_of[r["id"]])
    assert all(len(s) == 1 for s in by_problem.values())
    released = [{"id": f"pyx-{i:07d}", "kind": "forward"} for i in range(10)]  # no problem_id: each row on its own
    assert splits.problem_key(released[0]) == "pyx-0000000"
    assert set(splits.assign(released, 0.3, seed=0).values()) == {"train", "validation"}


@pytest.mark.parametrize("bad", ["1.0", "-0.1", "2", "nan"])
def test_validation_fraction_must_be_a_fraction(bad):
    from data_pipeline.cli import load

    with pytest.raises(ConfigError, match=r"validation_fraction=.* must be >= 0 and < 1"):
        load("demo", [f"validation_fraction={bad}"])
    assert load("demo", ["validation_fraction=0.05"]).validation_fraction == 0.05


def test_cruxeval_io_pairs_match_whatever_the_quoting_and_spacing():
    from data_pipeline.config import DecontamConfig
    from data_pipeline.stages.decontam import BenchmarkIndex

    index = BenchmarkIndex(DecontamConfig())
    index.add_row("cruxeval", {"id": "sample_1", "code": "def f(a, b, c):\n    return a", "input": "(1, ), (1, ), (1, 2)",
                               "output": "{1: None, 2: None}"})
    index.add_row("cruxeval", {"id": "sample_2", "code": "def f(text):\n    return text", "input": "'hbtofdeiequ'",
                               "output": "'hbtofdeiequ'"})
    assert index.match_io("(1,), (1,), (1, 2)", "{1: None, 2: None}") == "cruxeval:sample_1"
    assert index.match_io('"hbtofdeiequ"', "'hbtofdeiequ'") == "cruxeval:sample_2"
    assert index.match_io("'hbtofdeiequ'", "'hbtofdeiequ'") == "cruxeval:sample_2"
    assert index.match_io("'hbtofdeiequx'", "'hbtofdeiequ'") is None
    assert index.match_io("(1,), (1,), (1, 3)", "{1: None, 2: None}") is None


def test_released_pyx_rows_with_null_or_non_text_fields_are_rejected(tmp_path):
    from data_pipeline.config import DataConfig, ReleasedConfig
    from data_pipeline.released import released_records

    pyx = tmp_path / "pyx.jsonl"
    pyx.write_text("\n".join(json.dumps(r) for r in [
        {"nl": "Write add.", "fwd_mnl": "", "bwd_mnl": "", "response": "def add(a, b): return a + b"},
        {"nl": "Write sub.", "fwd_mnl": None, "bwd_mnl": None, "response": None},
        {"nl": "Write mul.", "fwd_mnl": 7, "bwd_mnl": "", "response": "def mul(a, b): return a * b"}]) + "\n")
    cfg = DataConfig(output_dir=str(tmp_path / "out"), source="released", skip_bad=True, released=ReleasedConfig(pyx=str(pyx)))
    recs, stages = released_records(cfg)
    assert [r["response"] for r in recs] == ["def add(a, b): return a + b"]
    assert stages["released_pyx"]["rejected"] == {"malformed_row": 2} and stages["released_pyx"]["in"] == 3


def test_llm_pyxr_bug_must_define_the_function_and_fail_not_time_out():
    """A sample that renames the function, is merely slow, or whose own example code fails is not the
    buggy code of a PYX-R record."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages.base import StageContext

    class ScriptedLLM:
        def __init__(self, replies):
            self.replies = replies

        def samples(self, messages, n, **kw):
            return self.replies

        def chat(self, messages, **kw):
            return ("[MONOLOGUE]\nIt subtracts one instead of adding it.\n[/MONOLOGUE]\n"
                    "[Refined]\n```python\ndef f(x):\n    return x + 1\n```\n[/Refined]")

    record = {"id": "p1", "entry_point": "f", "problem": "Add one.", "tests": [{"input": "1", "output": "2"}]}
    slow_but_right = "def f(x):\n    import time\n    time.sleep(5)\n    return x + 1\n"
    renamed = "def g(x):\n    return x - 1\n"
    wrong = "def f(x):\n    return x - 1\n"
    right_but_bad_example = "def f(x):\n    return x + 1\n\nassert f(1) == 3\n"
    ctx = StageContext(DataConfig(pyxr="llm", llm_samples=3))
    try:
        for samples, expected in (([slow_but_right, renamed, right_but_bad_example], None),
                                  ([slow_but_right, renamed, wrong], wrong)):
            ctx._llm = ScriptedLLM(samples)
            (out,) = pyxr.process(record, ctx)
            assert [r["buggy"] for r in out["refine"]] == ([expected.strip()] if expected else [])
    finally:
        if ctx._sandbox is not None:
            ctx._sandbox.__exit__(None, None, None)


def test_set_outputs_are_literals_whatever_this_process_hash_seed():
    """The sandbox orders a set's repr by its own hash seed; keeping the test must not depend on ours."""
    from data_pipeline.stages.inputs import literal_output

    words = ["hello", "world", "foo", "bar"]
    other_order = "{" + ", ".join(repr(w) for w in reversed(list(set(words)))) + "}"
    assert other_order != repr(set(words))
    assert literal_output(other_order) and literal_output("frozenset()") is False
    for bad in (None, "inf", "1e309", "<object at 0x1>", "[1, 2"):
        assert not literal_output(bad), bad


def test_forward_answer_with_double_star_input_is_accepted():
    test = {"input": "**{'xs': [1, 2]}", "output": "3"}
    good = "[ANSWER]\nassert f(**{'xs': [1, 2]}) == 3\n[/ANSWER]"
    assert monologue.answer_parts("assert f(**{'xs': [1, 2]}) == 3") == ("**{'xs': [1, 2]}", "3")
    assert monologue.answer_acceptable("forward", good, test) == "assert f(**{'xs': [1, 2]}) == 3"
    assert monologue.answer_acceptable("forward", good.replace("'xs'", "'ys'"), test) is None


def test_ngram_overlap_ties_name_the_same_benchmark_item_every_time():
    """The benchmark item named in a reject must not depend on set iteration order (the hash seed)."""
    import os
    import subprocess
    import sys

    script = (
        "from data_pipeline.config import DecontamConfig\n"
        "from data_pipeline.stages.decontam import BenchmarkIndex, ngrams\n"
        "index = BenchmarkIndex(DecontamConfig(ngram=2))\n"
        "words = [f'w{i}' for i in range(12)]\n"
        "for i in range(11):\n"
        "    index.add_row('bench', {'task_id': f't{i}', 'prompt': ' '.join(words[i:i + 2])})\n"
        "print(index._overlap(ngrams(' '.join(words), 2), index.text_grams))\n"
    )
    seen = {subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": str(s)},
                           capture_output=True, text=True, check=True).stdout for s in range(6)}
    assert len(seen) == 1, seen


def test_llm_samples_are_kept_in_the_training_layout_only():
    """What is trained on runs from [MONOLOGUE] to [/ANSWER]: no preamble, no postscript, and no
    sample without reasoning."""
    body = "[MONOLOGUE]\nx doubles.\n[/MONOLOGUE]\n[ANSWER]\nassert f(2) == 4\n[/ANSWER]"
    assert monologue.training_response(f"Sure! Here it is:\n{body}\nHope this helps.") == body
    assert monologue.training_response("[MONOLOGUE]\n \n[/MONOLOGUE]\n[ANSWER]\nassert f(2) == 4\n[/ANSWER]") is None
    assert monologue.training_response("[ANSWER]\nassert f(2) == 4\n[/ANSWER]") is None
    assert monologue.training_response("[MONOLOGUE]\nthinking\n[/MONOLOGUE]\nno answer") is None
    refine = "[MONOLOGUE]\nThe bug: x + 1.\n[/MONOLOGUE]\n[Refined]\n```python\ndef f(x):\n    return x\n```\n[/Refined]"
    assert monologue.training_response(f"Here:\n{refine}\nDone.", "Refined") == refine


@pytest.mark.parametrize("bad", ["max_seeds=-1", "decontam.ngram=0", "decontam.ngram_overlap=1.5", "exec_timeout_s=0",
                                 "num_inputs=0", "llm_samples=0", "workers=-2", "llm.concurrency=0", "coverage_target=2"])
def test_out_of_range_values_are_config_errors_naming_the_key(bad):
    """``max_seeds=-1`` dropped the last seed and ``decontam.ngram=0`` rejected every problem, silently."""
    from data_pipeline.cli import load

    key, value = bad.split("=")
    with pytest.raises(ConfigError, match=rf"data config: {key.replace('.', '[.]')}={value}(\.0)? must be"):
        load("demo", [bad])


def test_repeated_seed_code_is_rejected_once_per_copy(tmp_path):
    """The same file in two corpus folders gave every seed twice under one id: each problem trained twice."""
    from data_pipeline import build
    from data_pipeline.config import DataConfig

    code = "def twice(x):\n    y = x * 2\n    return y\n"
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "m.py").write_text(code)
    (tmp_path / "a" / "other.py").write_text("\n\n" + code)  # the same code elsewhere in a corpus
    records, rejects = build.source_records(DataConfig(corpus_dirs=[str(tmp_path / "a"), str(tmp_path / "b")], seed_kinds=["function"]))
    assert len(records) == len({r["id"] for r in records}) == 1
    assert [r["reason"] for r in rejects] == ["duplicate_seed"] * 2
    assert all(r["detail"] == f"same code as {records[0]['id']}" for r in rejects)


def test_resuming_with_other_stage_settings_is_refused_naming_them(tmp_path):
    """A rerun with another num_shards reused the finished shards 0..n-1 of the old sharding: half
    the records were lost (or, with more shards, repeated) without a word."""
    from data_pipeline import build, runner_local
    from data_pipeline.cli import load

    out = [f"output_dir={tmp_path}"]
    cfg = load("demo", out)
    build.save_config(cfg)
    runner_local.run_stages(cfg, progress=False, only_source=True)
    seeds = sorted(r["id"] for i in range(cfg.num_shards) for r in build.read_shard(cfg, "seeds", i))
    with pytest.raises(ConfigError, match=r"num_shards: 4 -> 2.*delete"):
        runner_local.run_stages(load("demo", out + ["num_shards=2"]), progress=False, only_source=True)
    with pytest.raises(ConfigError, match="num_shards"):
        build.save_config(load("demo", out + ["num_shards=2"]))
    assert "num_shards: 4" in (tmp_path / "config.yaml").read_text()  # still describes the shards
    with pytest.raises(ConfigError, match=r"decontam\.ngram: 10 -> 8; llm\.model: 'gpt-4o-mini' -> 'm'"):
        runner_local.run_stages(load("demo", out + ["llm.model=m", "decontam.ngram=8"]), progress=False, only_source=True)
    # A settings file from before a stage setting existed (here: max_trace_steps) still resumes.
    settings = tmp_path / "stages" / "settings.json"
    settings.write_text(json.dumps({k: v for k, v in json.loads(settings.read_text()).items() if k != "max_trace_steps"}))
    runner_local.run_stages(load("demo", out), progress=False, only_source=True)
    # Settings of the final step alone keep the finished shards.
    runner_local.run_stages(load("demo", out + ["seq_len=512", "train_kinds=[refine]", "workers=1"]), progress=False, only_source=True)
    assert sorted(r["id"] for i in range(cfg.num_shards) for r in build.read_shard(cfg, "seeds", i)) == seeds


def test_a_tokenizer_that_does_not_load_stops_the_build_before_any_stage(tmp_path):
    """Only the last step tokenises: a wrong path used to cost a whole build before failing."""
    from data_pipeline import runner_local
    from data_pipeline.cli import load

    cfg = load("demo", [f"output_dir={tmp_path}", f"tokenizer={tmp_path / 'no-such-tokenizer'}"])
    with pytest.raises(ConfigError, match=r"data config: tokenizer: cannot load tokenizer .*no-such-tokenizer"):
        runner_local.run(cfg, progress=False)
    assert not (tmp_path / "stages").exists()


def test_a_failed_fix_request_is_counted_as_llm_failed_not_as_the_solutions_fault():
    """Retries running out were counted as ``not_executable``: a server outage read as bad solutions."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages import executability
    from data_pipeline.stages.base import StageContext

    class Unreachable:
        def chat(self, messages, **kw):
            return None  # what LLMClient.chat gives when retries run out

        def samples(self, messages, n, **kw):
            return None

    from data_pipeline.stages import inputs

    record = {"id": "p1", "entry_point": "f", "problem": "Add one.", "solution": "def f(x):\n    return x + one\n", "seed_inputs": ["1"]}
    ctx = StageContext(DataConfig(synthesis="llm"))
    ctx._llm = Unreachable()
    try:
        assert executability.process(record, ctx).reason == "llm_failed"
        # with no seed inputs of its own, a problem asks the LLM for some
        no_seeds = dict(record, solution="def f(x):\n    return x + 1\n", seed_inputs=[])
        assert inputs.process(no_seeds, ctx).reason == "llm_failed"
        # monologue and PYX-R samples: no reply is counted apart from wrong samples
        from data_pipeline.stages import monologue, pyxr

        assert monologue._llm_monologue("forward", no_seeds["solution"], {"input": "1", "output": "2"}, ctx, 0) is None
        assert pyxr._llm_bug(dict(no_seeds, problem="Add one."), [{"input": "1", "output": "2"}], ctx) is None
        assert ctx.notes["monologue.llm_failed"] == 1 and ctx.notes["pyxr.llm_failed"] == 1
    finally:
        ctx.close()


def test_a_corpus_file_too_deep_to_parse_is_rejected_not_fatal(tmp_path):
    """One generated file with a huge expression stopped the whole build with a RecursionError."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages.seeds import collect_seeds

    (tmp_path / "deep.py").write_text("def g(x):\n    y = x\n    return " + "+".join(["x"] * 100_000) + "\n")
    (tmp_path / "ok.py").write_text("def h(x):\n    y = x + 1\n    return y\n")
    records, rejects = collect_seeds(DataConfig(corpus_dirs=[str(tmp_path)]))
    assert [r["name"] for r in records] == ["h"]
    assert [(r["record"]["source_file"], r["reason"]) for r in rejects] == [("deep.py", "unparsable_file")]


def test_one_llm_sample_is_one_reply_not_its_characters():
    """With ``llm_samples=1`` the client gave the bare text and the stages iterated its characters:
    no LLM monologue and no LLM PYX-R record was ever kept."""
    from data_pipeline.config import DataConfig
    from data_pipeline.llm import LLMClient
    from data_pipeline.stages.base import StageContext

    class OneReply(LLMClient):
        def _send(self, request):
            text = request["messages"][-1]["content"]
            if "Simulate the Execution" in text:
                x = int(text.split("assert f(")[1].split(")")[0])
                reply = f"[MONOLOGUE]\nIt doubles {x}.\n[/MONOLOGUE]\n[ANSWER]\nassert f({x}) == {2 * x}\n[/ANSWER]"
            elif "Debug and Refine" in text:
                reply = "[MONOLOGUE]\nIt adds instead.\n[/MONOLOGUE]\n[Refined]\n```python\ndef d(x):\n    return x * 2\n```\n[/Refined]"
            else:
                reply = "```python\ndef d(x):\n    return x + 2\n```"
            return [reply] * request["n"]

    record = {"id": "p", "problem": "Double x.", "solution": "def d(x):\n    return x * 2", "entry_point": "d",
              "tests": [{"input": "2", "output": "4"}, {"input": "3", "output": "6"}]}
    cfg = DataConfig(annotator="llm", pyxr="llm", llm_samples=1, forward_per_problem=1, backward_per_problem=0)
    ctx = StageContext(cfg)
    ctx._llm = OneReply(cfg.llm)
    try:
        (out,) = monologue.process(record, ctx)
        assert len(out["forward"]) == 1
        (out,) = pyxr.process(record, ctx)
        assert [r["buggy"] for r in out["refine"]] == ["def d(x):\n    return x + 2"]
    finally:
        ctx.close()
