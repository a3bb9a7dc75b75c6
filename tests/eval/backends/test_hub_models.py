"""A hub id is keyed by the commit its revision names, and the backends load that commit: a model
updated on the hub is another model, so its cached generations are not reused. The hub is never
asked: a fake HF cache (models--org--name/refs/<ref>, snapshots/<commit>/) in a temporary folder,
offline mode on (one test stands the hub's answer in for it)."""

import sys
import types
from pathlib import Path

import pytest

from eval.backends import BackendConfig, get_backend, model_identity, pin_step
from eval.cache import run_key
from semcoder_jax.errors import SemcoderError

A, B, C = "a" * 40, "b" * 40, "c" * 40
REPO = "org/name"


def test_a_hub_models_cache_key_follows_the_commit_its_revision_names(hub):
    hub.snapshot(A)
    hub.snapshot(B)
    hub.point("main", A)
    settings = {"n": 1, "temperature": 0.0}
    ident = model_identity(BackendConfig(hf_dir=REPO))
    assert ident == {"model": REPO, "commit": A}
    key = run_key(ident, settings)
    assert run_key(model_identity(BackendConfig(hf_dir=REPO)), settings) == key  # main did not move: reused
    hub.point("main", B)  # updated on the hub and downloaded since: the name alone kept the stale key
    assert model_identity(BackendConfig(hf_dir=REPO)) == {"model": REPO, "commit": B}
    assert run_key(model_identity(BackendConfig(hf_dir=REPO)), settings) != key
    hub.point("main", A)
    assert run_key(model_identity(BackendConfig(hf_dir=REPO)), settings) == key
    assert pin_step(BackendConfig(hf_dir=REPO)).revision == A  # what the backends key and load
    hub.point("v1", B)
    assert model_identity(BackendConfig(hf_dir=REPO, revision="v1"))["commit"] == B
    assert model_identity(BackendConfig(hf_dir=REPO, revision=C))["commit"] == C  # a commit is its own answer


def test_where_the_hub_answers_its_commit_wins_and_is_recorded_for_offline_runs(hub, monkeypatch):
    """As transformers loads a hub id: the hub's newest commit, not an older one in the cache."""
    from huggingface_hub import HfApi, constants

    hub.snapshot(A)
    hub.point("main", A)
    asked = []

    def repo_info(self, repo_id, **kw):
        asked.append((repo_id, kw.get("revision")))
        return types.SimpleNamespace(sha=C, siblings=[])

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(HfApi, "repo_info", repo_info)
    monkeypatch.setattr(HfApi, "list_repo_tree", lambda self, *a, **kw: iter(()))  # no files: nothing downloads
    assert model_identity(BackendConfig(hf_dir=REPO))["commit"] == C
    assert asked == [(REPO, "main")]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert model_identity(BackendConfig(hf_dir=REPO))["commit"] == C


def test_a_hub_model_neither_cached_nor_on_the_hub_is_one_error_naming_it(hub, tmp_path):
    hub.snapshot(A)
    hub.point("main", A)
    with pytest.raises(SemcoderError, match=r"^cannot load model 'org/other': no such folder, and that hub model could "
                                             r"be read neither from the hub nor from the local HF cache .*hub \("):
        pin_step(BackendConfig(hf_dir="org/other"))
    with pytest.raises(SemcoderError, match=r"^cannot load model 'org/name': no such folder, and revision 'v2' of that"):
        model_identity(BackendConfig(hf_dir=REPO, revision="v2"))
    with pytest.raises(SemcoderError, match=r"^cannot load model '/no/such/folder': no such folder, nor a hub id \("):
        pin_step(BackendConfig(hf_dir="/no/such/folder"))
    (tmp_path / "local").mkdir()
    with pytest.raises(SemcoderError, match=r"^--revision v1: a hub model's, but the model is the local folder local$"):
        pin_step(BackendConfig(hf_dir="local", revision="v1"))


def test_backends_load_the_commit_their_key_names_even_if_the_hub_moves_meanwhile(hub, tiny_hf, monkeypatch):
    """The tokenizer is the model's own, from that commit's folder (a hub id read the shipped one)."""
    from eval.backends import vllm_backend

    a = hub.snapshot(A, tiny_hf)
    hub.snapshot(B, tiny_hf)
    hub.point("main", A)
    seen = {}
    vllm = types.ModuleType("vllm")
    vllm.LLM = lambda **kwargs: seen.update(kwargs)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    real = vllm_backend.model_identity

    def keyed_then_the_hub_moves(config):
        ident = real(config)
        hub.point("main", B)
        return ident

    monkeypatch.setattr(vllm_backend, "model_identity", keyed_then_the_hub_moves)
    backend = get_backend("vllm", BackendConfig(hf_dir=REPO))
    assert backend.identity()["commit"] == A
    assert (seen["model"], seen["tokenizer"]) == (str(a), str(a))


def test_the_jax_backend_loads_a_hub_model_from_its_commits_folder(hub, tiny_hf, monkeypatch):
    """It read only local folders: a hub id ended in "--hf-dir org/name: not a directory"."""
    from semcoder_jax import sampling

    hub.snapshot(A, tiny_hf)
    b = hub.snapshot(B, tiny_hf)
    hub.point("main", B)
    loaded = {}
    monkeypatch.setattr(sampling, "load_model_for_inference", lambda **kw: loaded.update(kw) or (types.SimpleNamespace(dtype="float32"), {}))
    monkeypatch.setattr(sampling, "Sampler", lambda *a: None)
    backend = get_backend("jax", BackendConfig(hf_dir=REPO))
    assert loaded["hf_dir"] == str(b) and loaded["checkpoint"] is None
    assert backend.identity()["commit"] == B


