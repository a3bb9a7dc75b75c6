"""``semcoder generate`` from a converted Orbax checkpoint (and a HF folder) against HF generate."""

import json

import pytest

from semcoder_jax.cli.main import main

PROMPTS = ["def add(a, b):", "# sort a list\n", "import os\nprint(", "class Stack:\n    def push(self, x):\n        "]


def _tiny_hf_model(tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=32256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rope_theta=1e5, rope_scaling={"type": "linear", "factor": 4.0},
        max_position_embeddings=2048, initializer_range=0.1, bos_token_id=32013, eos_token_id=32014,
    )
    model = LlamaForCausalLM(cfg).float().eval()
    model.save_pretrained(tmp_path / "hf")
    return model


def _hf_greedy(model, tokenizer, prompt, n):
    import torch

    ids = tokenizer(prompt).input_ids
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=n, pad_token_id=32014)
    new = out[0, len(ids):].tolist()
    return new[: new.index(32014)] if 32014 in new else new


@pytest.mark.slow
def test_generate_cli_matches_hf_greedy(tmp_path, tokenizer, tokenizer_dir):
    pytest.importorskip("semcoder_jax.convert")
    model = _tiny_hf_model(tmp_path)
    assert main(["convert", "hf-to-orbax", "--hf-dir", str(tmp_path / "hf"), "--out", str(tmp_path / "ckpt")]) == 0
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"task_id": i, "prompt": p}) + "\n" for i, p in enumerate(PROMPTS)))
    want_ids = [_hf_greedy(model, tokenizer, p, 36) for p in PROMPTS]
    assert sum(len(w) for w in want_ids) >= 4 * 32
    want = [tokenizer.decode(w, skip_special_tokens=True) for w in want_ids]

    out = tmp_path / "out.jsonl"
    args = ["--tokenizer", str(tokenizer_dir), "--prompts", str(prompts), "--out", str(out),
            "--max-new-tokens", "36", "--dtype", "float32", "--batch-size", "4"]
    assert main(["generate", "--checkpoint", str(tmp_path / "ckpt"), *args]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task_id"] for r in rows] == list(range(4))
    assert [r["prompt"] for r in rows] == PROMPTS
    assert [r["completion"] for r in rows] == want

    # Token for token, through the same loader the CLI uses.
    from semcoder_jax.sampling import Sampler, load_model_for_inference

    config, params = load_model_for_inference(checkpoint=tmp_path / "ckpt", dtype="float32")
    got_ids = Sampler(config, params).generate([tokenizer(p).input_ids for p in PROMPTS], max_new_tokens=36)
    assert got_ids == want_ids

    assert main(["generate", "--hf-dir", str(tmp_path / "hf"), *args[:-4], "--max-new-tokens", "36"]) == 0
    assert [json.loads(line)["completion"] for line in out.read_text().splitlines()] == want


def test_generate_cli_rejects_a_row_without_prompt(tmp_path, capsys):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "x"}\n{"text": "y"}\n')
    rc = main(["generate", "--hf-dir", str(tmp_path), "--prompts", str(bad), "--out", str(tmp_path / "o.jsonl")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{bad}:2" in err and "prompt" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_stop_strings_read_backslash_escapes():
    from semcoder_jax.cli.generate import unescape

    assert unescape(r"\n```") == "\n```"
    assert unescape(r"déf\tx\\n") == "déf\tx\\n"
    assert unescape("plain </s>") == "plain </s>"


def test_generate_cli_samples_row_i_with_seed_plus_i(tmp_path, monkeypatch):
    """Rows are batched by length, but row i samples with ``--seed + i`` (as the README says), not with
    its place in the length order: a shorter row added to the file must not change the others."""
    import jax

    import semcoder_jax.sampling as sampling
    from semcoder_jax.model import llama
    from semcoder_jax.model.config import get_model_config

    config = get_model_config("tiny", ["hidden_size=32", "intermediate_size=48", "num_layers=1"])
    params = jax.tree.map(lambda a: a * 5, llama.init_params(config, jax.random.PRNGKey(0)))
    monkeypatch.setattr(sampling, "load_model_for_inference", lambda **kw: (config, params))
    made = []

    def sampler(*args, **kwargs):  # the CLI's own: its compiled steps serve the reference too
        made.append(sampling.sampler.Sampler(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(sampling, "Sampler", sampler)
    prompts = ["def a_long_function_name(x, y, z):", "x ="]  # the second is shorter: sorted first
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    out = tmp_path / "o.jsonl"
    assert main(["generate", "--checkpoint", str(tmp_path), "--prompts", str(path), "--out", str(out),
                 "--max-new-tokens", "8", "--temperature", "1", "--seed", "3", "--batch-size", "1"]) == 0
    got = [json.loads(line)["completion"] for line in out.read_text().splitlines()]
    want = [made[0].generate_text([p], max_new_tokens=8, temperature=1.0, seeds=[3 + i])[0] for i, p in enumerate(prompts)]
    assert got == want


def test_generate_from_a_checkpoint_logs_no_orbax_warnings(tmp_path, caplog):
    """Every `semcoder generate --checkpoint` printed Orbax's "Given directory is read only" and
    "Metadata file does not exist" warnings, which read like errors."""
    import numpy as np
    from absl import logging as absl_logging

    from semcoder_jax.checkpoint import save_params
    from semcoder_jax.convert.mapping import param_mappings, set_path
    from semcoder_jax.model.config import get_model_config

    config = get_model_config("tiny", ["hidden_size=32", "intermediate_size=48", "num_layers=1"])
    rng = np.random.default_rng(0)
    params: dict = {}
    for m in param_mappings(config):
        set_path(params, m.path, rng.standard_normal(m.full_shape(config)).astype(np.float32))
    save_params(tmp_path / "ckpt", 0, params, config)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "def f():"}) + "\n")
    before = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.WARNING)  # as in a fresh process
    try:
        with caplog.at_level("WARNING"):
            assert main(["generate", "--checkpoint", str(tmp_path / "ckpt"), "--prompts", str(prompts),
                         "--out", str(tmp_path / "out.jsonl"), "--max-new-tokens", "1"]) == 0
    finally:
        absl_logging.set_verbosity(before)
    assert [r.getMessage() for r in caplog.records if r.name == "absl"] == []


