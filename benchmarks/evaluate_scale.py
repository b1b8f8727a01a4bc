"""Benchmark: does a dry run's memory and time per pair stay flat as the dataset grows?

    python benchmarks/evaluate_scale.py --cases DIR [DIR ...] [--sizes 13 26 52] [--out runs/bench-evaluate]

``brasyn-infer evaluate DATA REPORT --drop all --baseline linear`` on the first N complete cases of the given
folders (sorted by name). Past their number, the cases are repeated under new IDs: symlinked files renamed
``<ID>-c2-t1c.nii.gz`` / ``<ID>_c2_t1ce.nii.gz``. The model is a tiny imported one (a 1x1 convolution, one view),
so that the model's time does not hide evaluate's own costs: reading, scoring, the linear baseline and the
reports. Each N is a fresh process into a fresh REPORT_DIR, run back to back. The table gives its peak RSS
(VmHWM) and its wall-clock seconds per pair (N x 4 dropped modalities), and extrapolates both to 1,251 cases:
peak RSS and the total seconds by least-squares lines in N (a fixed cost plus a cost per case), the seconds per
pair as that total over the pairs. ``--measured N:RSS_MB:SECONDS ...`` prints the table from earlier runs' lines.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BRATS_2021 = 1251


def tiny_model(folder: Path) -> Path:
    """A 1x1-convolution slice2d generator, exported with torch and imported with `brasyn-infer import`."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Conv2d(4, 1, 1).eval()
    onnx_path = folder / "tiny.onnx"
    with torch.no_grad():
        torch.onnx.export(net, (torch.randn(1, 4, 240, 240),), str(onnx_path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
    subprocess.run([sys.executable, "-m", "brasyn_infer", "import", str(onnx_path), "--kind", "slice2d",
                    "--normalization", "minmax", "--range", "-1", "1", "--view", "axial", "--out", str(folder / "w"),
                    "--name", "tiny", "--source", "benchmarks/evaluate_scale.py"], check=True, cwd=REPO)
    return folder / "w" / "tiny.json"


def dataset(folders: list[Path], n: int, root: Path) -> Path:
    """N case folders of symlinks (the modalities and the segmentation): the real ones, then copies under new IDs."""
    from brasyn_infer.io.cases import complete_case
    from brasyn_infer.io.naming import modality_file

    data = root / f"data-{n}"
    data.mkdir()
    for k in range(n):
        files = complete_case(folders[k % len(folders)])
        copy = k // len(folders)
        sep = files.convention.separator
        case_id = files.case_id + (f"{sep}c{copy + 1}" if copy else "")
        target = data / case_id
        target.mkdir()
        for modality, path in files.modalities.items():
            (target / modality_file(case_id, modality, files.convention)).symlink_to(path.resolve())
        if files.seg is not None:  # tumor and healthy SSIM are part of the cost
            (target / f"{case_id}{sep}seg.nii.gz").symlink_to(files.seg.resolve())
    return data


def measured(args: list[str], report: Path) -> tuple[float, float]:
    """A fresh ``brasyn-infer`` process: (seconds, its own peak RSS in MB, from /proc/self/status VmHWM)."""
    code = ("import atexit\n"
            f"atexit.register(lambda: open({str(report)!r}, 'w').write("
            "open('/proc/self/status').read().split('VmHWM:')[1].split()[0]))\n"
            "from brasyn_infer.cli import main\nmain()\n")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"evaluate failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return seconds, int(report.read_text()) / 1024


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, nargs="+", default=None, help="folders of complete case folders")
    p.add_argument("--sizes", type=int, nargs="+", default=[13, 26, 52])
    p.add_argument("--out", type=Path, default=None, help="keep the reports here (default: a temp folder)")
    p.add_argument("--measured", nargs="+", default=None, metavar="N:RSS_MB:SECONDS",
                   help="no runs: the table from the N=... lines an earlier run printed")
    args = p.parse_args(argv)
    if args.measured:
        rows = [(int(n), float(rss), float(sec) / (4 * int(n)), float(sec))
                for n, rss, sec in (m.split(":") for m in args.measured)]
        table(rows)
        return
    if not args.cases:
        p.error("--cases is required (or --measured)")
    sys.path.insert(0, str(REPO))
    folders = sorted((f for root in args.cases for f in root.iterdir() if f.is_dir()), key=lambda f: f.name)
    with tempfile.TemporaryDirectory(prefix="brasyn-bench-evaluate-") as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        weights = tiny_model(root)
        rows = []
        for n in args.sizes:
            data = dataset(folders, n, root)
            seconds, rss = measured(["evaluate", str(data), str(root / f"report-{n}"), "--drop", "all", "--baseline",
                                     "linear", "--weights", str(weights), "--quiet"], root / f".vmhwm-{n}")
            rows.append((n, rss, seconds / (4 * n), seconds))
            print(f"N={n}: peak RSS {rss:.0f} MB, {seconds / (4 * n):.2f} s per pair ({seconds:.0f} s)", flush=True)
    table(rows)


def table(rows: list[tuple[int, float, float, float]]) -> None:
    """Rows of (N, peak RSS MB, seconds per pair, seconds), and the extrapolation to 1,251 cases."""
    ns = np.array([r[0] for r in rows], dtype=float)
    fits = {k: np.polyfit(ns, np.array([r[i] for r in rows]), 1) for k, i in (("rss", 1), ("total", 3))}
    total = np.polyval(fits["total"], BRATS_2021)
    print(f"\nmachine: {os.cpu_count()} CPUs; model: a 1x1 convolution (imported), one view; "
          f"`evaluate --drop all --baseline linear`")
    print(f"{'cases':>6} {'pairs':>6} {'peak RSS MB':>12} {'x first':>8} {'s per pair':>11} {'x first':>8}")
    for n, rss, pair, _ in rows:
        print(f"{n:6d} {4 * n:6d} {rss:12.0f} {rss / rows[0][1]:8.3f} {pair:11.2f} {pair / rows[0][2]:8.3f}")
    print(f"{BRATS_2021:6d} {4 * BRATS_2021:6d} {np.polyval(fits['rss'], BRATS_2021):12.0f} {'':>8} "
          f"{total / (4 * BRATS_2021):11.2f}   (extrapolated by lines in N: peak RSS {fits['rss'][0]:+.2f} MB per "
          f"case; total {fits['total'][1]:.0f} s fixed + {fits['total'][0]:.1f} s per case = {total / 3600:.1f} h)")


if __name__ == "__main__":
    main()
