"""Containment installed inside the sandboxed child, after the common imports and before untrusted code.

Two layers: human-eval's reliability guard (destructive ``os``/``shutil``/``subprocess`` functions
replaced by ``None``) and a ``sys.addaudithook`` policy that refuses, with ``PermissionError``, what
the guard cannot reach: writes and deletions outside the sandbox folder, process creation, signals
to other processes, ctypes, sockets and other processes' ``/proc`` entries; the few calls that raise
no audit event at all (``UNAUDITED``) are replaced in their modules. Neither is a security
boundary by itself; the fork server adds a private network namespace, a read-only view of the host's
files where it can make a mount namespace, a PID namespace, user and group ids of the job's own (as root),
rlimits, a new session and a discarded process.

The result channel (``child.RESULT_FD``): a line a program writes there and then ends (``posix._exit``), or
goes on after, is taken for the child's report, so ``protect_fd`` refuses the channel and every copy of it
(same pipe, by inode) to the unaudited calls of ``CHANNEL_ARGS``, to ``FileIO``'s opener (whose descriptor
comes after the ``open`` event) and the audit policy to ``open``, ``fcntl`` and ``mmap``. Not closed, as the
program and the report share one interpreter: the harness's own references, which the program reaches
through ``sys.modules``, frames, closures and ``gc`` (``child._write``/``_report`` and the ``result`` dict,
these wrappers' originals, the audit hook's cells). Any writer or secret the child uses after the program
is in the program's reach before it ends (threads, ``__del__``, a replaced ``sys.stdout.flush`` run later),
and a second process only moves the question to what the program's process tells it.
"""

from __future__ import annotations

import builtins
import errno
import operator
import os
import sys
import types
import warnings

# Bound here, not looked up in ``builtins``/``stat``/``os`` when a check runs: a program may replace those (a
# ``builtins.len`` answering 0 skipped ``posix.write``'s descriptor check, a ``getattr`` made ``_imp`` build
# a fresh ``posix``, ``isinstance`` and ``stat.S_ISFIFO`` let a copy of the channel through, a replaced
# ``PermissionError`` changed what a refusal raised).
from builtins import (  # noqa: UP029
    OSError,
    PermissionError,
    TypeError,
    ValueError,
    any,
    bool,
    bytes,
    getattr,
    int,
    isinstance,
    len,
    list,
    str,
    tuple,
    type,
)
from operator import index as _index

# The policy's file-system primitives are the C functions, bound here too: ``os.path`` (``posixpath``, ``genericpath``)
# looks up ``os``, ``stat`` and ``builtins`` when it runs, so a program replacing ``posixpath.realpath``, ``os.getcwd``,
# ``os.fspath`` or ``stat.S_ISLNK`` bent every check built on it (writes beside the folder, host processes' ``/proc``).
from posix import fspath as _fspath
from posix import fstat as _fstat
from posix import getpid as _getpid
from posix import lstat as _lstat
from posix import readlink as _readlink
from posix import stat as _stat
from stat import S_ISDIR, S_ISFIFO, S_ISLNK

_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
_decode, _str_join = bytes.decode, "".join
_mro, _type_dict = type.__dict__["__mro__"].__get__, type.__dict__["__dict__"].__get__

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

