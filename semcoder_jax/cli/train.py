"""``semcoder train --config FILE [key=value ...]``: the sharded trainer."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from semcoder_jax.errors import SemcoderError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (from scratch, a Hugging Face checkpoint or an Orbax checkpoint)",
        description="Train with a YAML config (configs/train/*.yaml) and key=value overrides, "
        "e.g. `semcoder train --config configs/train/tiny-cpu.yaml max_steps=20 run_dir=runs/try`. "
        "A run folder that already holds checkpoints resumes from the latest one.",
    )
    p.add_argument("--config", required=True, help="a train YAML file or the name of one in configs/train/")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. data.path=out/pyx")
    p.set_defaults(func=run, on_interrupt="rerun the same command to resume from the run folder's latest checkpoint")


def run(args: argparse.Namespace) -> int:
    import logging

    from semcoder_jax.checkpoint import quiet_orbax_warnings
    from semcoder_jax.config import dump_config, preset_path
    from semcoder_jax.train.config import load_train_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_orbax_warnings()
    for noisy in ("absl", "orbax", "jax._src"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = load_train_config(preset_path("train", args.config), args.overrides)
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    import jax

    from semcoder_jax.checkpoint import latest_step
    from semcoder_jax.train import mesh
    from semcoder_jax.train.input import stop_together
    from semcoder_jax.train.trainer import train

    mesh.maybe_initialize_distributed()
    run_dir = Path(cfg.run_dir)
    with contextlib.ExitStack() as stack:
        problem = None
        if jax.process_index() == 0:  # the other processes of one job share the folder
            try:
                stack.enter_context(run_dir_lock(run_dir))
            except SemcoderError as e:
                problem = e
        # else the others would go on into training and wait for process 0 in its first collective
        stop_together(problem, f"run_dir {run_dir}", "could not lock it")
        interrupt = stack.enter_context(save_on_first_interrupt())
        train(cfg)
    if interrupt.stopped:
        ckpt = run_dir / cfg.checkpoint.dir
        saved = latest_step(ckpt)
        if saved is not None and saved >= interrupt.total_steps:
            print(f"semcoder train: Ctrl-C came at the end of the run: it finished, with its last step ({saved}) "
                  f"saved in {ckpt}; nothing is left to resume", file=sys.stderr)
        else:
            print(f"semcoder train: stopped by Ctrl-C with step {saved} saved in {ckpt}; "
                  "rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


LOCK_FILE = ".train.lock"


def run_dir_lock(run_dir: Path) -> contextlib.AbstractContextManager[bool]:
    """Hold ``run_dir`` for this training: a second one there would resume from the same checkpoint
    and both would write its checkpoints and metrics.jsonl (each step twice)."""
    import logging

    from semcoder_jax.locking import folder_lock

    return folder_lock(
        run_dir / LOCK_FILE,
        held=lambda holder: SemcoderError(f"run_dir {run_dir}: another `semcoder train` ({holder}) is training there; "
                                          "wait for it to end, or give another run_dir"),
        unwritable=lambda reason: SemcoderError(f"run_dir {run_dir}: cannot write there ({reason})"),
        unguarded=lambda reason: (f"run_dir {run_dir}: cannot lock it ({reason}); training without the guard against "
                                  "a second `semcoder train` there"),
        logger=logging.getLogger(__name__),
    )


class _Interrupt:
    stopped = False
    total_steps = 0  # the stopped run's schedule, to tell a Ctrl-C at its last step


@contextlib.contextmanager
def save_on_first_interrupt() -> Iterator[_Interrupt]:
    """The first Ctrl-C in the training loop stops it as SIGTERM does (a checkpoint after the
    current step, then out), instead of losing every step since the last checkpoint; a second one,
    or one outside the loop (loading, compiling, several processes), interrupts at once."""
    from semcoder_jax.train.trainer import Trainer

    state = _Interrupt()

    def on_sigint(signum: int, frame: Any) -> None:
        handler = signal.getsignal(signal.SIGTERM)
        if state.stopped or not isinstance(getattr(handler, "__self__", None), Trainer):
            raise KeyboardInterrupt
        state.stopped = True
        state.total_steps = handler.__self__.total_steps
        print("\nCtrl-C: press it again to stop at once, without saving", file=sys.stderr, flush=True)
        handler(signum, frame)

    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield state
        return
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)
