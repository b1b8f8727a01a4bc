"""Both naming conventions: parsing, the output in the inputs' convention, and a mixed folder refused."""

import pytest

from brasyn_infer.constants import Convention, Modality
from brasyn_infer.errors import CaseError
from brasyn_infer.io.cases import discover, parse_case, scan_folder
from brasyn_infer.io.naming import modality_file, parse_name
from tests.conftest import brain_volume, write_nifti


@pytest.mark.parametrize(("name", "case_id", "modality", "convention"), [
    ("Brats18_2013_11_1_t1ce.nii.gz", "Brats18_2013_11_1", Modality.T1C, Convention.LEGACY),
    ("Brats18_2013_11_1_t1.nii.gz", "Brats18_2013_11_1", Modality.T1N, Convention.LEGACY),
    ("BraTS2021_00000_flair.nii", "BraTS2021_00000", Modality.T2F, Convention.LEGACY),
    ("BraTS2021_00000_t2.nii.gz", "BraTS2021_00000", Modality.T2W, Convention.LEGACY),
    ("BraTS-GLI-00001-000-t2f.nii.gz", "BraTS-GLI-00001-000", Modality.T2F, Convention.BRASYN),
    ("BraTS-GLI-00001-000-t1c.nii.gz", "BraTS-GLI-00001-000", Modality.T1C, Convention.BRASYN),
])
def test_names_are_read_in_either_convention(name, case_id, modality, convention):
    named = parse_name(name)
    assert (named.case_id, named.modality, named.convention) == (case_id, modality, convention)
    assert modality_file(case_id, modality, convention).lower() == name.lower().replace(".nii.gz", "").replace(
        ".nii", "") + ".nii.gz"


def test_case_and_separator_are_lenient_when_reading():
    named = parse_name("X.T1CE.NII.GZ")
    assert (named.case_id, named.modality, named.convention) == ("X", Modality.T1C, Convention.LEGACY)


def test_seg_and_other_files():
    assert parse_name("Brats18_X_seg.nii.gz").is_seg and parse_name("BraTS-GLI-1-seg.nii.gz").is_seg
    assert parse_name("x_t2_mask.nii.gz") is None and parse_name("notes.txt") is None


def legacy_case(root, case_id, mods=("t1", "t2", "flair")):
    folder = root / case_id
    folder.mkdir(parents=True)
    for i, suffix in enumerate(mods):
        write_nifti(folder / f"{case_id}_{suffix}.nii.gz", brain_volume(seed=i))
    return folder


def test_a_legacy_case_names_its_output_in_its_convention(tmp_path):
    case = parse_case(legacy_case(tmp_path, "BraTS2021_00042"))
    assert case.missing is Modality.T1C and case.convention is Convention.LEGACY
    assert case.output_name() == "BraTS2021_00042_t1ce.nii.gz"
    assert case.uncertainty_name() == "BraTS2021_00042_t1ce_uncertainty.nii.gz"


def test_a_folder_that_mixes_the_conventions_is_one_error_naming_the_files(tmp_path):
    folder = legacy_case(tmp_path, "C1", mods=("t1", "t2"))
    write_nifti(folder / "C1-t1c.nii.gz", brain_volume())
    with pytest.raises(CaseError) as error:
        scan_folder(folder)
    message = str(error.value)
    assert "C1-t1c.nii.gz" in message and "C1_t1.nii.gz" in message and "fix:" in message and "\n" not in message
    both = legacy_case(tmp_path, "C2", mods=("t1ce", "t1", "t2"))
    write_nifti(both / "C2-t1c.nii.gz", brain_volume())
    entry = discover(both)[0]
    assert entry.error is not None and "C2_t1ce.nii.gz" in str(entry.error) and "C2-t1c.nii.gz" in str(entry.error)


def test_brasyn_names_with_underscores_keep_their_separator(tmp_path):
    """Regression: B_t1n/B_t2w/B_t2f gave B-t1c.nii.gz; the output follows the inputs' separator."""
    from brasyn_infer.io.cases import parse_case

    folder = tmp_path / "B"
    folder.mkdir()
    for mod in ("t1n", "t2w", "t2f"):
        (folder / f"B_{mod}.nii.gz").write_bytes(b"")
    case = parse_case(folder)
    assert case.case_id == "B" and case.output_name() == "B_t1c.nii.gz"
    assert case.uncertainty_name() == "B_t1c_uncertainty.nii.gz"
    for mod in ("t1n", "t2w", "t2f"):
        (folder / f"B_{mod}.nii.gz").rename(folder / f"B-{mod}.nii.gz")
    assert parse_case(folder).output_name() == "B-t1c.nii.gz"