def test_generate_from_a_hf_folder_uses_its_own_tokenizer(tmp_path, monkeypatch, tokenizer_dir):
    """As the eval backends: a --hf-dir with tokenizer files is read with them, not with the shipped
    DeepSeek-Coder tokenizer (another model's ids would be garbage, or past its vocabulary)."""
    import shutil

    import jax

    import semcoder_jax.sampling as sampling
    from semcoder_jax.model import llama
    from semcoder_jax.model.config import get_model_config

    config = get_model_config("tiny", ["hidden_size=32", "intermediate_size=48", "num_layers=1"])
    params = llama.init_params(config, jax.random.PRNGKey(0))
    monkeypatch.setattr(sampling, "load_model_for_inference", lambda **kw: (config, params))
    made = []
    monkeypatch.setattr(sampling, "Sampler", lambda *a, **kw: made.append(sampling.sampler.Sampler(*a, **kw)) or made[-1])
    hf_dir = tmp_path / "hf"
    shutil.copytree(tokenizer_dir, hf_dir)
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "x ="}) + "\n")
    argv = ["generate", "--prompts", str(path), "--out", str(tmp_path / "o.jsonl"), "--max-new-tokens", "1"]
    assert main([*argv, "--hf-dir", str(hf_dir)]) == 0
    assert made[-1].tokenizer.name_or_path == str(hf_dir)
    assert main([*argv, "--hf-dir", str(hf_dir), "--tokenizer", str(tokenizer_dir)]) == 0
    assert made[-1].tokenizer.name_or_path == str(tokenizer_dir)


