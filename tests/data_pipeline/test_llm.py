"""The LLM stages against a local OpenAI-compatible server: scripted replies, injected 429/5xx
errors, rejection sampling, a failing solution fixed by the LLM, and a rerun with zero requests."""

import json
import re
import shutil

import pytest

from data_pipeline.config import DataConfig, DecontamConfig, LLMConfig
from data_pipeline.llm import LLMClient
from data_pipeline.records import read_jsonl

SYNTH = {
    "seed_double": ("Double the integer `x`.", "def double(x):\n    return x * tw0", ["3", "-2"]),
    "seed_exclaim": ("Append an exclamation mark to `s`.", 'def exclaim(s):\n    return s + "!"', ["'hi'"]),
}


def _forward(x: str, code: str) -> str:
    return repr(eval(x) * 2) if "x * 2" in code else repr(eval(x) + "!")


def _backward(y: str, code: str) -> str:
    return repr(eval(y) // 2) if "x * 2" in code else repr(eval(y)[:-1])


def scripted_reply(messages, n):
    text = messages[-1]["content"]
    if "Gain inspiration" in text:
        name = next(k for k in SYNTH if k in text)
        problem, code, calls = SYNTH[name]
        entry = code.split("(")[0][4:]
        return [f"[Problem Description]\n{problem}\n\n[Solution]\nStraightforward.\n```python\n{code}\n```\n[Example Calls]\n"
                + "\n".join(f"{entry}({c})" for c in calls)] * n
    if "fails when it is run" in text:
        return ["```python\ndef double(x):\n    return x * 2\n```"] * n
    if "diverse example calls" in text:
        return ["double(10)\ndouble(0)" if "def double" in text else "exclaim('a b')\nexclaim('')"] * n
    m = re.search(r"assert f\((.*)\) == \?\?", text)
    if m:
        x = m.group(1)
        good = f"[MONOLOGUE]\nIt returns the answer.\n[/MONOLOGUE]\n[ANSWER]\nassert f({x}) == {_forward(x, text)}\n[/ANSWER]"
        return [f"[ANSWER]\nassert f({x}) == None\n[/ANSWER]", good, good][:n]
    m = re.search(r"assert f\(\?\?\) == (.*)\n", text)
    if m:
        y = m.group(1)
        return [f"[MONOLOGUE]\nReverse it.\n[/MONOLOGUE]\n[ANSWER]\nassert f({_backward(y, text)}) == {y}\n[/ANSWER]"] * n
    if "exceptionally intelligent coding assistant" in text:
        return ["```python\ndef double(x):\n    return x * 3\n```" if "Double" in text else '```python\ndef exclaim(s):\n    return s + "?"\n```'] * n
    if "Debug and Refine" in text:
        fixed = "def double(x):\n    return x * 2" if "def double" in text else 'def exclaim(s):\n    return s + "!"'
        return [f"[MONOLOGUE]\n### Execution Simulation\nThe buggy code gives a wrong value.\n[/MONOLOGUE]\n[Refined]\n```python\n{fixed}\n```\n[/Refined]"] * n
    return ["I cannot help with that."] * n


def test_llm_client_retries_and_caches(llm_server, tmp_path):
    state, url = llm_server(lambda messages, n: ["pong"] * n)
    state.errors = [429, 500, 503]
    client = LLMClient(LLMConfig(model="m", base_url=url, backoff_s=0.01, max_retries=4), cache_dir=tmp_path / "cache")
    assert client.chat([{"role": "user", "content": "ping"}]) == "pong"
    assert state.requests == 4 and client.requests == 4
    assert client.chat([{"role": "user", "content": "ping"}]) == "pong"
    assert state.requests == 4 and client.cache_hits == 1
    state.errors = [500] * 3
    assert LLMClient(LLMConfig(model="m", base_url=url, backoff_s=0.01, max_retries=2)).chat([{"role": "user", "content": "x"}]) is None


def test_request_timeout_and_conflict_are_retried_not_fatal(llm_server):
    """HTTP 408 (a proxy's request timeout) and 409 stopped the whole build instead of being retried."""
    state, url = llm_server(lambda messages, n: ["pong"] * n)
    state.errors = [408, 409]
    client = LLMClient(LLMConfig(model="m", base_url=url, backoff_s=0.01, max_retries=4))
    assert client.chat([{"role": "user", "content": "ping"}]) == "pong"
    assert state.requests == 3


def test_a_server_that_stays_down_stops_the_build_but_one_lost_request_does_not(llm_server):
    """Records failed during an outage would stay failed in their finished shards: several requests in
    a row without a reply stop the build instead, so that a rerun sends them again."""
    from data_pipeline.llm import FAILURES_IN_A_ROW_BEFORE_STOPPING, LLMError

    state, url = llm_server(lambda messages, n: ["pong"] * n)
    client = LLMClient(LLMConfig(model="m", base_url=url, backoff_s=0.01, max_retries=1))
    lost = FAILURES_IN_A_ROW_BEFORE_STOPPING - 1
    state.errors = [503] * (2 * lost)
    assert all(client.chat([{"role": "user", "content": f"a{i}"}]) is None for i in range(lost))
    assert state.errors == []  # each took both attempts; the server is back for one request:
    assert client.chat([{"role": "user", "content": "b"}]) == "pong"
    state.errors = [503] * (2 * FAILURES_IN_A_ROW_BEFORE_STOPPING)
    assert all(client.chat([{"role": "user", "content": f"c{i}"}]) is None for i in range(lost))
    with pytest.raises(LLMError, match=f"{FAILURES_IN_A_ROW_BEFORE_STOPPING} requests in a row .* no reply after 1 retries"):
        client.chat([{"role": "user", "content": "d"}])


def test_a_server_that_cannot_be_reached_stops_the_build_at_once():
    """A wrong URL: connection refused, not a busy server; retrying with backoff only delays the error."""
    import socket
    import time

    from data_pipeline.llm import LLMError

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = LLMConfig(model="m", base_url=f"http://127.0.0.1:{port}/v1", backoff_s=5.0, max_retries=6, wait_for_server_s=0)
    client = LLMClient(config)
    start = time.monotonic()
    with pytest.raises(LLMError, match=rf"cannot reach the LLM server at http://127.0.0.1:{port}/v1.*base_url"):
        client.chat([{"role": "user", "content": "ping"}])
    assert time.monotonic() - start < 5.0  # no backoff sleep


@pytest.mark.parametrize("host", ["api.openai.com", "llm.example.invalid"])
def test_a_remote_host_that_cannot_be_reached_is_not_waited_for(host, monkeypatch, capsys):
    """Offline with OPENAI_BASE_URL unset, a name that does not resolve waited the full
    ``wait_for_server_s`` (600 s) before its error; so did a remote host refusing connections.
    Only a server on this machine that is still loading is waited for."""
    import socket
    import time

    from data_pipeline.llm import LLMError

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    getaddrinfo = socket.getaddrinfo

    def resolve(name, *args, **kwargs):
        if name == "api.openai.com":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if name == "llm.example.invalid":  # a remote host (192.0.2.1) refusing connections: the client's connects to a closed port here
            return getaddrinfo("192.0.2.1" if args[:1] == (None,) else "127.0.0.1", port, *args[1:], **kwargs)
        return getaddrinfo(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    base_url = None if host == "api.openai.com" else f"http://{host}:{port}/v1"
    url = "https://api.openai.com/v1" if base_url is None else base_url
    client = LLMClient(LLMConfig(model="m", base_url=base_url, backoff_s=5.0, wait_for_server_s=600))
    start = time.monotonic()
    with pytest.raises(LLMError, match=rf"^cannot reach the LLM server at {re.escape(url)}/? \(.+\); set llm.base_url") as info:
        client.chat([{"role": "user", "content": "ping"}])
    assert time.monotonic() - start < 5.0
    assert "\n" not in str(info.value)
    assert "waiting" not in capsys.readouterr().err


def test_only_this_machine_is_a_local_host():
    from data_pipeline.llm import is_local_host

    assert all(map(is_local_host, ["localhost", "LOCALHOST", "vllm.localhost", "127.0.0.1", "127.0.1.1", "::1", "0.0.0.0"]))
    assert not any(map(is_local_host, ["api.openai.com", "10.0.0.5", "gpu-node-3", "", None]))


def test_a_name_that_resolves_to_this_machine_is_a_local_host(monkeypatch):
    """Debian maps the machine's full name to 127.0.1.1 and ``ip6-localhost`` to ::1 in /etc/hosts:
    a server starting there was judged remote, and the build failed at once instead of waiting."""
    import socket

    from data_pipeline.llm import is_local_host

    table = {"box.example.org": "127.0.1.1", "ip6-localhost": "::1", "gpu-node-3": "10.0.0.5"}

    def resolve(name, *args, **kwargs):
        if name not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        family = socket.AF_INET6 if ":" in table[name] else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (table[name], 0))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    assert is_local_host("box.example.org") and is_local_host("ip6-localhost")
    assert not is_local_host("gpu-node-3") and not is_local_host("llm.example.invalid")


def test_a_server_still_loading_is_waited_for(llm_server, monkeypatch, capsys):
    """``vllm serve`` started beside the build refuses connections while it loads its weights: the
    first request used to stop the build at once."""
    import threading
    import time
    from http.server import ThreadingHTTPServer

    listen = ThreadingHTTPServer.server_activate
    # Bound but not listening for a second, as vLLM's port is while it loads: connections are refused.
    monkeypatch.setattr(ThreadingHTTPServer, "server_activate", lambda server: threading.Timer(1.0, listen, [server]).start())
    state, url = llm_server(lambda messages, n: ["pong"] * n)
    client = LLMClient(LLMConfig(model="m", base_url=url, backoff_s=5.0, max_retries=6, wait_for_server_s=30))
    start = time.monotonic()
    assert client.chat([{"role": "user", "content": "ping"}]) == "pong"
    assert 0.9 < time.monotonic() - start < 10 and state.requests == 1
    assert client.chat([{"role": "user", "content": "ping 2"}]) == "pong"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"waiting up to 30 s for the LLM server at {url}" in err[0], err


def test_a_server_that_never_answers_stops_the_build_after_the_wait(capsys):
    import socket
    import time

    from data_pipeline.llm import LLMError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = LLMClient(LLMConfig(model="m", base_url=f"http://127.0.0.1:{port}/v1", backoff_s=5.0, wait_for_server_s=1.5))
    start = time.monotonic()
    message = rf"cannot reach the LLM server at http://127.0.0.1:{port}/v1/? .* after waiting 1.5 s \(llm.wait_for_server_s\); set llm"
    with pytest.raises(LLMError, match=message):
        client.chat([{"role": "user", "content": "ping"}])
    assert 1.5 <= time.monotonic() - start < 5.0
    with pytest.raises(LLMError, match=message):  # at once: every worker thread's request, not one wait each
        client.chat([{"role": "user", "content": "pong"}])
    assert time.monotonic() - start < 5.0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("wait", [0, 5])
def test_a_url_that_is_no_openai_api_stops_the_build(wait):
    """A web page answered with 200 (a UI on the port, a proxy's login page) raised AttributeError
    from the client, so every record was rejected as ``stage_error:AttributeError`` in finished shards."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from data_pipeline.llm import LLMError

    class Page(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "15")
            self.end_headers()
            self.wfile.write(b"<html>hi</html>")

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = LLMClient(LLMConfig(model="m", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", wait_for_server_s=wait))
        with pytest.raises(LLMError, match=r"did not answer 'm' with a chat completion \(<html>hi</html>\); set llm.base_url"):
            client.chat([{"role": "user", "content": "ping"}])
    finally:
        server.shutdown()
        server.server_close()



def test_a_reply_cut_short_is_retried_not_the_records_error():
    """A 2xx body that is no JSON (cut short by a proxy or a dropped connection) raised JSONDecodeError
    out of the client: the record was rejected as ``stage_error:JSONDecodeError`` in its finished
    shard, never asked again, while the next request would have been answered."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    ok = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}]}).encode()
    bodies = [ok, ok[:40], ok]
    posts = []

    class CutShort(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            posts.append(self.path)
            body = bodies[min(len(posts), len(bodies)) - 1]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), CutShort)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = LLMClient(LLMConfig(model="m", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                                     wait_for_server_s=0, backoff_s=0.01))
        assert client.chat([{"role": "user", "content": "a"}]) == "pong"
        assert client.chat([{"role": "user", "content": "b"}]) == "pong"
        assert len(posts) == 3 and client.failures == 0
    finally:
        server.shutdown()
        server.server_close()

