"""Benchmark: `brasyn-infer segment` on a case against `brasyn-infer run` synthesizing one (same machine, one run).

    python benchmarks/segment.py [--case examples/BraTS-GLI-00001-000] [--repeat 3] [--threads N]

Synthesizes the example case's missing modality with the default weights (``run``), completes the case with that
output, and segments it with the embedded segmenter (``segment``), interleaved, ``--repeat`` times each, each
timed in-process after the weights are loaded (a model's load is paid once per run, whatever the number of
cases). With the missing-sequence segmenter installed it also times the direct route: that segmenter on the case as
it is, without the missing sequence (`segment`'s route for patterns where it scored better). Prints the median
seconds and the ratios to run: segment of the completed case at most 0.5, the direct route at most 0.25.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from brasyn_infer.constants import Device
from brasyn_infer.errors import WeightsError
from brasyn_infer.io.cases import parse_case
from brasyn_infer.io.nifti import read_inputs
from brasyn_infer.pipeline.synthesizer import Synthesizer
from brasyn_infer.runtime.segmenter import Segmenter
from brasyn_infer.runtime.segmenter_manifest import DEFAULT_DIRECT

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", type=Path, default=REPO / "examples" / "BraTS-GLI-00001-000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    case = parse_case(args.case)
    volumes = {m: v.data for m, v in read_inputs(case.inputs).items()}
    synth = Synthesizer(device=Device.CPU, threads=args.threads)
    segmenter = Segmenter(device=Device.CPU, threads=args.threads)
    try:
        direct = Segmenter(DEFAULT_DIRECT, device=Device.CPU, threads=args.threads)
    except WeightsError:
        direct = None
    times: dict[str, list[float]] = {"run": [], "segment": [], "direct": []}
    with tempfile.TemporaryDirectory():
        for _ in range(args.repeat):
            started = time.perf_counter()
            output = synth.synthesize(volumes, case.missing)
            times["run"].append(time.perf_counter() - started)
            started = time.perf_counter()
            classes = segmenter.segment({**volumes, case.missing: output})
            times["segment"].append(time.perf_counter() - started)
            if direct is not None:
                started = time.perf_counter()
                direct.segment(volumes)
                times["direct"].append(time.perf_counter() - started)
    run, seg = statistics.median(times["run"]), statistics.median(times["segment"])
    print(f"{case.case_id}: synthesize {case.missing.value} ({synth.label}) vs segment the completed case "
          f"({segmenter.manifest.name}), CPU, median of {args.repeat}, interleaved; tumor voxels {int((classes > 0).sum())}")
    print("| step | seconds | x run |")
    print("|---|---|---|")
    print(f"| run (synthesis) | {run:.2f} | 1.00 |")
    print(f"| segment (the completed case) | {seg:.2f} | {seg / run:.2f} |")
    if times["direct"]:
        d = statistics.median(times["direct"])
        print(f"| segment, direct route ({direct.manifest.name} on {case.missing.value} missing) | {d:.2f} | "
              f"{d / run:.2f} |")
        print(f"| complete route in all (run + segment) | {run + seg:.2f} | {(run + seg) / run:.2f} |")


if __name__ == "__main__":
    main()
