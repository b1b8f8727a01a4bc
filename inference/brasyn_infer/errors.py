"""The one exception family. Each message names the file and what to do about it."""

from __future__ import annotations

from pathlib import Path


class BrasynError(Exception):
    """A problem with the user's input, weights or output folder; the CLI prints it as one line."""

    def __init__(self, message: str, path: Path | str | None = None, fix: str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.message = message
        self.fix = fix
        parts = [f"{self.path}: {message}" if self.path is not None else message]
        if fix:
            parts.append(f"fix: {fix}")
        super().__init__(" -- ".join(parts))


class UsageError(BrasynError):
    """Options that cannot work together, or a bad value the parser could not catch: exit 2."""


class CaseError(BrasynError):
    """One case cannot be processed; the run goes on with the others."""


class WeightsError(BrasynError):
    """The weights or their manifest are missing, corrupt or inconsistent."""


class OutputError(BrasynError):
    """The output folder cannot be used."""


class DeviceOutOfMemory(BrasynError):
    """The accelerator ran out of memory for one batch; the caller retries with a smaller one."""
