"""Benchmark: what ``--uncertainty`` and ``--tta`` cost, end to end, on one case; and several weights side by side.

    python benchmarks/uncertainty.py [--weights default [--weights OTHER.json ...]] [--modes plain uncertainty tta]
                                     [--case examples/BraTS-GLI-00001-000] [--repeat 1]
    python benchmarks/uncertainty.py --overhead [--repeat 5]

Each mode is a fresh ``brasyn-infer run`` process on the case (imports, weight checks and the session included),
timed, with its own peak RSS. The runs of one repetition go back to back, weights and modes interleaved, so the
ratios to the first weights' plain run are robust to a noisy machine (absolute seconds are not).

``--overhead`` times only the array work the map adds around the model: three views of a 240 x 240 x 155 volume
through :func:`generate_volume` with a stand-in model that answers at once (no ONNX Runtime), plain and with the
scale channels and :func:`scale_map`, each in a fresh process (its allocations included), interleaved.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench import cli_run  # noqa: E402

SHAPE = (240, 240, 155)

MODES = {"plain": (), "uncertainty": ("--uncertainty", "{unc}"), "tta": ("--tta",),
         "tta+uncertainty": ("--tta", "--uncertainty", "{unc}")}


def overhead_once(with_scale: bool) -> float:
    """Seconds of :func:`generate_volume` (and :func:`scale_map` with ``with_scale``) over three views of a random
    case, with a model that costs nothing: the pipeline's own array work."""
    import time

    import numpy as np

    from brasyn_infer.constants import Modality, View
    from brasyn_infer.synthesis.generate import generate_volume
    from brasyn_infer.synthesis.uncertainty import ScaleMap, scale_map

    rng = np.random.default_rng(0)
    x4 = rng.uniform(-1, 1, (4, *SHAPE)).astype(np.float32)
    x4[:, :24] = -1  # some background slices, skipped as in a real case
    answers: dict[int, np.ndarray] = {}

    def model(x: np.ndarray, mask: np.ndarray, missing: np.ndarray, view: np.ndarray) -> np.ndarray:
        if len(x) not in answers:
            answers[len(x)] = rng.uniform(-1, 1, (len(x), 2, 240, 240)).astype(np.float32)
        return answers[len(x)]

    for n in range(1, 9):  # every batch size made before the clock starts
        model(np.empty((n,)), None, None, None)  # type: ignore[arg-type]
    started = time.perf_counter()
    out = generate_volume(model, x4, Modality.T2F, [View.SAGITTAL, View.AXIAL, View.CORONAL], 8, with_scale=with_scale)
    if with_scale:
        scale_map(out, Modality.T2F, ScaleMap(True, {Modality.T2F: 0.8}))
    return time.perf_counter() - started


def overhead(repeat: int) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeat):
        for with_scale in (False, True):
            with context.Pool(1) as pool:  # a fresh process: its first touch of each array counts
                seconds[with_scale].append(pool.apply(overhead_once, (with_scale,)))
    plain, scaled = statistics.median(seconds[False]), statistics.median(seconds[True])
    print(f"array work around the model, three views of {'x'.join(map(str, SHAPE))}, median of {repeat} fresh "
          f"processes: plain {plain:.2f} s, with the map {scaled:.2f} s, the map adds {scaled - plain:.2f} s")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", action="append", default=None, help="weights NAME or manifest (repeat to compare)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--case", type=Path, default=REPO / "examples" / "BraTS-GLI-00001-000")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--overhead", action="store_true", help="time only the array work the map adds (no model)")
    args = p.parse_args(argv)
    if args.overhead:
        overhead(args.repeat)
        return
    weights = args.weights or ["default"]
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="brasyn-bench-uncertainty-") as tmp:
        root = Path(tmp)
        for i in range(args.repeat):
            for w in weights:
                for mode in args.modes:
                    extra = tuple(a.format(unc=root / f"unc-{i}-{mode}") for a in MODES[mode])
                    out = root / f"out-{i}-{abs(hash((w, mode)))}"
                    runs.setdefault((w, mode), []).append(cli_run(args.case, out, w, None, extra))
    print(f"machine: {platform.machine()} {platform.processor() or ''}, case {args.case.name}, one process per run, "
          f"median of {args.repeat}")
    print(f"{'weights':28s}{'mode':18s}{'seconds':>9s}{'x first':>9s}{'peak RSS MB':>13s}")
    base = statistics.median(r[0] for r in runs[(weights[0], args.modes[0])])
    for (w, mode), results in runs.items():
        seconds = statistics.median(r[0] for r in results)
        label = f"{Path(w).parent.name}/{Path(w).stem}" if w.endswith(".json") else w
        print(f"{label:28s}{mode:18s}{seconds:9.1f}{seconds / base:9.2f}"
              f"{max(r[1] for r in results):13.0f}")


if __name__ == "__main__":
    main()