# Events refused whatever their arguments.
BLOCKED_EVENTS = frozenset(
    {
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.startfile",
        "subprocess.Popen", "os.kill", "os.killpg", "signal.pthread_kill",
        "ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.cdata", "ctypes.call_function",
        "ctypes.addressof", "ctypes.string_at", "ctypes.wstring_at", "ctypes.seh_exception",
        "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
        "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo",
        "os.chroot", "os.setxattr", "os.removexattr",
        "sys.remote_exec", "pty.spawn", "webbrowser.open", "urllib.Request", "ftplib.connect",
        "http.client.connect", "smtplib.connect", "os.chdir", "os.fchdir",
    }
)
# Native modules that get around this policy: ``_posixsubprocess.fork_exec`` starts programs without an
# audit event, a subinterpreter has no audit hook, ``_cffi_backend`` calls C without one, and SQLite and
# dbm create and write files (``ATTACH``, ``VACUUM INTO``) anywhere without an ``open`` event.
BLOCKED_MODULES = frozenset(
    {
        "_posixsubprocess", "_xxsubinterpreters", "_xxinterpchannels", "_interpreters", "_interpchannels",
        "_interpqueues", "_testcapi", "_testinternalcapi", "_testmultiphase", "_testsinglephase",
        "_cffi_backend", "_sqlite3", "_dbm", "_gdbm", "_posixshmem", "_multiprocessing", "posix", "_signal",
    }
)
# ``_posixshmem`` and ``_multiprocessing`` create and remove files in /dev/shm (``shm_open``, named
# semaphores) without an ``open`` event; ``posix`` and ``_signal`` are always loaded, so only a fresh
# copy (``del sys.modules[...]``, then import) is refused: it would bring back what ``UNAUDITED`` removes.
# Functions that act without raising any audit event: ``mkfifo``/``mknod`` create files anywhere and
# ``pidfd_send_signal`` signals any process (refused in the fork server, in every module that exports
# them); a ``register_at_fork`` hook would run a program's code in a process coverage forks before
# ``confine_forked`` (removed, so libraries that test for it do without).
UNAUDITED = {"posix": ("mkfifo", "mknod"), "_signal": ("pidfd_send_signal",)}
# Calls that accept a descriptor in place of a path: the descriptor's file must lie inside the folder too
# (a file opened read-only outside it can still be chmod-ed, chown-ed, its times set).
FD_EVENTS = frozenset({"os.chmod", "os.chown", "os.utime"})
# Events whose first argument is a descriptor that must not be the result channel: ``F_DUPFD`` copies it.
CHANNEL_EVENTS = frozenset({"fcntl.fcntl", "fcntl.ioctl", "fcntl.flock", "fcntl.lockf", "mmap.__new__"})
# Allowed only from the code objects ``make_audit_hook`` is given as ``trusted``, in the process that
# installed the policy: coverage forks each input from the program's loaded state and kills it when late.
TRUSTED_EVENTS = frozenset({"os.fork", "os.kill"})
# Where the path events that take a ``dir_fd`` have it, by the position of the path it is for: a relative path is
# relative to that descriptor's folder, not the cwd (``open``'s event has none: ``os.open`` is wrapped instead).
DIR_FD_ARGS = {
    "os.mkdir": {0: 2}, "os.rename": {0: 2, 1: 3}, "os.link": {0: 2, 1: 3}, "os.symlink": {1: 2}, "os.chmod": {0: 2},
    "os.chown": {0: 3}, "os.utime": {0: 3}, "os.remove": {0: 1}, "os.rmdir": {0: 1},
}
# Events whose first argument is a path: allowed only inside the sandbox folder.
PATH_EVENTS = frozenset(
    {
        "os.remove", "os.rmdir", "os.rename", "os.truncate", "os.chmod", "os.chown", "os.link",
        "os.symlink", "os.mkdir", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile",
        "shutil.copytree", "shutil.chown", "shutil.make_archive", "shutil.unpack_archive",
    }
)

_HUMAN_EVAL_OS = (
    "kill", "system", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty",
    "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown",
    "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir", "setsid", "setpgid",
    "setpgrp", "setgid", "setreuid", "setresuid", "spawnl", "spawnv", "spawnve", "spawnlp", "execv",
    "execve", "execl", "execvp", "posix_spawn", "posix_spawnp", "popen", "abort",
)


_protected_fd = -1


def _fsdecode(path: object) -> str:
    """``os.fsdecode`` as an exact ``str``: a ``str`` or ``bytes`` subclass's own ``decode``, ``split``... would answer
    the checks for some other path than the one the call takes. Raises ``TypeError`` for a non-path."""
    p = _fspath(path)
    return _decode(p, _FS_ENCODING, _FS_ERRORS) if isinstance(p, bytes) else _str_join((p,))


