"""Benchmark: evaluate's time per pair, this tree against another (e.g. before the organizers' SSIM columns).

    python benchmarks/evaluate_pair.py --before /tmp/old-tree [--data DATA] [--repeat 2]

Runs ``brasyn-infer evaluate DATA REPORT --drop t1c --baseline linear,mean --no-uncertainty`` with the package
imported from this tree and from ``--before`` (a checkout of another commit: its ``inference/`` goes first on
``PYTHONPATH``), interleaved, ``--repeat`` times each, each into a fresh report folder, and prints the median
seconds per pair and their ratio. DATA defaults to the example case and a copy of it under another ID (the linear
baseline needs a second case). Same machine, one run: compare the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def data_folder(tmp: Path) -> Path:
    data = tmp / "data"
    example = REPO / "examples" / "BraTS-GLI-00001-000"
    for case_id in ("BraTS-GLI-00001-000", "BraTS-GLI-00002-000"):
        (data / case_id).mkdir(parents=True)
        for path in example.glob("*.nii.gz"):
            os.symlink(path, data / case_id / path.name.replace("BraTS-GLI-00001-000", case_id))
    # the example lacks t2f: a complete case needs all four; use its t2w as a stand-in t2f (timing only)
    for case_id in ("BraTS-GLI-00001-000", "BraTS-GLI-00002-000"):
        t2w = next((data / case_id).glob("*-t2w.nii.gz"))
        os.symlink(os.readlink(t2w), data / case_id / f"{case_id}-t2f.nii.gz")
    return data


def run(tree: Path, data: Path, report: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree / "inference")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "brasyn_infer", "evaluate", str(data), str(report), "--drop", "t1c",
                    "--baseline", "linear,mean", "--no-uncertainty", "--quiet"], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the other tree")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or data_folder(Path(tmp))
        pairs = len([p for p in data.iterdir() if p.is_dir()])
        times: dict[str, list[float]] = {"before": [], "after": []}
        for i in range(args.repeat):
            for name, tree in (("before", args.before), ("after", REPO)):
                report = Path(tmp) / f"{name}-{i}"
                times[name].append(run(tree, data, report) / pairs)
                shutil.rmtree(report)
    before, after = statistics.median(times["before"]), statistics.median(times["after"])
    print(f"evaluate --drop t1c --baseline linear,mean, {pairs} pairs, median of {args.repeat}, interleaved")
    print("| tree | seconds per pair | x before |")
    print("|---|---|---|")
    print(f"| before ({args.before}) | {before:.2f} | 1.00 |")
    print(f"| after (this tree) | {after:.2f} | {after / before:.3f} |")


if __name__ == "__main__":
    main()
