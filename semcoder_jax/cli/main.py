"""The ``semcoder`` command: one subcommand per job, each defined in its own module.

A subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``. Modules import heavy libraries (jax, tensorflow, torch) inside ``func``
so that ``semcoder --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from semcoder_jax import __version__
from semcoder_jax.errors import SemcoderError

SUBCOMMANDS: dict[str, str] = {
    "convert": "semcoder_jax.cli.convert",
    "generate": "semcoder_jax.cli.generate",
    "train": "semcoder_jax.cli.train",
    "data": "data_pipeline.cli",
    "exec": "semcoder_jax.cli.exec",
    "eval": "eval.cli",
    "demo": "semcoder_jax.cli.demo",
}


# Libraries that print their warnings through a handler of their own, and pass them on to the root
# logger too: once absl's ``logging.basicConfig()`` (run when Orbax logs at import) or `semcoder
# train` gives the root a handler, each hub retry warning printed twice.
OWN_HANDLER_LOGGERS = ("huggingface_hub", "datasets")


def configure_logging() -> None:
    """Each library message printed once: by the library's own handler, not the root's as well."""
    for name in OWN_HANDLER_LOGGERS:
        logging.getLogger(name).propagate = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semcoder",
        description="SemCoder in JAX: build monologue data, train, convert, generate and evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"semcoder-jax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and (module == e.name or module.startswith(e.name + ".")):
                continue  # subcommand not present in this checkout
            raise
        mod.register(sub)
    _name_leaf_parsers(parser)
    return parser


def _name_leaf_parsers(parser: argparse.ArgumentParser) -> None:
    """Give each subcommand's own parser to its parse result, so that an unknown flag is reported
    with that subcommand's usage (argparse reports it with the top-level ``semcoder COMMAND ...``)."""
    children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not children:
        parser.set_defaults(_parser=parser)
    for action in children:
        for child in dict.fromkeys(action.choices.values()):
            _name_leaf_parsers(child)


def main(argv: Sequence[str] | None = None) -> int:
    # TensorFlow's C++ INFO lines ("Local rendezvous is aborting with status: OUT_OF_RANGE" at each
    # epoch's end) read like errors; warnings and errors still show, and a user's own level wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    configure_logging()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # e.g. a flag of another subcommand: name this subcommand, not `semcoder COMMAND ...`
        leaf = getattr(args, "_parser", parser)
        hint = f"see {leaf.prog} --help"
        dashed = [u for u in unknown if u.startswith("--") and "=" in u]
        if dashed and any(a.dest == "overrides" for a in leaf._actions):
            hint = f"config overrides take no dashes: {dashed[0][2:]}; {hint}"
        leaf.exit(2, f"{leaf.prog}: error: unrecognized arguments: {' '.join(unknown)} ({hint})\n")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except SemcoderError as e:
        print(f"semcoder {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = getattr(args, "on_interrupt", None)
        print(f"\n{getattr(args, '_parser', parser).prog}: interrupted" + (f"; {resume}" if resume else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
