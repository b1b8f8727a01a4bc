"""Label conventions both ways, and the tumor mask each convention implies."""

import numpy as np
import pytest

from brasyn_infer.constants import Convention
from brasyn_infer.segmentation.labels import (
    LabelConvention,
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
    assert tumor_mask(seg, LabelConvention.BRATS2018).tolist() == [False, True, True, False, True]
    assert classes_from_labels(seg, LabelConvention.BRATS2024).tolist() == [0, 1, 2, 3, 0]
    regions = region_masks(classes_from_labels(seg, LabelConvention.BRATS2018))
    assert regions["WT"].tolist() == [False, True, True, False, True]
    assert regions["TC"].tolist() == [False, True, False, False, True]
    assert regions["ET"].tolist() == [False, False, False, False, True]
