"""Runs inside the sandbox: LiveCodeBench's ``run_test`` (lcb_runner/evaluation/testing_util.py)
for one program and all of a problem's tests: call-based tests (LeetCode, ``class Solution``) compare
the returned value (tuples as lists) with the JSON output; stdin tests run the program as a function
with stdin patched and compare stdout line by line, falling back to Decimal comparison. Stops at the
first failure, as LCB does."""

import ast as _ast
import json as _json
import signal as _signal
import sys as _sys
from decimal import Decimal as _Decimal
from io import StringIO as _StringIO
from types import ModuleType as _ModuleType
from unittest.mock import mock_open as _mock_open, patch as _patch

_IMPORTS = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\nfrom random import *\n"
    "from statistics import *\nfrom itertools import *\nfrom functools import *\nfrom operator import *\n"
    "from io import *\nfrom sys import *\nfrom json import *\nfrom builtins import *\nfrom typing import *\n"
    "import string\nimport re\nimport datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\n"
    "import math\nimport random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)


class _LcbTimeout(Exception):
    pass


class _Uncaptured(_StringIO):
    """Output lcb_runner leaves on its process's own streams (a call-based solution's prints, stderr):
    it never decides a verdict, so it is dropped rather than sent to the sandbox's output limit."""

    def write(self, s):
        return len(s)


def _lcb_alarm(signum, frame):
    raise _LcbTimeout


def _short(s, n=300):
    s = s if isinstance(s, str) else repr(s)
    return s if len(s) <= n else s[: n // 2] + "...(truncated) ..." + s[-n // 2 :]


def _clean_if_name(code):
    try:
        tree = _ast.parse(code)
        last = tree.body[-1]
        if isinstance(last, _ast.If) and _ast.unparse(last.test).strip() == "__name__ == '__main__'":
            code = _ast.unparse(tree.body[:-1]) + "\n" + _ast.unparse(last.body)
    except Exception:
        pass
    return code


def _make_function(code):
    try:
        imports, other = [], []
        for stmt in _ast.parse(code).body:
            (imports if isinstance(stmt, (_ast.Import, _ast.ImportFrom)) else other).append(stmt)
        fn = _ast.FunctionDef(
            name="wrapped_function",
            args=_ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body=other,
            decorator_list=[],
            lineno=-1,
        )
        return _IMPORTS + "\n" + _ast.unparse(imports) + "\n" + _ast.unparse(fn)
    except Exception:
        return code


def _compile(code, timeout):
    _signal.alarm(timeout)
    try:
        mod = _ModuleType("tmp_sol", "")
        exec(code, mod.__dict__)
        return mod.Solution() if "class Solution" in code else mod
    finally:
        _signal.alarm(0)


def _call_stdin(method, inputs):
    lines = iter(inputs.split("\n"))

    @_patch("builtins.open", _mock_open(read_data=inputs))
    @_patch("sys.stdin", _StringIO(inputs))
    @_patch("sys.stdin.readline", lambda *a: next(lines))
    @_patch("sys.stdin.readlines", lambda *a: inputs.split("\n"))
    @_patch("sys.stdin.read", lambda *a: inputs)
    def inner(m):
        try:
            return m()
        except SystemExit:
            pass

    return inner(method)


def _stripped(val):
    return [line.strip() for line in val.strip().split("\n")]


def _decimals(line):
    try:
        return True, [_Decimal(x) for x in line.split()]
    except Exception:
        return False, []


def _fail(results, code, message, inp, expected, output=None):
    results.append(code)
    return {"results": results, "error_code": code, "error_message": message,
            "inputs": _short(inp), "expected": _short(expected), "output": None if output is None else _short(output)}


def _grade_call(code, inputs, outputs, fn_name, timeout):
    sol = _compile(_IMPORTS + "\n\n" + code, timeout)
    method = getattr(sol, fn_name, None)
    if method is None:
        return {"results": [-4], "error_code": -4, "error_message": f"no function {fn_name}"}
    results = []
    for raw_in, raw_out in zip(inputs, outputs):
        args = [_json.loads(line) for line in raw_in.split("\n")]
        expected = _json.loads(raw_out)
        _signal.alarm(timeout)
        try:
            pred = method(*args)
            _signal.alarm(0)
            if isinstance(pred, tuple):
                pred = list(pred)
            if pred != expected:
                return _fail(results, -2, "Wrong Answer", raw_in, raw_out, pred)
            results.append(True)
        except _LcbTimeout:
            return _fail(results, -3, "Time Limit Exceeded", raw_in, raw_out)
        except Exception as e:
            return _fail(results, -4, f"Runtime Error: {type(e).__name__}: {e}"[:300], raw_in, raw_out)
        finally:
            _signal.alarm(0)
    return {"results": results}


def _grade_stdio(code, inputs, outputs, timeout):
    code = _make_function(_clean_if_name(code))
    method = getattr(_compile(code, timeout), "wrapped_function", None)
    if method is None:
        return {"results": [-4], "error_code": -4, "error_message": "no program"}
    results = []
    for raw_in, raw_out in zip(inputs, outputs):
        buf = _StringIO()
        old = _sys.stdout
        _sys.stdout = buf
        _signal.alarm(timeout)
        try:
            _call_stdin(method, raw_in)
            _signal.alarm(0)
        except _LcbTimeout:
            return _fail(results, -3, "Time Limit Exceeded", raw_in, raw_out)
        except Exception as e:
            return _fail(results, -4, f"Runtime Error: {type(e).__name__}: {e}"[:300], raw_in, raw_out)
        finally:
            _signal.alarm(0)
            _sys.stdout = old
        pred = buf.getvalue()
        got, want = _stripped(pred), _stripped(raw_out)
        if len(got) != len(want):
            return _fail(results, -2, "Wrong answer: mismatched output length", raw_in, raw_out, pred)
        for g, w in zip(got, want):
            if g == w:
                continue
            ok1, dg = _decimals(g)
            ok2, dw = _decimals(w)
            if not (ok1 and ok2 and dg == dw):
                return _fail(results, -2, f"Wrong answer: {_short(g)} != {_short(w)}", raw_in, raw_out, pred)
        results.append(True)
    return {"results": results}


def _lcb_check(code, inputs, outputs, fn_name, timeout):
    _signal.signal(_signal.SIGALRM, _lcb_alarm)
    streams = _sys.stdout, _sys.stderr
    _sys.stdout = _sys.stderr = _Uncaptured()
    try:
        if fn_name is not None:
            out = _grade_call(code, inputs, outputs, fn_name, timeout)
        else:
            out = _grade_stdio(code, inputs, outputs, timeout)
    except BaseException as e:
        out = {"results": [-4], "error_code": -4, "error_message": f"Error during testing: {type(e).__name__}: {e}"[:300]}
    finally:
        _sys.stdout, _sys.stderr = streams
    out["passed"] = len(out["results"]) == len(inputs) and all(r is True for r in out["results"])
    return out
