import pytest

from inference.cases import discover, parse_case
from inference.constants import Modality
from inference.errors import BrasynError, CaseError


def test_detects_missing_and_id(case_factory):
    folder = case_factory("BraTS-MET-00777-000", missing="t1n", seg=True)
    case = parse_case(folder)
    assert case.missing is Modality.T1N
    assert case.case_id == "BraTS-MET-00777-000"
    assert set(case.inputs) == {Modality.T1C, Modality.T2F, Modality.T2W}
    assert case.seg is not None and case.seg.name.endswith("-seg.nii.gz")
    assert case.output_name() == "BraTS-MET-00777-000-t1n.nii.gz"


def test_id_falls_back_to_folder_name(tmp_path, case_factory):
    folder = case_factory("X")
    renamed = folder.parent / "some-case"
    folder.rename(renamed)
    for p in renamed.iterdir():
        p.rename(p.with_name(p.name.replace("X-", "")))  # files named t1c.nii.gz etc.
    assert parse_case(renamed).case_id == "some-case"


def test_folder_of_cases_and_single_case(tmp_path, case_factory):
    root = tmp_path / "input"
    case_factory("A-1", root=root)
    case_factory("B-2", missing="t1c", root=root)
    entries = discover(root)
    assert [e.case_id for e in entries] == ["A-1", "B-2"]
    assert [e.case.missing.value for e in entries] == ["t2f", "t1c"]
    single = discover(root / "A-1")
    assert len(single) == 1 and single[0].case.case_id == "A-1"


@pytest.mark.parametrize("remove,message", [(["t1c"], "2 modalities missing"), ([], "no modality is missing")])
def test_wrong_number_missing(case_factory, remove, message):
    folder = case_factory(missing="none")
    for mod in remove:
        next(folder.glob(f"*-{mod}.nii.gz")).unlink()
    if not remove:
        with pytest.raises(CaseError, match=message):
            parse_case(folder)
    else:
        next(folder.glob("*-t2f.nii.gz")).unlink()
        with pytest.raises(CaseError, match=message):
            parse_case(folder)


def test_duplicate_modality(case_factory):
    folder = case_factory()
    (folder / "other_t1c.nii.gz").write_bytes(next(folder.glob("*-t1c.nii.gz")).read_bytes())
    with pytest.raises(CaseError, match="two files for t1c"):
        parse_case(folder)


def test_bad_case_is_an_entry_not_an_exception(tmp_path, case_factory):
    root = tmp_path / "input"
    case_factory("good", root=root)
    (root / "empty").mkdir()
    entries = discover(root)
    assert entries[0].case_id == "empty" and "no NIfTI" in str(entries[0].error)
    assert entries[1].case is not None


def test_unusable_input(tmp_path):
    with pytest.raises(BrasynError, match="does not exist"):
        discover(tmp_path / "nope")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(BrasynError, match="is a file"):
        discover(tmp_path / "f.txt")
    with pytest.raises(BrasynError, match="no NIfTI files and no case folders"):
        discover(tmp_path)
