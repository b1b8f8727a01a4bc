"""Export a checkpoint written by ``training.train_segmenter`` to ``<out>/<name>.onnx`` + ``.json``.

    python -m training.export_segmenter runs/seg/final/segmenter.safetensors --out weights --name segmenter
"""

from __future__ import annotations

import argparse
from pathlib import Path

from brasyn_infer.authoring.models.segmenter_export import export_segmenter

from .train_segmenter import load_checkpoint


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, default=Path("weights"))
    p.add_argument("--name", default="segmenter")
    args = p.parse_args(argv)
    net, info = load_checkpoint(args.checkpoint)
    path = export_segmenter(net, args.out, args.name, context=int(info["context"]), training=info["training"],
                            availability=bool(info.get("availability", False)),
                            provenance={"trained_by": "training/train_segmenter.py (this repository)",
                                        "checkpoint": args.checkpoint.name})
    print(f"exported {path}")


if __name__ == "__main__":
    main()