def test_retry_after_is_waited_capped_and_the_backoff_kept_without_one(monkeypatch):
    """429/503 replies were retried after the backoff whatever their ``Retry-After`` asked: a rate
    limit's retries were spent on more refusals."""
    import email.utils
    import threading
    import time
    import types
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from data_pipeline import llm

    ok = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}]}).encode()
    replies = [(429, {"Retry-After": "3"}), (503, {"Retry-After": email.utils.formatdate(time.time() + 30, usegmt=True)}),
               (429, {"Retry-After": "100000"}), (503, {"retry-after-ms": "250"}), (429, {"Retry-After": "soon"}), (200, {})]

    class Limited(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            status, headers = replies.pop(0)
            body = ok if status == 200 else b'{"error": {"message": "slow down"}}'
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

    sleeps: list[float] = []
    monkeypatch.setattr(llm, "time", types.SimpleNamespace(sleep=sleeps.append, monotonic=time.monotonic))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Limited)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = LLMClient(LLMConfig(model="m", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                                     wait_for_server_s=0, backoff_s=0.01, max_retries=5))
        assert client.chat([{"role": "user", "content": "ping"}]) == "pong"
    finally:
        server.shutdown()
        server.server_close()
    assert sleeps[0] == 3 and 25 < sleeps[1] <= 30 and sleeps[2:] == [llm.RETRY_AFTER_MAX_S, 0.25, 0.01 * 2**4]


