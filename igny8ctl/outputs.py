"""Writing what the operator asked for to the path they named, without clobbering anything.

A regular file (or a new path) is replaced atomically: a temporary file beside it, then a
rename, so readers never see half a report. Anything else is written in place or refused,
never replaced: a character device (``/dev/null``), a FIFO (only when a reader is there,
else refused rather than hanging), ``/dev/stdout``; a symlink keeps pointing where it did.
The files of the database being worked on (a SQLite file) are never an output.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from igny8ctl.errors import ConfigError

#: (device, inode) of files no output may overwrite: the SQLite database in use.
_PROTECTED: set[tuple[int, int]] = set()


def protect(path: Path) -> None:
    """Never write an output onto ``path`` (or a link to it, or a hard link of it)."""
    try:
        status = path.stat()
    except OSError:
        return
    _PROTECTED.add((status.st_dev, status.st_ino))


def _refuse_protected(path: Path, option: str) -> None:
    try:
        status = path.stat()
    except OSError:
        return
    if (status.st_dev, status.st_ino) in _PROTECTED:
        raise ConfigError(f"cannot write {option} {path}: it is the database igny8ctl is "
                          "working on", key=option)


def write_output(path: Path, text: str, option: str = "--output") -> None:
    """Write ``text`` to ``path`` (the value of ``option``), one line of error if it cannot."""
    data = text.encode("utf-8", "backslashreplace")
    _refuse_protected(path, option)
    try:
        link = path.lstat()
    except FileNotFoundError:
        _replace(path, data, option, mode=None)
        return
    except OSError as error:
        raise _error(path, option, error) from None
    if stat.S_ISLNK(link.st_mode):
        try:
            target = path.stat()
        except OSError:
            raise ConfigError(f"cannot write {option} {path}: it is a symlink to nothing",
                              key=option) from None
        resolved = path.resolve()
        if stat.S_ISREG(target.st_mode) and not str(resolved).startswith("/proc/"):
            _replace(resolved, data, option, mode=stat.S_IMODE(target.st_mode))
        else:
            _in_place(path, data, option, target.st_mode)
        return
    if stat.S_ISREG(link.st_mode):
        _replace(path, data, option, mode=stat.S_IMODE(link.st_mode))
    else:
        _in_place(path, data, option, link.st_mode)


def check_target(path: Path, option: str = "--output") -> None:
    """Refuse, before any work is done, a path ``write_output`` could never write."""
    _refuse_protected(path, option)
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"cannot write {option} {path}: it is a symlink to nothing",
                          key=option)
    if path.is_dir():
        raise ConfigError(f"cannot write {option} {path}: it is a directory", key=option)
    parent = path.parent if str(path.parent) else Path(".")
    if not path.exists() and not parent.is_dir():
        raise ConfigError(f"cannot write {option} {path}: directory {parent} does not exist",
                          key=option)


def _replace(path: Path, data: bytes, option: str, mode: int | None) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    try:
        descriptor, temporary = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.")
    except OSError as error:
        raise ConfigError(f"cannot write {option} {path}: cannot create a file in {parent} "
                          f"({error.strerror})", key=option) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode if mode is not None else 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise _error(path, option, error) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _in_place(path: Path, data: bytes, option: str, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise ConfigError(f"cannot write {option} {path}: it is a directory", key=option)
    flags = os.O_WRONLY
    if stat.S_ISFIFO(mode):
        flags |= os.O_NONBLOCK
    elif stat.S_ISREG(mode):
        flags |= os.O_TRUNC
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ENXIO:
            raise ConfigError(f"cannot write {option} {path}: a FIFO with no reader",
                              key=option) from None
        raise _error(path, option, error) from None
    try:
        if flags & os.O_NONBLOCK:
            os.set_blocking(descriptor, True)
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
    except OSError as error:
        raise _error(path, option, error) from None
    finally:
        os.close(descriptor)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _error(path: Path, option: str, error: OSError) -> ConfigError:
    return ConfigError(f"cannot write {option} {path}: {error.strerror or error}", key=option)
