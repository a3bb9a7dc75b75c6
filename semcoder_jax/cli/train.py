"""``semcoder train --config FILE [key=value ...]``: the sharded trainer."""

from __future__ import annotations

import argparse


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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    import yaml

    from semcoder_jax.checkpoint import quiet_orbax_warnings
    from semcoder_jax.config import preset_path, to_dict
    from semcoder_jax.train.config import load_train_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_orbax_warnings()
    for noisy in ("absl", "orbax", "jax._src"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = load_train_config(preset_path("train", args.config), args.overrides)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    from semcoder_jax.train.mesh import maybe_initialize_distributed
    from semcoder_jax.train.trainer import train

    maybe_initialize_distributed()
    train(cfg)
    return 0