def test_identical_requests_in_flight_at_once_are_sent_once(llm_server):
    """The cache only helped once the first reply was in: the same request asked meanwhile (the same
    prompt and seed from two records) was sent again."""
    import threading
    import time

    state, url = llm_server(lambda messages, n: [messages[-1]["content"] + "!"] * n)
    state.delay_s = 1.0
    client = LLMClient(LLMConfig(model="m", base_url=url, wait_for_server_s=0))
    replies: list[str] = []
    ask = lambda text: replies.append(client.chat([{"role": "user", "content": text}]))
    first = threading.Thread(target=ask, args=("ping",))
    first.start()
    while state.active == 0:  # the first request is at the server
        time.sleep(0.01)
    others = [threading.Thread(target=ask, args=(text,)) for text in ("ping", "ping", "other")]
    for t in others:
        t.start()
    for t in (first, *others):
        t.join()
    assert sorted(replies) == ["other!", "ping!", "ping!", "ping!"]
    assert state.requests == 2 and client.requests == 2 and client.cache_hits == 2


def test_samples_come_in_choice_order_whatever_order_the_server_sends(llm_server):
    """Rejection sampling keeps the first sample that passes: taken in the order the server sent
    them (the fixture reverses them), the kept monologue depended on the server, not the seed."""
    _, url = llm_server(lambda messages, n: [f"sample {i}" for i in range(n)])
    client = LLMClient(LLMConfig(model="m", base_url=url))
    assert client.samples([{"role": "user", "content": "ping"}], 3) == ["sample 0", "sample 1", "sample 2"]


