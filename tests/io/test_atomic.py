"""Atomic writes and the clean-up of temp files: one naming scheme, nothing a live writer holds is removed."""

import json
import os
import subprocess
import sys
import time

import pytest

from brasyn_infer.errors import OutputError
from brasyn_infer.io.atomic import (
    STALE_AFTER_SECONDS,
    TEMP_PREFIX,
    atomic_path,
    host_tag,
    parse_temp_name,
    remove_stale_temps,
    temp_path,
    write_json_atomic,
)


def test_temp_names_carry_host_and_pid_and_keep_the_suffix(tmp_path):
    tmp = temp_path(tmp_path / "X-t1c.nii.gz")
    assert tmp.name == f"{TEMP_PREFIX}{host_tag()}-{os.getpid()}-X-t1c.nii.gz"
    assert parse_temp_name(tmp.name) == (host_tag(), os.getpid(), "X-t1c.nii.gz")
    assert parse_temp_name("X-t1c.nii.gz") is None


def test_every_writer_uses_the_one_scheme(tmp_path, monkeypatch):
    """JSON, NIfTI (io.nifti.write_atomic) and the QC PNG all go through atomic_path: a failed write leaves nothing."""
    seen = []
    real = temp_path

    def spy(target):
        seen.append(target.name)
        return real(target)

    monkeypatch.setattr("brasyn_infer.io.atomic.temp_path", spy)
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    import nibabel as nib
    import numpy as np

    from brasyn_infer.evaluation.qc import qc_png
    from brasyn_infer.io.nifti import write_atomic

    write_atomic(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), tmp_path / "b.nii.gz")
    volume = np.ones((8, 8, 8), np.float32)
    from brasyn_infer.constants import Modality
    qc_png(tmp_path / "c.png", {Modality.T1C: volume}, volume, volume, None, "t")
    assert seen == ["a.json", "b.nii.gz", "c.png"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.nii.gz", "c.png"]


def test_a_failed_write_leaves_the_target_and_no_temp(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with pytest.raises(OutputError, match="x.json"), atomic_path(target) as tmp:
        raise OSError(28, "No space left on device")


def test_a_live_writers_temp_file_is_never_removed(tmp_path):
    """Regression: a run without --shard used to delete every temp file in OUTPUT, in-flight writes included."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f"{TEMP_PREFIX}{host_tag()}-{sleeper.pid}-A-t1c.nii.gz"
        live.write_bytes(b"being written")
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        stale = tmp_path / f"{TEMP_PREFIX}{host_tag()}-{dead.pid}-B-t1c.nii.gz"
        stale.write_bytes(b"half")
        remote_fresh = tmp_path / f"{TEMP_PREFIX}othernode-7-C-t1c.nii.gz"
        remote_fresh.write_bytes(b"being written elsewhere")
        remote_old = tmp_path / f"{TEMP_PREFIX}othernode-8-D-t1c.nii.gz"
        remote_old.write_bytes(b"left by a dead node")
        old = time.time() - STALE_AFTER_SECONDS - 60
        os.utime(remote_old, (old, old))
        not_ours = tmp_path / f"{TEMP_PREFIX}{host_tag()}-{dead.pid}-Z-t1c.nii.gz"
        not_ours.write_bytes(b"another run's case")
        removed = remove_stale_temps(tmp_path, ["A-t1c.nii.gz", "B-t1c.nii.gz", "C-t1c.nii.gz", "D-t1c.nii.gz"])
        assert sorted(p.name for p in removed) == sorted([stale.name, remote_old.name])
        assert live.exists() and remote_fresh.exists() and not_ours.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
