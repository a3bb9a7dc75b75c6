"""Pipeline stages: pure per-record functions ``process(record, ctx) -> list[dict] | Reject``.

A record that enters a stage either yields one or more records or is rejected with a reason, so
each stage's report balances: records in = records kept + records rejected.
"""

from data_pipeline.stages.base import Reject, StageContext, stage_functions, STAGE_ORDER

__all__ = ["Reject", "StageContext", "stage_functions", "STAGE_ORDER"]
