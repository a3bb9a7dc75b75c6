"""``semcoder demo``: the whole job end to end on built-in defaults, offline, on a CPU.

Builds the demo data (shipped seeds, built-in trace annotator), trains the tiny model on it,
exports the checkpoint to Hugging Face format, evaluates it on a CRUXEval-O slice with the JAX
sampler, and writes the Table 1 report. Each step is the same subcommand a user would run, so
the demo doubles as a smoke test of the command line.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from semcoder_jax import DEFAULT_TOKENIZER_DIR
from semcoder_jax.errors import SemcoderError


def steps(out: Path, train_steps: int, eval_limit: int) -> list[tuple[str, list[str]]]:
    data, run, hf, ev = out / "data", out / "train", out / "hf", out / "eval"
    return [
        ("build the demo data", ["data", "build", "--config", "demo", f"output_dir={data}", "seq_len=512",
                                 "validation_fraction=0.2"]),
        (
            "train the tiny model",
            [
                "train", "--config", "tiny-cpu", f"run_dir={run}", f"data.path={data}", "data.seq_len=512",
                "data.global_batch_size=4", f"max_steps={train_steps}", "checkpoint.every=1000000",
                f"validation.every={max(train_steps // 3, 1)}",
            ],
        ),
        # with the tokenizer the data was built with, so the folder serves on its own (vLLM, transformers)
        ("export to Hugging Face", ["convert", "orbax-to-hf", "--checkpoint", str(run / "checkpoints"), "--out", str(hf),
                                    "--dtype", "float32", "--tokenizer", str(DEFAULT_TOKENIZER_DIR)]),
        (
            "evaluate on CRUXEval-O",
            [
                "eval", "run", "--benchmark", "cruxeval-o", "--backend", "jax", "--hf-dir", str(hf),
                "--limit", str(eval_limit), "--out", str(ev / "cruxeval-o"), "generation.max_new_tokens=48",
            ],
        ),
        ("write the report", ["eval", "report", str(ev), "--out", str(out / "report.md")]),
    ]


def run_demo(args: argparse.Namespace) -> int:
    from semcoder_jax import PROJECT_ROOT
    from semcoder_jax.cli.main import main

    for flag, value in (("--train-steps", args.train_steps), ("--eval-limit", args.eval_limit)):
        if value < 1:  # its step would refuse it only after the data build and training
            raise SemcoderError(f"{flag}: must be >= 1, got {value}")
    out = Path(args.out).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):  # the export step would refuse it minutes in
        raise SemcoderError(f"--out {out}: already exists and is not an empty folder; pick a new one or remove it")
    out.mkdir(parents=True, exist_ok=True)
    plan = steps(out, args.train_steps, args.eval_limit)
    import os

    cwd = os.getcwd()
    os.chdir(PROJECT_ROOT)  # the demo's configs are the repository's own
    try:
        for i, (what, argv) in enumerate(plan, 1):
            print(f"\n[demo {i}/{len(plan)}] {what}: semcoder {shlex.join(argv)}", flush=True)
            t0 = time.perf_counter()
            rc = main(argv)
            if rc == 130:  # the step said it was interrupted: not a failure to report as one
                raise KeyboardInterrupt
            if rc:
                raise SemcoderError(f"step {i} ({what}) failed with exit code {rc}")
            print(f"[demo {i}/{len(plan)}] done in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        os.chdir(cwd)
    print(f"\nDemo finished: data {out / 'data'}, run {out / 'train'}, HF model {out / 'hf'}, report {out / 'report.md'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run data → train → export → eval end to end on built-in defaults (offline, CPU)")
    p.add_argument("--out", default="runs/demo", help="new or empty output folder (default: runs/demo)")
    p.add_argument("--train-steps", type=int, default=24, help="steps of the tiny model (default: 24)")
    p.add_argument("--eval-limit", type=int, default=4, help="CRUXEval-O problems to evaluate (default: 4)")
    p.set_defaults(func=run_demo, on_interrupt="the --out folder is kept as it is; remove it (or give another) to run the demo again")
