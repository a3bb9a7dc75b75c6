"""Data config values out of range are errors naming the key."""

import pytest
from semcoder_jax.config import ConfigError


@pytest.mark.parametrize("bad", ["1.0", "-0.1", "2", "nan"])
def test_validation_fraction_must_be_a_fraction(bad):
    from data_pipeline.cli import load

    with pytest.raises(ConfigError, match=r"validation_fraction=.* must be >= 0 and < 1"):
        load("demo", [f"validation_fraction={bad}"])
    assert load("demo", ["validation_fraction=0.05"]).validation_fraction == 0.05


@pytest.mark.parametrize("bad", ["max_seeds=-1", "decontam.ngram=0", "decontam.ngram_overlap=1.5", "exec_timeout_s=0",
                                 "num_inputs=0", "llm_samples=0", "workers=-2", "llm.concurrency=0", "coverage_target=2",
                                 "pad_id=-1"])
def test_out_of_range_values_are_config_errors_naming_the_key(bad):
    """``max_seeds=-1`` dropped the last seed and ``decontam.ngram=0`` rejected every problem, silently."""
    from data_pipeline.cli import load

    key, value = bad.split("=")
    with pytest.raises(ConfigError, match=rf"data config: {key.replace('.', '[.]')}={value}(\.0)? must be"):
        load("demo", [bad])


def test_a_pad_id_outside_the_vocabulary_is_refused_before_any_stage(tmp_path):
    """The trainer refuses such padding: the whole build would be unusable."""
    from data_pipeline.build import save_config
    from data_pipeline.cli import load

    with pytest.raises(ConfigError, match=r"pad_id=32256 is not a token id of the tokenizer \(32022 tokens\)"):
        save_config(load("demo", [f"output_dir={tmp_path}", "pad_id=32256"]))
    assert not (tmp_path / "config.yaml").exists()


def test_list_overrides_keep_their_items_text_and_refuse_a_bare_value():
    """``decontam.benchmarks=[on.jsonl, 0755]`` were read as YAML (``0755`` became ``"493"``); a value that
    is no list was OmegaConf's "AnyNode is not a ListConfig"."""
    from data_pipeline.cli import load

    cfg = load("demo", ["decontam.benchmarks=[on, 0755, a b.jsonl]", "train_kinds=[nl2code, forward]", "corpus_dirs="])
    assert cfg.decontam.benchmarks == ["on", "0755", "a b.jsonl"]
    assert cfg.train_kinds == ["nl2code", "forward"] and cfg.corpus_dirs == []
    with pytest.raises(ConfigError, match=r"^<overrides>: train_kinds: expected a list such as train_kinds=\[a,b\], got 'nl2code'$"):
        load("demo", ["train_kinds=nl2code"])
    with pytest.raises(ConfigError, match=r"^<overrides>: llm: there are no llm presets"):
        load("demo", ["llm=gpt-4o"])
