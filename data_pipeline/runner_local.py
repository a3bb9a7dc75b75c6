"""Run a build on this machine, stage by stage and shard by shard, resumably.

A shard whose ``.done`` marker exists is skipped; a shard interrupted mid-way has no marker and is
redone from its input shard. Outputs are written to temporary names and renamed, so a killed build
leaves no half-written file behind. Before anything runs, finished shards built by other code (or
from other source records) are removed with the shards made from them (``build.redo_stale_shards``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from data_pipeline import build
from data_pipeline.config import DataConfig
from data_pipeline.stages.base import STAGE_ORDER, StageContext, stage_functions


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="rec", disable=not enabled, leave=True)


def run_stages(config: DataConfig, *, progress: bool = True, only_source: bool = False) -> None:
    build.check_stage_settings(config)
    build.redo_stale_shards(config)
    build.write_source(config)
    if only_source:
        return
    n = config.num_shards
    fns = stage_functions()
    ctx = StageContext(config)
    workers = build.stage_workers(config)
    try:
        prev = build.SOURCE_STAGE
        for stage in STAGE_ORDER:
            todo = [i for i in range(n) if not build.shard_done(config, stage, i)]
            inputs = {i: build.read_shard(config, prev, i) for i in todo}
            with _progress(sum(len(v) for v in inputs.values()), stage, progress) as bar:
                for i in todo:
                    before = Counter(ctx.notes)
                    outputs, rejects, report = build.apply_stage(fns[stage], inputs[i], ctx, workers=workers, progress=bar)
                    report["notes"] = dict(sorted((Counter(ctx.notes) - before).items()))
                    build.write_shard(config, stage, i, outputs, rejects, report)
            prev = stage
    finally:
        ctx.close()


def run(config: DataConfig, *, progress: bool = True) -> dict[str, Any]:
    """The build into ``config.output_dir``, which no other build may write to meanwhile."""
    with build.output_lock(Path(config.output_dir)):
        build.save_config(config)
        if config.source == "released":
            from data_pipeline.released import released_records

            formatted, stages = released_records(config)
            return build.finalize(config, formatted, stages, runner="local")
        run_stages(config, progress=progress)
        problems = build.final_problems(config)
        return build.finalize(config, build.format_all(problems), build.stage_reports(config), runner="local")
