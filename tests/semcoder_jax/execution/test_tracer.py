import json

from semcoder_jax.execution import (
    Trace, label_code, render_concise, render_exception, render_next, render_scratchpad, render_trace, trace_call,
)
from semcoder_jax.execution.render import MAX_CONCISE_STATES

LOOP = """def f(nums, k):
    total = 0
    for x in nums:
        if x > k:
            total += x
    return total
"""

NESTED = """def helper(a):
    b = a * 2
    return b

def f(x):
    y = helper(x)
    z = helper(y)
    return y + z
"""


def test_line_events_changed_locals_and_loops(sandbox):
    t = trace_call(LOOP, "f([1, 5, 7], 3)", sandbox=sandbox)
    assert (t.status, t.return_repr, t.exception, t.truncated) == ("passed", "12", None, False)
    lines = [e for e in t.events if e["kind"] == "line"]
    assert [e["line"] for e in lines] == [2, 3, 4, 3, 4, 5, 3, 4, 5, 3, 6]
    assert lines[0]["locals"] == {"total": "0"} and lines[0]["source"] == "total = 0"
    assert lines[1]["locals"] == {"x": "1"}
    assert lines[2]["locals"] == {}  # the comparison changes nothing
    assert [e["locals"].get("total") for e in lines if e["line"] == 5] == ["5", "12"]
    assert t.events[0] == {"kind": "call", "func": "f", "line": 1, "locals": {"nums": "[1, 5, 7]", "k": "3"},
                           "depth": 1, "frame": 0}
    assert t.events[-1]["kind"] == "return" and t.events[-1]["value"] == "12"
    assert t.loop_counts == {3: 3}


def test_nested_calls_and_depth_limit(sandbox):
    t = trace_call(NESTED, "f(3)", sandbox=sandbox)
    calls = [(e["func"], e["depth"]) for e in t.events if e["kind"] == "call"]
    assert calls == [("f", 1), ("helper", 2), ("helper", 2)]
    assert [e["value"] for e in t.events if e["kind"] == "return"] == ["6", "12", "18"]
    flat = trace_call(NESTED, "f(3)", sandbox=sandbox, max_depth=1)
    assert {e["func"] for e in flat.events if e["kind"] == "call"} == {"f"}
    assert flat.return_repr == "18"


def test_exception_is_recorded_and_rendered(sandbox):
    t = trace_call(LOOP, "f([1, 'a'], 0)", sandbox=sandbox)
    assert t.status == "error" and t.return_repr is None
    assert t.exception["type"] == "TypeError"
    assert any(e["kind"] == "exception" and e["line"] == 4 for e in t.events)
    last_line = [e for e in t.events if e["kind"] == "line"][-1]
    assert last_line["line"] == 4 and last_line.get("raised") is True
    assert not any(e.get("raised") for e in t.events if e["kind"] == "line" and e is not last_line)
    caught = trace_call("def f():\n    try:\n        1 / 0\n    except ZeroDivisionError:\n        x = 1\n    return x\n",
                        "f()", sandbox=sandbox)
    assert caught.return_repr == "1" and not any(e.get("raised") for e in caught.events)
    text = render_exception(t)
    assert text.startswith("[EXCEPTION] TypeError: ") and text.endswith("[/EXCEPTION]")
    assert render_scratchpad(LOOP, t).endswith(text)


def test_a_frame_left_by_an_exception_does_not_return_none(sandbox):
    """Python sends a frame's ``return`` trace event (with None) when an exception leaves it, so the
    trace read "g returned None" for a ``g`` that raised."""
    src = "def g(x):\n    raise ValueError(x)\n\ndef f(x):\n    try:\n        return g(x)\n    except ValueError:\n        return None\n"
    t = trace_call(src, "f(1)", sandbox=sandbox)
    returns = {e["func"]: e for e in t.events if e["kind"] == "return"}
    assert (returns["g"]["value"], returns["g"].get("raised")) == (None, True)
    assert (returns["f"]["value"], returns["f"].get("raised")) == ("None", None)
    render_concise(src, t)


def test_caps_mark_truncation_but_keep_the_result(sandbox):
    src = "def f(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n"
    t = trace_call(src, "f(10000)", sandbox=sandbox, max_events=50)
    assert t.truncated and len(t.events) == 50 and t.return_repr == str(sum(range(10000)))
    assert "[TRUNCATED]" in render_concise(src, t)
    big = trace_call("def f():\n    x = 'y' * 5000\n    return len(x)\n", "f()", sandbox=sandbox, max_repr=20)
    assert len(big.events[1]["locals"]["x"]) <= 23 and big.return_repr == "5000"
    small = trace_call(src, "f(1000)", sandbox=sandbox, max_bytes=2000)
    assert small.truncated and len(json.dumps(small.events)) < 6000


def test_json_round_trip_and_addresses_masked(sandbox):
    src = "class A:\n    pass\n\ndef f():\n    a = A()\n    return 1\n"
    t = trace_call(src, "f()", sandbox=sandbox)
    assert "0x?" in t.events[1]["locals"]["a"]
    assert Trace.from_json(t.to_json()) == t
    assert json.loads(render_trace(src, t, "json"))["return_repr"] == "1"


def test_timeout_gives_a_truncated_trace(sandbox):
    t = trace_call("def f():\n    while True:\n        pass\n", "f()", sandbox=sandbox, timeout_s=0.5)
    assert t.status == "timeout" and t.truncated and t.exception["type"] == "timeout"


def test_label_code_matches_prompts_offset():
    code = "def f(x):\n\n    return x\n"
    assert label_code(code) == "def f(x): # [L5]\n\n    return x # [L7]"
    assert label_code(code, offset=0).splitlines()[0] == "def f(x): # [L1]"


