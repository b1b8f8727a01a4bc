"""Benchmark: what ``--uncertainty`` and ``--tta`` cost, end to end, on one case.

    python benchmarks/uncertainty.py [--weights default] [--case examples/BraTS-GLI-00001-000] [--repeat 1]

Each mode is a fresh ``brasyn-infer run`` process on the case (imports, weight checks and the session
included), timed, with its own peak RSS; the modes run back to back in this one invocation, so the ratios to
the plain run are robust to a noisy machine (absolute seconds are not).
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None)
    p.add_argument("--case", type=Path, default=REPO / "examples" / "BraTS-GLI-00001-000")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="brasyn-bench-uncertainty-") as tmp:
        root = Path(tmp)
        modes = {"plain": (), "--uncertainty": ("--uncertainty", str(root / "unc")), "--tta": ("--tta",),
                 "--tta --uncertainty": ("--tta", "--uncertainty", str(root / "unc"))}
        results = {}
        for name, extra in modes.items():
            runs = [cli_run(args.case, root / f"out-{i}", args.weights, None, extra) for i in range(args.repeat)]
            results[name] = (statistics.median(r[0] for r in runs), max(r[1] for r in runs))
    print(f"machine: {platform.machine()}, case {args.case.name}, weights {args.weights or 'default'}, "
          f"one process per run, median of {args.repeat}")
    print(f"{'mode':24s}{'seconds':>9s}{'x plain':>9s}{'peak RSS MB':>13s}{'x plain':>9s}")
    base_s, base_m = results["plain"]
    for name, (seconds, rss) in results.items():
        print(f"{name:24s}{seconds:9.1f}{seconds / base_s:9.2f}{rss:13.0f}{rss / base_m:9.2f}")


if __name__ == "__main__":
    main()
