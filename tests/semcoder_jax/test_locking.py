"""The one-job-per-folder lock shared by data builds and ``semcoder train`` (each caller's messages
are tested with it: tests/data_pipeline/test_build.py, tests/semcoder_jax/cli/test_train.py)."""

import logging
import os
import signal
import socket
import subprocess
import sys

import pytest

from semcoder_jax.locking import folder_lock

LOG = logging.getLogger("test_locking")


class Held(Exception):
    pass


def _lock(path):
    return folder_lock(path, held=Held, unwritable=OSError, unguarded=lambda reason: reason, logger=LOG)


# Another job: locks the file as folder_lock does, names itself, says so, then waits to be killed.
HOLDER = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
f.truncate(0); f.write(f"pid {os.getpid()} on elsewhere\\n"); f.flush()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_held_lock_names_its_holder_and_goes_with_a_killed_holder(tmp_path):
    """The error names the process that holds the folder; a holder killed with SIGKILL leaves its
    lock file behind with its name in it, which must not keep the next job out."""
    path = tmp_path / "run" / ".job.lock"
    path.parent.mkdir()
    other = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "locked\n"
        with pytest.raises(Held, match=rf"^pid {other.pid} on elsewhere$"), _lock(path):
            pass
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
    assert path.read_text() == f"pid {other.pid} on elsewhere\n"
    with _lock(path) as locked:
        assert locked is True
        assert path.read_text() == f"pid {os.getpid()} on {socket.gethostname()}\n"
    assert path.read_text() == ""  # released: no holder named


def test_a_lock_is_let_go_when_the_block_raises_and_its_folder_is_made(tmp_path):
    path = tmp_path / "a" / "b" / ".job.lock"
    with pytest.raises(ValueError), _lock(path):
        raise ValueError
    with _lock(path) as locked:
        assert locked is True


def test_a_lock_file_that_cannot_be_opened_is_the_callers_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match="^Not a directory$"), _lock(tmp_path / "file" / "run" / ".job.lock"):
        pass
