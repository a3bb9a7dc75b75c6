"""Determinism filter: flag programs whose result is not a function of their input.

Three checks. (1) The same call under two hash seeds (two fork servers) must give the same status,
return value and stdout. (2) An instrumented run records reads of the clock, randomness, process
identity, the environment, files and the network: ``instrument()`` (inside the child) wraps those
functions and adds an audit hook; the sandbox already refuses network and process creation, which
then shows up as an error the report names. (3) The call's trace, which monologues are written from,
must come out the same when the program's objects hashed by identity hash in another order
(``number_identity_hashes``): within one hash seed, a set of them iterates in the order of their
addresses, which differ from run to run.

The report carries that checked trace, and whether it stands for the untraced run (``trace_problem``:
the tracer's frames can take a deep recursion over the limit): every trace that becomes training text
should be taken from a report, one call at a time, not traced again unchecked.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import sys
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from semcoder_jax.execution import guard
from semcoder_jax.execution.child import CALL_FILENAME, PROGRAM_FILENAME

if TYPE_CHECKING:
    from semcoder_jax.execution.tracer import Trace

_CLOCK = ("time", "time_ns", "perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "process_time",
          "process_time_ns", "thread_time", "thread_time_ns")
# Functions that read the clock when their time argument (at this position) is left out or None.
_CLOCK_IF_NO_TIME = {"localtime": 0, "gmtime": 0, "ctime": 0, "asctime": 0, "strftime": 1}
_PROGRAM_FILES = (PROGRAM_FILENAME, CALL_FILENAME)
_RANDOM_FUNCS = ("random", "randint", "randrange", "choice", "choices", "shuffle", "sample", "uniform", "gauss",
                 "getrandbits", "triangular", "betavariate", "expovariate", "normalvariate", "lognormvariate",
                 "vonmisesvariate", "gammavariate", "paretovariate", "weibullvariate", "randbytes", "binomialvariate")
# Bound here, not looked up while the program runs or after: a ``builtins.len`` answering 100, or a ``sys._getframe``
# showing importlib's frames, kept every reason from the log; an ``isinstance`` answering False kept the program's
# classes from hashing by number (its two traces then agreed, ordered by the same addresses).
_dict, _isinstance, _len, _list, _next, _set, _type = dict, isinstance, len, list, next, set, type
_getframe, _get_objects, _weakref, _object_hash = sys._getframe, gc.get_objects, weakref.ref, object.__hash__
# A path the program opens is resolved as the sandbox's policy resolves it (C ``posix`` calls): ``os.path.realpath``
# looks up ``posixpath``'s and ``os``'s functions as it runs, and a ``normpath`` adding ``.py`` hid a file read.
_resolve, _fsdecode = guard._resolve, guard._fsdecode


def _importing() -> bool:
    """Whether a module is being imported (importlib's frozen frames are on the stack): the import
    system lists package folders, and modules read the environment or the clock as they load
    (numpy, logging), which says nothing about the program's result."""
    frame = _getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


class AuditLog:
    """Reasons a run was not deterministic, collected only while ``active`` and not while importing."""

    def __init__(self):
        self.active = False
        self.reasons: list[str] = []
        self.seeded = False

    def note(self, reason: str) -> None:
        if self.active and reason not in self.reasons and _len(self.reasons) < 50 and not _importing():
            self.reasons.append(reason)

    def report(self) -> dict:
        return {"reasons": _list(self.reasons)}


def _wrap(log: AuditLog, reason: str, fn, time_arg: int | None = None, skip_if_seeded: bool = False):
    """``fn`` noting ``reason`` when called (with ``time_arg``: only when that argument is missing or None)."""
    def wrapper(*args, **kwargs):
        reads = time_arg is None or _len(args) <= time_arg or args[time_arg] is None
        if reads and not (skip_if_seeded and log.seeded):
            log.note(reason)
        return fn(*args, **kwargs)

    wrapper.__name__ = getattr(fn, "__name__", "wrapper")
    wrapper.__doc__ = getattr(fn, "__doc__", None)
    return wrapper


class _EnvironProxy(dict):
    """``os.environ`` stand-in that records any read (by ``dict``'s own methods: ``super`` is a builtin)."""

    def __init__(self, log: AuditLog, data: dict):
        super().__init__(data)
        self._log = log

    def _read(self):
        self._log.note("reads the environment (os.environ)")

    def __getitem__(self, key):
        self._read()
        return _dict.__getitem__(self, key)

    def get(self, key, default=None):
        self._read()
        return _dict.get(self, key, default)

    def __contains__(self, key):
        self._read()
        return _dict.__contains__(self, key)

    def __iter__(self):
        self._read()
        return _dict.__iter__(self)

    def keys(self):
        self._read()
        return _dict.keys(self)

    def items(self):
        self._read()
        return _dict.items(self)

    def values(self):
        self._read()
        return _dict.values(self)

    def copy(self):
        self._read()
        return _dict(self)


def instrument() -> AuditLog:
    """Inside the child, before the program runs: wrap nondeterministic sources, return the log."""
    import builtins
    import datetime
    import random
    import time
    import uuid

    log = AuditLog()
    for name in _CLOCK:
        if hasattr(time, name):
            setattr(time, name, _wrap(log, f"reads the clock (time.{name})", getattr(time, name)))
    for name, position in _CLOCK_IF_NO_TIME.items():
        setattr(time, name, _wrap(log, f"reads the clock (time.{name})", getattr(time, name), time_arg=position))

    class _DateTime(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            log.note("reads the clock (datetime.now)")
            return super().now(tz)

        @classmethod
        def utcnow(cls):
            log.note("reads the clock (datetime.utcnow)")
            return super().utcnow()

        @classmethod
        def today(cls):
            log.note("reads the clock (datetime.today)")
            return super().today()

    class _Date(datetime.date):
        @classmethod
        def today(cls):
            log.note("reads the clock (date.today)")
            return super().today()

    _DateTime.__name__ = _DateTime.__qualname__ = "datetime"
    _Date.__name__ = _Date.__qualname__ = "date"
    datetime.datetime, datetime.date = _DateTime, _Date

    for name in _RANDOM_FUNCS:
        if hasattr(random, name):
            setattr(random, name, _wrap(log, f"uses randomness (random.{name})", getattr(random, name), skip_if_seeded=True))
    seed = random.seed

    def seeded(a=None, *args, **kwargs):
        if a is None:
            log.note("uses randomness (random.seed())")
        else:
            log.seeded = True
        return seed(a, *args, **kwargs)

    random.seed = seeded
    orig_rng_seed, system_random = random.Random.seed, random.SystemRandom

    def rng_seed(self, a=None, *args, **kwargs):
        if a is None and _type(self) is not system_random:
            log.note("uses randomness (unseeded random.Random)")
        return orig_rng_seed(self, a, *args, **kwargs)

    random.Random.seed = rng_seed
    random.SystemRandom.random = _wrap(log, "uses randomness (SystemRandom/secrets)", random.SystemRandom.random)
    random.SystemRandom.getrandbits = _wrap(log, "uses randomness (SystemRandom/secrets)", random.SystemRandom.getrandbits)
    for mod in {id(m): m for m in (os, sys.modules.get("os", os))}.values():  # the real and the guarded os
        mod.urandom = _wrap(log, "uses randomness (os.urandom)", os.urandom)
        for name in ("getpid", "getppid"):
            if getattr(os, name, None) is not None:
                setattr(mod, name, _wrap(log, f"reads the process id (os.{name})", getattr(os, name)))
        mod.environ = _EnvironProxy(log, dict(os.environ))
    for name in ("uuid1", "uuid4"):
        setattr(uuid, name, _wrap(log, f"uses randomness (uuid.{name})", getattr(uuid, name)))
    real_id = builtins.id

    def program_id(obj, /):
        # Only the program's own calls: copy.deepcopy, pprint and dataclass reprs use id() for
        # bookkeeping that does not reach their result.
        if _getframe(1).f_code.co_filename in _PROGRAM_FILES:
            log.note("depends on object identity (id)")
        return real_id(obj)

    builtins.id = program_id

    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path) if os.path.isabs(p)}
    library_roots = tuple(sorted(r for r in roots if r != "/"))
    cwd = os.path.realpath(os.getcwd())  # the sandbox folder, which the program cannot leave (``os.chdir`` refused)

    def hook(event: str, args: tuple) -> None:
        if not log.active:
            return
        if event == "open":
            path = args[0] if args else None
            if _isinstance(path, int):
                return
            p = _resolve(path, cwd) if path is not None else ""
            if p is None:  # not a valid path: the open fails
                return
            if p.endswith((".py", ".pyc", ".so")) or p.startswith(library_roots):
                return
            log.note(f"opens files ({_fsdecode(path)!s})")
        elif event in ("os.listdir", "os.scandir", "glob.glob"):
            log.note(f"lists directories ({event})")
        elif event.startswith("socket."):
            log.note(f"uses the network ({event})")

    sys.addaudithook(hook)
    return log


