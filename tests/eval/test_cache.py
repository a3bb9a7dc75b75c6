"""What names a model in the generation cache: checkpoint step, exported weights, tokenizer."""

from eval.backends import BackendConfig, get_backend


def test_checkpoint_identity_names_the_step_loaded_so_newer_steps_are_not_served_from_cache(tmp_path):
    # `--checkpoint DIR` without `--step` loads the newest step: the cache identity must name that step,
    # or evaluating the same folder after more training would reuse the older step's generations.
    import os

    import numpy as np

    from eval.backends import model_identity, model_source, pin_step
    from eval.cache import run_key
    from semcoder_jax.checkpoint import save_params
    from semcoder_jax.convert.mapping import param_mappings, set_path
    from semcoder_jax.model.config import get_model_config

    config = get_model_config("tiny", ["vocab_size=256", "hidden_size=32", "intermediate_size=48"])
    params: dict = {}
    for m in param_mappings(config):
        set_path(params, m.path, np.zeros(m.full_shape(config), np.float32))
    ckpt = tmp_path / "ckpt"
    save_params(ckpt, 1, params, config)
    first = pin_step(BackendConfig(checkpoint=str(ckpt)))
    assert first.step == 1 and model_source(first).endswith("@1")
    backend = get_backend("jax", BackendConfig(checkpoint=str(ckpt), dtype="float32"))
    assert backend.identity()["model"] == model_source(first)
    save_params(ckpt, 2, params, config)
    later = get_backend("jax", BackendConfig(checkpoint=str(ckpt), dtype="float32"))
    assert later.identity()["model"].endswith("@2")
    assert run_key(later.identity(), {}) != run_key(backend.identity(), {})
    assert model_source(pin_step(BackendConfig(checkpoint=str(ckpt), step=1))) == model_source(first)
    # a step written again (another training run into the same folder) is another model
    step1 = model_identity(BackendConfig(checkpoint=str(ckpt), step=1))
    assert model_identity(BackendConfig(checkpoint=str(ckpt), step=1)) == step1
    # ...but the same files with other mtimes (a run folder copied to another machine) are not
    for f in (p for p in (ckpt / "1").rglob("*") if p.is_file()):
        os.utime(f, ns=(0, f.stat().st_mtime_ns // 10**9 * 10**9 - 10**12))
    assert model_identity(BackendConfig(checkpoint=str(ckpt), step=1)) == step1
    import shutil

    shutil.rmtree(ckpt / "1")
    save_params(ckpt, 1, params, config)
    assert model_identity(BackendConfig(checkpoint=str(ckpt), step=1)) != step1


def test_a_model_exported_again_into_the_same_folder_is_another_model(tmp_path):
    import os

    from eval.backends import model_identity

    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    weights = hf / "model.safetensors"
    weights.write_bytes(b"a" * 16)
    before = model_identity(BackendConfig(hf_dir=str(hf)))
    assert before["model"] == str(hf)  # results name the folder; the weights only key the cache
    assert model_identity(BackendConfig(hf_dir=str(hf))) == before  # the same files: cached generations apply
    weights.write_bytes(b"b" * 16)
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000))
    assert model_identity(BackendConfig(hf_dir=str(hf))) != before  # a hub id's commit: tests/eval/backends/test_hub_models.py


def test_a_different_tokenizer_is_a_different_run_in_the_generation_cache():
    # A rerun with --tokenizer after a run with the wrong (default) one must not be served its generations.
    import types

    from eval.backends import model_identity
    from eval.backends.jax_backend import JaxBackend
    from eval.cache import run_key

    def identity(tokenizer):
        backend = JaxBackend.__new__(JaxBackend)
        backend.config = BackendConfig(checkpoint="/c", step=1, tokenizer=tokenizer)
        backend.source = model_identity(backend.config)
        backend.model_config = types.SimpleNamespace(dtype="bfloat16")
        return backend.identity()

    keys = {run_key(identity(t), {}) for t in (None, "/tok/a", "/tok/b")}
    assert len(keys) == 3


