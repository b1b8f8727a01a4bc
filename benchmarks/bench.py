"""Benchmark: one case end to end vs the pure model time on the same slices, with per-stage times.

    python benchmarks/bench.py [--weights default] [--case examples/BraTS-GLI-00001-000] [--repeat 3]
                               [--cases 4] [--torch-baseline weights/default.safetensors] [--write]

"Pure model" is ONNX Runtime alone on exactly the slices the pipeline sends it (same batches),
inputs prepared beforehand. "End to end" is :func:`brasyn_infer.pipeline.synthesizer.run` on the case (read,
normalize, generate, de-normalize, write .nii.gz). The overhead ratio is end-to-end / pure model.
Both are the median of --repeat runs in this one process, so the ratio is robust to a noisy machine.

``--cases N`` also times N copies of the case in one run (read-ahead and background writing
overlap the model) against N single-case runs one after another. ``--torch-baseline CKPT`` times
our torch HFGAN driven the way the published BraSyn25 code drives it: eager, fixed slabs of 31
(axial) or 40 slices, every slice through the model, no overlap of I/O and compute. The peak RSS
is that of a separate ``brasyn-infer`` process on one case. ``--write`` saves benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from brasyn_infer.constants import MODALITIES, Device, View  # noqa: E402
from brasyn_infer.io.cases import discover  # noqa: E402
from brasyn_infer.io.nifti import output_image, read_inputs, write_atomic  # noqa: E402
from brasyn_infer.pipeline.run import run  # noqa: E402
from brasyn_infer.pipeline.synthesizer import Synthesizer  # noqa: E402
from brasyn_infer.synthesis.generate import generate_volume, slice_count  # noqa: E402
from brasyn_infer.synthesis.normalize import background_mask  # noqa: E402
from brasyn_infer.synthesis.views import SliceGeometry  # noqa: E402


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def pure_model_seconds(synth: Synthesizer, x4: np.ndarray, missing) -> tuple[float, int]:
    """ONNX Runtime time on the pipeline's own batches (brain slices of every view), inputs prebuilt."""
    available = [m.index for m in MODALITIES if m is not missing]
    batches = []
    total = 0
    for view in synth.views:
        geometry = SliceGeometry(view, x4.shape[1:])
        todo = np.flatnonzero(geometry.occupied(x4, available))
        total += len(todo)
        for start in range(0, len(todo), synth.batch_size):
            index = todo[start : start + synth.batch_size]
            n = len(index)
            mask = np.ones((n, 4), dtype=np.float32)
            mask[:, missing.index] = 0
            batches.append((geometry.take(x4, index), mask, np.full(n, missing.index, np.float32),
                            np.full(n, view.id, np.float32)))
    start = time.perf_counter()
    for batch in batches:
        synth.session(*batch)
    return time.perf_counter() - start, total


def torch_reference_seconds(checkpoint: Path, synth: Synthesizer, case) -> float:
    """Read + normalize + eager torch on fixed slabs (no skipping) + de-normalize + write, as BraSyn25 does."""
    import torch

    from brasyn_infer.authoring.models.hfgan import HFGANConfig, load_checkpoint

    torch.set_num_threads(os.cpu_count() or 1)
    net = load_checkpoint(str(checkpoint), HFGANConfig.from_dict(synth.manifest.config))
    start = time.perf_counter()
    volumes = read_inputs(case.inputs)
    x4, scales = synth.normalizer.stack({m: v.data for m, v in volumes.items()}, case.missing)
    out = np.zeros(x4.shape[1:], dtype=np.float32)
    mask_row = torch.ones(4)
    mask_row[case.missing.index] = 0
    for view in synth.views:
        slab = 31 if view is View.AXIAL else 40
        geometry = SliceGeometry(view, x4.shape[1:])
        one = np.empty(x4.shape[1:], dtype=np.float32)
        with torch.no_grad():
            for s0 in range(0, geometry.count, slab):
                index = np.arange(s0, min(s0 + slab, geometry.count))
                n = len(index)
                y = net(torch.from_numpy(geometry.take(x4, index)), mask_row.repeat(n, 1),
                        torch.full((n,), float(case.missing.index)), torch.full((n,), float(view.id)))
                geometry.put(one, index, y[:, 0].numpy())
        out += one / len(synth.views)
    volume = synth.normalizer.restore(out, background_mask(x4, case.missing), case.missing, scales)
    with tempfile.TemporaryDirectory() as tmp:
        write_atomic(output_image(volume, next(iter(volumes.values())).image), Path(tmp) / "ref.nii.gz")
    return time.perf_counter() - start


def many_cases(case, n: int, folder: Path) -> Path:
    """N copies of ``case`` (symlinked files, distinct IDs) under ``folder``."""
    for i in range(n):
        copy = folder / f"{case.case_id}-copy{i}"
        copy.mkdir(parents=True)
        for mod, path in case.inputs.items():
            (copy / f"{case.case_id}-copy{i}-{mod.value}.nii.gz").symlink_to(path.resolve())
    return folder


