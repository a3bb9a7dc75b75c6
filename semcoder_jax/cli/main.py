"""The ``semcoder`` command: one subcommand per job, each defined in its own module.

A subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``. Modules import heavy libraries (jax, tensorflow, torch) inside ``func``
so that ``semcoder --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semcoder",
        description="SemCoder in JAX: build monologue data, train, convert, generate and evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"semcoder-jax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and (module == e.name or module.startswith(e.name + ".")):
                continue  # subcommand not present in this checkout
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # TensorFlow's C++ INFO lines ("Local rendezvous is aborting with status: OUT_OF_RANGE" at each
    # epoch's end) read like errors; warnings and errors still show, and a user's own level wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except SemcoderError as e:
        print(f"semcoder {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
