"""How well does the other modalities' intensity scale predict a missing modality's? (The model card's figures.)

    python -m training.studies.scale_study --cases ../shared/data/cases ../shared/data/brats2018

Each volume's scale is its foreground 99.5th percentile, the ``percentile`` normalization's (docs/design.md §2).
Leave one case out, the missing modality's log scale is predicted two ways from the other three's:
- as the output's scale is estimated: its mean over the other cases, plus the mean log ratio of the available
  modalities to theirs;
- by a least-squares regression on the three log scales.

The RMS and the worst of the errors are printed. An error of 0.69 is a factor of 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.nifti import load_volume
from brasyn_infer.synthesis.normalize import foreground_percentile

from ..data import find_case_folders


def log_scales(folders: list[Path]) -> np.ndarray:
    """``(cases, 4)``: each case's log foreground 99.5th percentile per modality (MODALITIES order)."""
    rows = []
    for folder in folders:
        files = complete_case(folder)
        rows.append([np.log(foreground_percentile(load_volume(files.modalities[m]).data, 99.5)) for m in MODALITIES])
    return np.array(rows)


def loco_errors(scales: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-case-out errors of the log scale of modality ``target``: (the product's estimate, a regression)."""
    others = [i for i in range(scales.shape[1]) if i != target]
    geo, reg = [], []
    for k in range(len(scales)):
        rest = np.delete(scales, k, axis=0)
        reference = rest.mean(axis=0)
        geo.append(scales[k, target] - (reference[target] + np.mean(scales[k, others] - reference[others])))
        design = np.hstack([rest[:, others], np.ones((len(rest), 1))])
        weights, *_ = np.linalg.lstsq(design, rest[:, target], rcond=None)
        reg.append(scales[k, target] - np.append(scales[k, others], 1.0) @ weights)
    return np.array(geo), np.array(reg)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, nargs="+", required=True, help="folders of complete case folders")
    args = p.parse_args(argv)
    scales = log_scales(find_case_folders(args.cases))
    print(f"{len(scales)} cases; leave-one-case-out error of the missing modality's log scale")
    print("| missing | estimate RMS | worst factor | regression RMS | worst factor |\n|---|---|---|---|---|")
    for i, m in enumerate(MODALITIES):
        geo, reg = loco_errors(scales, i)
        print(f"| {m.value} | {np.sqrt((geo**2).mean()):.2f} | {np.exp(np.abs(geo).max()):.2f} | "
              f"{np.sqrt((reg**2).mean()):.2f} | {np.exp(np.abs(reg).max()):.2f} |")


if __name__ == "__main__":
    main()