def number_identity_hashes(reverse: bool = False) -> Callable[[], None]:
    """Inside the child, before the program runs: the classes its top level defines that hash by identity
    (no ``__hash__`` of their own) hash by the order their instances were first hashed in (the complement
    with ``reverse``), not by address. Two traces, one of each, agree whatever the addresses, and differ
    where a set of such objects is iterated or shown (in the other order, short of collisions).

    Call the function returned once the top level has run: classes are changed then, after their
    decorators (a ``__hash__`` in its class would keep ``dataclass`` from adding its own, or from making
    instances unhashable). A class with instances by then keeps its hash (they may sit in a set or dict
    already), and so does one made later (its decorators run after it is made): either way the program
    gives the result it gives untraced."""
    import builtins
    import itertools

    numbers: dict[int, int] = {}
    refs: dict[int, weakref.ref] = {}
    counter = itertools.count(1)
    object_id = builtins.id

    def forget(key: int) -> None:
        numbers.pop(key, None)
        refs.pop(key, None)

    def numbered_hash(self) -> int:
        key = object_id(self)
        n = numbers.get(key)
        if n is None:
            n = numbers[key] = _next(counter)
            try:
                refs[key] = _weakref(self, lambda _, key=key: forget(key))
            except TypeError:  # no weak reference: an object later at its address takes its number, as its hash
                pass
        return ~n if reverse else n

    def renumber(cls) -> None:
        if _isinstance(cls, _type) and cls.__hash__ is _object_hash:
            try:
                cls.__hash__ = numbered_hash
            except (TypeError, AttributeError):  # a metaclass that refuses it
                pass

    made: list = []
    build_class = builtins.__build_class__

    def build(func, name, *bases, **kwargs):
        cls = build_class(func, name, *bases, **kwargs)
        made.append(cls)
        return cls

    def start() -> None:
        builtins.__build_class__ = build_class
        classes = _set(made)
        instantiated = {c for t in {_type(obj) for obj in _get_objects()} for c in t.__mro__ if c in classes}
        for cls in made:
            if cls not in instantiated:
                renumber(cls)

    builtins.__build_class__ = build
    return start


