"""Benchmark: the scoring of one dry-run pair, with each volume scaled once or by every call.

    python benchmarks/scoring.py [--case examples/BraTS-GLI-00001-000] [--repeat 3]

What ``evaluate`` does after the model has run, for one case with one modality dropped (the model row, the mean
baseline's row, the map's ranking of the errors and the QC picture), on a real 240 x 240 x 155 volume: the case's
t1c is the truth, a blurred, rescaled copy the synthesis, a blurred |difference| the map, a ring of the brain
the segmentation. ``scaled once``: the truth and each output are brought to their [0, 1] scale once
(``metrics.Scaled``) and passed on, as ``evaluate`` does; ``each call``: each function is given the raw volumes
and scales them itself, as before. The two are run interleaved, ``--repeat`` times each; the table gives the
median seconds and their ratio, and checks that both give the same figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_erosion, gaussian_filter

from brasyn_infer.constants import Modality
from brasyn_infer.evaluation.metrics import Scaled, score
from brasyn_infer.evaluation.qc import qc_png
from brasyn_infer.evaluation.ranking import MapErrors, map_quality
from brasyn_infer.io.cases import scan_folder
from brasyn_infer.io.nifti import load_volume

REPO = Path(__file__).resolve().parent.parent


def pair(truth: np.ndarray, synthesized: np.ndarray, mean: np.ndarray, uncertainty: np.ndarray,
         seg: np.ndarray, inputs: dict, png: Path, once: bool) -> list[dict]:
    """The scoring stage of ``dry_run._score_model`` for one pair."""
    if once:
        truth, synthesized = Scaled.of(truth), Scaled.of(synthesized)
    quality = map_quality(uncertainty, MapErrors.of(synthesized, truth))
    rows = [{**score(synthesized, truth, seg), **quality}, score(mean, truth, seg)]
    qc_png(png, inputs, synthesized, truth, seg, "benchmark", uncertainty=uncertainty)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", type=Path, default=REPO / "examples" / "BraTS-GLI-00001-000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    files = scan_folder(args.case)
    volumes = {m: load_volume(p).data for m, p in files.modalities.items()}
    truth = volumes[Modality.T1C]
    brain = truth > 0
    synthesized = np.where(brain, gaussian_filter(truth, 1.0) * 3.0, 0).astype(np.float32)
    mean = np.where(brain, gaussian_filter(truth, 3.0), 0).astype(np.float32)
    uncertainty = gaussian_filter(np.abs(synthesized / 3.0 - truth), 2.0).astype(np.float32)
    seg = (brain & ~binary_erosion(brain, iterations=8)).astype(np.uint8)
    inputs = {m: v for m, v in volumes.items() if m is not Modality.T1C}
    times: dict[bool, list[float]] = {True: [], False: []}
    figures: dict[bool, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for once in (False, True):
                started = time.perf_counter()
                figures[once] = pair(truth, synthesized, mean, uncertainty, seg, inputs, Path(tmp) / "qc.png", once)
                times[once].append(time.perf_counter() - started)
    assert figures[True] == figures[False], "the two ways gave different figures"
    each, once = statistics.median(times[False]), statistics.median(times[True])
    print(f"scoring one pair ({args.case.name}, {truth.shape}, median of {args.repeat}, same figures: yes)")
    print("| volumes | seconds | x each call |")
    print("|---|---|---|")
    print(f"| scaled by each call | {each:.2f} | 1.00 |")
    print(f"| scaled once | {once:.2f} | {once / each:.2f} |")


if __name__ == "__main__":
    main()