def test_a_hub_tokenizer_is_keyed_by_the_files_of_the_commit_loaded(hub, tokenizer_dir):
    """``--tokenizer org/tok`` was keyed by its name while AutoTokenizer loaded the hub's newest."""
    import json

    from eval.backends import tokenizer_identity, tokenizer_source

    tok = type(hub)(hub.cache, "org/tok")
    a = tok.snapshot(A, tokenizer_dir)
    b = tok.snapshot(B)
    for f in a.iterdir():
        (b / f.name).unlink(missing_ok=True)
        (b / f.name).write_bytes(f.read_bytes())
    (b / "tokenizer_config.json").write_text(json.dumps({**json.loads((a / "tokenizer_config.json").read_text()), "model_max_length": 7}))
    tok.point("main", A)
    config = BackendConfig(hf_dir=REPO, tokenizer="org/tok")
    assert tokenizer_source(config) == str(a)
    before = tokenizer_identity(tokenizer_source(config))
    assert tokenizer_identity(tokenizer_source(config)) == before
    tok.point("main", B)
    assert tokenizer_source(config) == str(b) and tokenizer_identity(tokenizer_source(config)) != before
    with pytest.raises(SemcoderError, match=r"^cannot load tokenizer 'org/other': no such folder, and that hub tokenizer"):
        tokenizer_source(BackendConfig(tokenizer="org/other"))


@pytest.mark.slow  # loads a model: about 1 s
def test_the_hf_backend_loads_a_hub_model_from_its_commits_folder(hub, tiny_hf):
    a = hub.snapshot(A, tiny_hf)
    hub.point("main", A)
    backend = get_backend("hf", BackendConfig(hf_dir=REPO, dtype="float32"))
    assert backend.model.config.name_or_path == str(a) and backend.identity()["commit"] == A
    assert backend.generate(["def f():"], max_new_tokens=2)[0][0].num_tokens is not None


def test_a_hub_model_fetches_only_the_files_transformers_loads_and_a_cached_one_asks_the_hub_once(hub, monkeypatch):
    """``*.safetensors`` fetched every copy of the weights a repo ships (``consolidated.safetensors``,
    ``fp8/``...), which transformers never loads: a second download of the model."""
    import json

    import huggingface_hub._snapshot_download as snapshot
    from huggingface_hub import HfApi, constants
    from huggingface_hub.hf_api import RepoFile

    from eval.backends import model_dir

    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    files = ["config.json", "tokenizer.json", "model.safetensors.index.json", *shards, "consolidated.safetensors",
             "fp8/model.safetensors", "original/params.json", "pytorch_model.bin", "training_args.bin"]
    asked, fetched = [], []
    from huggingface_hub.errors import OfflineModeIsEnabled

    def repo_info(self, repo_id, **kw):  # offline, the real one raises before any request
        if constants.HF_HUB_OFFLINE:
            raise OfflineModeIsEnabled("offline")
        asked.append(kw.get("revision"))
        return types.SimpleNamespace(sha=C)

    monkeypatch.setattr(HfApi, "repo_info", repo_info)
    monkeypatch.setattr(HfApi, "list_repo_tree", lambda self, *a, **kw: asked.append("tree") or [RepoFile(path=f, size=1, oid=f) for f in files])

    def download(repo_id, filename, revision, cache_dir, **kw):  # as the real one: a cached file asks nothing
        path = Path(cache_dir, "models--org--name", "snapshots", revision, filename)
        if not path.exists():
            fetched.append(filename)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"weight_map": {"a": shards[0], "b": shards[1], "c": shards[1]}}) if "index" in filename else "{}")
        return str(path)

    monkeypatch.setattr(snapshot, "hf_hub_download", download)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert model_dir(BackendConfig(hf_dir=REPO)) == str(hub.repo / "snapshots" / C)
    assert sorted(fetched) == sorted(["config.json", "tokenizer.json", "model.safetensors.index.json", *shards])
    asked.clear(), fetched.clear()
    model_dir(BackendConfig(hf_dir=REPO))
    assert (asked, fetched) == (["main"], [])  # fully cached: the hub is asked which commit main is, nothing else
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert model_dir(BackendConfig(hf_dir=REPO)) == str(hub.repo / "snapshots" / C) and (asked, fetched) == (["main"], [])


@pytest.mark.parametrize("code, kind", [(401, "RepoNotFound"), (403, "GatedRepo")])
def test_a_private_or_gated_hub_model_says_a_token_is_needed(hub, monkeypatch, code, kind):
    """The hub's error said only "401 Client Error." in the one line the message keeps."""
    import httpx2
    from huggingface_hub import HfApi, constants
    from huggingface_hub.utils import hf_raise_for_status

    def repo_info(self, repo_id, **kw):
        url = f"https://huggingface.co/api/models/{repo_id}/revision/main"
        hf_raise_for_status(httpx2.Response(code, headers={"X-Error-Code": kind, "X-Error-Message": "Access to model org/name is restricted."},
                                            request=httpx2.Request("GET", url)))

    monkeypatch.setattr(HfApi, "repo_info", repo_info)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hub.cache / "no_token"))
    with pytest.raises(SemcoderError, match=r"Error: 40\d Client Error\. Access to model org/name is restricted\.; a private or "
                                             r"gated repo needs a token with access to it: set HF_TOKEN or run `hf auth login`\)$"):
        pin_step(BackendConfig(hf_dir=REPO))
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    with pytest.raises(SemcoderError, match=r"; the token in use \(HF_TOKEN or `hf auth login`\) has no access to it\)$"):
        pin_step(BackendConfig(hf_dir=REPO))
