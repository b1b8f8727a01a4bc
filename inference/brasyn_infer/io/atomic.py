"""Atomic writes: every file the program writes (NIfTI, JSON, CSV, Markdown, PNG) goes through here.

A file is written to a hidden temp file beside its target, named with a random token
(``.brasyn-tmp-<token>-<name>``: unique without trusting host names or process IDs, which repeat across
containers, PID namespaces and Kubernetes retries), fsynced, then renamed over the target: a reader never sees
half a file, and a killed writer leaves only a temp file. The writer holds an advisory lock (``flock``) on its temp
file while it writes; the kernel frees it when the writer dies, in whatever PID namespace or container it ran.
:func:`remove_stale_temps` removes another writer's temp file only when it is provably stale: its lock is free and,
on a file system whose locks are not to be trusted (NFS, SMB, FUSE), it has also been unchanged for an hour.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from brasyn_infer.errors import OutputError

TEMP_PREFIX = ".brasyn-tmp-"
#: a temp file on a file system whose locks are not trusted is taken for dead after this many seconds unchanged
STALE_AFTER_SECONDS = 3600.0
#: file systems whose advisory locks may not reach other machines (the kernel's names in /proc/mounts)
UNTRUSTED_LOCKS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ncpfs")
TOKEN_HEX = 16


def temp_path(target: Path) -> Path:
    """A fresh hidden temp path beside ``target`` (a random token); it keeps ``target``'s suffixes."""
    return target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(TOKEN_HEX // 2)}-{target.name}")


def parse_temp_name(name: str) -> str | None:
    """The target name of one of our temp files' names (``.brasyn-tmp-<token>-<target>``); None when it is not one
    of ours. Names of older versions (``.brasyn-tmp-<host>-<pid>-<target>``) are read too."""
    if not name.startswith(TEMP_PREFIX):
        return None
    rest = name[len(TEMP_PREFIX):]
    token, _, target = rest.partition("-")
    if len(token) == TOKEN_HEX and all(c in "0123456789abcdef" for c in token) and target:
        return target
    parts = rest.split("-", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return parts[2]
    return None


def _locked_create(tmp: Path) -> int:
    """Create ``tmp`` exclusively and hold an exclusive advisory lock on it; returns the descriptor (kept open while
    the content is written, by this or another handle, and closed after the rename). Where the file system has no
    locks, the file is still created."""
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass  # no locks here: staleness falls back to the age rule
    return fd


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield the temp path to write ``target``'s content to; on success fsync it and rename it over ``target``.

    On any error the temp file is removed (``target`` is untouched); an ``OSError`` becomes an
    :class:`~brasyn_infer.errors.OutputError` naming the target."""
    tmp = temp_path(target)
    fd = None
    try:
        fd = _locked_create(tmp)
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write ({error.strerror or error})", target,
                          "check free space and write permission on the folder") from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock, after the rename


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json_atomic(target: Path, data: Any) -> None:
    """``data`` as indented JSON; the parent folder is created."""
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, json.dumps(data, indent=1) + "\n")


def locks_trusted(folder: Path) -> bool:
    """Are advisory locks in ``folder`` seen by every machine that may write there? False on network file systems
    (:data:`UNTRUSTED_LOCKS`, FUSE), True on local ones; False when the mount table cannot be read."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return False
    where = str(folder.resolve())
    best = ("", "")
    for fields in mounts:
        if len(fields) >= 3:
            point = fields[1].replace("\\040", " ")
            if (where == point or where.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
                best = (point, fields[2])
    fstype = best[1]
    return bool(fstype) and fstype not in UNTRUSTED_LOCKS and not fstype.startswith("fuse")


def lock_is_free(path: Path) -> bool:
    """Can a shared lock be had on ``path`` right now (no live writer holds it)? False if it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def is_stale(path: Path, now: float | None = None, trusted: bool | None = None) -> bool:
    """Is this temp file's writer certainly gone? Its lock is free and, where locks are not trusted
    (``trusted``; default: :func:`locks_trusted` of its folder) or for a temp name of an older version (no lock),
    it has been unchanged for :data:`STALE_AFTER_SECONDS`."""
    if parse_temp_name(path.name) is None or not lock_is_free(path):
        return False
    token = path.name[len(TEMP_PREFIX):].partition("-")[0]
    legacy = len(token) != TOKEN_HEX
    if trusted is None:
        trusted = locks_trusted(path.parent)
    if trusted and not legacy:
        return True
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return False
    return age > STALE_AFTER_SECONDS


def remove_stale_temps(folder: Path, names: Iterable[str]) -> list[Path]:
    """Remove the temp files in ``folder`` that a killed writer left for the targets ``names`` (this run's own
    outputs), and only those whose writer is gone (:func:`is_stale`); returns what was removed."""
    wanted = set(names)
    removed = []
    trusted = locks_trusted(folder) if folder.is_dir() else False
    for path in sorted(folder.glob(f"{TEMP_PREFIX}*")):
        if parse_temp_name(path.name) not in wanted or not path.is_file() or not is_stale(path, trusted=trusted):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
