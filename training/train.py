"""Train a small HFGAN on complete 4-modality cases and export it to ``weights/`` with its manifest.

    python -m training.train --cases ../shared/data/cases --holdout BraTS-GLI-00001-000 --minutes 30

Each step draws random brain slices of the chosen views from the training cases, drops one
modality at random (its channel set to -1, its mask bit to 0) and learns to synthesize it with
L1 + SSIM. Data are normalized per volume (foreground 99.5th percentile), the scheme the manifest
declares. Deterministic for a given seed and thread count.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from brasyn_infer.authoring.models.export import export
from brasyn_infer.authoring.models.hfgan import HFGAN, HFGANConfig
from brasyn_infer.constants import MODALITIES, View

from .data import SliceSampler, load_complete_case
from .losses import synthesis_loss

PERCENTILE = 99.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, default=Path("../shared/data/cases"), help="folder of complete case folders")
    p.add_argument("--holdout", nargs="*", default=[], help="case IDs kept out of training (scored at the end)")
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--views", nargs="+", default=["sagittal"], choices=[v.value for v in View])
    p.add_argument("--infuse-view", action="store_true", help="config B: condition on the view id")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--steps", type=int, default=100000, help="step budget; training stops at --steps or --minutes, "
                   "whichever comes first, and the learning rate follows that budget")
    p.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget for the optimization loop")
    p.add_argument("--ssim-weight", type=float, default=0.5)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass (about 2x faster on "
                   "CPUs with AVX512-BF16; weights, optimizer and loss stay float32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where the optimization runs (cuda: bf16 autocast on the GPU; not bit-reproducible)")
    p.add_argument("--out", type=Path, default=Path("weights"))
    p.add_argument("--name", default="default")
    p.add_argument("--checkpoint-dir", type=Path, default=Path("weights"),
                   help="where the torch checkpoint (<name>.safetensors) goes, beside the ONNX file by default")
    add_refiner_options(p)
    p.add_argument("--no-export", action="store_true",
                   help="write the checkpoint only (export later with python -m training.export_checkpoint, "
                   "e.g. after training on a GPU machine)")
    return p.parse_args(argv)


def to_torch(batch: dict[str, np.ndarray], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def evaluate(net: HFGAN, sampler: SliceSampler, batches: int = 8) -> dict[str, float]:
    net.eval()
    device = next(net.parameters()).device
    totals = {"l1": 0.0, "ssim": 0.0}
    for _ in range(batches):
        b = to_torch(sampler.batch(4, augment=False), device)
        _, parts = synthesis_loss(net(b["x"], b["mask"], b["missing"], b["view"]), b["target"])
        for k in totals:
            totals[k] += float(parts[k]) / batches
    net.train()
    return totals


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    folders = sorted(p for p in args.cases.iterdir() if p.is_dir())
    train_dirs = [p for p in folders if p.name not in args.holdout]
    hold_dirs = [p for p in folders if p.name in args.holdout]
    if not train_dirs:
        raise SystemExit(f"no training cases in {args.cases}")
    t0 = time.perf_counter()
    train_cases = [load_complete_case(p, PERCENTILE) for p in train_dirs]
    hold_cases = [load_complete_case(p, PERCENTILE) for p in hold_dirs]
    views = [View(v) for v in args.views]
    sampler = SliceSampler(train_cases, views, args.seed)
    hold_sampler = SliceSampler(hold_cases, views, args.seed + 1) if hold_cases else None
    print(f"loaded {len(train_cases)} training cases ({len(sampler.items)} slices) in {time.perf_counter() - t0:.0f} s",
          flush=True)

    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA GPU (use --device cpu)")
        torch.cuda.manual_seed_all(args.seed)
        torch.backends.cudnn.benchmark = True  # fixed input shape (B, 4, 240, 240)
    cfg = HFGANConfig(dim=args.dim, infuse_view=args.infuse_view)
    net = HFGAN(cfg).to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    budget = args.minutes * 60
    history: list[dict] = []
    start = time.perf_counter()
    step = 0
    running: dict[str, torch.Tensor] = {}
    # One worker draws the next batch while the model works on this one (the sampler's random
    # stream is consumed in the same order as without it).
    with ThreadPoolExecutor(max_workers=1) as prefetch:
        pending = prefetch.submit(sampler.batch, args.batch)
        while True:
            # Cosine schedule over whichever budget binds first: wall-clock minutes or steps.
            progress = max((time.perf_counter() - start) / budget, step / args.steps)
            if progress >= 1:
                break
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * progress))
            for group in opt.param_groups:
                group["lr"] = max(lr, args.lr * 0.02)
            b = to_torch(pending.result(), device)
            pending = prefetch.submit(sampler.batch, args.batch)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                pred = net(b["x"], b["mask"], b["missing"], b["view"])
            loss, parts = synthesis_loss(pred.float(), b["target"], args.ssim_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            step += 1
            for k, v in {"loss": loss.detach(), **parts}.items():
                running[k] = running.get(k, v) * 0.95 + v * 0.05
            if step % 50 == 0:
                entry = {"step": step, "seconds": round(time.perf_counter() - start, 1), "lr": round(lr, 7),
                         **{k: round(float(v), 5) for k, v in running.items()}}
                if hold_sampler is not None and step % 250 == 0:
                    entry["holdout"] = {k: round(v, 5) for k, v in evaluate(net, hold_sampler).items()}
                history.append(entry)
                print(json.dumps(entry), flush=True)

    record = {
        "command": "python -m training.train " + " ".join(sys.argv[1:]),
        "data": {"train": [c.case_id for c in train_cases], "holdout": [c.case_id for c in hold_cases],
                 "source": "shared/data/cases (see weights/README.md for licenses)"},
        "views": args.views, "dim": args.dim, "batch": args.batch, "lr": args.lr, "seed": args.seed,
        "ssim_weight": args.ssim_weight, "bf16": args.bf16, "steps": step, "train_seconds": round(time.perf_counter() - start, 1),
        "machine": (f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}" if device.type == "cuda"
                    else f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"),
        "device": device.type,
        "final": history[-1] if history else {},
        "history": history,
    }
    reference = {m.value: float(np.mean([c.scales[m.value] for c in train_cases])) for m in MODALITIES}
    normalization = {"scheme": "percentile", "percentile": PERCENTILE, "reference_scale": reference}
    ckpt = save_checkpoint(net, cfg, args.checkpoint_dir / f"{args.name}.safetensors",
                           {"normalization": normalization, "views": args.views, "training": record})
    print(f"checkpoint {ckpt}", flush=True)
    if not args.no_export:
        export_checkpoint(ckpt, args.out, args.name, refiner_block(args.refiner, args.refine_by_default))
    return record


def add_refiner_options(p: argparse.ArgumentParser) -> None:
    """``--refiner NAME`` and ``--refine-by-default``: the manifest's refiner block (:func:`refiner_block`)."""
    p.add_argument("--refiner", default=None, metavar="NAME",
                   help="name the 3D Refiner weights in the manifest's refiner block (beside the ONNX file)")
    p.add_argument("--refine-by-default", action="store_true", help="with --refiner: the refiner runs by default")


