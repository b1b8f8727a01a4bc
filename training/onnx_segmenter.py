"""Recover a ``training.train_segmenter`` checkpoint from a segmenter this repository exported (``weights/``): the
shipped models keep only their ONNX graph, and a fine-tune (``--init``) or a distillation teacher (``--teacher``)
needs the torch weights.

    python -m training.onnx_segmenter weights/segmenter-any.json runs/seg-any/shipped/segmenter-any.safetensors

The export names every initializer after the torch parameter it holds (``down.0.0.weight`` ...) and folds nothing
away from the U-Net (convolutions without bias, instance norms with their affine weights), so the state dict is read
back by name; the U-Net's config, context and availability planes come from the manifest. Nothing is written unless
torch and ONNX Runtime agree on a random input (max abs difference of the logits under ``--tolerance``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def state_from_onnx(graph: Path, keys: list[str]) -> dict[str, np.ndarray]:
    """The initializers of ``graph`` named ``keys`` (float32 arrays); exits naming any key the graph lacks."""
    import onnx
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(graph)).graph.initializer}
    missing = [k for k in keys if k not in inits]
    if missing:
        raise SystemExit(f"{graph}: no initializer for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                         "(not an export of training.train_segmenter's U-Net)")
    return {k: np.array(inits[k], dtype=np.float32) for k in keys}


def convert(manifest: Path, out: Path, tolerance: float = 1e-4) -> Path:
    """``out``: the checkpoint of the segmenter ``manifest`` describes, checked against its ONNX graph."""
    import onnxruntime as ort
    import torch

    from brasyn_infer.authoring.models.unet import UNet2D, UNetConfig

    from .train_segmenter import save_checkpoint

    data = json.loads(manifest.read_text())
    if not isinstance(data.get("config"), dict) or "widths" not in data["config"] or "context" not in data:
        raise SystemExit(f"{manifest}: not a segmenter manifest (no U-Net config and context)")
    graph = manifest.parent / data["onnx"]
    net = UNet2D(UNetConfig.from_dict(data["config"])).eval()
    state = state_from_onnx(graph, list(net.state_dict()))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    x = np.random.default_rng(0).standard_normal((2, net.cfg.in_channels, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {session.get_inputs()[0].name: x})[0]
    diff = float(np.abs(ours - theirs).max())
    if diff > tolerance:
        raise SystemExit(f"{graph}: torch and ONNX Runtime differ by {diff:.2e} (over {tolerance}): not converted")
    info = {"context": int(data["context"]), "availability": bool(data.get("availability", False)),
            "training": data.get("training", {}),
            "converted_from": {"onnx": graph.name, "sha256": data.get("sha256"), "parity_max_abs_diff": diff}}
    path = save_checkpoint(net, out, info)
    print(f"wrote {path} from {graph} (torch vs ONNX Runtime max abs diff {diff:.1e})")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", type=Path, help="a segmenter's manifest (.json beside its .onnx)")
    p.add_argument("out", type=Path, help="the checkpoint to write (.safetensors)")
    p.add_argument("--tolerance", type=float, default=1e-4)
    args = p.parse_args(argv)
    convert(args.manifest, args.out, args.tolerance)


if __name__ == "__main__":
    main()
