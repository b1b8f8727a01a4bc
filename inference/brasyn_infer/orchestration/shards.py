"""Splitting one INPUT between processes: ``--shard I/N``, or the engine's array index.

The rule: INPUT's case folders sorted by name; shard ``I`` of ``N`` (``I`` from 0) takes every folder
whose position in that list is ``I`` modulo ``N`` (round-robin). It depends only on the folder names,
not on the file system's listing order or on the other shards, and every folder (a broken one too)
belongs to exactly one shard. Without ``--shard`` the shard comes from the environment:

- Slurm job arrays: ``SLURM_ARRAY_TASK_ID``, with ``N`` from ``SLURM_ARRAY_TASK_COUNT`` (or from
  ``SLURM_ARRAY_TASK_MIN``/``MAX``); an array ``--array=1-8`` or ``0-14:2`` is fine, a list such as
  ``0,3,7`` is not (its index cannot be told from the environment: pass ``--shard``);
- Kubernetes Indexed Jobs: ``JOB_COMPLETION_INDEX``, with ``N`` from ``BRASYN_SHARDS`` (the Job's
  ``completions``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from brasyn_infer.errors import UsageError

#: Kubernetes Indexed Jobs give the index only; the count is ours to pass.
SHARDS_ENV = "BRASYN_SHARDS"

T = TypeVar("T")


class ShardError(UsageError):
    """A shard that cannot be used (a usage error: exit 2)."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``index`` from 0), and where it was read from."""

    index: int
    count: int
    source: str = "--shard"

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ShardError(f"shard {self.index}/{self.count} ({self.source}) does not exist",
                             fix=f"use I/N with 0 <= I < N, e.g. --shard 0/{max(self.count, 2)}")

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def rule(self, total: int) -> str:
        """The rule, said once at the start of a sharded run."""
        mine = len(range(self.index, total, self.count))
        return (f"shard {self.label} (from {self.source}): of the {total} case folders sorted by name, "
                f"every one whose position is {self.index} mod {self.count} ({mine} cases)")

    def select(self, items: Sequence[T], key=lambda item: item) -> list[T]:
        """This shard's items: round-robin over ``items`` sorted by ``key`` (a name)."""
        ordered = sorted(items, key=key)
        return ordered[self.index::self.count]


def parse_shard(text: str, source: str = "--shard") -> Shard:
    """``"I/N"`` -> Shard; ShardError (one line, with the fix) for anything else."""
    parts = text.strip().split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ShardError(f"{source} {text!r} is not I/N", fix="give the shard as I/N with 0 <= I < N, e.g. --shard 0/4")
    return Shard(int(parts[0]), int(parts[1]), source)


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not value.lstrip("-").isdigit():
        raise ShardError(f"${name}={value!r} is not a whole number", fix="pass --shard I/N explicitly")
    return int(value)


def shard_from_env(env: Mapping[str, str]) -> Shard | None:
    """The shard a Slurm array task or a Kubernetes Indexed Job pod is; None outside both."""
    task = _int(env, "SLURM_ARRAY_TASK_ID")
    if task is not None:
        low = _int(env, "SLURM_ARRAY_TASK_MIN")
        high = _int(env, "SLURM_ARRAY_TASK_MAX")
        step = _int(env, "SLURM_ARRAY_TASK_STEP") or 1
        count = _int(env, "SLURM_ARRAY_TASK_COUNT")
        low = 0 if low is None else low
        if high is None and count is None:
            raise ShardError("SLURM_ARRAY_TASK_ID is set without SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MAX",
                             fix="pass --shard $SLURM_ARRAY_TASK_ID/N")
        span = (high - low) // step + 1 if high is not None else count
        if count is None:
            count = span
        if span != count or (task - low) % step:
            raise ShardError(f"the Slurm array is not contiguous (tasks {low}-{high}, step {step}, {count} tasks)",
                             fix="use --array=A-B (or A-B:S), or pass --shard I/N")
        return Shard((task - low) // step, count, "SLURM_ARRAY_TASK_ID")
    index = _int(env, "JOB_COMPLETION_INDEX")
    if index is not None:
        shards = env.get(SHARDS_ENV, "").strip()
        if not shards:
            raise ShardError(f"JOB_COMPLETION_INDEX is set but ${SHARDS_ENV} is not",
                             fix=f"set {SHARDS_ENV} to the Job's completions in the pod's env")
        count = _int(env, SHARDS_ENV)
        return Shard(index, count or 0, f"JOB_COMPLETION_INDEX and ${SHARDS_ENV}")
    return None


def resolve_shard(option: str | None, env: Mapping[str, str]) -> Shard | None:
    """``--shard`` wins; else the engine's environment; else None (all cases)."""
    if option is not None:
        return parse_shard(option)
    return shard_from_env(env)
