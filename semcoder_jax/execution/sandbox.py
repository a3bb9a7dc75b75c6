"""Parent side of the sandbox: a ``Sandbox`` owns one fork server and supervises jobs sent to it.

Every program runs in its own forked, discarded process (see ``forkserver`` and ``child``); the
parent only writes job lines, reads result lines and matches them to futures, so it is cheap to run
many jobs concurrently from a thread pool or ``map``.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import dataclasses
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import threading
from typing import Iterable, Sequence

import semcoder_jax
from semcoder_jax.errors import SemcoderError
from semcoder_jax.execution.result import SANDBOX_FAILURE, ExecResult, Job


SERVER_GRACE_S = 60.0


class SandboxError(SemcoderError):
    """The sandbox could not start or lost its fork server."""


@dataclasses.dataclass
class SandboxConfig:
    timeout_s: float = 10.0
    memory_bytes: int = 4 << 30
    max_output_bytes: int = 1 << 20
    max_file_bytes: int = 64 << 20
    # All a program may write, in any number of files: its folder is a tmpfs of this size (held in
    # memory) where the fork server can make a private mount namespace; 0 = a plain folder.
    max_disk_bytes: int = 256 << 20
    max_open_files: int = 256
    max_processes: int = 64
    max_return_repr: int = 1_000_000
    # Concurrent children; 0 = CPU count + 2, so that forking and reaping overlap with running.
    workers: int = 0
    hash_seed: int = 0
    isolate_network: bool = True
    # Modules the fork server imports beyond its common set, so children get them for free
    # (e.g. ``unittest.mock`` for LiveCodeBench's stdin harness). Each one makes every fork dearer.
    preload: tuple[str, ...] = ()

    def resolved_workers(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1) + 2


class Sandbox:
    """Runs untrusted Python; use as a context manager or call ``close()``."""

    def __init__(self, config: SandboxConfig | None = None, **overrides):
        self.config = dataclasses.replace(config or SandboxConfig(), **overrides)
        self._lock = threading.Lock()
        # Writes to the server's stdin take their own lock: a write can block on a full pipe while the
        # server waits for the reader thread, which needs ``_lock`` to hand results out.
        self._write_lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._pending: dict[int, concurrent.futures.Future] = {}
        self._ids = itertools.count()
        self._slots = threading.BoundedSemaphore(self.config.resolved_workers())
        self._siblings: dict[int, Sandbox] = {}
        self._owner: dict[int, subprocess.Popen] = {}
        self.network_isolated = False
        self.disk_isolated = False
        self.host_read_only = False
        self.pid_isolated = False  # the fork server is PID 1 of a PID namespace of its own
        self.ids_isolated = False  # each job runs under a user and group id of its own
        self._server_dir: str | None = None
        self.closed = False
        self._pid = os.getpid()

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> "Sandbox":
        self._ensure_server()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ensure_server(self) -> subprocess.Popen:
        with self._lock:
            if self.closed:
                raise SandboxError("sandbox is closed")
            if self._pid != os.getpid():
                raise SandboxError("a Sandbox cannot be used across fork(); create one in each process")
            if self._proc is not None and self._proc.poll() is None:
                return self._proc
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "LANG": "C.UTF-8",
                "PYTHONHASHSEED": str(self.config.hash_seed),
                "PYTHONPATH": str(semcoder_jax.PROJECT_ROOT),
                "PYTHONDONTWRITEBYTECODE": "1",
                "SEMCODER_SANDBOX_NETWORK": "isolate" if self.config.isolate_network else "host",
                "SEMCODER_SANDBOX_DISK": "tmpfs" if self.config.max_disk_bytes > 0 else "host",
                "SEMCODER_SANDBOX_PRELOAD": ",".join(self.config.preload),
            }
            proc = subprocess.Popen(
                [sys.executable, "-s", "-P", "-m", "semcoder_jax.execution.forkserver"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd="/", start_new_session=True,
            )
            hello = proc.stdout.readline()
            try:
                info = json.loads(hello)
            except ValueError:
                proc.kill()
                proc.wait()
                raise SandboxError(f"fork server failed to start (said {hello[:200]!r})") from None
            if not info.get("ready"):
                proc.wait()
                raise SandboxError(f"fork server failed to start: {info.get('error')}")
            self.network_isolated = bool(info.get("network_isolated"))
            self.disk_isolated = bool(info.get("disk_isolated"))
            self.host_read_only = bool(info.get("host_read_only"))
            self.pid_isolated = bool(info.get("pid_isolated"))
            self.ids_isolated = bool(info.get("ids_isolated"))
            self._server_dir = info.get("tmp_root")
            self._proc = proc
            threading.Thread(target=self._read_results, args=(proc, self._server_dir), daemon=True, name="sandbox-reader").start()
            return proc

    def close(self) -> None:
        with self._lock:
            self.closed = True
            proc, self._proc = self._proc, None
        for sib in self._siblings.values():
            sib.close()
        if proc is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=self.config.timeout_s + 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            # Here too, not only in the reader thread: a daemon thread may never run again once the
            # interpreter exits (a sandbox closed at exit, ``default_sandbox``). Not in a forked copy of
            # this process, whose parent's server still uses the folder.
            if self._pid == os.getpid():
                _remove_server_dir(self._server_dir)

    def sibling(self, hash_seed: int) -> "Sandbox":
        """A sandbox with the same limits and another hash seed (started once, closed with this one)."""
        if hash_seed == self.config.hash_seed:
            return self
        with self._lock:
            if hash_seed not in self._siblings:
                self._siblings[hash_seed] = Sandbox(self.config, hash_seed=hash_seed)
            return self._siblings[hash_seed]

    def _read_results(self, proc: subprocess.Popen, server_dir: str | None) -> None:
        for line in proc.stdout:
            try:
                response = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                future = self._pending.pop(response.get("id"), None)
            if future is not None:
                future.set_result(response)
        proc.wait()
        _remove_server_dir(server_dir)
        with self._lock:
            lost = [jid for jid in self._pending if self._owner.get(jid) is proc]
            orphans = [self._pending.pop(jid) for jid in lost]
        for future in orphans:
            future.set_result({"status": "killed", "exc_type": "SandboxError", SANDBOX_FAILURE: True,
                               "exc_message": "the fork server exited while this job ran"})

    # -- jobs ------------------------------------------------------------------------------------
    def submit_raw(self, job: dict) -> concurrent.futures.Future:
        """Send a job dict (mode, source, call, …); the future resolves to the fork server's response."""
        proc = self._ensure_server()
        c = self.config
        jid = next(self._ids)
        full = {
            "timeout_s": c.timeout_s, "memory_bytes": c.memory_bytes, "max_output_bytes": c.max_output_bytes,
            "max_file_bytes": c.max_file_bytes, "max_disk_bytes": c.max_disk_bytes,
            "max_open_files": c.max_open_files, "max_processes": c.max_processes, "max_return_repr": c.max_return_repr,
            **{k: v for k, v in job.items() if v is not None}, "id": jid,
        }
        if not math.isfinite(float(full["timeout_s"])):
            raise ValueError(f"timeout_s must be a finite number of seconds, got {full['timeout_s']!r}")
        future: concurrent.futures.Future = concurrent.futures.Future()
        line = (json.dumps(full) + "\n").encode()
        with self._lock:
            self._pending[jid] = future
            self._owner[jid] = proc
        try:
            with self._write_lock:
                proc.stdin.write(line)
                proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            with self._lock:
                lost = self._pending.pop(jid, None)
            if lost is not None:
                future.set_result({"status": "killed", "exc_type": "SandboxError", SANDBOX_FAILURE: True,
                                   "exc_message": "the fork server is not running"})
        future.add_done_callback(lambda _f, jid=jid: self._owner.pop(jid, None))
        return future

    def _wait(self, future: concurrent.futures.Future, job: dict) -> dict:
        """The response, or a ``killed`` result if the fork server stops answering (a safety net:
        the server enforces the job's own deadline)."""
        limit = float(job.get("timeout_s") or self.config.timeout_s) + SERVER_GRACE_S
        try:
            return future.result(timeout=min(limit, threading.TIMEOUT_MAX))
        except concurrent.futures.TimeoutError:
            return {"status": "killed", "exc_type": "SandboxError", SANDBOX_FAILURE: True,
                    "exc_message": f"no answer from the fork server within {limit:.0f} s"}

    def run_raw(self, job: dict) -> dict:
        with self._slots:
            return self._wait(self.submit_raw(job), job)

    def run(self, source: str, call: str | None = None, *, timeout_s: float | None = None) -> ExecResult:
        return ExecResult.from_response(self.run_raw({"mode": "run", "source": source, "call": call, "timeout_s": timeout_s}))

    def map_raw(self, jobs: Iterable[dict], *, concurrency: int | None = None, progress: bool = False,
                desc: str | None = None, total: int | None = None) -> list[dict]:
        """Run job dicts with at most ``concurrency`` children at once; responses in input order."""
        limit = threading.BoundedSemaphore(concurrency or self.config.resolved_workers())
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=desc or "sandbox", unit="job")
        submitted = []

        def done(_f) -> None:
            self._slots.release()
            limit.release()
            if bar is not None:
                bar.update(1)

        for job in jobs:
            limit.acquire()
            self._slots.acquire()  # shared by every caller of this sandbox: at most `workers` children
            try:
                future = self.submit_raw(job)
            except BaseException:
                self._slots.release()
                limit.release()
                raise
            future.add_done_callback(done)
            submitted.append((future, job))
        results = [self._wait(f, job) for f, job in submitted]
        if bar is not None:
            bar.close()
        return results

    def map(self, jobs: Sequence[Job | str], *, concurrency: int | None = None, progress: bool = False,
            desc: str | None = None) -> list[ExecResult]:
        """Run ``Job``s (or bare sources) concurrently; results in input order."""
        raw = (
            {"mode": "run", "source": j, "call": None} if isinstance(j, str)
            else {"mode": "run", "source": j.source, "call": j.call, "timeout_s": j.timeout_s}
            for j in jobs
        )
        total = len(jobs) if hasattr(jobs, "__len__") else None
        return [ExecResult.from_response(r) for r in self.map_raw(raw, concurrency=concurrency, progress=progress,
                                                                   desc=desc, total=total)]


def _remove_server_dir(server_dir: str | None) -> None:
    """The fork server's folder, which it cannot remove itself: its parent is read-only in the server's
    mount namespace, and a killed server removes nothing."""
    if server_dir and os.path.basename(server_dir).startswith("semcoder-sandbox-"):
        try:
            os.chmod(server_dir, 0o700)  # the server may have left it to its jobs only to pass through
        except OSError:
            pass
        shutil.rmtree(server_dir, ignore_errors=True)


_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> Sandbox:
    """The process-wide sandbox used when callers pass none (closed at interpreter exit)."""
    global _default
    with _default_lock:
        if _default is None or _default.closed or _default._pid != os.getpid():
            _default = Sandbox()
            atexit.register(_default.close)
        return _default


def run_program(source: str, call: str | None = None, *, timeout_s: float | None = None) -> ExecResult:
    return default_sandbox().run(source, call, timeout_s=timeout_s)
