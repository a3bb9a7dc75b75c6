"""Decontamination against the benchmarks: I/O pairs and n-gram overlap."""

import pytest



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
        "print(index._overlap(ngrams(' '.join(words), 2), index.text_grams, index.text_sizes))\n"
    )
    seen = {subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": str(s)},
                           capture_output=True, text=True, check=True).stdout for s in range(6)}
    assert len(seen) == 1, seen


def test_a_benchmark_solution_copied_without_its_type_annotations_is_caught():
    """HumanEval/28 as ``def concat(strings): return ''.join(strings)``: its annotations and
    ``from typing import List`` held the edit similarity to 67 (< 90), so the copy was trained on."""
    from data_pipeline.config import DecontamConfig
    from data_pipeline.stages.decontam import BenchmarkIndex

    index = BenchmarkIndex(DecontamConfig())
    index.add_row("HumanEvalPlus", {"task_id": "HumanEval/28", "prompt": 'from typing import List\n\n\ndef concatenate(strings: List[str]) -> str:\n    """ Concatenate list of strings into a single string\n    >>> concatenate([])\n    \'\'\n    """\n',
                                    "canonical_solution": "    return ''.join(strings)\n"})
    hit = index.match_problem("def concat(strings):\n    return ''.join(strings)", "Join the strings.")
    assert hit is not None and hit[0] == "edit_similarity" and "HumanEval/28" in hit[1]
    unrelated = "def concat(strings):\n    out = []\n    for s in strings:\n        out.append(s.upper())\n    return out"
    assert index.match_problem(unrelated, "Upper-case the strings.") is None


def test_a_benchmark_file_that_does_not_read_stops_the_build_naming_it(tmp_path):
    """It rejected every problem as ``stage_error:JSONDecodeError`` (no file named) and the build
    finished with no data."""
    import pytest

    from data_pipeline import build
    from data_pipeline.config import DataConfig, DecontamConfig
    from data_pipeline.records import RecordError
    from data_pipeline.stages import decontam
    from data_pipeline.stages.base import StageContext

    lcb = tmp_path / "lcb.jsonl"
    problem = {"id": "prob-1", "problem": "Add two numbers.", "solution": "def add(a, b):\n    return a + b", "forward": [], "backward": []}
    for text, match in (('{"question_id": "q1", "question_content": "Sum."}\n{"question_id": oops}\n', rf"{lcb}:2: not valid JSON"),
                        ('{"question_id": "q1", "question_content": ["Sum."]}\n', rf"{lcb}:1: not a benchmark problem"),
                        # "row N" counted rows: a blank line made it name the line above the bad one.
                        ('\n{"question_id": "q1", "question_content": "Sum."}\n\n{"question_id": "q2", "code": 7}\n',
                         rf"{lcb}:4: not a benchmark problem")):
        lcb.write_text(text)
        ctx = StageContext(DataConfig(decontam=DecontamConfig(benchmarks=[], livecodebench=str(lcb))))
        with pytest.raises(RecordError, match=match):
            build.apply_stage(decontam.process, [problem], ctx, workers=1)
    lcb.write_text('{"question_id": "q1", "question_content": "Sum."}\n')
    ctx = StageContext(DataConfig(decontam=DecontamConfig(benchmarks=[], livecodebench=str(lcb))))
    assert build.apply_stage(decontam.process, [problem], ctx, workers=1)[0] == [problem]


def test_a_missing_module_stops_the_build_instead_of_rejecting_every_problem(monkeypatch):
    import sys

    import pytest

    from data_pipeline import build
    from data_pipeline.config import DataConfig, DecontamConfig
    from data_pipeline.stages import decontam
    from data_pipeline.stages.base import StageContext
    from semcoder_jax.errors import SemcoderError

    monkeypatch.setitem(sys.modules, "rapidfuzz", None)
    ctx = StageContext(DataConfig(decontam=DecontamConfig(benchmarks=[])))
    problem = {"id": "prob-1", "problem": "Add two numbers.", "solution": "def add(a, b):\n    return a + b"}
    with pytest.raises(SemcoderError, match=r"not installed.*rapidfuzz.*\[data\]"):
        build.apply_stage(decontam.process, [problem], ctx, workers=1)


_HE0 = {"task_id": "HumanEval/0", "prompt": 'from typing import List\n\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n    """ Check if in given list of numbers, are any two numbers closer to each other than\n    given threshold.\n    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)\n    False\n    >>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)\n    True\n    """\n',
        "canonical_solution": "    for idx, elem in enumerate(numbers):\n        for idx2, elem2 in enumerate(numbers):\n            if idx != idx2:\n                distance = abs(elem - elem2)\n                if distance < threshold:\n                    return True\n\n    return False\n"}
_MBPP2 = {"task_id": "Mbpp/2", "prompt": '"""\nWrite a function to find the shared elements from the given two lists.\nassert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"""\n',
          "canonical_solution": "\ndef similar_elements(test_tup1, test_tup2):\n  return tuple(set(test_tup1) & set(test_tup2))\n"}
_OTHER_CODE = "def f(xs):\n    out = []\n    for x in xs:\n        if x % 2 == 0:\n            out.append(x * x)\n    return out"


def _index():
    from data_pipeline.config import DecontamConfig
    from data_pipeline.stages.decontam import BenchmarkIndex

    index = BenchmarkIndex(DecontamConfig())
    index.add_row("HumanEvalPlus", _HE0)
    index.add_row("MbppPlus", _MBPP2)
    return index