@pytest.mark.parametrize("wait", [-1.0, float("nan")])
def test_a_negative_wait_for_the_server_is_a_config_error(wait):
    from semcoder_jax.config import ConfigError

    with pytest.raises(ConfigError, match="llm.wait_for_server_s"):
        DataConfig(llm=LLMConfig(wait_for_server_s=wait)).validate()


def test_llm_build_through_errors_then_rerun_makes_no_requests(llm_server, tmp_path):
    from data_pipeline import runner_local

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seeds.py").write_text(
        "def seed_double(v):\n    w = v + v\n    return w\n\n\ndef seed_exclaim(t):\n    t = t.strip()\n    return t + '!'\n")
    state, url = llm_server(scripted_reply)
    state.errors = [429, 500, 429, 502]
    out = tmp_path / "out"
    cfg = DataConfig(output_dir=str(out), corpus_dirs=[str(corpus)], seed_kinds=["function"], synthesis="llm", annotator="llm",
                     pyxr="llm", num_shards=2, num_inputs=3, llm_samples=3, seq_len=1024, tfrecord_shards=1,
                     decontam=DecontamConfig(enabled=False), llm=LLMConfig(model="test-model", base_url=url, backoff_s=0.01, concurrency=2))
    report = runner_local.run(cfg, progress=False)
    assert state.requests > state.served >= 8  # the injected errors were retried
    st = report["stages"]
    assert st["synthesis"]["out"] == 2 and st["executability"]["out"] == 2
    assert st["executability"]["notes"] == {"executability.fix_requests": 1, "executability.fixed": 1}
    assert report["records_by_kind"] == {"backward": 2, "forward": 2, "nl2code": 2, "refine": 2}
    recs = {r["id"]: r for k in ("forward", "backward", "refine", "nl2code") for r in read_jsonl(out / "records" / f"{k}.jsonl")}
    fwd = [r for r in recs.values() if r["kind"] == "forward"]
    assert all("== None" not in r["response"] for r in fwd)  # the wrong sample was rejected
    nl = [r for r in recs.values() if r["kind"] == "nl2code" and "Double" in r["prompt"]][0]
    assert "x * 2" in nl["response"] and "tw0" not in nl["response"]  # the fixed solution is the target
    assert all("[Refined]" in r["response"] for r in recs.values() if r["kind"] == "refine")
    before = (out / "tfrecords" / "train-00000-of-00001.tfrecord").read_bytes()

    seen = state.requests
    shutil.rmtree(out / "stages")
    shutil.rmtree(out / "tfrecords")
    runner_local.run(cfg, progress=False)
    assert state.requests == seen  # every reply came from the on-disk cache
    assert (out / "tfrecords" / "train-00000-of-00001.tfrecord").read_bytes() == before
    assert json.loads((out / "manifest.json").read_text())["splits"]["train"]["rows"] >= 1