def _first_difference(a: list[dict], b: list[dict]) -> int | None:
    """The line of the first event where two traces part."""
    for x, y in zip(a, b):
        if x != y:
            return x.get("line")
    return (a[len(b)] if len(a) > len(b) else b[len(a)]).get("line")


@dataclasses.dataclass
class DeterminismReport:
    """``trace``: the traced call that was checked (numbered identity hashes), for monologues to be written
    from; ``trace_problem``: why that trace does not stand for the untraced run (it stopped at the
    recursion limit, timed out, or ends otherwise), None when it does. ``sandbox_failure``: the sandbox
    itself failed, so the reasons say nothing about the program. ``timed_out``: the runs of the check that
    ran out of time (``audit``, ``hash seed <n>``, ``trace``); any makes the report not deterministic, with
    the reason ``TIMED_OUT``, and the checks the other runs allow are still made."""

    deterministic: bool
    reasons: list[str]
    trace: "Trace | None" = None
    trace_problem: str | None = None
    sandbox_failure: str | None = None
    timed_out: list[str] = dataclasses.field(default_factory=list)

    @property
    def only_timed_out(self) -> bool:
        """No verdict on the program: a run of the check timed out (a loaded machine as often as the
        program) and every check that could still be made found nothing. Stages count it and keep none
        of the call's output as record data."""
        return self.sandbox_failure is None and self.reasons == [TIMED_OUT]

    @property
    def trace_usable(self) -> bool:
        """Whether ``trace`` may become training text: reproducible and the untraced run's."""
        return self.deterministic and self.trace is not None and self.trace_problem is None


TIMED_OUT = "timed out"  # the reason for a check that ran out of time (the only one, where nothing else was seen)
_OUTCOME = ("status", "return_repr", "stdout", "exc_type")


def _outcome(r: dict) -> tuple:
    """A run's result as traces show it (addresses masked: "[EXCEPTION] ValueError: {'b', 'a'}" is data too)."""
    from semcoder_jax.execution.tracer import mask_addresses

    return tuple(mask_addresses(r.get(k)) if k == "return_repr" else r.get(k) for k in _OUTCOME) + (
        mask_addresses(r.get("exc_message")),)