def cli_run(inputs: Path, output: Path, weights: str | None, view: str | None,
            extra: tuple[str, ...] = ()) -> tuple[float, float]:
    """Run ``brasyn-infer`` in a fresh process; returns (seconds, its own peak RSS in MB).

    The child reports its VmHWM itself: a forked child's ru_maxrss would count the parent's pages.
    """
    import subprocess

    report = output.parent / f".{output.name}.vmhwm"
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: open({str(report)!r}, 'w').write("
            "open('/proc/self/status').read().split('VmHWM:')[1].split()[0]))\n"
            "from brasyn_infer.cli import main\nmain()\n")
    cmd = [sys.executable, "-c", code, "run", str(inputs), str(output), "--quiet"]
    cmd += ["--weights", weights] if weights else []
    cmd += ["--view", view] if view else []
    cmd += list(extra)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - start
    return seconds, int(report.read_text()) / 1024


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None)
    p.add_argument("--case", type=Path, default=REPO / "examples" / "BraTS-GLI-00001-000")
    p.add_argument("--view", choices=[v.value for v in View], default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--device", choices=[d.value for d in Device], default="auto")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cases", type=int, default=0, help="also time N cases in one run vs N sequential runs")
    p.add_argument("--torch-baseline", type=Path, default=None, help="safetensors checkpoint of the same weights")
    p.add_argument("--write", action="store_true", help="write benchmarks/RESULTS.md")
    args = p.parse_args(argv)

    synth = Synthesizer(args.weights, View(args.view) if args.view else None, args.batch_size, Device(args.device),
                        refine=False)
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
            y, t = timed(generate_volume, synth.session, x4, case.missing, synth.views, synth.batch_size)
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
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"onnxruntime {__import__('onnxruntime').__version__}, providers {','.join(synth.session.providers)}",
        f"weights: {synth.manifest.name} (dim {synth.manifest.config.get('dim')}), views {synth.view_label}, "
        f"batch {synth.batch_size}, case {case.case_id} ({case.missing.value} missing), "
        f"{slices} brain slices of {slice_count(x4.shape[1:], synth.views)}, median of {args.repeat}",
        "",
        f"{'stage':<28} {'seconds':>8}",
    ]
    lines += [f"{key:<28} {value:8.2f}" for key, value in med.items()]
    lines.append(f"overhead ratio (end to end / pure model): {med['end to end'] / med['pure model']:.3f}")
    if args.cases:
        with tempfile.TemporaryDirectory() as tmp:
            root = many_cases(case, args.cases, Path(tmp) / "in")
            _, together = timed(run, discover(root), synth, Path(tmp) / "together")
            sequential = sum(timed(run, [entry], synth, Path(tmp) / f"single{i}")[1]
                             for i, entry in enumerate(discover(root)))
            cli_together, _ = cli_run(root, Path(tmp) / "cli-together", args.weights, args.view)
            cli_sequential = sum(cli_run(folder, Path(tmp) / f"cli-single{i}", args.weights, args.view)[0]
                                 for i, folder in enumerate(sorted(root.iterdir())))
        lines.append(f"{args.cases} cases, one warm synthesizer: one run {together:.2f} s vs {args.cases} runs "
                     f"{sequential:.2f} s, ratio {sequential / together:.3f}")
        lines.append(f"{args.cases} cases, brasyn-infer processes: one run {cli_together:.2f} s vs {args.cases} runs "
                     f"{cli_sequential:.2f} s, throughput ratio {cli_sequential / cli_together:.3f}")
    if args.torch_baseline:
        ref = statistics.median(torch_reference_seconds(args.torch_baseline, synth, case) for _ in range(args.repeat))
        lines.append("reference-style torch (eager, slabs of 31 axial / 40 other slices, no skipping): "
                     f"{ref:.2f} s; ours end to end {med['end to end']:.2f} s; speed-up {ref / med['end to end']:.2f}x")
    with tempfile.TemporaryDirectory() as tmp:
        cli_seconds, peak = cli_run(args.case, Path(tmp) / "out", args.weights, args.view)
    lines.append(f"one brasyn-infer process on this case: {cli_seconds:.2f} s (imports and session included), "
                 f"peak RSS {peak:.0f} MB")
    text = "\n".join(lines)
    print(text)
    if args.write:  # replaces the first section; the ablations' and later sections stay
        results = REPO / "benchmarks" / "RESULTS.md"
        old = results.read_text() if results.is_file() else ""
        rest = old[old.index("\n## ") + 1:] if "\n## " in old else ""
        results.write_text(
            "# Benchmark results\n\nMade by `python benchmarks/bench.py " + " ".join(argv or sys.argv[1:])
            + "` on " + time.strftime("%Y-%m-%d") + ".\n\n```\n" + text + "\n```\n" + ("\n" + rest if rest else ""))


if __name__ == "__main__":
    main()
