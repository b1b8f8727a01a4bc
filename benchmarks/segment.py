"""Benchmark: `brasyn-infer segment` on a case against `brasyn-infer run` synthesizing one (same machine, one run).

    python benchmarks/segment.py [--case examples/BraTS-GLI-00001-000] [--repeat 3] [--threads N]

Synthesizes the example case's missing modality with the default weights (``run``), completes the case with that
output, and segments it with the embedded segmenter (``segment``), interleaved, ``--repeat`` times each, each
timed in-process after the weights are loaded (a model's load is paid once per run, whatever the number of
cases). Prints the median seconds and the ratio segment / run: the target is at most 0.5.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from brasyn_infer.constants import Device
from brasyn_infer.io.cases import parse_case
from brasyn_infer.io.nifti import read_inputs
from brasyn_infer.pipeline.synthesizer import Synthesizer
from brasyn_infer.runtime.segmenter import Segmenter

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
    times: dict[str, list[float]] = {"run": [], "segment": []}
    with tempfile.TemporaryDirectory():
        for _ in range(args.repeat):
            started = time.perf_counter()
            output = synth.synthesize(volumes, case.missing)
            times["run"].append(time.perf_counter() - started)
            started = time.perf_counter()
            classes = segmenter.segment({**volumes, case.missing: output})
            times["segment"].append(time.perf_counter() - started)
    run, seg = statistics.median(times["run"]), statistics.median(times["segment"])
    print(f"{case.case_id}: synthesize {case.missing.value} ({synth.label}) vs segment the completed case "
          f"({segmenter.manifest.name}), CPU, median of {args.repeat}, interleaved; tumor voxels {int((classes > 0).sum())}")
    print("| step | seconds | x run |")
    print("|---|---|---|")
    print(f"| run (synthesis) | {run:.2f} | 1.00 |")
    print(f"| segment | {seg:.2f} | {seg / run:.2f} |")


if __name__ == "__main__":
    main()
