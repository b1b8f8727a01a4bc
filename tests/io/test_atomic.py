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
    is_stale,
    locks_trusted,
    parse_temp_name,
    remove_stale_temps,
    temp_path,
    write_json_atomic,
)


def test_temp_names_are_random_and_keep_the_suffix(tmp_path):
    """Regression: names were host + pid, which repeat across PID namespaces (Apptainer --containall, Docker with the
    host's name, a Kubernetes retry, the image's PID 1): two writers could share a name."""
    a, b = temp_path(tmp_path / "X-t1c.nii.gz"), temp_path(tmp_path / "X-t1c.nii.gz")
    assert a != b and a.name.startswith(TEMP_PREFIX) and a.name.endswith("-X-t1c.nii.gz")
    assert parse_temp_name(a.name) == "X-t1c.nii.gz"
    assert parse_temp_name(f"{TEMP_PREFIX}node1-42-X-t1c.nii.gz") == "X-t1c.nii.gz"  # an older version's name
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


HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_a_live_writers_temp_file_is_never_removed(tmp_path):
    """Regression: a writer counted as gone when its pid did not exist here, which in another PID namespace with the
    same host name removed a live file. Now only the writer's lock counts, whatever its pid: a live writer (another
    process holding the lock) keeps its file; a killed one (lock freed by the kernel) loses it; an older version's
    name, or any temp on a file system whose locks are not trusted, only after an hour unchanged."""
    live = temp_path(tmp_path / "A-t1c.nii.gz")
    writer = subprocess.Popen([sys.executable, "-c", HOLD, str(live)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        dead_writer = subprocess.Popen([sys.executable, "-c", HOLD, str(temp_path(tmp_path / "B-t1c.nii.gz"))],
                                       stdout=subprocess.PIPE, text=True)
        assert dead_writer.stdout.readline().strip() == "locked"
        dead_writer.kill()  # kill -9: the kernel frees its lock
        dead_writer.wait()
        stale = next(p for p in tmp_path.iterdir() if p.name.endswith("B-t1c.nii.gz"))
        legacy_fresh = tmp_path / f"{TEMP_PREFIX}node1-1-C-t1c.nii.gz"
        legacy_fresh.write_bytes(b"an older version, maybe still writing")
        legacy_old = tmp_path / f"{TEMP_PREFIX}node1-2-D-t1c.nii.gz"
        legacy_old.write_bytes(b"left by a dead node")
        old = time.time() - STALE_AFTER_SECONDS - 60
        os.utime(legacy_old, (old, old))
        not_ours = temp_path(tmp_path / "Z-t1c.nii.gz")
        not_ours.write_bytes(b"another run's case")
        assert locks_trusted(tmp_path)
        assert not is_stale(stale, trusted=False)  # on NFS a free lock alone proves nothing
        removed = remove_stale_temps(tmp_path, ["A-t1c.nii.gz", "B-t1c.nii.gz", "C-t1c.nii.gz", "D-t1c.nii.gz"])
        assert sorted(p.name for p in removed) == sorted([stale.name, legacy_old.name])
        assert live.exists() and legacy_fresh.exists() and not_ours.exists()
    finally:
        writer.kill()
        writer.wait()


def test_the_writer_holds_its_lock_while_it_writes(tmp_path):
    from brasyn_infer.io.atomic import lock_is_free

    target = tmp_path / "x.json"
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
        assert not lock_is_free(tmp) and remove_stale_temps(tmp_path, ["x.json"]) == []
    assert target.read_text() == "{}" and list(tmp_path.iterdir()) == [target]