def test_a_refused_request_fails_its_record_alone_and_a_server_refusing_everything_stops(llm_server, tmp_path, monkeypatch):
    """HTTP 400 (say a seed beyond the model's context) is that record's failure, not the build's; a
    wrong key (401) stops the build at once, naming where the key comes from; so does a server that refuses every request it gets."""
    from data_pipeline.llm import REFUSALS_BEFORE_GIVING_UP, LLMError

    state, url = llm_server(lambda messages, n: ["pong"] * n)
    client = LLMClient(LLMConfig(model="m", base_url=url, backoff_s=0.01, max_retries=3))
    state.errors = [400]
    assert client.chat([{"role": "user", "content": "far too long"}]) is None
    assert state.requests == 1  # not retried
    assert client.chat([{"role": "user", "content": "fine"}]) == "pong"
    state.errors = [400] * (REFUSALS_BEFORE_GIVING_UP + 5)
    assert all(client.chat([{"role": "user", "content": f"x{i}"}]) is None for i in range(REFUSALS_BEFORE_GIVING_UP + 5))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    state.errors = [401]
    with pytest.raises(LLMError, match=r"HTTP 401.*the key in \$OPENAI_API_KEY \(llm.api_key_env\) is empty"):
        client.chat([{"role": "user", "content": "y"}])
    keyed = LLMClient(LLMConfig(model="m", base_url=url, api_key_env="MY_LLM_KEY", max_retries=0))
    monkeypatch.setenv("MY_LLM_KEY", "wrong")
    state.errors = [403]
    with pytest.raises(LLMError, match=r"HTTP 403.*the key in \$MY_LLM_KEY \(llm.api_key_env\) was refused"):
        keyed.chat([{"role": "user", "content": "y"}])

    hopeless = LLMClient(LLMConfig(model="m", base_url=url, backoff_s=0.01, max_retries=3))
    state.errors = [422] * REFUSALS_BEFORE_GIVING_UP
    with pytest.raises(LLMError, match=f"refused each of the first {REFUSALS_BEFORE_GIVING_UP} requests.*HTTP 422"):
        for i in range(REFUSALS_BEFORE_GIVING_UP):
            hopeless.chat([{"role": "user", "content": f"z{i}"}])


def test_cached_replies_keep_their_text_whatever_the_locale(tmp_path):
    """The cache (and every JSON the build writes) is UTF-8: under a non-UTF-8 locale, writing a
    reply with non-ASCII text raised, and one written elsewhere read back as other text."""
    import subprocess
    import sys

    from semcoder_jax import PROJECT_ROOT

    script = ("import sys; from data_pipeline.config import LLMConfig; from data_pipeline.llm import LLMClient\n"
              "c = LLMClient(LLMConfig(), cache_dir=sys.argv[1])\n"
              "if sys.argv[2] == 'put': c._cache_put('ab' * 32, {'choices': ['d\\u00e9j\\u00e0 \\u4e2d']})\n"
              "print(ascii(c._cache_get('ab' * 32)['choices']))\n")
    runs = [subprocess.run([sys.executable, "-c", script, str(tmp_path), mode], cwd=PROJECT_ROOT, capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PYTHONUTF8": "0"}, timeout=60) for mode in ("put", "get")]
    assert [r.stdout.strip() for r in runs] == ["['d\\xe9j\\xe0 \\u4e2d']"] * 2, runs[0].stderr[-500:]
