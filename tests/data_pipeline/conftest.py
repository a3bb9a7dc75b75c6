"""A local OpenAI-compatible chat server (``/v1/chat/completions``) with scripted replies and
injected HTTP errors, for the LLM stages of the data pipeline."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class ScriptedLLM:
    """``reply(messages, n) -> list[str]`` decides the answers; ``errors`` are served first."""

    def __init__(self, reply):
        self.reply = reply
        self.errors: list[int] = []
        self.requests = 0
        self.served = 0
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
                error = state.errors.pop(0) if state.errors else None
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": {"message": "not found"}})
            if error is not None:
                return self._send(error, {"error": {"message": f"injected {error}", "type": "server_error"}})
            texts = state.reply(body["messages"], body.get("n", 1))
            with state.lock:
                state.served += 1
            self._send(200, {
                "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"} for i, t in enumerate(texts)],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            })

    return Handler


@pytest.fixture
def llm_server():
    """``start(reply) -> (state, base_url)``; servers are shut down after the test."""
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
