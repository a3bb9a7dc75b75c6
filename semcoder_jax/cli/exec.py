"""``semcoder exec``: run or trace a Python file in the sandbox.

    semcoder exec run prog.py [--call 'f(1, 2)'] [--timeout 5] [--json]
    semcoder exec trace prog.py --call 'f([1, 2])' [--format json|scratchpad|next|concise]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tokenize
from pathlib import Path

from semcoder_jax.errors import SemcoderError
from semcoder_jax.prompts import LINE_LABEL_OFFSET


def register(subparsers) -> None:
    parser = subparsers.add_parser("exec", help="run or trace untrusted Python in the sandbox")
    sub = parser.add_subparsers(dest="exec_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="run a file (and optionally a call) in the sandbox")
    run.add_argument("file", type=Path)
    run.add_argument("--call", help="expression evaluated after the file, e.g. 'f(1, 2)'")
    run.add_argument("--timeout", type=float, default=None, help="wall-clock limit in seconds")
    run.add_argument("--json", action="store_true", help="print the result as one JSON line")
    run.set_defaults(func=run_command)
    trace = sub.add_parser("trace", help="trace one call line by line")
    trace.add_argument("file", type=Path)
    trace.add_argument("--call", required=True, help="the call to trace, e.g. 'f([1, 2])'")
    trace.add_argument("--format", default="json", choices=("json", "scratchpad", "next", "concise"),
                       help="json: events with the program's own line numbers; the others render as the "
                            f"training data does, labelling program line i as [L{{i+{LINE_LABEL_OFFSET}}}] (SemCoder's offset)")
    trace.add_argument("--timeout", type=float, default=None)
    trace.add_argument("--max-events", type=int, default=10_000)
    trace.add_argument("--max-repr", type=int, default=256)
    trace.set_defaults(func=trace_command)


def _read(path: Path) -> str:
    """The program as ``python`` reads the file: a UTF-8 BOM or a ``coding:`` line decides the encoding."""
    try:
        with tokenize.open(path) as f:
            return f.read()
    except (OSError, UnicodeDecodeError, SyntaxError) as e:
        raise SemcoderError(f"{path}: cannot read the program ({e})") from None


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not 0 < timeout < math.inf:
        raise SemcoderError(f"--timeout: must be a positive, finite number of seconds, got {timeout}")


def run_command(args: argparse.Namespace) -> int:
    from semcoder_jax.execution import Sandbox

    _check_timeout(args.timeout)
    source = _read(args.file)
    with Sandbox() as box:
        result = box.run(source, args.call, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        if result.stdout:
            print(result.stdout, end="" if result.stdout.endswith("\n") else "\n")
        if result.stderr:
            print(result.stderr, end="" if result.stderr.endswith("\n") else "\n", file=sys.stderr)
        line = f"status: {result.status} ({result.duration_s:.3f} s)"
        if result.return_repr is not None:
            line += f"\nreturn: {result.return_repr}"
        if result.exc_type or result.exc_message:
            line += f"\n{result.exc_type or 'error'}: {result.exc_message}"
        print(line)
    return 0 if result.status == "passed" else 1


def trace_command(args: argparse.Namespace) -> int:
    from semcoder_jax.execution import Sandbox, render_trace, trace_call

    _check_timeout(args.timeout)
    for flag, value in (("--max-events", args.max_events), ("--max-repr", args.max_repr)):
        if value < 1:  # the tracer would drop every event, or every value's line, without a word
            raise SemcoderError(f"{flag}: must be >= 1, got {value}")
    source = _read(args.file)
    with Sandbox() as box:
        trace = trace_call(source, args.call, sandbox=box, timeout_s=args.timeout, max_events=args.max_events,
                           max_repr=args.max_repr)
    print(render_trace(source, trace, args.format))
    return 0 if trace.status == "passed" else 1