def _describe(r: dict) -> str:
    status = r.get("status")
    if status == "passed":
        return f"returns {r.get('return_repr')}"
    return f"raises {r.get('exc_type')}" if status in ("error", "failed") else f"ends with status {status}"


def _trace_problem(traced: dict, plain: dict) -> str | None:
    """Why the traced run does not stand for the untraced one, or None."""
    if (traced.get("payload") or {}).get("stopped"):
        return "the tracer stopped at the recursion limit (the trace ends early)"
    if traced.get("status") != plain.get("status") or traced.get("exc_type") != plain.get("exc_type") \
            or _outcome(traced)[1:3] != _outcome(plain)[1:3]:
        return f"traced, the call {_describe(traced)}; untraced it {_describe(plain)}"
    return None


def _sandbox_failure(responses) -> str | None:
    from semcoder_jax.execution.result import is_sandbox_failure

    for r in responses:
        if is_sandbox_failure(r):
            return r.get("exc_message") or "sandbox failure"
    return None


def check_determinism(source: str, call: str | None, *, sandbox=None, other_hash_seed: int | None = None,
                      max_repr: int = 256) -> DeterminismReport:
    """Run under two hash seeds, once instrumented and traced twice; ``deterministic`` iff no reason was
    found. ``max_repr`` as the traces that monologues are written from take it."""
    return check_determinism_many([(source, call)], sandbox=sandbox, other_hash_seed=other_hash_seed, max_repr=max_repr)[0]


def check_determinism_many(items, *, sandbox=None, other_hash_seed: int | None = None,
                           max_repr: int = 256) -> list[DeterminismReport]:
    """``check_determinism`` over ``(source, call)`` pairs, concurrently; reports in input order."""
    from semcoder_jax.execution.sandbox import default_sandbox
    from semcoder_jax.execution.tracer import trace_from_response, trace_job

    box = sandbox or default_sandbox()
    other = box.sibling(other_hash_seed if other_hash_seed is not None else box.config.hash_seed + 1)
    items = list(items)
    plain = [{"mode": "run", "source": s, "call": c} for s, c in items]
    traced = [trace_job(s, c, max_repr=max_repr) for s, c in items]
    n = len(items)
    ours = box.map_raw([{"mode": "audit", "source": s, "call": c} for s, c in items]
                       + plain
                       + [dict(job, identity_hash="numbered") for job in traced]
                       + [dict(job, identity_hash="reversed") for job in traced])
    audited, first, traces, shuffled = ours[:n], ours[n:2 * n], ours[2 * n:3 * n], ours[3 * n:]
    second = other.map_raw(plain)
    reports = []
    for (_, call), a, r1, r2, t1, t2 in zip(items, audited, first, second, traces, shuffled):
        failure = _sandbox_failure((a, r1, r2, t1, t2))
        reasons = list((a.get("payload") or {}).get("reasons", []))
        msg = a.get("exc_message") or ""
        if msg.startswith("sandbox:"):
            reasons.append(f"blocked by the sandbox ({msg})")
        # A timed-out run is a busy machine as often as the program: no verdict from it, named as such,
        # while each comparison whose two runs both finished is still made.
        runs = (("audit", a), (f"hash seed {box.config.hash_seed}", r1), (f"hash seed {other.config.hash_seed}", r2),
                ("trace", t1), ("trace", t2))
        timed_out = list(dict.fromkeys(name for name, r in runs if r.get("status") == "timeout"))
        if timed_out:
            reasons.append(TIMED_OUT)
        # Results are compared untraced: the tracer's frames and time are no part of the program's result.
        if "timeout" not in (r1.get("status"), r2.get("status")) and _outcome(r1) != _outcome(r2):
            reasons.append(f"result differs between hash seeds {box.config.hash_seed} and {other.config.hash_seed}")
        if "timeout" not in (t1.get("status"), t2.get("status")):
            events = [(t.get("payload") or {}).get("events", []) for t in (t1, t2)]
            if events[0] != events[1]:
                reasons.append(f"trace of {call or '<module>'} differs between runs from line "
                               f"{_first_difference(*events)} on (order by object identity)")
            elif _outcome(t1) != _outcome(t2):
                reasons.append(f"result of the traced {call or '<module>'} differs between runs (order by object identity)")
        reports.append(DeterminismReport(deterministic=not reasons and failure is None, reasons=reasons,
                                         trace=trace_from_response(call, t1), trace_problem=_trace_problem(t1, r1),
                                         sandbox_failure=failure, timed_out=timed_out))
    return reports