def _parent(path: str) -> str:
    """The parent of a normalised absolute path (``/`` its own)."""
    return path[: path.rfind("/")] or "/"


def _child(path: str, name: str) -> str:
    return "/" + name if path == "/" else path + "/" + name


def _is_link(path: str) -> bool:
    try:
        return S_ISLNK(_lstat(path).st_mode)
    except (OSError, ValueError):
        return False


def _join_real(path: str, rest: str, seen: dict) -> str:
    """``rest`` resolved from the real absolute ``path`` link by link, as ``posixpath.realpath`` does (``seen``: the
    links met, None while one is being resolved). A link in a loop is kept as it is and the rest resolved after it
    (the call itself fails with ``ELOOP``). ``ValueError`` for an embedded NUL."""
    if rest.startswith("/"):
        path = "/"
    for name in rest.split("/"):
        if not name or name == ".":
            continue
        if name == "..":
            path = _parent(path)
            continue
        new = _child(path, name)
        try:
            link = S_ISLNK(_lstat(new).st_mode)
        except OSError:
            link = False
        if not link:
            path = new
        elif new in seen:
            path = seen[new] or new
        else:
            seen[new] = None
            path = seen[new] = _join_real(path, _readlink(new), seen)
    return path


def _resolve(path: object, root: str) -> str | None:
    """The real path of ``path`` (relative paths are relative to ``root``, the fixed cwd, itself a real path); None if
    invalid."""
    try:
        return _join_real(root, _fsdecode(path), {})
    except (TypeError, ValueError, OSError):
        return None


def _dir_fd_base(dir_fd: object, root: str) -> str | None:
    """The folder a relative path given with ``dir_fd`` is relative to: ``root`` (the fixed cwd) for none (a negative
    number: ``AT_FDCWD``, or -1 in an audit event), else the descriptor's file; None where that cannot be named."""
    if not isinstance(dir_fd, int) or dir_fd < 0:
        return root
    try:
        target = _readlink(f"/proc/self/fd/{_index(dir_fd)}")
    except OSError:
        return None
    return target if target.startswith("/") and not target.endswith(" (deleted)") else None


def _inside(path: object, root: str, base: str | None = "") -> bool:
    """Whether ``path`` lies inside ``root``; a relative one taken from ``base`` (``root`` when not given, None:
    unknown)."""
    if isinstance(path, int):
        return True
    if base is None:
        return False
    p = _resolve(path, base or root)
    return p is not None and (p == root or p.startswith(root + "/") or p == "/dev/null")


def _is_path(a: object) -> bool:
    """Whether ``a`` is what a path argument takes: ``str``, ``bytes`` or an object whose type has ``__fspath__``, found
    in the type's own dictionaries as CPython finds it, not by ``isinstance(a, os.PathLike)``, which asks
    ``PathLike.__subclasshook__`` and ``ABCMeta`` (a program's to replace)."""
    if isinstance(a, (str, bytes)):
        return True
    for cls in _mro(type(a)):
        d = _type_dict(cls)
        if "__fspath__" in d:
            return d["__fspath__"] is not None
    return False


