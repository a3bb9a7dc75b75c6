"""Shared test setup: 8 simulated CPU devices (before JAX starts) and local fixtures."""

import os
import shutil
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests build the same tiny models and steps again and again, in this process and in the CLI runs it
# starts: XLA's persistent cache compiles each program once a session (about a fifth of the suite's time).
_XLA_CACHE = tempfile.mkdtemp(prefix="semcoder-tests-xla-")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _XLA_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from semcoder_jax import DEFAULT_TOKENIZER_DIR


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    """The DeepSeek-Coder tokenizer shipped with the package (copied from ../shared/tokenizers)."""
    return DEFAULT_TOKENIZER_DIR


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


class ScriptedLLM:
    """``reply(messages, n) -> list[str]`` decides the answers (a completion request's prompt comes
    as one user message); ``errors`` are served first; ``delay_s`` holds each reply back."""

    def __init__(self, reply):
        self.reply = reply
        self.errors: list[int] = []
        self.requests = 0
        self.served = 0
        self.bodies: list[dict] = []
        self.delay_s = 0.0
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()


def _handler(state: ScriptedLLM):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests += 1
                state.bodies.append(body)
                error = state.errors.pop(0) if state.errors else None
            if self.path not in ("/v1/chat/completions", "/v1/completions"):
                return self._send(404, {"error": {"message": "not found"}})
            if error is not None:
                return self._send(error, {"error": {"message": f"injected {error}", "type": "server_error"}})
            chat = self.path == "/v1/chat/completions"
            with state.lock:
                state.active += 1
                state.max_active = max(state.max_active, state.active)
            time.sleep(state.delay_s)
            texts = state.reply(body["messages"] if chat else [{"role": "user", "content": body["prompt"]}], body.get("n", 1))
            with state.lock:
                state.active -= 1
                state.served += 1
            if chat:
                choices = [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                           for i, t in enumerate(texts)]
            else:
                choices = [{"index": i, "text": t, "finish_reason": "stop", "logprobs": None} for i, t in enumerate(texts)]
            self._send(200, {
                "id": "cmpl-test", "object": "chat.completion" if chat else "text_completion", "created": 0,
                "model": body["model"], "choices": choices[::-1],  # in no particular order, as servers may
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            })

    return Handler


@pytest.fixture
def llm_server():
    """A local OpenAI-compatible server (chat and completions) with scripted replies and injected
    HTTP errors: ``start(reply) -> (state, base_url)``; servers are shut down after the test."""
    servers = []

    def start(reply):
        state = ScriptedLLM(reply)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return state, f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


class FakeHubCache:
    """An offline HF cache: ``snapshot(commit[, model])`` makes a commit's folder, ``point(ref, commit)`` a ref."""

    def __init__(self, cache: Path, repo: str = "org/name"):
        self.cache, self.repo = cache, cache / ("models--" + repo.replace("/", "--"))

    def snapshot(self, commit: str, model: Path | None = None) -> Path:
        """A commit's folder: ``model``'s files linked in (as the cache links blobs), else a config."""
        folder = self.repo / "snapshots" / commit
        folder.mkdir(parents=True)
        if model is None:
            (folder / "config.json").write_text("{}")
        for f in (model.iterdir() if model else ()):
            (folder / f.name).symlink_to(f)
        return folder

    def point(self, ref: str, commit: str) -> None:
        (self.repo / "refs").mkdir(parents=True, exist_ok=True)
        (self.repo / "refs" / ref).write_text(commit)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A ``FakeHubCache`` for ``org/name`` in a temporary HF home, offline: the hub is never asked."""
    from huggingface_hub import constants

    cache = tmp_path / "hf_home" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads these at import, and uses them when called
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # no folder named org/name here
    return FakeHubCache(cache)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_XLA_CACHE, ignore_errors=True)
