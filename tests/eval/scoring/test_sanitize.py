"""Code sanitising equals EvalPlus 0.3.1's."""

import pytest
from eval.scoring.sanitize import sanitize


RAW = [
    'Here is the code:\n```python\ndef add(a, b):\n    return a + b\n```\nHope it helps',
    'def add(a, b):\n   return a + b\n\nprint(add(1, 2))\nassert add(1, 2) == 3\n',
    "import math\ndef helper(x):\n    return x\ndef add(a, b):\n    return helper(a) + b\nif __name__ == '__main__':\n    add(1, 2)\n",
    'def add(a, b):\n    return a + b\ndef broken(:\n    pass\n',
    'no code here',
    'def add(a, b):\n    pass\n',
    'from __future__ import annotations\nimport os\nX: int = 3\nY = X + 1\n@cache\ndef g(): return 1\nclass C:\n    pass\nasync def add(a, b):\n    return Y + C()\n',
]


EVALPLUS_0_3_1 = [
    'def add(a, b):\n    return a + b',
    'def add(a, b):\n   return a + b',
    'import math\ndef helper(x):\n    return x\ndef add(a, b):\n    return helper(a) + b',
    'def add(a, b):\n    return a + b',
    'no code here',
    'def add(a, b):\n    pass',
    'import os\nX: int = 3\nY = X + 1\nclass C:\n    pass\nasync def add(a, b):\n    return Y + C()',
]


@pytest.mark.parametrize("raw, expected", list(zip(RAW, EVALPLUS_0_3_1)))
def test_sanitize_equals_evalplus_0_3_1_outputs(raw, expected):
    assert sanitize(raw, "add") == expected


@pytest.mark.parametrize("raw", RAW)
def test_sanitize_matches_installed_evalplus(raw):
    evalplus_sanitize = pytest.importorskip("evalplus.sanitize").sanitize
    assert sanitize(raw, "add") == evalplus_sanitize(raw, "add")


# Cases where tree-sitter's parse (identifier nodes, assignment nodes) and ast differ, with the output
# evalplus 0.3.1's tree-sitter walk gives.
TREE_SITTER_CASES = [
    # `from collections import ...` inside the function: `collections` is an identifier node there.
    ("collections = None\ndef add(a, b):\n    from collections import Counter\n    return a + b\n", "add",
     "collections = None\ndef add(a, b):\n    from collections import Counter\n    return a + b"),
    # match captures (`**rest`, `*others`) are identifier nodes too.
    ("rest = 0\nothers = 1\nunused = 2\ndef add(a, b):\n    match a:\n        case {**rest}:\n            return 0\n"
     "        case [*others]:\n            return 1\n    return a + b\n", "add",
     "rest = 0\nothers = 1\ndef add(a, b):\n    match a:\n        case {**rest}:\n            return 0\n"
     "        case [*others]:\n            return 1\n    return a + b"),
    # an annotated assignment to an attribute is an unnamed assignment, so the later unnamed one is dropped
    ("x.y: int = 1\na, b = 1, 2\ndef f():\n    return 1\n", None, "x.y: int = 1\ndef f():\n    return 1"),
]


@pytest.mark.parametrize("raw, entry_point, expected", TREE_SITTER_CASES)
def test_sanitize_follows_tree_sitters_identifiers_and_assignments(raw, entry_point, expected):
    assert sanitize(raw, entry_point) == expected


@pytest.mark.parametrize("raw, entry_point, expected", TREE_SITTER_CASES)
def test_tree_sitter_cases_match_installed_evalplus(raw, entry_point, expected):
    evalplus_sanitize = pytest.importorskip("evalplus.sanitize").sanitize
    assert evalplus_sanitize(raw, entry_point) == expected