def _old_format_key(identity, settings):
    """How cache format 1 keyed a run (no format in the hash), as caches written before it hold."""
    import hashlib
    import json

    blob = json.dumps({"model": identity, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_stale_caches_are_generated_again_and_the_log_says_what_changed(tmp_path, scripted_backend):
    """HF generations of a checkpoint cached before the dtype fix (format 1, identity unchanged by the
    fix) were reused; now every run key hashes the cache format and the backend's revision, and the
    log names why cached rows of the same prompts were not reused."""
    import json

    from eval.backends.hf import HFBackend
    from eval.cache import GenerationCache, prompt_hash
    from eval.runner import generate_cached

    prompts = {"a": "pa", "b": "pb"}
    settings = {"benchmark": "cruxeval-o", "max_new_tokens": 8}
    kw = dict(n=1, temperature=0.0, top_p=1.0, max_new_tokens=8, stop=(), seed=0, batch_size=4)
    hf_old = {"backend": "hf", "model": "/ckpt@1", "dtype": "torch.float32"}
    path = tmp_path / "generations.jsonl"
    old_key = _old_format_key(hf_old, settings)
    path.write_text("".join(json.dumps({"key": old_key, "task_id": t, "sample": 0, "prompt_hash": prompt_hash(p),
                                        "completion": "rounded"}) + "\n" for t, p in prompts.items()))
    logs = []
    hf_now = {**hf_old, "revision": HFBackend.revision}
    backend = scripted_backend(lambda p: "fresh")
    out = generate_cached(backend, prompts, GenerationCache.for_run(path, hf_now, settings), log=logs.append, **kw)
    assert out == {"a": ["fresh"], "b": ["fresh"]} and backend.prompts == 2
    assert len(logs) == 1 and "2 cached generation(s)" in logs[0] and "before cache format 2" in logs[0], logs
    # a run line now records what the key hashes; a later change is named field by field
    logs.clear()
    changed = {**hf_now, "revision": HFBackend.revision + 1, "dtype": "torch.bfloat16"}
    generate_cached(scripted_backend(lambda p: "newer"), prompts, GenerationCache.for_run(path, changed, settings),
                    log=logs.append, **kw)
    assert "model.dtype: torch.float32 -> torch.bfloat16" in logs[0] and f"model.revision: {HFBackend.revision} -> {HFBackend.revision + 1}" in logs[0]
    # the same run again: everything cached, nothing said
    logs.clear()
    again = scripted_backend(lambda p: "x")
    assert generate_cached(again, prompts, GenerationCache.for_run(path, hf_now, settings), log=logs.append, **kw) == out
    assert again.calls == 0 and logs == []
    # a changed prompt template is named too
    generate_cached(scripted_backend(lambda p: "x"), {"a": "pa v2"}, GenerationCache.for_run(path, hf_now, settings),
                    log=logs.append, **kw)
    assert "the prompt template changed" in logs[0]


def test_finish_reason_and_token_count_survive_the_cache(tmp_path):
    from eval.backends import Completion
    from eval.cache import GenerationCache

    path = tmp_path / "g.jsonl"
    GenerationCache.for_run(path, {"backend": "x"}, {}).put_many(
        [("a", 0, "p", Completion("text", "length", 7)), ("b", 0, "q", "plain")])
    cache = GenerationCache.for_run(path, {"backend": "x"}, {})
    hit = cache.get("a", 0, "p")
    assert (hit, hit.finish_reason, hit.num_tokens) == ("text", "length", 7)
    plain = cache.get("b", 0, "q")
    assert (plain, plain.finish_reason, plain.num_tokens) == ("plain", None, None)
    assert sum(1 for line in path.read_text().splitlines() if '"run"' in line) == 1  # one run line for the run


def test_a_cache_row_of_the_run_that_is_no_row_is_an_error_naming_the_line(tmp_path):
    import json

    import pytest

    from eval.cache import GenerationCache
    from semcoder_jax.errors import SemcoderError

    path = tmp_path / "g.jsonl"
    path.write_text("[" * 100_000 + "\n"  # no row of ours: skipped as a torn line is, not a RecursionError
                    + json.dumps({"key": "k", "task_id": "a", "sample": 0, "prompt_hash": "h", "completion": "c"}) + "\n"
                    + json.dumps({"key": "k", "task_id": "a", "sample": "zero"}) + "\n")
    with pytest.raises(SemcoderError, match=r"g\.jsonl:3: not a generation cache row"):
        GenerationCache(path, "k")
    # a completion or token count of another type was reused as its text ("None") or written on to samples
    for field, value in (("completion", None), ("completion", 7), ("tokens", "7"), ("tokens", 1.5)):
        row = {"key": "k", "task_id": "a", "sample": 0, "prompt_hash": "h", "completion": "c", field: value}
        path.write_text(json.dumps(row) + "\n")
        with pytest.raises(SemcoderError, match=rf"g\.jsonl:1: not a generation cache row .*{field}"):
            GenerationCache(path, "k")


def test_what_keys_the_cache_covers_the_model_files_config_and_tokenizer(tmp_path):
    """A HF folder's config.json (RoPE scaling, EOS ids) and the tokenizer's contents change
    generations without changing the model's name (a checkpoint's files: the test above)."""
    import os
    import shutil

    from eval.backends import model_identity, tokenizer_identity
    from semcoder_jax import DEFAULT_TOKENIZER_DIR

    hf = tmp_path / "hf"
    shutil.copytree(DEFAULT_TOKENIZER_DIR, hf)
    (hf / "model.safetensors").write_bytes(b"w" * 16)
    (hf / "config.json").write_text('{"rms_norm_eps": 1e-06}')
    before = model_identity(BackendConfig(hf_dir=str(hf)))
    (hf / "config.json").write_text('{"rms_norm_eps": 1e-06, "rope_scaling": {"type": "linear", "factor": 2.0}}')
    os.utime(hf / "config.json", ns=(0, (hf / "config.json").stat().st_mtime_ns + 1_000_000))
    assert model_identity(BackendConfig(hf_dir=str(hf))) != before

    tok = tokenizer_identity(str(hf))
    assert tok == tokenizer_identity(str(DEFAULT_TOKENIZER_DIR)) and list(tok) == ["tokenizer_files"]  # contents, not the folder
    (hf / "tokenizer_config.json").write_text((hf / "tokenizer_config.json").read_text().replace("{", '{"x": 1,', 1))
    assert tokenizer_identity(str(hf)) != tok
    assert tokenizer_identity("org/some-hub-tokenizer") == {"tokenizer_source": "org/some-hub-tokenizer"}


def test_top_k_keys_the_cache_only_when_on(tmp_path, scripted_backend):
    """Generations cached before ``generation.top_k`` existed are reused with it off (0): the key
    leaves it out then, rather than drawing every cached sample again. On, it is part of the key and
    reaches the backend; off, backends are not handed it at all."""
    from eval.cache import GenerationCache, run_key
    from eval.config import EvalConfig
    from eval.runner import generate_cached, generation_settings

    cfg = EvalConfig(benchmark="cruxeval-o")
    before = {k: v for k, v in generation_settings(cfg).items() if k != "top_k"}  # what older versions hashed
    ident = {"backend": "x", "model": "m"}
    assert "top_k" in generation_settings(cfg) and run_key(ident, generation_settings(cfg)) == run_key(ident, before)
    path = tmp_path / "generations.jsonl"
    prompts = {"a": "pa", "b": "pb"}
    kw = dict(n=1, temperature=0.8, top_p=1.0, max_new_tokens=8, stop=(), seed=0, batch_size=4)
    old = scripted_backend(lambda p: "old")
    generate_cached(old, prompts, GenerationCache.for_run(path, ident, before), **kw)  # a backend without top_k
    assert old.calls == 1

    class TopK:
        name, seen = "topk", []

        def generate(self, prompts, *, top_k=0, n=1, **kw):
            self.seen.append(top_k)
            return [[f"k{top_k}"] * n for _ in prompts]

    def run(top_k):
        cfg.generation.top_k = top_k
        cache = GenerationCache.for_run(path, ident, generation_settings(cfg))
        logs = []
        return generate_cached(TopK(), prompts, cache, top_k=top_k, log=logs.append, **kw), logs

    assert run(0) == ({"a": ["old"], "b": ["old"]}, []) and TopK.seen == []  # reused
    out, logs = run(40)
    assert out == {"a": ["k40"], "b": ["k40"]} and TopK.seen == [40]
    assert "settings.top_k: (none) -> 40" in logs[0], logs
    assert run(40)[0] == out and run(0)[0] == {"a": ["old"], "b": ["old"]} and TopK.seen == [40]
    out, logs = run(5)
    assert out == {"a": ["k5"], "b": ["k5"]} and "settings.top_k: 40 -> 5" in " ".join(logs), logs
