"""Benchmark: what a case costs by how many modalities it lacks (the default and its companion, CPU, one run).

    python benchmarks/patterns.py [--case examples/BraTS-GLI-00001-000] [--repeat 2]

Completes the example case with one modality missing (its own t2f: the default, three fused views), two missing
(t2f and t1c: the companion, one view, two syntheses) and three missing (t2f, t1c, t1n: three syntheses), through
the same :class:`~brasyn_infer.pipeline.completer.Completer` as ``run``, interleaved, ``--repeat`` times each after
the weights are loaded, and prints the median seconds per case and per synthesized modality against one missing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from brasyn_infer.constants import Device, Modality
from brasyn_infer.io.cases import parse_case
from brasyn_infer.io.nifti import read_inputs
from brasyn_infer.pipeline.completer import Completer
from brasyn_infer.pipeline.synthesizer import Synthesizer

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", type=Path, default=REPO / "examples" / "BraTS-GLI-00001-000")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    case = parse_case(args.case)
    volumes = {m: v.data for m, v in read_inputs(case.inputs).items()}
    completer = Completer(Synthesizer(device=Device.CPU))
    patterns = {1: (case.missing,), 2: (Modality.T1C, case.missing), 3: (Modality.T1C, Modality.T1N, case.missing)}
    for pattern in patterns.values():
        completer.for_pattern(pattern)  # load the companion before timing
    times: dict[int, list[float]] = {n: [] for n in patterns}
    for _ in range(args.repeat):
        for n, pattern in patterns.items():
            inputs = {m: v for m, v in volumes.items() if m not in pattern}
            started = time.perf_counter()
            completer.complete(inputs, pattern)
            times[n].append(time.perf_counter() - started)
    one = statistics.median(times[1])
    print(f"{case.case_id}, CPU, median of {args.repeat}, interleaved")
    print("| missing | weights | seconds per case | x one missing | seconds per modality |")
    print("|---|---|---|---|---|")
    for n, pattern in patterns.items():
        t = statistics.median(times[n])
        synth = completer.for_pattern(pattern)
        print(f"| {n} ({'+'.join(m.value for m in pattern)}) | {synth.label} | {t:.1f} | {t / one:.2f} | {t / n:.1f} |")


if __name__ == "__main__":
    main()
