import pytest

from brasyn_infer.constants import Modality
from brasyn_infer.errors import BrasynError, CaseError
from brasyn_infer.io.cases import discover, parse_case


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


def test_one_to_three_missing_are_cases_none_missing_is_not(case_factory):
    folder = case_factory(missing="none")
    with pytest.raises(CaseError, match="no modality is missing"):
        parse_case(folder)
    for removed, absent in (("t2f", "t2f"), ("t1c", "t1c+t2f"), ("t2w", "t1c+t2f+t2w")):
        next(folder.glob(f"*-{removed}.nii.gz")).unlink()
        case = parse_case(folder)
        assert "+".join(m.value for m in case.absent) == absent and case.missing.value == absent.split("+")[0]
        assert case.output_names() == [f"{case.case_id}-{m}.nii.gz" for m in absent.split("+")]


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


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ROLES = ["t1c", "t1n", "t2f", "t2w", "seg"]


@settings(max_examples=80, deadline=None)
@given(present=st.sets(st.sampled_from(ROLES)), junk=st.lists(st.sampled_from(["notes.txt", "mask.nii.gz", ".hidden.nii.gz"]), unique=True),
       case_id=st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,6}(-[0-9]{3,5}){0,2}", fullmatch=True))
def test_discovery_property(tmp_path_factory, present, junk, case_id):
    folder = tmp_path_factory.mktemp("prop") / case_id
    folder.mkdir()
    for role in present:
        (folder / f"{case_id}-{role}.nii.gz").write_bytes(b"")
    for name in junk:
        (folder / name).write_bytes(b"")
    modalities = [r for r in ROLES[:4] if r in present]
    if 1 <= len(modalities) <= 3:
        case = parse_case(folder)
        assert case.missing.value == next(r for r in ROLES[:4] if r not in present)
        assert [m.value for m in case.absent] == [r for r in ROLES[:4] if r not in present]
        assert case.case_id == case_id and len(case.inputs) == len(modalities)
        assert (case.seg is not None) == ("seg" in present)
    else:
        with pytest.raises(CaseError):
            parse_case(folder)