@pytest.mark.parametrize("problem, item", [
    ("Check whether, in a given list of numbers, any two numbers are closer to each other than the given threshold.", "HumanEval/0"),
    ("write a function that finds the shared elements from two given lists", "Mbpp/2"),
    # the statement copied whole, then more text: the record's n-grams are mostly its own
    ("Check if in given list of numbers, are any two numbers closer to each other than given threshold. "
     "The list is read from a file with one number per line; empty lines are skipped, and a number may carry "
     "a sign. Report the answer as a boolean, and say which pair was found first when there is one.", "HumanEval/0"),
])
def test_a_lightly_reworded_benchmark_problem_is_caught(problem, item):
    """The statement was matched by 10-grams of case-sensitive tokens as a fraction of the record's own:
    a reworded or re-cased statement, or one copied whole into a longer one, was trained on."""
    hit = _index().match_problem(_OTHER_CODE, problem)
    assert hit is not None and hit[0].startswith("text_") and item in hit[1], hit


@pytest.mark.parametrize("problem", [
    "Given a list of numbers, return the two numbers whose sum is closest to the given target.",
    "Write a function to find the longest common prefix of the given list of strings.",
    "Return the squares of the even numbers of a list, in order.",
])
def test_an_unrelated_problem_is_not_caught(problem):
    assert _index().match_problem(_OTHER_CODE, problem) is None


@pytest.mark.parametrize("problem, caught", [
    ("Write a function to find the median of three numbers.", False),
    ("Write a function to find the maximum of three numbers.", False),
    ("Write a function to find the nth centered hexagonal number.", False),
    ("Write a python function that finds the minimum of three numbers", True),
    ("write a function to find the nth hexagonal numbers", True),
])
def test_a_short_statement_about_another_task_is_not_caught(problem, caught):
    """The character ratio puts short statements that differ in the one word saying what the task is
    (``median`` for ``minimum``: 89.1) within the threshold: 76 of the 542 HumanEval+/MBPP+ statements
    were within 85 of another task's."""
    from data_pipeline.config import DecontamConfig
    from data_pipeline.stages.decontam import BenchmarkIndex

    index = BenchmarkIndex(DecontamConfig())
    for task, text in (("Mbpp/227", "minimum of three numbers"), ("Mbpp/135", "nth hexagonal number")):
        index.add_row("MbppPlus", {"task_id": task, "prompt": f'"""\nWrite a function to find {text}.\n"""\n',
                                   "canonical_solution": "\ndef g(a, b, c):\n    return sorted((a, b, c))[0] + a * b - c\n"})
    hit = index.match_problem(_OTHER_CODE, problem)
    assert (hit is not None and hit[0] == "text_similarity") if caught else hit is None, hit


def test_a_benchmark_solution_inside_a_larger_program_is_caught():
    """Its code n-grams were counted as a fraction of the record's, so helpers around the copied
    solution kept it under the threshold."""
    helpers = "".join(f"\n\ndef helper_{i}(values, k):\n    total = 0\n    for v in values:\n        if v > k:\n            total += v - k\n    return total * {i}"
                      for i in range(4))
    code = ("def close(numbers, threshold):\n    for idx, elem in enumerate(numbers):\n        for idx2, elem2 in enumerate(numbers):\n"
            "            if idx != idx2:\n                distance = abs(elem - elem2)\n                if distance < threshold:\n"
            "                    return True\n    return False" + helpers)
    hit = _index().match_problem(code, "Some list utilities.")
    assert hit is not None and hit[0] == "code_ngram_overlap" and "HumanEval/0" in hit[1], hit
    assert _index().match_problem(_OTHER_CODE + helpers, "Some list utilities.") is None


@pytest.mark.parametrize("wrap", [
    "{prompt}",
    "{prompt}\n{solution}",
    "Complete this function:\n```python\n{prompt}```",
    "{doc}\n>>> similar_elements([1], [1])\n[1]\nassert similar_elements([2], [3]) == []\n",
], ids=["prompt", "prompt-and-solution", "fenced-prompt", "statement-with-examples"])
def test_a_benchmark_prompt_copied_with_its_examples_is_caught(wrap):
    """Benchmark statements lose their doctests and asserts but a record's kept them: a prompt copied
    verbatim, or in a Markdown fence, fell under the ratio, and a statement under 5 n-grams has no
    containment test (28 of HumanEval+'s 164 prompts and 112 of MBPP+'s 378 passed verbatim, 28 and 132
    fenced; every one was caught before statements)."""
    he13 = {"task_id": "HumanEval/13", "prompt": 'def greatest_common_divisor(a: int, b: int) -> int:\n    """ Return a greatest '
            'common divisor of two integers a and b\n    >>> greatest_common_divisor(3, 5)\n    1\n    >>> '
            'greatest_common_divisor(25, 15)\n    5\n    """\n', "canonical_solution": "    while b:\n        a, b = b, a % b\n    return a\n"}
    index = _index()
    index.add_row("HumanEvalPlus", he13)
    for row, item in ((he13, "HumanEval/13"), (_MBPP2, "Mbpp/2")):
        doc = row["prompt"].split("\n")[1] if row is _MBPP2 else "Return a greatest common divisor of two integers a and b"
        problem = wrap.format(prompt=row["prompt"], solution=row["canonical_solution"], doc=doc)
        hit = index.match_problem(_OTHER_CODE, problem)
        assert hit is not None and hit[0] in ("text_similarity", "text_ngram_overlap", "prompt_ngram_overlap") and item in hit[1], (problem, hit)
