"""Shards: the assignment rule, the engines' environments, and bad values as one-line usage errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from brasyn_infer.cli import app
from brasyn_infer.orchestration.shards import Shard, ShardError, parse_shard, resolve_shard, shard_from_env


@given(st.lists(st.text("abcdef0123-", min_size=1, max_size=8), unique=True, max_size=40), st.integers(1, 7))
def test_shards_cover_every_item_once_whatever_the_listing_order(names, count):
    parts = [Shard(i, count).select(names) for i in range(count)]
    assert sorted(n for part in parts for n in part) == sorted(names)
    assert [Shard(i, count).select(list(reversed(names))) for i in range(count)] == parts  # order-free
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced


def test_parse_shard():
    assert parse_shard("2/3") == Shard(2, 3)
    for bad in ("3/3", "a/b", "2", "1/0", "-1/3", "1/2/3", ""):
        with pytest.raises(ShardError):
            parse_shard(bad)


def test_slurm_environment():
    env = {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "5", "SLURM_ARRAY_TASK_MIN": "0",
           "SLURM_ARRAY_TASK_MAX": "4"}
    assert shard_from_env(env) == Shard(4, 5, "SLURM_ARRAY_TASK_ID")
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "2"}).count == 3
    one_based = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8", "SLURM_ARRAY_TASK_COUNT": "8"}
    assert (shard_from_env(one_based).index, shard_from_env(one_based).count) == (0, 8)
    stepped = {"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "8",
               "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "5"}
    assert (shard_from_env(stepped).index, shard_from_env(stepped).count) == (3, 5)
    listed = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "7", "SLURM_ARRAY_TASK_COUNT": "3"}
    with pytest.raises(ShardError, match="not contiguous"):
        shard_from_env(listed)
    with pytest.raises(ShardError, match="SLURM_ARRAY_TASK_COUNT"):
        shard_from_env({"SLURM_ARRAY_TASK_ID": "0"})
    assert shard_from_env({"SLURM_JOB_ID": "12"}) is None  # a job, not an array task: all cases


def test_kubernetes_environment():
    assert shard_from_env({"JOB_COMPLETION_INDEX": "2", "BRASYN_SHARDS": "4"}) == Shard(2, 4, "JOB_COMPLETION_INDEX and $BRASYN_SHARDS")
    with pytest.raises(ShardError, match="BRASYN_SHARDS"):
        shard_from_env({"JOB_COMPLETION_INDEX": "2"})
    with pytest.raises(ShardError):
        shard_from_env({"JOB_COMPLETION_INDEX": "4", "BRASYN_SHARDS": "4"})


def test_explicit_shard_wins():
    env = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}
    assert resolve_shard("0/3", env) == Shard(0, 3)
    assert resolve_shard(None, env) == Shard(1, 2, "SLURM_ARRAY_TASK_ID")
    assert resolve_shard(None, {}) is None


@pytest.mark.parametrize("command", ["run", "evaluate"])
@pytest.mark.parametrize(("value", "env"), [("3/3", {}), ("a/b", {}), ("2", {}),
                                            (None, {"JOB_COMPLETION_INDEX": "1"})])
def test_bad_shard_is_a_usage_error(tmp_path, monkeypatch, command, value, env):
    for key, val in env.items():
        monkeypatch.setenv(key, val)
    args = [command, str(tmp_path), str(tmp_path.parent / "out")] + (["--shard", value] if value else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "fix:" in lines[0], result.output
