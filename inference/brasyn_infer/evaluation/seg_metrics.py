"""Segmentation scores with the official BraTS metrics package (``brats-evaluation``, on panoptica): the ``eval``
extra. Regions as its ``gli`` config defines them: WT = labels 1, 2, 3; TC = 1, 3; ET = 3 (BraTS 2023-2024
numbering; label 4, the 2024 resection cavity, is in none).

Both maps are class maps (:mod:`brasyn_infer.segmentation.labels`: 0 background, 1 NCR, 2 ED, 3 ET), so a BraTS
2018 file (ET = 4) is converted before scoring. Reported as the package's parser reports them (its
``parse_seg_results``): ``dice_*`` the global binary Dice (``global_bin_dsc``), ``hd95_*`` its HD95 in mm with an
infinite distance (one map empty, the other not) at 373 (the SRI cube's diagonal), ``lw_dice_*`` and ``lw_hd95_*``
the lesion-wise means (``sq_dsc``, ``sq_hd95``). A region absent from both maps gives NaN (left out of means).

Distances are in mm: the case's voxel spacing (its header's) goes to the package, whose lesion-wise HD95 uses it;
its global HD95 (this version) ignores the spacing, so with voxels other than 1 mm it is recomputed with the
package's own HD95 function and the spacing.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from functools import lru_cache

import numpy as np

from brasyn_infer.errors import BrasynError

#: what the package's parser puts for an infinite HD95
HD95_CAP = 373.0
REGION_KEYS = {"WT": "wt", "TC": "tc", "ET": "et"}
SCORE_COLUMNS = [f"{m}_{r}" for m in ("dice", "hd95", "lw_dice", "lw_hd95") for r in ("wt", "tc", "et")]


@lru_cache(maxsize=1)
def _evaluator():
    """The package's ``gli`` evaluator (loaded once; its banner and warnings kept off the terminal)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            from brats_evaluation import config_path
            from panoptica import Panoptica_Evaluator

            return Panoptica_Evaluator.load_from_config(str(config_path("gli")))
    except ImportError as error:
        raise BrasynError(f"the BraTS metrics package is not installed ({error})", None,
                          "pip install 'brasyn-infer[eval]' (brats-evaluation)") from None


def _finite(value, cap: float | None = None) -> float:
    value = float(value) if value is not None else math.nan
    if cap is not None and math.isinf(value):
        return cap
    return value


def brats_scores(pred: np.ndarray, reference: np.ndarray,
                 spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict[str, float]:
    """Dice and HD95 (global and lesion-wise; mm) of WT, TC, ET of the class map ``pred`` against ``reference``
    (both ``(X, Y, Z)``, classes 0..3); ``spacing``: the voxel size in mm along X, Y, Z (1 mm on the BraTS grid)."""
    evaluator = _evaluator()
    spacing = tuple(float(v) for v in spacing)
    pred, reference = np.asarray(pred, dtype=np.uint8), np.asarray(reference, dtype=np.uint8)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = evaluator.evaluate(pred, reference, voxelspacing=spacing, verbose=False)
    out: dict[str, float] = {}
    for region, key in REGION_KEYS.items():
        d = results[key].to_dict(True)
        r = region.lower()
        out[f"dice_{r}"] = _finite(d.get("global_bin_dsc"))
        out[f"hd95_{r}"] = _finite(d.get("global_bin_hd95"), HD95_CAP)
        out[f"lw_dice_{r}"] = _finite(d.get("sq_dsc"))
        out[f"lw_hd95_{r}"] = _finite(d.get("sq_hd95"), HD95_CAP)
        if spacing != (1.0, 1.0, 1.0) and math.isfinite(out[f"hd95_{r}"]) and out[f"hd95_{r}"] != HD95_CAP:
            out[f"hd95_{r}"] = _global_hd95(pred, reference, REGION_LABELS[region], spacing)
    return out


#: the classes each region holds (the package's gli config)
REGION_LABELS = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}


def _global_hd95(pred: np.ndarray, reference: np.ndarray, labels: tuple[int, ...],
                 spacing: tuple[float, ...]) -> float:
    """The region's global HD95 in mm with the package's own function (both maps hold the region)."""
    from panoptica.metrics.hausdorff_distance import _compute_hausdorff_distance95

    return float(_compute_hausdorff_distance95(np.isin(reference, labels), np.isin(pred, labels),
                                               voxelspacing=spacing))
