"""Benchmark: what ``--uncertainty`` and ``--tta`` cost, end to end, on one case; and several weights side by side.

    python benchmarks/uncertainty.py [--weights default [--weights OTHER.json ...]] [--modes plain uncertainty tta]
                                     [--case examples/BraTS-GLI-00001-000] [--repeat 1]

Each mode is a fresh ``brasyn-infer run`` process on the case (imports, weight checks and the session included),
timed, with its own peak RSS. The runs of one repetition go back to back, weights and modes interleaved, so the
ratios to the first weights' plain run are robust to a noisy machine (absolute seconds are not).
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

MODES = {"plain": (), "uncertainty": ("--uncertainty", "{unc}"), "tta": ("--tta",),
         "tta+uncertainty": ("--tta", "--uncertainty", "{unc}")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", action="append", default=None, help="weights NAME or manifest (repeat to compare)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--case", type=Path, default=REPO / "examples" / "BraTS-GLI-00001-000")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)
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
