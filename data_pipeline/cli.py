"""``semcoder data build`` and ``semcoder data stats``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="build SemCoder training data (PYX, monologues, PYX-R) into packed TFRecords")
    sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    b = sub.add_parser("build", help="run the pipeline of a data config")
    b.add_argument("--config", required=True, help="configs/data/NAME.yaml or a preset name")
    b.add_argument("overrides", nargs="*", help="key=value config overrides (e.g. output_dir=out/x num_shards=8)")
    b.add_argument("--runner", choices=("local", "beam"), default="local")
    b.add_argument("--beam-options", default="", help="Beam pipeline options, e.g. '--runner=DataflowRunner --project=P'")
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=_build, on_interrupt="rerun the same command to resume: finished shards are kept")
    s = sub.add_parser("stats", help="print a build's report and write PNG plots")
    s.add_argument("dir", help="output folder of a build")
    s.add_argument("--plots", default=None, help="folder for the PNGs (default DIR/plots)")
    s.set_defaults(func=_stats)


def load(config: str, overrides: list[str]):
    from data_pipeline.config import DataConfig
    from semcoder_jax.config import load_config, preset_path

    return load_config(DataConfig, preset_path("data", config), overrides)


def _build(args: argparse.Namespace) -> int:
    import json

    cfg = load(args.config, args.overrides)
    if "://" not in cfg.output_dir:  # a local folder it cannot make was a traceback from the first stage
        try:
            Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            from semcoder_jax.errors import SemcoderError

            raise SemcoderError(f"output_dir {cfg.output_dir}: cannot make the folder ({e.strerror or e})") from None
    if args.runner == "beam":
        from data_pipeline.runner_beam import run

        report = run(cfg, beam_options=args.beam_options, progress=not args.no_progress)
    else:
        from data_pipeline.runner_local import run

        report = run(cfg, progress=not args.no_progress)
    summary = {"output_dir": cfg.output_dir, "rows": report["rows"], "examples": report["examples"],
               "padding_fraction": report["padding_fraction"], "records_by_kind": report["records_by_kind"]}
    if "validation" in report:
        summary["validation"] = report["validation"]
    print(json.dumps(summary))
    return 0


def _stats(args: argparse.Namespace) -> int:
    from data_pipeline.stats import format_report, load_report, write_plots

    report, manifest = load_report(args.dir)
    print(format_report(report, manifest))
    try:
        paths = write_plots(args.dir, args.plots)
    except OSError as e:  # --plots naming a file, or a folder it cannot write
        from semcoder_jax.errors import SemcoderError

        raise SemcoderError(f"--plots {args.plots or Path(args.dir) / 'plots'}: cannot write the plots there "
                            f"({e.strerror or e})") from None
    for path in paths:
        print(f"wrote {path}")
    return 0
