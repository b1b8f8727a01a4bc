"""Label conventions both ways, and the tumor mask each convention implies."""

from pathlib import Path

import numpy as np
import pytest

from brasyn_infer.constants import Convention
from brasyn_infer.errors import CaseError
from brasyn_infer.segmentation.labels import (
    LabelConvention,
    check_labels,
    classes_from_labels,
    convention_for_files,
    labels_from_classes,
    region_masks,
    tumor_mask,
)

CLASSES = np.array([0, 1, 2, 3, 0, 3], dtype=np.uint8)


@pytest.mark.parametrize("convention,labels", [(LabelConvention.BRATS2018, [0, 1, 2, 4, 0, 4]),
                                               (LabelConvention.BRATS2023, [0, 1, 2, 3, 0, 3]),
                                               (LabelConvention.BRATS2024, [0, 1, 2, 3, 0, 3])])
def test_classes_and_labels_round_trip(convention, labels):
    assert labels_from_classes(CLASSES, convention).tolist() == labels
    assert classes_from_labels(np.array(labels, dtype=np.float32), convention).tolist() == CLASSES.tolist()


def test_the_file_names_decide_where_they_can():
    assert convention_for_files(Convention.LEGACY) is LabelConvention.BRATS2018
    assert convention_for_files(Convention.BRASYN) is LabelConvention.BRATS2023


def test_a_2024_resection_cavity_is_not_tumor_and_a_2018_label_4_is():
    seg = np.array([0, 1, 2, 3, 4])
    assert tumor_mask(seg, LabelConvention.BRATS2024).tolist() == [False, True, True, True, False]
    assert classes_from_labels(seg, LabelConvention.BRATS2024).tolist() == [0, 1, 2, 3, 0]
    legacy = np.array([0, 1, 2, 0, 4])
    assert tumor_mask(legacy, LabelConvention.BRATS2018).tolist() == [False, True, True, False, True]
    regions = region_masks(classes_from_labels(legacy, LabelConvention.BRATS2018))
    assert regions["WT"].tolist() == [False, True, True, False, True]
    assert regions["TC"].tolist() == [False, True, False, False, True]
    assert regions["ET"].tolist() == [False, False, False, False, True]


def test_2024_differs_from_2023_where_the_data_differ():
    """Label 4 is the resection cavity in 2024 (read, not tumor); 2023 defines no 4: an error, never a silent 0."""
    seg = np.array([0, 1, 2, 3, 4])
    assert classes_from_labels(seg, LabelConvention.BRATS2024).tolist() == [0, 1, 2, 3, 0]
    with pytest.raises(CaseError, match=r"labels 1, 2, 3, 4 found; the 2023 convention.*--labels 2024"):
        classes_from_labels(seg, LabelConvention.BRATS2023)


def test_labels_a_convention_does_not_define_are_an_error_naming_the_one_that_fits():
    """BraTS 2018-2021 labels in a BraSyn-named file (read as 2023): label 4, the enhancing tumor, is not dropped."""
    legacy = np.array([0, 1, 2, 4], dtype=np.float32)
    with pytest.raises(CaseError, match=r"labels 1, 2, 4 found.*2023.*label 4 would be lost.*--labels 2018"):
        tumor_mask(legacy, LabelConvention.BRATS2023, Path("case-seg.nii.gz"))
    with pytest.raises(CaseError, match=r"label 3 would be lost.*--labels 2023"):
        classes_from_labels(np.array([0, 1, 3]), LabelConvention.BRATS2018)


def test_a_map_that_is_not_whole_numbers_is_refused():
    """A soft or resampled map (0 / 0.45) was rounded to 'no tumor'; now it is one error naming the file."""
    with pytest.raises(CaseError, match=r"case-seg.nii.gz: .*not whole numbers \(e.g. 0.45\)"):
        classes_from_labels(np.array([0.0, 0.45, 0.45]), LabelConvention.BRATS2023, Path("case-seg.nii.gz"))
    assert check_labels(np.array([0.0, 1.0, 3.0]), LabelConvention.BRATS2023).dtype == np.int64


def test_training_data_is_read_in_the_numbering_it_holds():
    """Training reads each file in the convention its labels fit (a BraSyn-named file with BraTS 2020 labels is
    2018), the file names' one first; the product reads strictly."""
    from brasyn_infer.segmentation.labels import fitting_convention

    assert fitting_convention(np.array([0, 1, 2, 4]), LabelConvention.BRATS2023) is LabelConvention.BRATS2018
    assert fitting_convention(np.array([0, 1, 2]), LabelConvention.BRATS2023) is LabelConvention.BRATS2023
    assert fitting_convention(np.array([0, 1, 3, 4]), LabelConvention.BRATS2023) is LabelConvention.BRATS2024
    with pytest.raises(CaseError, match="fit no BraTS convention"):
        fitting_convention(np.array([0, 5]), LabelConvention.BRATS2023)
