"""Atomic writes: every file the program writes (NIfTI, JSON, CSV, Markdown, PNG) goes through here.

A file is written to a hidden temp file beside its target, named by host and process
(``.brasyn-tmp-<host>-<pid>-<name>``, so processes on several machines writing one folder never collide),
fsynced, then renamed over the target: a reader never sees half a file, and a killed writer leaves only a
temp file. :func:`remove_stale_temps` removes those, and only those whose writer is certainly gone.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from brasyn_infer.errors import OutputError

TEMP_PREFIX = ".brasyn-tmp-"
#: a temp file written from another host is taken for dead after this many seconds without a change
STALE_AFTER_SECONDS = 3600.0


def host_tag() -> str:
    """This host's name as it appears in temp names (no ``-`` or ``/``)."""
    return socket.gethostname().replace("/", "_").replace("-", "_") or "host"


def temp_path(target: Path) -> Path:
    """The hidden temp file beside ``target`` for this host and process; it keeps ``target``'s suffixes."""
    return target.with_name(f"{TEMP_PREFIX}{host_tag()}-{os.getpid()}-{target.name}")


def parse_temp_name(name: str) -> tuple[str, int, str] | None:
    """``(host, pid, target name)`` of a temp file's name; None when it is not one of ours."""
    if not name.startswith(TEMP_PREFIX):
        return None
    parts = name[len(TEMP_PREFIX):].split("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield the temp path to write ``target``'s content to; on success fsync it and rename it over ``target``.

    On any error the temp file is removed (``target`` is untouched); an ``OSError`` becomes an
    :class:`~brasyn_infer.errors.OutputError` naming the target."""
    tmp = temp_path(target)
    try:
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


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json_atomic(target: Path, data: Any) -> None:
    """``data`` as indented JSON; the parent folder is created."""
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, json.dumps(data, indent=1) + "\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def is_stale(path: Path, now: float | None = None) -> bool:
    """Is this temp file's writer gone? On this host: its process no longer exists. From another host (a
    shard on another node, which this host cannot ask): unchanged for :data:`STALE_AFTER_SECONDS`."""
    parsed = parse_temp_name(path.name)
    if parsed is None:
        return False
    host, pid, _ = parsed
    if host == host_tag():
        return pid != os.getpid() and not _alive(pid)
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
    for path in sorted(folder.glob(f"{TEMP_PREFIX}*")):
        parsed = parse_temp_name(path.name)
        if parsed is None or parsed[2] not in wanted or not path.is_file() or not is_stale(path):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
