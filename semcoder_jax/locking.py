"""One job per folder: the lock a data build takes on its output_dir and ``semcoder train`` on its run_dir."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def folder_lock(
    path: Path,
    *,
    held: Callable[[str], Exception],
    unwritable: Callable[[str], Exception],
    unguarded: Callable[[str], str],
    logger: logging.Logger,
) -> Iterator[bool]:
    """Hold the lock file ``path`` (its folder made if missing) while the block runs; yields whether it is locked.

    The lock is the kernel's (``flock``), so it goes with the process however it ends, and the file
    left in place is harmless: it only names its holder ("pid N on HOST") while one holds it. Raises
    ``held(holder)`` while another process holds it and ``unwritable(reason)`` when the file cannot
    be opened. A file system without locks (ENOLCK on NFS without a lock service) must not stop the
    job, so it logs ``unguarded(reason)`` as a warning (nothing keeps a second job out then) and
    yields False. On NFS mounted ``nolock`` the lock is per host.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+", encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below, after the block
    except OSError as e:
        raise unwritable(e.strerror or str(e)) from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            f.seek(0)
            raise held(f.read().strip() or "another process") from None
        except OSError as e:
            logger.warning("%s", unguarded(e.strerror or str(e)))
            locked = False
        if not locked:
            yield False
            return
        f.truncate(0)
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        try:
            yield True
        finally:
            f.truncate(0)
