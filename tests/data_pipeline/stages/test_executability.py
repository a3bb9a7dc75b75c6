"""Executability: which solutions go on to the inputs stage."""


def test_a_solution_whose_trace_is_ordered_by_object_identity_is_rejected():
    """Its result (the set's size) was the same on every run, so it was kept, and the monologue written from
    its trace listed the set of objects in another order on every build."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages import executability
    from data_pipeline.stages.base import StageContext

    node = "class N:\n    def __init__(self, v):\n        self.v = v\n    def __repr__(self):\n        return f'N({self.v})'\n"
    solution = node + "def count(xs):\n    s = {N(x) for x in xs}\n    return len(s)\n"
    record = {"id": "p1", "entry_point": "count", "problem": "Count nodes.", "solution": solution,
              "seed_inputs": ["[0, 7, 3, 5]"]}
    ctx = StageContext(DataConfig(workers=2))
    try:
        rejected = executability.process(record, ctx)
        assert rejected.reason == "nondeterministic" and "trace of count([0, 7, 3, 5]) differs" in rejected.detail
        by_value = node + "    def __hash__(self):\n        return self.v\n    def __eq__(self, o):\n        return self.v == o.v\n"
        (kept,) = executability.process(dict(record, solution=by_value + solution[len(node):]), ctx)
        assert kept["solution"].startswith(by_value)
    finally:
        ctx.close()
