"""SemCoder's data pipeline: seeds -> problems -> executable solutions -> inputs -> forward and
backward monologues -> PYX-R -> decontamination -> formatted records -> packed TFRecords.

Run it with ``semcoder data build --config configs/data/NAME.yaml [key=value ...]``; see
``data_pipeline.build`` for the output layout and ``data_pipeline.stages`` for the stage contract.
"""
