"""Benchmark: one case end to end vs the pure model time on the same slices, with per-stage times.

    python benchmarks/bench.py [--weights default] [--case examples/BraTS-GLI-00001-000] [--repeat 3]

"Pure model" is ONNX Runtime alone on exactly the slices the pipeline sends it (same batches),
inputs prepared beforehand. "End to end" is :func:`inference.pipeline.run` on the case (read,
normalize, generate, de-normalize, write .nii.gz). The overhead ratio is end-to-end / pure model.
Both are the median of --repeat runs in this one process, so the ratio is robust to a noisy machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from inference.cases import discover  # noqa: E402
from inference.constants import MODALITIES, Device, View  # noqa: E402
from inference.generate import generate_volume  # noqa: E402
from inference.io import output_image, read_inputs, write_atomic  # noqa: E402
from inference.normalize import background_mask  # noqa: E402
from inference.pipeline import Synthesizer, run  # noqa: E402
from inference.views import SliceGeometry  # noqa: E402


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def pure_model_seconds(synth: Synthesizer, x4: np.ndarray, missing) -> tuple[float, int]:
    """ONNX Runtime time on the pipeline's own batches (brain slices only), inputs prebuilt."""
    geometry = SliceGeometry(synth.view, x4.shape[1:])
    available = [m.index for m in MODALITIES if m is not missing]
    todo = np.flatnonzero(geometry.occupied(x4, available))
    batches = []
    for start in range(0, len(todo), synth.batch_size):
        index = todo[start : start + synth.batch_size]
        n = len(index)
        mask = np.ones((n, 4), dtype=np.float32)
        mask[:, missing.index] = 0
        batches.append((geometry.take(x4, index), mask, np.full(n, missing.index, np.float32),
                        np.full(n, synth.view.id, np.float32)))
    start = time.perf_counter()
    for batch in batches:
        synth.session(*batch)
    return time.perf_counter() - start, len(todo)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None)
    p.add_argument("--case", type=Path, default=REPO / "examples" / "BraTS-GLI-00001-000")
    p.add_argument("--view", choices=[v.value for v in View], default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--device", choices=[d.value for d in Device], default="auto")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)

    synth = Synthesizer(args.weights, View(args.view) if args.view else None, args.batch_size, Device(args.device))
    entries = discover(args.case)
    case = entries[0].case
    if case is None:
        raise SystemExit(str(entries[0].error))

    stages: dict[str, list[float]] = {k: [] for k in ("read", "normalize", "generate", "restore", "write",
                                                      "pure model", "end to end")}
    slices = 0
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            volumes, t = timed(read_inputs, case.inputs)
            stages["read"].append(t)
            arrays = {m: v.data for m, v in volumes.items()}
            (x4, scales), t = timed(synth.normalizer.stack, arrays, case.missing)
            stages["normalize"].append(t)
            y, t = timed(generate_volume, synth.session, x4, case.missing, synth.view, synth.batch_size)
            stages["generate"].append(t)
            out, t = timed(synth.normalizer.restore, y, background_mask(x4, case.missing), case.missing, scales)
            stages["restore"].append(t)
            like = next(iter(volumes.values())).image
            _, t = timed(write_atomic, output_image(out, like), Path(tmp) / "stage.nii.gz")
            stages["write"].append(t)
            seconds, slices = pure_model_seconds(synth, x4, case.missing)
            stages["pure model"].append(seconds)
            _, t = timed(run, entries, synth, Path(tmp) / "e2e")
            stages["end to end"].append(t)

    med = {k: statistics.median(v) for k, v in stages.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; "
          f"onnxruntime providers {','.join(synth.session.providers)}")
    print(f"weights: {synth.manifest.name} (config dim {synth.manifest.config.get('dim')}), view {synth.view.value}, "
          f"batch {synth.batch_size}, case {case.case_id} ({case.missing.value} missing), "
          f"{slices} brain slices of {SliceGeometry(synth.view, x4.shape[1:]).count}, median of {args.repeat}")
    print(f"{'stage':<12} {'seconds':>8}")
    for key, value in med.items():
        print(f"{key:<12} {value:8.2f}")
    print(f"overhead ratio (end to end / pure model): {med['end to end'] / med['pure model']:.3f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
