"""Input generation: which outputs are kept as test literals."""



def test_set_outputs_are_literals_whatever_this_process_hash_seed():
    """The sandbox orders a set's repr by its own hash seed; keeping the test must not depend on ours."""
    from data_pipeline.stages.inputs import literal_output

    words = ["hello", "world", "foo", "bar"]
    other_order = "{" + ", ".join(repr(w) for w in reversed(list(set(words)))) + "}"
    assert other_order != repr(set(words))
    assert literal_output(other_order) and literal_output("frozenset()") is False
    for bad in (None, "inf", "1e309", "<object at 0x1>", "[1, 2"):
        assert not literal_output(bad), bad
