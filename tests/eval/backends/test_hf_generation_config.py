"""The hf backend generates with our settings only: a model's generation_config.json (a repetition
penalty, an n-gram ban, suppressed tokens, beams, ...) changed transformers' greedy and sampled output
alike, as transformers fills every field a passed config leaves unset from that file."""

import json

import pytest

from eval.backends import BackendConfig, get_backend

PROMPTS = ["def add(a, b):\n    return", "x"]
# Fields that act on transformers' greedy decoding (the first two alone changed tiny_hf's output), its
# sampling, or what generate returns.
MODEL_DEFAULTS = {
    "repetition_penalty": 5.0, "no_repeat_ngram_size": 2, "min_new_tokens": 4, "suppress_tokens": [185, 207],
    "begin_suppress_tokens": [62], "exponential_decay_length_penalty": [2, 1.5], "num_beams": 2, "do_sample": True,
    "top_k": 3, "temperature": 0.1, "max_length": 8, "return_dict_in_generate": True,
}


def _folder(tiny_hf, path, generation_config):
    """``tiny_hf``'s files linked into ``path``, with ``generation_config`` (None: no such file)."""
    path.mkdir()
    for f in tiny_hf.iterdir():
        if f.name != "generation_config.json":
            (path / f.name).symlink_to(f)
    if generation_config is not None:
        (path / "generation_config.json").write_text(json.dumps(generation_config))
    return path


@pytest.mark.slow  # loads two models: 2 to 5 s
def test_a_models_generation_config_changes_nothing_but_eos(tiny_hf, tmp_path):
    plain = get_backend("hf", BackendConfig(hf_dir=str(_folder(tiny_hf, tmp_path / "plain", None)), dtype="float32"))
    noisy_dir = _folder(tiny_hf, tmp_path / "noisy", {"eos_token_id": 32014, **MODEL_DEFAULTS})
    noisy = get_backend("hf", BackendConfig(hf_dir=str(noisy_dir), dtype="float32"))
    greedy = dict(n=1, temperature=0.0, max_new_tokens=16)
    want = plain.generate(PROMPTS, **greedy)
    assert noisy.generate(PROMPTS, **greedy) == want
    assert [(o[0].finish_reason, o[0].num_tokens) for o in want] == [("length", 16)] * 2  # neither cut short
    sampled = dict(n=2, temperature=1.0, top_p=0.9, max_new_tokens=4, seed=3)
    assert noisy.generate(PROMPTS[:1], **sampled) == plain.generate(PROMPTS[:1], **sampled)
    assert noisy.model.generation_config.repetition_penalty is None


@pytest.mark.slow  # loads a model: 1 to 2 s
def test_eos_is_config_jsons_and_generation_configs_ids_together(tiny_hf, tmp_path):
    """As the jax backend reads them (semcoder_jax.convert.read_hf_config): an end of turn that only
    generation_config.json lists ends a sample, and config.json's EOS still does."""
    hf = get_backend("hf", BackendConfig(hf_dir=str(_folder(tiny_hf, tmp_path / "m", {"eos_token_id": [7, 9]})), dtype="float32"))
    assert hf.eos_ids == [32014, 7, 9]



def test_the_jax_sampler_takes_nothing_but_eos_from_generation_config(tiny_hf, tmp_path):
    """The jax backend and `semcoder generate` sample with a ModelConfig and their arguments only;
    of generation_config.json, read_hf_config takes the EOS ids (config.json's come first)."""
    from semcoder_jax.convert import read_hf_config

    plain = read_hf_config(_folder(tiny_hf, tmp_path / "m", None))
    noisy = read_hf_config(_folder(tiny_hf, tmp_path / "n", {"eos_token_id": [32014, 7], **MODEL_DEFAULTS}))
    assert noisy.replace(name="m") == plain.replace(extra_eos_token_ids=[7])
