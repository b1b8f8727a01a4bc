"""Benchmark: what the organizers' two SSIM columns add to a dry-run pair's scoring.

    python benchmarks/organizers.py [--case DIR] [--repeat 3]

Scores three rows of one pair (a case's t1c as the truth, its t1n, t2w and t2f as three "outputs": the model, the
linear and the mean rows of ``evaluate``) with ``metrics.score`` as ``evaluate`` does, with and without the
organizers' computation (``evaluation.organizers``; without: replaced by NaN), interleaved, ``--repeat`` times, and
prints the median seconds and the seconds added. The case needs a segmentation (default: the first case of
``../shared/data/cases`` that has one). Compare the added seconds with the pair's synthesis (``benchmarks/bench.py``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

from brasyn_infer.constants import Modality
from brasyn_infer.evaluation import metrics
from brasyn_infer.evaluation.metrics import Scaled
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.nifti import load_volume

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", type=Path, default=REPO.parent / "shared" / "data" / "cases" / "BraTS-GLI-00000-000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    files = complete_case(args.case)
    if files.seg is None:
        raise SystemExit(f"{args.case}: no segmentation (the organizers' columns need one)")
    volumes = {m: load_volume(p).data for m, p in files.modalities.items()}
    seg = load_volume(files.seg).data
    outputs = [volumes[m] for m in (Modality.T1N, Modality.T2W, Modality.T2F)]
    real = metrics.organizers_ssim
    times: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(args.repeat):
        for key in ("without", "with"):
            metrics.organizers_ssim = real if key == "with" else (lambda *a, **k: (math.nan, math.nan))
            started = time.perf_counter()
            truth = Scaled.of(volumes[Modality.T1C])
            for y in outputs:
                metrics.score(y, truth, seg)
            times[key].append(time.perf_counter() - started)
    metrics.organizers_ssim = real
    without, with_ = statistics.median(times["without"]), statistics.median(times["with"])
    print(f"{files.case_id}: scoring 3 rows of one pair, median of {args.repeat}, interleaved")
    print("| scoring | seconds | added |")
    print("|---|---|---|")
    print(f"| without the organizers' columns | {without:.2f} | |")
    print(f"| with them | {with_:.2f} | {with_ - without:+.2f} s |")


if __name__ == "__main__":
    main()