def test_generate_refuses_an_out_folder_before_loading_the_model(tmp_path, monkeypatch, capsys):
    """``--out`` naming a folder was a traceback from the final rename, after every completion."""
    import semcoder_jax.sampling as sampling

    def load(**kw):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(sampling, "load_model_for_inference", load)
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "x ="}) + "\n")
    assert main(["generate", "--hf-dir", str(tmp_path), "--prompts", str(path), "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path}: is a folder" in capsys.readouterr().err
    # A path it cannot write (here: below a file) was a traceback too, after every completion.
    below_a_file = path / "out.jsonl"
    assert main(["generate", "--hf-dir", str(tmp_path), "--prompts", str(path), "--out", str(below_a_file)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"semcoder generate: error: --out {below_a_file}: cannot write it")
    # --step with an HF folder picked nothing: it was ignored and the run went on.
    out = tmp_path / "o.jsonl"
    assert main(["generate", "--hf-dir", str(tmp_path), "--step", "3", "--prompts", str(path), "--out", str(out)]) == 2
    assert f"--step 3: a checkpoint's step, but the model is --hf-dir {tmp_path}" in capsys.readouterr().err


def test_generate_refuses_a_prompt_filling_the_context_before_any_completion(tmp_path, monkeypatch, capsys,
                                                                              tokenizer_dir):
    """Prompts run shortest first, so the sampler refused the longest one in the last batch, after every
    other completion (all lost), naming its place in that batch ("prompt 0"), not its line."""
    import jax

    import semcoder_jax.sampling as sampling
    from semcoder_jax.model import llama
    from semcoder_jax.model.config import get_model_config

    config = get_model_config("tiny", ["hidden_size=32", "intermediate_size=48", "num_layers=1",
                                       "max_position_embeddings=8"])
    params = llama.init_params(config, jax.random.PRNGKey(0))
    monkeypatch.setattr(sampling, "load_model_for_inference", lambda **kw: (config, params))
    generated = []
    real_generate = sampling.Sampler.generate
    monkeypatch.setattr(sampling.Sampler, "generate",
                        lambda self, ids, **kw: generated.append(ids) or real_generate(self, ids, **kw))
    path = tmp_path / "p.jsonl"
    long = "def add(a, b):\n    return a + b\n"
    path.write_text(json.dumps({"prompt": "x ="}) + "\n\n" + json.dumps({"prompt": long}) + "\n")  # line 3
    argv = ["generate", "--checkpoint", str(tmp_path), "--tokenizer", str(tokenizer_dir), "--prompts", str(path),
            "--out", str(tmp_path / "o.jsonl"), "--max-new-tokens", "2", "--batch-size", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: the prompt has" in err and "max_position_embeddings of 8" in err, err
    assert generated == []


def test_generate_cli_top_k_reaches_the_sampler(tmp_path, monkeypatch, capsys):
    """``--top-k K`` is the sampler's ``top_k`` (0, off, by default); a negative K is refused before
    the model loads."""
    import types

    import semcoder_jax.sampling as sampling

    config = types.SimpleNamespace(max_position_embeddings=2048)
    monkeypatch.setattr(sampling, "load_model_for_inference", lambda **kw: (config, None))
    seen = []

    class Recording:
        def __init__(self, *args):
            pass

        def generate_text(self, prompts, **kwargs):
            seen.append(kwargs)
            return ["c"] * len(prompts)

    monkeypatch.setattr(sampling, "Sampler", Recording)
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ("def f(x):", "x =")))
    out = tmp_path / "o.jsonl"
    base = ["generate", "--checkpoint", str(tmp_path), "--prompts", str(path), "--out", str(out)]
    assert main([*base, "--temperature", "0.8", "--top-k", "40", "--top-p", "0.95"]) == 0
    assert [(k["temperature"], k["top_k"], k["top_p"]) for k in seen] == [(0.8, 40, 0.95)]
    assert main(base) == 0
    assert seen[-1]["top_k"] == 0
    monkeypatch.setattr(sampling, "load_model_for_inference", lambda **kw: pytest.fail("the model was loaded"))
    assert main([*base, "--top-k", "-1"]) == 2
    assert "--top-k must be >= 0 (0: off), got -1" in capsys.readouterr().err


def test_generate_loads_a_hub_id_at_the_commit_its_revision_names_as_eval_does(tmp_path, monkeypatch, capsys,
                                                                             hub, tokenizer_dir):
    """``--hf-dir org/name`` was read as a missing folder; eval's ``--hf-dir`` took it. Now both resolve
    the branch, tag or commit to its snapshot folder with one function, which is what loads (the
    model's own tokenizer included), and the commit is printed."""
    import shutil
    import types

    import semcoder_jax.sampling as sampling

    a, b, c = "a" * 40, "b" * 40, "c" * 40
    shutil.copytree(tokenizer_dir, hub.repo / "snapshots" / a)
    (hub.repo / "snapshots" / a / "config.json").write_text("{}")
    hub.snapshot(b), hub.point("main", a), hub.point("v1", b)
    loaded, tokenizers = [], []
    config = types.SimpleNamespace(max_position_embeddings=2048)
    monkeypatch.setattr(sampling, "load_model_for_inference", lambda **kw: loaded.append(kw) or (config, None))

    class Recording:
        def __init__(self, config, params, tokenizer):
            tokenizers.append(tokenizer.name_or_path)

        def generate_text(self, prompts, **kwargs):
            return ["c"] * len(prompts)

    monkeypatch.setattr(sampling, "Sampler", Recording)
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "x ="}) + "\n")
    argv = ["generate", "--prompts", str(path), "--out", str(tmp_path / "o.jsonl")]
    assert main([*argv, "--hf-dir", "org/name"]) == 0
    assert loaded[-1]["hf_dir"] == str(hub.repo / "snapshots" / a) and loaded[-1]["checkpoint"] is None
    assert tokenizers[-1] == str(hub.repo / "snapshots" / a)  # the model's own, from that commit
    assert capsys.readouterr().out.strip().endswith(f"(hub model org/name at commit {a})")
    assert main([*argv, "--hf-dir", "org/name", "--revision", "v1"]) == 0
    assert loaded[-1]["hf_dir"] == str(hub.repo / "snapshots" / b)
    assert main([*argv, "--hf-dir", "org/name", "--revision", a]) == 0  # a commit is its own answer
    assert loaded[-1]["hf_dir"] == str(hub.repo / "snapshots" / a)
    capsys.readouterr()

    n = len(loaded)
    assert main([*argv, "--hf-dir", "org/name", "--revision", c]) == 2  # not in the cache, and offline
    assert capsys.readouterr().err.strip().startswith(
        f"semcoder generate: error: cannot load model 'org/name': no such folder, and revision '{c}' of that hub "
        f"model could be read neither from the hub nor from the local HF cache {hub.cache}")
    assert main([*argv, "--hf-dir", "org/other"]) == 2
    assert "cannot load model 'org/other': no such folder, and that hub model could be read neither" in capsys.readouterr().err
    assert main([*argv, "--hf-dir", "/no/such/folder"]) == 2
    assert "cannot load model '/no/such/folder': no such folder, nor a hub id (" in capsys.readouterr().err
    (tmp_path / "local").mkdir()
    assert main([*argv, "--hf-dir", "local", "--revision", "v1"]) == 2
    assert capsys.readouterr().err.strip().endswith("--revision v1: a hub model's, but the model is the local folder local")
    assert main([*argv, "--checkpoint", "local", "--revision", "v1"]) == 2
    assert capsys.readouterr().err.strip().endswith("--revision v1: a hub model's, but the model is the local checkpoint local")
    assert len(loaded) == n  # each refused before loading a model
