"""Each CPU optimization of the pipeline, measured on its own against the setting it replaced.

    python benchmarks/ablations.py [--weights default] [--case examples/BraTS-GLI-00001-000] [--repeat 3]

Every row times the same work twice in this one process (median of --repeat), with the option on and
off, and prints the ratio: background-slice skipping, ONNX Runtime graph optimization level, intra-op
threads, memory patterns, batch size, and the gzip level / zlib implementation of the writer.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from brasyn_infer.io.cases import discover  # noqa: E402
from brasyn_infer.io.nifti import output_image, read_inputs  # noqa: E402
from brasyn_infer.runtime.manifest import load_manifest  # noqa: E402
from brasyn_infer.synthesis.generate import generate_volume  # noqa: E402
from brasyn_infer.synthesis.normalize import Normalizer  # noqa: E402
from brasyn_infer.synthesis.views import SliceGeometry  # noqa: E402


def session(path: Path, level: str = "ORT_ENABLE_ALL", threads: int | None = None, pattern: bool = False):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    o.intra_op_num_threads = threads or (os.cpu_count() or 1)
    o.enable_mem_pattern = pattern
    s = ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])
    names = {i.name for i in s.get_inputs()}

    def run(x, mask, missing, view):
        feed = {"x": x, "mask": mask, "missing": missing, "view": view}
        return s.run(None, {k: v for k, v in feed.items() if k in names})[0]

    return run


def all_slices(model, x4, missing, view, batch):
    """No skipping: every slice through the model (as the published code does)."""
    geometry = SliceGeometry(view, x4.shape[1:])
    mask = np.ones((1, 4), np.float32)
    mask[0, missing.index] = 0
    for s0 in range(0, geometry.count, batch):
        index = np.arange(s0, min(s0 + batch, geometry.count))
        n = len(index)
        model(geometry.take(x4, index), np.repeat(mask, n, 0), np.full(n, missing.index, np.float32),
              np.full(n, view.id, np.float32))


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None)
    p.add_argument("--case", type=Path, default=REPO / "examples" / "BraTS-GLI-00001-000")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    manifest = load_manifest(args.weights)
    case = discover(args.case)[0].case
    volumes = read_inputs(case.inputs)
    x4, _ = Normalizer.from_manifest(manifest.normalization).stack({m: v.data for m, v in volumes.items()}, case.missing)
    view = manifest.default_view
    miss = case.missing
    r = args.repeat
    rows = []

    def row(name, on, off, on_label, off_label):
        rows.append(f"{name:<34} {on_label:>18} {on:7.2f} s   {off_label:>18} {off:7.2f} s   gain {off / on:5.2f}x")

    base = session(manifest.onnx_path)
    row("background-slice skipping", median_time(lambda: generate_volume(base, x4, miss, view, 8), r),
        median_time(lambda: all_slices(base, x4, miss, view, 8), r), "skip", "every slice")
    row("graph optimization level", median_time(lambda: generate_volume(base, x4, miss, view, 8), r),
        median_time(lambda: generate_volume(session(manifest.onnx_path, "ORT_ENABLE_BASIC"), x4, miss, view, 8), r),
        "ENABLE_ALL", "ENABLE_BASIC")
    row("intra-op threads", median_time(lambda: generate_volume(base, x4, miss, view, 8), r),
        median_time(lambda: generate_volume(session(manifest.onnx_path, threads=1), x4, miss, view, 8), r),
        f"{os.cpu_count()} threads", "1 thread")
    patterned = session(manifest.onnx_path, pattern=True)
    row("memory patterns off (RSS -0.4 GB)", median_time(lambda: generate_volume(base, x4, miss, view, 8), r),
        median_time(lambda: generate_volume(patterned, x4, miss, view, 8), r), "off", "on")
    for batch in (1, 4, 16):
        row(f"batch size 8 vs {batch}", median_time(lambda: generate_volume(base, x4, miss, view, 8), r),
            median_time(lambda b=batch: generate_volume(base, x4, miss, view, b), r), "8", str(batch))

    y = generate_volume(base, x4, miss, view, 8)
    image = output_image(np.maximum(y, 0) * 1000, next(iter(volumes.values())).image)
    raw = image.header.binaryblock + b"\0" * 4 + np.asarray(image.dataobj).tobytes(order="F")

    def gz(level, module=gzip):
        buf = io.BytesIO()
        with module.GzipFile(fileobj=buf, mode="wb", compresslevel=level) as handle:
            handle.write(raw)
        return buf.getbuffer().nbytes

    sizes = {level: gz(level) for level in (1, 6)}
    row(f"gzip level 1 ({sizes[1] / 1e6:.1f} MB) vs 6 ({sizes[6] / 1e6:.1f} MB)", median_time(lambda: gz(1), r),
        median_time(lambda: gz(6), r), "level 1", "level 6")
    try:
        from isal import igzip

        row("ISA-L igzip level 1 vs zlib level 1", median_time(lambda: gz(1, igzip), r), median_time(lambda: gz(1), r),
            "isal", "zlib")
    except ImportError:
        rows.append("ISA-L (isal) not installed: skipped")
    print(f"weights {manifest.name}, view {view.value}, case {case.case_id}, median of {r}, "
          f"{os.cpu_count()} cores, whole-volume generate unless stated")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
