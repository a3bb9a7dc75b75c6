"""CRUXEval-I/O and LCB-Exec scoring, as the official ``evaluate_score`` functions do it.

CRUXEval (facebookresearch/cruxeval evaluation/utils_general.py): each answer ``g`` becomes the
program ``code + "\\nassert " + output + " == " + g`` run with a 3 s limit. In input mode an answer
without ``f(`` is skipped; in output mode an answer containing ``f(<input>)`` is skipped. Skipped
answers leave n, and a problem none of whose answers passed gets ``[False] * len(answers)``.
LCB-Exec (lcb_runner compute_code_execution_metrics.py): the same with LCB's BASE_IMPORTS first, an
answer containing the call itself skipped, and ``[False] * len(answers)`` when all were skipped.
"""

from __future__ import annotations

from typing import Any, Sequence

from eval.scoring.execute import harness_source, run_jobs

TIMEOUT_S = 3.0
# LCB-Exec programs import numpy and pandas first; on a busy machine that alone can take seconds,
# so their wall-clock limit allows for it (the official 3 s also covers the imports).
LCB_IMPORT_ALLOWANCE_S = 10.0

# lcb_runner/evaluation/utils_execute.py BASE_IMPORTS; numpy/pandas are optional here so that a
# missing package does not fail every answer.
LCB_BASE_IMPORTS = """from itertools import accumulate, chain, combinations, count, permutations, product, groupby, islice, repeat
from copy import deepcopy
from string import ascii_lowercase
from math import floor, log2, log10, sqrt, comb, gcd, ceil, inf, isqrt
from collections import defaultdict, deque, Counter
from bisect import bisect, bisect_left, bisect_right, insort
from heapq import heappush, heappop, heapify, merge
from functools import reduce, cache, lru_cache
from random import randrange, shuffle
from operator import itemgetter, sub
from re import search as re_search
from os.path import commonprefix
from typing import List, Tuple, Dict, Set, Optional, Union, Any, Callable, Iterable, Iterator, Generator
import copy
import string
import math
import collections
import bisect
import heapq
import functools
import random
import itertools
import operator
import re
try:
    import numpy as np
except ImportError:
    pass
try:
    import pandas as pd
except ImportError:
    pass
from math import log, prod
from collections import deque, defaultdict, Counter, OrderedDict
from itertools import accumulate, permutations, combinations, product, groupby, islice, chain, repeat, zip_longest, cycle
from functools import lru_cache, reduce, partial
from operator import iand
import sys
"""


def extract_lcb_execution_answer(output: str, cot: bool) -> str:
    """The answer of an LCB-Exec generation as lcb_runner reads it (``extract_execution_code`` in
    lcb_runner/utils/extraction_utils.py; SemCoder's LCB-Exec scoring is not published): with
    ``cot``, what follows the first ``[ANSWER]``; then what lies between the first ``==`` and the
    next one; then up to ``[/ANSWER]`` when that stretch holds it (an answer over several lines),
    else its first line only (so ``... == 1\nassert g() == 2`` reads ``1``)."""
    if cot and "[ANSWER]" in output:
        output = output.split("[ANSWER]")[1].strip()
    if "==" in output:
        output = output.split("==")[1].strip()
    if "[/ANSWER]" in output:
        output = output.split("[/ANSWER]")[0].strip()
    else:
        output = output.split("\n")[0].strip()
    return output.strip()


def _programs(kind: str, problem: Any, answers: Sequence[str]) -> list[str | None]:
    """The program for each answer, or None when the official harness skips it."""
    out: list[str | None] = []
    for g in answers:
        if kind == "cruxeval-i" and "f(" not in g:
            out.append(None)
        elif kind == "cruxeval-o" and f"f({problem.input})" in g:
            out.append(None)
        elif kind == "lcb-exec" and problem.input in g:
            out.append(None)
        elif kind == "lcb-exec":
            out.append(f"{LCB_BASE_IMPORTS}\n{problem.code}\nassert {problem.output} == {g}")
        else:
            out.append(f"{problem.code}\nassert {problem.output} == {g}")
    return out


def run_answers(
    kind: str,
    problems: Sequence[Any],
    answers: dict[str, list[str]],
    *,
    sandbox: Any = None,
    progress: bool = False,
) -> dict[str, list[bool | None]]:
    """Per task and answer, in answer order: whether it passed, or None where the harness skips it."""
    if kind not in ("cruxeval-i", "cruxeval-o", "lcb-exec"):
        raise ValueError(f"not an execution-prediction benchmark: {kind!r}")
    by_id = {p.task_id: p for p in problems}
    programs = {t: _programs(kind, by_id[t], gs) for t, gs in answers.items()}
    flat = [(t, j, src) for t, srcs in programs.items() for j, src in enumerate(srcs) if src is not None]
    timeout = TIMEOUT_S + (LCB_IMPORT_ALLOWANCE_S if kind == "lcb-exec" else 0.0)
    harness = harness_source("harness_evalplus")
    jobs = [(harness, f"_exec_swallowed({src!r})", timeout) for _, _, src in flat]
    results = run_jobs(jobs, sandbox=sandbox, progress=progress, desc=kind)
    passed = {(t, j): r.status == "passed" for (t, j, _), r in zip(flat, results)}
    return {t: [None if src is None else passed[(t, j)] for j, src in enumerate(srcs)] for t, srcs in programs.items()}


def official_results(kind: str, ran: Sequence[bool | None]) -> list[bool]:
    """The official list of booleans for one task's answers (its length is the n that pass@k uses)."""
    run = [r for r in ran if r is not None]
    if kind == "lcb-exec":
        return run if run else [False] * len(ran)
    return run if True in run else [False] * len(ran)


def score_execution_prediction(
    kind: str,
    problems: Sequence[Any],
    answers: dict[str, list[str]],
    *,
    sandbox: Any = None,
    progress: bool = False,
) -> dict[str, list[bool]]:
    """Per task, the official list of booleans (its length is the n that pass@k uses)."""
    ran = run_answers(kind, problems, answers, sandbox=sandbox, progress=progress)
    return {t: official_results(kind, r) for t, r in ran.items()}
