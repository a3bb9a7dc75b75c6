"""The same stage functions as an Apache Beam pipeline.

Each stage groups records by shard and runs ``build.apply_stage`` on a shard, writing the same
``stages/<stage>/shard-*.jsonl`` files as the local runner, so both runners give the same records
and the same TFRecords. The final format/tokenise/pack step then runs in the launcher.

Runners: ``DirectRunner`` (default, tests), and through Beam's pipeline options
(``semcoder data build --runner beam --beam-options='--runner=DataflowRunner --project=P --region=R --temp_location=gs://...'``,
``FlinkRunner --flink_master=HOST:PORT``, ``SparkRunner --spark_master_url=spark://HOST:7077``).
On a cluster ``output_dir`` must be a filesystem every worker sees (NFS, a mounted bucket), and the
workers need this package installed (``--setup_file`` or a container image).
"""

from __future__ import annotations

import shlex
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from data_pipeline import build
from data_pipeline.config import DataConfig
from data_pipeline.records import RecordError
from data_pipeline.stages.base import STAGE_ORDER


def _stage_dofn():
    import apache_beam as beam

    class StageDoFn(beam.DoFn):
        def __init__(self, config: DataConfig, stage: str):
            self.config, self.stage = config, stage

        def setup(self):
            from data_pipeline.stages.base import StageContext, stage_functions

            self.ctx = StageContext(self.config)
            self.fn = stage_functions()[self.stage]

        def process(self, element: tuple[int, Iterable[dict[str, Any]]]):
            shard, records = element
            if build.shard_done(self.config, self.stage, shard):
                outputs = build.read_shard(self.config, self.stage, shard)
            else:
                before = Counter(self.ctx.notes)
                workers = build.stage_workers(self.config)
                outputs, rejects, report = build.apply_stage(self.fn, list(records), self.ctx, workers=workers)
                report["notes"] = dict(sorted((Counter(self.ctx.notes) - before).items()))
                build.write_shard(self.config, self.stage, shard, outputs, rejects, report)
            for r in outputs:
                yield shard, r

        def teardown(self):
            self.ctx.close()

    return StageDoFn


def run_stages(config: DataConfig, beam_options: str = "") -> None:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    build.check_stage_settings(config)
    build.redo_stale_shards(config)
    build.write_source(config)  # listing and parsing the corpus runs in the launcher, like a Beam Create
    n = config.num_shards
    source = [(i, r) for i in range(n) for r in build.read_shard(config, build.SOURCE_STAGE, i)]
    argv = shlex.split(beam_options) or ["--runner=DirectRunner", "--direct_num_workers=1", "--direct_running_mode=in_memory"]
    StageDoFn = _stage_dofn()
    with beam.Pipeline(options=PipelineOptions(argv)) as p:
        pcoll = p | "source" >> beam.Create(source)
        for stage in STAGE_ORDER:
            pcoll = (
                pcoll
                | f"{stage}/group" >> beam.GroupByKey()
                | f"{stage}/run" >> beam.ParDo(StageDoFn(config, stage))
            )
        # Shards with no records never reach a stage's DoFn; the launcher completes them below.
    _complete_empty_shards(config)


def _complete_empty_shards(config: DataConfig) -> None:
    """A missing shard is empty only when its input shard is finished and empty; otherwise the workers
    wrote it where the launcher cannot see, and completing it would silently drop its records."""
    prev = build.SOURCE_STAGE
    for stage in STAGE_ORDER:
        for i in range(config.num_shards):
            if build.shard_done(config, stage, i):
                continue
            if not build.shard_done(config, prev, i) or build.read_shard(config, prev, i):
                raise RecordError(f"{build.shard_paths(config, stage, i)[2]}: missing after the Beam pipeline finished although its "
                                  f"input shard has records; output_dir must be a filesystem every worker sees")
            build.write_shard(config, stage, i, [], [], {"in": 0, "kept": 0, "out": 0, "rejected": {}, "notes": {}})
        prev = stage


def run(config: DataConfig, *, beam_options: str = "", progress: bool = True) -> dict[str, Any]:
    """The build into ``config.output_dir``, which no other build may write to meanwhile."""
    with build.output_lock(Path(config.output_dir)):
        build.save_config(config)
        if config.source == "released":
            from data_pipeline.released import released_records

            formatted, stages = released_records(config)
            return build.finalize(config, formatted, stages, runner="beam")
        run_stages(config, beam_options)
        problems = build.final_problems(config)
        return build.finalize(config, build.format_all(problems), build.stage_reports(config), runner="beam")
