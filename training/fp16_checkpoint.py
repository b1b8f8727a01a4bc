"""Copy a generator checkpoint (``training.train``) with its float tensors in float16: half the size in git, for
``--init`` (which loads it back as float32); the metadata (config, normalization, views, training record) is kept.

    python -m training.fp16_checkpoint runs/any/final/default-any.safetensors weights/default-any.safetensors
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    args = p.parse_args(argv)
    with safe_open(str(args.source), "pt") as f:
        meta = f.metadata() or {}
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(str(args.source)).items()}
    state = {k: v.contiguous() for k, v in state.items()}
    args.target.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.target.with_name(f".{args.target.name}.{os.getpid()}.tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, args.target)
    args.target.chmod(0o644)
    print(f"wrote {args.target} ({args.target.stat().st_size / 1e6:.1f} MB, float16; {len(state)} tensors)")


if __name__ == "__main__":
    main()