def _isdir(path: object) -> bool:
    try:
        return S_ISDIR(_stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _fd_inside(fd: int, root: str) -> bool:
    """Whether descriptor ``fd`` is no file (a pipe, a socket) or a file inside ``root``; True if not open."""
    fd = _index(fd)  # an exact int: an int subclass's ``__format__`` would name another descriptor below
    try:
        _fstat(fd)
    except OSError:
        return True  # the call itself fails
    try:
        target = _readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return not target.startswith("/") or _inside(target.removesuffix(" (deleted)"), root)


def _own_proc_pid() -> str:
    """This process's pid as ``/proc`` names it: in a PID namespace whose ``/proc`` is still the host's
    (no private mount namespace), ``os.getpid()`` names some other process there."""
    try:
        return _readlink("/proc/self")
    except OSError:
        return str(_getpid())


def _other_process_entry(path: str) -> bool:
    if not path.startswith("/proc/"):
        return False
    head = path.split("/")[2]
    return head.isdigit() and head != _own_proc_pid()


def _proc_allowed(path: object, root: str) -> bool:
    """Whether no prefix of ``path`` is another process's ``/proc`` entry. Each prefix is resolved in
    turn: ``//proc``, ``../../proc`` and ``/dev/fd/../..`` reach those entries too, and from them the
    magic links (``fd/N``, ``cwd``, ``root``) lead to files outside ``/proc``, so neither the path as
    written nor its final real path would do. ``None``: the cwd (``os.listdir()``)."""
    if path is None or isinstance(path, int):
        return True
    try:
        p = _fsdecode(path)
    except (TypeError, ValueError):
        return False
    current = "/" if p.startswith("/") else root  # resolved at every step, so ".." is its real parent
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            current = _parent(current)
            continue
        current = _child(current, part)
        if _is_link(current):  # one lstat a component; only links need resolving
            try:
                current = _join_real("/", current, {})
            except (OSError, ValueError):
                return False
        if _other_process_entry(current):
            return False
    return True


def make_audit_hook(root: str, record=None, trusted: frozenset[types.CodeType] = frozenset()):
    """The audit policy for sandbox folder ``root``; ``record(event, args)`` sees every allowed event.
    ``TRUSTED_EVENTS`` pass when raised directly by one of the ``trusted`` code objects in this process
    (not in the processes it forks)."""
    blocked, path_events, inside, proc_ok = BLOCKED_EVENTS, PATH_EVENTS, _inside, _proc_allowed
    write_flags, blocked_modules, isdir, is_path = _WRITE_FLAGS, BLOCKED_MODULES, _isdir, _is_path
    fd_events, fd_inside, trusted_events, index = FD_EVENTS, _fd_inside, TRUSTED_EVENTS, _index
    dir_fd_args, dir_fd_base = DIR_FD_ARGS, _dir_fd_base
    pid, getpid, getframe = _getpid(), _getpid, sys._getframe
    channel_events, channel, channel_fd = CHANNEL_EVENTS, is_channel, _protected_fd

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, 0))[:3]
            if isinstance(path, int) and channel(path, channel_fd):
                raise PermissionError("sandbox: the result channel is reserved")
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & write_flags)
            if writes and not inside(path, root):
                raise PermissionError(f"sandbox: writing {path!r} outside the sandbox folder is not allowed")
            if not proc_ok(path, root):
                raise PermissionError(f"sandbox: reading {path!r} is not allowed")
            # A folder's descriptor is a ``dir_fd`` for writes that the audit events name only relatively.
            if not writes and is_path(path) and isdir(path) and not inside(path, root):
                raise PermissionError(f"sandbox: opening the folder {path!r} outside the sandbox folder is not allowed")
        elif event in channel_events and args and isinstance(args[0], int) and channel(args[0], channel_fd):
            raise PermissionError("sandbox: the result channel is reserved")
        elif event == "import":
            if args and args[0] in blocked_modules:
                raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
        elif event in trusted_events and trusted and getpid() == pid and getframe(1).f_code in trusted:
            pass
        elif event in blocked:
            raise PermissionError(f"sandbox: {event} is not allowed")
        elif event in path_events:
            at = dir_fd_args.get(event, {})
            for i, a in enumerate(args[:2]):
                base = dir_fd_base(args[at[i]], root) if i in at and len(args) > at[i] else root
                if is_path(a) and not inside(a, root, base):
                    raise PermissionError(f"sandbox: {event} on {a!r} outside the sandbox folder is not allowed")
            if event in fd_events and args and isinstance(args[0], int) and not fd_inside(args[0], root):
                raise PermissionError(f"sandbox: {event} on descriptor {index(args[0])} of a file outside the sandbox"
                                      " folder is not allowed")
        elif event == "os.listdir" or event == "os.scandir":
            if args and not proc_ok(args[0], root):
                raise PermissionError(f"sandbox: listing {args[0]!r} is not allowed")
        if record is not None:
            record(event, args)

    return hook