def refiner_block(name: str | None, enabled: bool) -> dict:
    """The manifest's ``refiner`` block: ``{}`` without a refiner."""
    if enabled and not name:
        raise SystemExit("--refine-by-default needs --refiner NAME")
    return {"weights": name, "enabled": enabled} if name else {}


def save_checkpoint(net: HFGAN, cfg: HFGANConfig, path: Path, export_info: dict) -> Path:
    """Weights (float32, CPU) plus what the export needs (config, normalization, views, training record)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(cfg.to_dict()), "export": json.dumps(export_info)})
    return path


def export_checkpoint(ckpt: Path, out: Path, name: str, refiner: dict | None = None) -> Path:
    """Export a checkpoint written by :func:`save_checkpoint` to ``out/<name>.onnx`` + manifest; returns the manifest.

    ``refiner``: the manifest's refiner block (:func:`refiner_block`)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(ckpt), "pt") as f:
        meta = f.metadata() or {}
    if "export" not in meta:
        raise SystemExit(f"{ckpt}: no export metadata (not written by training.train); retrain or export by hand")
    info = json.loads(meta["export"])
    net = HFGAN(HFGANConfig.from_dict(json.loads(meta["config"])))
    net.load_state_dict(load_file(str(ckpt)))
    views = [View(v) for v in info["views"]]
    manifest = export(net.eval(), out, name, normalization=info["normalization"], default_view=views[0],
                      provenance={"trained_by": "training/train.py (this repository)", "checkpoint": ckpt.name},
                      training=info["training"], views=tuple(views) if len(views) > 1 else (), refiner=refiner)
    print(f"exported {manifest.onnx_path} ({manifest.onnx_path.stat().st_size / 1e6:.1f} MB), manifest {manifest.path}")
    return manifest.path


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
