"""training/data.py: the outputs evaluate --save-volumes kept, listed with their case folders."""

import pytest

from brasyn_infer.constants import Modality


def test_saved_outputs_are_listed_by_case_then_modality_with_their_folders_and_maps(tmp_path):
    from training.data import saved_outputs

    folders = {"A": tmp_path / "cases" / "A", "B": tmp_path / "cases" / "B"}
    for name in ("B/B-t2w.nii.gz", "B/B-t1c.nii.gz", "A/A-t2f.nii.gz", "A/A-t2f-uncertainty.nii.gz", "A/notes.txt"):
        (tmp_path / "volumes" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "volumes" / name).touch()
    outputs = saved_outputs(tmp_path / "volumes", folders)
    assert [(o.case_id, o.missing) for o in outputs] == [("A", Modality.T2F), ("B", Modality.T1C), ("B", Modality.T2W)]
    assert outputs[0].folder == folders["A"] and outputs[0].path == tmp_path / "volumes" / "A" / "A-t2f.nii.gz"
    assert outputs[0].uncertainty.is_file() and not outputs[1].uncertainty.exists()
    with pytest.raises(SystemExit, match="no case folder B under --cases"):
        saved_outputs(tmp_path / "volumes", {"A": folders["A"]})
    (tmp_path / "empty" / "A").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no <case>/<case>-<modality>.nii.gz outputs"):
        saved_outputs(tmp_path / "empty", folders)
