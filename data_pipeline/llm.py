"""The one OpenAI-compatible chat client of every LLM stage (OpenAI, or a local ``vllm serve``).

Retries 408/409/429/5xx, timeouts and 2xx replies that are no chat completion (a body cut short)
with exponential backoff (or after the wait a reply's ``Retry-After`` asks for), caps concurrent
requests, and caches every reply on disk under a hash of the request, so a rerun of a build makes
no requests at all; an identical request asked while one is in flight shares its reply. A request
the server refuses on its own account (400/413/422: a prompt beyond the model's context, a content
filter) fails that record alone, and so does one that runs out of retries, unless several in a row do (the server is down: the
build stops, and a rerun sends them again); other client errors (a wrong key, model or URL) stop the
build, as do a server that has refused every one of its first requests and a URL whose first reply
is no chat completion (a web page). Choices are kept in ``index`` order. Before its first request
the client waits up to ``llm.wait_for_server_s`` for a server on this machine that refuses
connections (one still loading its weights) or a proxy that answers 502-504; one that cannot be
reached by then stops the build, and so does at once a host name that does not resolve or a
remote host that refuses connections (a wrong URL, or no network).
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import ipaddress
import json
import logging
import math
import os
import socket
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from data_pipeline.config import LLMConfig
from data_pipeline.records import write_json_atomic
from semcoder_jax.errors import SemcoderError

log = logging.getLogger(__name__)


class LLMError(SemcoderError):
    pass


REFUSED_STATUS = (400, 413, 422)
RETRIED_CLIENT_STATUS = (408, 409, 429)  # request timeout, conflict, rate limit: transient, as the OpenAI client treats them
REFUSALS_BEFORE_GIVING_UP = 20  # refusals with no success yet: the requests themselves are malformed
# Requests in a row that ran out of retries: the server is down, and a record failed now would stay
# failed in its finished shard; stopping leaves the shard to a rerun, which sends them again.
FAILURES_IN_A_ROW_BEFORE_STOPPING = 8
SERVER_POLL_S = 1.0
NOT_READY_STATUS = (502, 503, 504)  # a proxy in front of a server still starting
RETRY_AFTER_MAX_S = 120.0  # the most a ``Retry-After`` is waited (a longer one: waited this long, then retried)


def is_local_host(host: str | None) -> bool:
    """Whether ``host`` is this machine: only a server started here is worth waiting for while it
    refuses connections; a name that does not resolve or a remote refusal is a wrong URL (or no
    network), and waiting ``wait_for_server_s`` for it only delays the error. A name counts by what
    it resolves to: Debian's /etc/hosts maps the machine's full name to 127.0.1.1."""
    host = (host or "").strip("[]").lower()
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost") or host == socket.gethostname().lower():
        return True
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in socket.getaddrinfo(host, None)}
        except (OSError, UnicodeError, ValueError):  # no such name (or no network)
            return False
    return bool(addresses) and all(a.is_loopback or a.is_unspecified for a in addresses)


def reply_texts(resp: Any) -> list[str] | None:
    """The choices' texts in ``index`` order (servers may send them in any order, and rejection
    sampling keeps the first that passes); None for a 2xx reply that is no chat completion (a web
    page, an error object), which the OpenAI client passes on unparsed."""
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list) or not choices:
        return None
    try:
        return [c.message.content or "" for c in sorted(choices, key=lambda c: c.index)]
    except (AttributeError, TypeError):
        return None


def retry_after_s(headers: Any) -> float | None:
    """Seconds a reply's ``retry-after-ms`` or ``Retry-After`` (seconds, or an HTTP date) asks to
    wait; None when absent, unreadable or not in the future."""
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = (headers.get(name) or "").strip()
        if not value:
            continue
        try:
            wait = float(value) * scale
        except ValueError:
            if scale != 1.0:
                continue
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.timezone.utc)
            wait = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        if math.isfinite(wait) and wait > 0:
            return wait
    return None


class LLMClient:
    def __init__(self, config: LLMConfig, cache_dir: str | Path | None = None):
        self.config = config
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._slots = threading.BoundedSemaphore(max(1, config.concurrency))
        self._lock = threading.Lock()
        self._client = None
        self.requests = 0  # HTTP requests sent, retries included
        self.cache_hits = 0  # replies reused: from the disk cache, or of an identical request in flight
        self.failures = 0
        self.succeeded = 0
        self.refused = 0
        self.failures_in_a_row = 0
        self._wait_lock = threading.Lock()
        self._server_state: bool | LLMError = False  # True once it answered; the error if it never did
        # An identical request asked while one is in flight waits for its reply instead of being sent.
        self._in_flight: dict[str, Future[list[str] | None]] = {}

    def _openai(self):
        if self._client is None:
            import openai

            base_url = self.config.base_url or os.environ.get("OPENAI_BASE_URL")
            api_key = os.environ.get(self.config.api_key_env) or "EMPTY"
            self._client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=self.config.timeout_s)
        return self._client

    def _unreachable(self, cause: Any, waited_s: float = 0.0) -> LLMError:
        waited = f" after waiting {waited_s:g} s (llm.wait_for_server_s)" if waited_s else ""
        return LLMError(f"cannot reach the LLM server at {self._openai().base_url} ({cause}){waited}; "
                        "set llm.base_url or OPENAI_BASE_URL")

    def _wait_for_server(self) -> None:
        """Poll ``GET {base_url}/models`` until the server answers (any HTTP reply but 502-504) or
        ``wait_for_server_s`` runs out: a server started beside the build refuses connections while
        it loads, and a request refused would stop the build. Any connection error but a timeout on
        a host that is not this machine (a name that does not resolve: ``api.openai.com`` offline)
        stops it at once."""
        import openai

        with self._wait_lock:
            if isinstance(self._server_state, LLMError):  # every thread, not each after its own wait
                raise self._server_state
            if self._server_state or self.config.wait_for_server_s <= 0:
                return
            wait = self.config.wait_for_server_s
            client = self._openai().with_options(timeout=min(self.config.timeout_s, 10.0))
            start, announced = time.monotonic(), False
            while True:
                try:
                    client.models.with_raw_response.list()  # unparsed: any answer counts, a web page too
                    break
                except openai.APIStatusError as e:
                    if e.status_code not in NOT_READY_STATUS:
                        break
                    cause: Any = f"HTTP {e.status_code}"
                except openai.APIConnectionError as e:
                    cause = e.__cause__ or e
                    if not isinstance(e, openai.APITimeoutError) and not is_local_host(client.base_url.host):
                        self._server_state = self._unreachable(cause)
                        raise self._server_state from None
                waited = time.monotonic() - start
                if waited >= wait:
                    self._server_state = self._unreachable(cause, wait)
                    raise self._server_state
                if not announced:
                    announced = True
                    print(f"waiting up to {wait:g} s for the LLM server at {client.base_url} (llm.wait_for_server_s): "
                          f"{cause}", file=sys.stderr, flush=True)
                time.sleep(min(SERVER_POLL_S, wait - waited))
            self._server_state = True

    def request_key(self, request: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def chat(self, messages: list[dict[str, str]], *, n: int = 1, temperature: float | None = None, seed: int | None = None) -> Any:
        """The reply text (``n == 1``) or list of ``n`` texts; None when retries ran out."""
        texts = self.samples(messages, n, temperature=temperature, seed=seed)
        return texts[0] if texts is not None and n == 1 else texts

    def samples(self, messages: list[dict[str, str]], n: int, *, temperature: float | None = None, seed: int | None = None) -> list[str] | None:
        """A list of ``n`` reply texts whatever ``n`` (so ``llm_samples=1`` is one sample, not its
        characters); None when retries ran out."""
        request = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature if temperature is None else temperature,
            "max_tokens": self.config.max_tokens,
            "n": n,
        }
        if seed is not None:
            request["seed"] = seed
        key = self.request_key(request)
        with self._lock:
            pending = self._in_flight.get(key)
            first = pending is None
            if first:
                pending = self._in_flight[key] = Future()
        if first:
            try:
                pending.set_result(self._fetch(key, request))
            except BaseException as e:
                pending.set_exception(e)
                raise
            finally:
                with self._lock:
                    del self._in_flight[key]
        texts = pending.result()
        with self._lock:
            if texts is None:
                self.failures += 1
            elif not first:
                self.cache_hits += 1
        return None if texts is None else list(texts)  # each caller its own list

    def _fetch(self, key: str, request: dict[str, Any]) -> list[str] | None:
        """The reply from the cache, else from the server (then cached); None when retries ran out."""
        cached = self._cache_get(key)
        if cached is not None:
            with self._lock:
                self.cache_hits += 1
            return cached["choices"]
        texts = self._send(request)
        if texts is not None:
            self._cache_put(key, {"request": request, "choices": texts})
        return texts

    def _send(self, request: dict[str, Any]) -> list[str] | None:
        import openai

        self._wait_for_server()
        delay = self.config.backoff_s
        last = ""
        for attempt in range(self.config.max_retries + 1):
            retry_after = None
            with self._slots:
                with self._lock:
                    self.requests += 1
                try:
                    try:
                        resp = self._openai().chat.completions.create(**request)
                    except json.JSONDecodeError as e:  # a 2xx body cut short (a proxy, a dropped connection)
                        resp = f"a body that is no JSON ({e})"
                    texts = reply_texts(resp)
                    if texts is not None:
                        with self._lock:
                            self.succeeded += 1
                            self.failures_in_a_row = 0
                        return texts
                    last = f"not a chat completion: {str(resp)[:200]}"
                    if not self.succeeded:  # a URL that is no OpenAI-compatible API: every record would fail
                        raise LLMError(f"the server at {self._openai().base_url} did not answer {self.config.model!r} with a chat "
                                       f"completion ({str(resp)[:200]}); set llm.base_url or OPENAI_BASE_URL to an "
                                       "OpenAI-compatible endpoint (e.g. http://host:8000/v1)")
                except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as e:
                    last = f"{type(e).__name__}: {e.__cause__ or e}"
                    retry_after = self._retry_after(e)
                    unreachable = isinstance(e, openai.APIConnectionError) and not isinstance(e, openai.APITimeoutError)
                    if unreachable and not self.succeeded:  # a wrong URL or no server (waited for above)
                        raise self._unreachable(e.__cause__ or e) from None
                except openai.APIStatusError as e:
                    message = f"LLM request to {self.config.model!r} failed: HTTP {e.status_code}: {str(e)[:200]}"
                    last = message
                    if e.status_code in REFUSED_STATUS:
                        self._refused(message)
                        return None
                    if e.status_code in (401, 403):
                        key = "is empty" if not os.environ.get(self.config.api_key_env) else "was refused"
                        message += f"; the key in ${self.config.api_key_env} (llm.api_key_env) {key}"
                    if e.status_code < 500 and e.status_code not in RETRIED_CLIENT_STATUS:
                        raise LLMError(message) from None
                    retry_after = self._retry_after(e)
            if attempt < self.config.max_retries:
                time.sleep(min(delay, self.config.max_backoff_s) if retry_after is None else retry_after)
                delay *= 2
        with self._lock:
            self.failures_in_a_row += 1
            down = self.failures_in_a_row >= FAILURES_IN_A_ROW_BEFORE_STOPPING
        if down:
            raise LLMError(f"{self.failures_in_a_row} requests in a row to {self.config.model!r} got no reply after "
                           f"{self.config.max_retries} retries each (the last: {last}); stopping so that a rerun "
                           "sends them again (finished shards and cached replies are kept)")
        return None

    def _retry_after(self, error: Exception) -> float | None:
        """The wait a 429/503 asks for, at most ``RETRY_AFTER_MAX_S``: retrying sooner only spends a
        retry on another refusal. None without one (the backoff applies)."""
        response = getattr(error, "response", None)
        if response is None:  # a connection error or timeout: no reply, no header
            return None
        wait = retry_after_s(response.headers)
        return None if wait is None else min(wait, RETRY_AFTER_MAX_S)

    def _refused(self, message: str) -> None:
        with self._lock:
            self.refused += 1
            first = self.refused == 1
            # Cached replies count as successes: a resumed build sends mostly what was refused before.
            hopeless = self.refused >= REFUSALS_BEFORE_GIVING_UP and not (self.succeeded or self.cache_hits)
        if hopeless:
            raise LLMError(f"the server refused each of the first {self.refused} requests; the last: {message}")
        if first:
            log.warning("%s (this record fails; the build goes on)", message)

    def _cache_path(self, key: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / key[:2] / f"{key}.json"

    def _cache_get(self, key: str) -> dict[str, Any] | None:
        if self.cache_dir is None:
            return None
        p = self._cache_path(key)
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None

    def _cache_put(self, key: str, value: dict[str, Any]) -> None:
        if self.cache_dir is not None:
            write_json_atomic(self._cache_path(key), value)