def is_channel(f: int, fd: int, fstat=os.fstat) -> bool:
    """Whether descriptor ``f`` is the result channel ``fd`` or a copy of it (``dup``, ``fcntl(F_DUPFD)``):
    the same pipe, by device and inode, not only the same number."""
    if fd < 0:
        return False
    if f == fd:
        return True
    try:
        channel = fstat(fd)
        if not S_ISFIFO(channel.st_mode):  # the fork server's placeholder (/dev/null): numbers only
            return False
        other = fstat(f)
    except (OSError, TypeError, ValueError, OverflowError):
        return False
    return (other.st_dev, other.st_ino) == (channel.st_dev, channel.st_ino)


# Calls that write to, copy or close a descriptor without an audit event: (position, keyword) of each
# descriptor argument that must not be the result channel.
CHANNEL_ARGS = {
    "write": ((0, None),), "writev": ((0, None),), "pwrite": ((0, None),), "pwritev": ((0, None),),
    "sendfile": ((0, "out_fd"),), "splice": ((1, "dst"),), "copy_file_range": ((1, "dst"),),
    "dup": ((0, None),), "dup2": ((0, "fd"), (1, "fd2")), "login_tty": ((0, None),),
    "eventfd_write": ((0, "fd"),),  # eight bytes of the program's choosing on any descriptor, a pipe too
}


def _channel_guarded(name: str, func, fd: int):
    """``func`` that refuses (EBADF, as a closed descriptor would) the result channel in any of its
    ``CHANNEL_ARGS``; each such argument is read as an ``int`` once, so an ``__index__`` that answers
    differently the second time cannot pass the check with one number and the call with another."""
    where, index, same = CHANNEL_ARGS[name], operator.index, is_channel

    def guarded(*args, **kwargs):
        args = list(args)
        for pos, key in where:
            if pos < len(args):
                args[pos] = value = index(args[pos])
            elif key is not None and key in kwargs:
                kwargs[key] = value = index(kwargs[key])
            else:
                continue
            if same(value, fd):
                raise OSError(errno.EBADF, "Bad file descriptor")
        return func(*args, **kwargs)

    guarded.__name__ = guarded.__qualname__ = name
    guarded.__doc__ = func.__doc__
    return guarded


def protect_fd(fd: int) -> None:
    """Keep the result channel to the runner from the program: the calls in ``CHANNEL_ARGS`` (in ``os``, the
    programs' copy of it and ``posix``) refuse it or a copy of it, ``close`` refuses and ``closerange`` skips
    its number, and the audit policy refuses opening it (``open``, ``os.fdopen``, ``io.FileIO``), ``fcntl``
    on it and mapping it, and ``FileIO`` an opener's descriptor that is the channel. The child's own references
    (``child._write``) stay unguarded for its report."""
    import posix

    close, closerange = os.close, os.closerange
    user_os = guarded_os_module()
    global _protected_fd
    _protected_fd = fd

    def guarded_close(f: int) -> None:
        """By number only: closing a copy leaves the channel open (coverage's inputs close theirs)."""
        f = operator.index(f)
        if f == fd:
            raise OSError(errno.EBADF, "Bad file descriptor")
        close(f)

    def guarded_closerange(lo: int, hi: int) -> None:
        lo, hi = operator.index(lo), operator.index(hi)
        if lo <= fd < hi:
            closerange(lo, fd)
            closerange(fd + 1, hi)
        else:
            closerange(lo, hi)

    guarded = {name: _channel_guarded(name, getattr(posix, name), fd) for name in CHANNEL_ARGS if hasattr(posix, name)}
    guarded["close"], guarded["closerange"] = guarded_close, guarded_closerange
    for mod in (os, user_os, posix):
        mod.__dict__.update(guarded)
    _check_openers(fd)


