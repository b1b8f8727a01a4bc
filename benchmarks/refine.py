"""Benchmark: what the 3D Refiner adds to one case, in a fresh ``brasyn-infer`` process each time.

    python benchmarks/refine.py [--weights default] [--refiner default-refiner] [--case examples/...] [--repeat 2]

Runs the CLI on the case with ``--no-refine`` and with ``--refiner NAME`` (both ``--device cpu``),
alternating, and reports the median wall time of each, the seconds the refiner adds, the ratio,
and each process's own peak RSS (VmHWM; the issue's budget is 6 GB on the CPU).
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

from brasyn_infer.runtime.refiner_manifest import load_refiner_manifest  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None)
    p.add_argument("--refiner", default="default-refiner")
    p.add_argument("--case", type=Path, default=REPO / "examples" / "BraTS-GLI-00001-000")
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)
    refiner = load_refiner_manifest(args.refiner, REPO / "weights")
    runs: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for label, extra in (("without", ("--no-refine",)), ("with", ("--refiner", str(refiner.path)))):
                out = Path(tmp) / f"{label}-{i}"
                runs[label].append(cli_run(args.case, out, args.weights, None, ("--device", "cpu", *extra)))
    seconds = {k: statistics.median(s for s, _ in v) for k, v in runs.items()}
    peak = {k: max(r for _, r in v) for k, v in runs.items()}
    print(f"case {args.case.name}, refiner {refiner.name} (width {refiner.config.get('width')}, window "
          f"{'x'.join(map(str, refiner.window))}, overlap {refiner.overlap}, {refiner.blend.value}), "
          f"{platform.machine()} CPU, median of {args.repeat}")
    print(f"without refiner: {seconds['without']:.1f} s, peak RSS {peak['without']:.0f} MB")
    print(f"with refiner:    {seconds['with']:.1f} s, peak RSS {peak['with']:.0f} MB")
    print(f"refiner adds {seconds['with'] - seconds['without']:.1f} s per case "
          f"(x{seconds['with'] / seconds['without']:.2f}); peak RSS {peak['with'] / 1024:.2f} GB (budget 6 GB)")


if __name__ == "__main__":
    main()