def test_labels_follow_python_line_numbers_past_form_feeds_and_line_separators(sandbox):
    """``str.splitlines`` breaks at a form feed (a PEP 8 page break) and at U+2028 in a string literal,
    which Python does not: every later label, and the traced lines' source text, were one line off."""
    code = "def f(x):\n    s = 'a\u2028b'\n\x0c\n    y = x + len(s)\n    return y\n"
    t = trace_call(code, "f(1)", sandbox=sandbox)
    assert [(e["line"], e["source"]) for e in t.events if e["kind"] == "line"][-2:] == [(4, "y = x + len(s)"), (5, "return y")]
    assert "    y = x + len(s) # [L8]" in label_code(code).split("\n")
    assert render_concise(code, t).startswith("[L6] {'s': 'a\\u2028b'} [/L6]\n[L8] {'y': 4} [/L8]")
    assert "    return y # [L9]" in render_next(code, t)


def test_renderers(sandbox):
    t = trace_call(LOOP, "f([4, 5, 6, 7, 8], 3)", sandbox=sandbox)
    pad = render_scratchpad(LOOP, t)
    assert pad.startswith("[INPUT]\nf([4, 5, 6, 7, 8], 3)\n[/INPUT]\n[STATE]\nL6: {'nums': [4, 5, 6, 7, 8], 'k': 3, 'total': 0}")
    assert pad.endswith("[OUTPUT]\n30\n[/OUTPUT]")
    assert pad.count("[STATE]") == len([e for e in t.events if e["kind"] == "line"])
    nxt = render_next(LOOP, t)
    assert nxt.splitlines()[1] == "    total = 0 # [L6] [STATE-0] {'total': 0} [/STATE-0]"
    assert "[STATE-1] {'x': 4} [/STATE-1]" in nxt.splitlines()[2]
    concise = render_concise(LOOP, t).splitlines()
    assert concise[0] == "[L6] {'total': 0} [/L6]"
    assert sum(line.startswith("[L9] {") for line in concise) == MAX_CONCISE_STATES
    assert concise.count("[L9] ... [/L9]") == 1
    assert concise[-3:] == ["[OUTPUT]", "30", "[/OUTPUT]"]


def test_exception_whose_str_raises_is_traced_not_replaced(sandbox):
    """The tracer formats exceptions inside its trace function: a failing ``__str__`` there used to replace
    the program's exception with its own and switch tracing off for the rest of the call."""
    src = ("class E(Exception):\n    def __str__(self):\n        raise RuntimeError('no str')\n\n"
           "def f(x):\n    try:\n        raise E()\n    except E:\n        x += 1\n    y = x * 2\n    raise E()\n")
    t = trace_call(src, "f(1)", sandbox=sandbox)
    assert t.status == "error" and t.exception["type"] == "E", t.exception
    assert [e["line"] for e in t.events if e["kind"] == "exception"] == [7, 11]
    assert [e["locals"] for e in t.events if e["kind"] == "line" and e["line"] == 10] == [{"y": "4"}]


def test_addresses_masked_in_exception_messages_and_return_value(sandbox):
    src = "class A:\n    pass\n\ndef f(d):\n    k = object()\n    raise KeyError(k)\n\ndef g():\n    return A()\n"
    t = trace_call(src, "f({})", sandbox=sandbox)
    messages = [e["message"] for e in t.events if e["kind"] == "exception"] + [t.exception["message"]]
    assert all(m == "<object object at 0x?>" for m in messages), messages
    assert render_exception(t) == "[EXCEPTION] KeyError: <object object at 0x?> [/EXCEPTION]"
    r = trace_call(src, "g()", sandbox=sandbox)
    assert r.return_repr == "<__main__.A object at 0x?>" == r.events[-1]["value"]


DEEP = "def f(n):\n    if n == 0:\n        return 0\n    return 1 + f(n - 1)\n"


def _deepest_untraced(sandbox) -> int:
    """The largest ``n`` for which ``f(n)`` of ``DEEP`` runs untraced under the sandbox's recursion limit."""
    ns = range(900, 1000)
    runs = sandbox.map_raw([{"mode": "run", "source": DEEP, "call": f"f({n})"} for n in ns])
    passed = [n for n, r in zip(ns, runs) if r["status"] == "passed"]
    assert passed and passed[-1] < ns[-1], "the sandbox's recursion limit moved: widen the range"
    return passed[-1]


def test_a_recursion_that_runs_untraced_runs_traced(sandbox):
    """The tracer's frames sat on the program's stack: ``f(n)`` a few frames short of the limit raised
    RecursionError traced (and the trace, cut by the tracer's own failure, ended after six events)."""
    n = _deepest_untraced(sandbox)
    t = trace_call(DEEP, f"f({n})", sandbox=sandbox)
    assert (t.status, t.return_repr, t.exception, t.stopped, t.truncated) == ("passed", str(n), None, False, False)
    assert [e["value"] for e in t.events if e["kind"] == "return"] == [str(n - 2), str(n - 1), str(n)]


def test_a_tracer_stopped_by_the_recursion_limit_says_so(sandbox):
    """At the limit the trace function itself raises, and Python switches tracing off: a program that
    caught the RecursionError went on untraced, and its trace ended early as if complete."""
    src = ("def r(n):\n    return r(n + 1)\n\ndef f(x):\n    try:\n        r(0)\n    except RecursionError:\n"
           "        x = x + 1\n    return x\n")
    t = trace_call(src, "f(1)", sandbox=sandbox)
    assert (t.status, t.return_repr) == ("passed", "2")
    assert t.stopped and t.truncated
    assert Trace.from_json(t.to_json()) == t
    assert "[TRUNCATED]" in render_concise(src, t)