def _check_openers(fd: int) -> None:
    """``FileIO`` (what ``open`` builds) takes the descriptor that ``opener`` returns after its ``open`` audit
    event and raises none for it: ``FileIO.__init__`` becomes one that refuses an opener's result that is the
    channel ``fd`` or a copy of it. Once per process; ``FileIO`` is an immutable type, hence ``_set_type_attribute``."""
    global _OPENERS_CHECKED
    if _OPENERS_CHECKED:
        return
    import _io

    init, index, same = _io.FileIO.__init__, operator.index, is_channel

    def checked(opener):
        def checked_opener(path, flags):
            f = opener(path, flags)
            if isinstance(f, int):  # the value ``FileIO`` takes, read once (an int subclass's own, not its __index__)
                f = index(f)
                if same(f, fd):
                    raise PermissionError("sandbox: the result channel is reserved")
            return f

        return checked_opener

    # The arguments go on as given, an opener wrapped: a call ``FileIO`` does not take fails with CPython's message.
    def __init__(self, *args, **kwargs):
        if len(args) > 3 and args[3] is not None:
            args = (*args[:3], checked(args[3]), *args[4:])
        if kwargs.get("opener") is not None:
            kwargs["opener"] = checked(kwargs["opener"])
        init(self, *args, **kwargs)

    __init__.__qualname__, __init__.__doc__ = "FileIO.__init__", init.__doc__
    try:
        _set_type_attribute(_io.FileIO, "__init__", __init__)
    except RuntimeError as e:  # another CPython layout: programs still run, this one route stays open
        warnings.warn(f"{e}: a program's open(..., opener=...) can reach the result channel", RuntimeWarning, stacklevel=2)
    _OPENERS_CHECKED = True


_OPENERS_CHECKED = False
_IMMUTABLETYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE


def _set_type_attribute(cls: type, name: str, value: object) -> None:
    """``setattr(cls, name, value)`` on a builtin type, which also sets the C slot a dunder ``name`` stands for
    (``tp_init``, so every way to build one calls ``value``): the immutable flag is lifted for the one assignment.
    Raises ``RuntimeError`` where the flags are not where CPython's ``PyTypeObject`` keeps them."""
    if not cls.__flags__ & _IMMUTABLETYPE:
        setattr(cls, name, value)
        return
    import ctypes

    # tp_flags follows the object header, ob_size and 18 pointer-sized fields (tp_name ... tp_as_buffer).
    flags = ctypes.c_ulong.from_address(id(cls) + object.__basicsize__ + 19 * ctypes.sizeof(ctypes.c_void_p))
    if flags.value != cls.__flags__:
        raise RuntimeError(f"sandbox: cannot find the type flags of {cls.__qualname__} in this Python build")
    flags.value &= ~_IMMUTABLETYPE
    try:
        setattr(cls, name, value)
    finally:
        flags.value |= _IMMUTABLETYPE


def guarded_os_module() -> types.ModuleType:
    """A copy of ``os`` with human-eval's destructive functions set to ``None``.

    Built once in the fork server; each child only swaps it into ``sys.modules``, which touches far
    fewer (copy-on-write) pages than patching ``os`` in every child. Library modules keep their own
    reference to the real ``os``; the audit policy covers what they could do with it.
    """
    global _GUARDED_OS
    if _GUARDED_OS is None:
        mod = types.ModuleType("os", os.__doc__)
        mod.__dict__.update(os.__dict__)
        for name in _HUMAN_EVAL_OS:
            if name in mod.__dict__:
                mod.__dict__[name] = None
        _GUARDED_OS = mod
    return _GUARDED_OS


_GUARDED_OS: types.ModuleType | None = None


def disable_destructive() -> None:
    """human-eval's reliability guard: destructive functions become ``None``. Nothing here depends on
    the job, so the fork server does it once for all its children (keeping its own references to what
    it needs), instead of each child writing to (and so copying) those pages again."""
    import faulthandler
    import shutil
    import subprocess

    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    builtins.help = None
    sys.modules["os"] = guarded_os_module()
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    subprocess.Popen = None
    import _posixsubprocess  # imported by subprocess; the audit policy refuses importing it again

    def fork_exec(*args, **kwargs):
        raise PermissionError("sandbox: _posixsubprocess.fork_exec is not allowed")

    _posixsubprocess.fork_exec = fork_exec
    import _imp
    import _signal
    import posix
    import signal

    exported = {"posix": (posix, os, guarded_os_module()), "_signal": (_signal, signal)}
    for module, names in UNAUDITED.items():
        for name in names:
            for mod in exported[module]:
                mod.__dict__[name] = _refused(name)
    _remove(("register_at_fork",), *exported["posix"])
    create_builtin, module_spec = _imp.create_builtin, type(sys.__spec__)

    def guarded_create_builtin(spec):
        """``_imp`` builds the module its ``spec.name`` names when it reads it again: a name read once and
        checked travels on a spec of its own (a ``name`` property could answer differently the second time)."""
        name = getattr(spec, "name", None)
        if type(name) is not str or name in BLOCKED_MODULES:
            raise PermissionError(f"sandbox: creating the module {name!r} is not allowed")
        return create_builtin(module_spec(name, getattr(spec, "loader", None), origin=getattr(spec, "origin", None)))

    _imp.create_builtin = guarded_create_builtin  # the import system's way to a fresh ``posix``
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def _refused(name: str):
    def refused(*args, **kwargs):
        raise PermissionError(f"sandbox: {name} is not allowed")

    return refused


def _remove(names: tuple[str, ...], *modules: types.ModuleType) -> None:
    for module in modules:
        for name in names:
            module.__dict__.pop(name, None)


def confine_forked() -> None:
    """In a process forked from a sandboxed child, before the program's code runs again: no way out of the
    child's process group, which the fork server kills when the job ends (the child is a session leader,
    so for it these calls fail anyway)."""
    import posix

    _remove(("setsid", "setpgid", "setpgrp"), posix, os, guarded_os_module())


def install_audit_policy(real_root: str, record=None, trusted: frozenset[types.CodeType] = frozenset()) -> None:
    """The per-job layer: the audit policy for sandbox folder ``real_root`` (a resolved path), and ``os.open`` checked by
    it for a path relative to a ``dir_fd``, which ``open``'s audit event leaves out."""
    import posix

    hook = make_audit_hook(real_root, record, trusted)
    sys.addaudithook(hook)
    opened = _dir_fd_open(posix.open, hook, real_root)
    for mod in (os, guarded_os_module(), posix):
        mod.__dict__["open"] = opened


def _dir_fd_open(open_, hook, root: str):
    """``os.open`` whose path, given with a ``dir_fd``, the audit ``hook`` also checks from that descriptor's folder:
    the event names it as relative to the cwd (``m/../../x`` from a subfolder where ``m`` is a link to a deeper one
    wrote beside the folder). Path and descriptor are read once, so a ``__fspath__``/``__index__`` cannot answer twice."""
    fspath, fsdecode, base_of, index = _fspath, _fsdecode, _dir_fd_base, _index

    def open(path, flags, mode=0o777, *, dir_fd=None):
        if dir_fd is not None:
            path, dir_fd = fspath(path), index(dir_fd)  # read once: the call takes what was checked
            p = fsdecode(path)
            if not p.startswith("/"):
                base = base_of(dir_fd, root)
                if base is None:
                    raise PermissionError(f"sandbox: opening {path!r} relative to descriptor {dir_fd!r} is not allowed")
                hook("open", (base + "/" + p, None, flags))
        return open_(path, flags, mode, dir_fd=dir_fd)

    open.__doc__ = open_.__doc__
    return open
