"""Train the default generator: HFGAN as a residual over a linear prior, with its own uncertainty output.

    python -m training.train --cases ../shared/data/cases ../shared/data/brats2018 --holdout ID ... \\
        --run-dir runs/train/val --name val --steps 6000 [--resume]

The model (``brasyn_infer.authoring.models.residual``): the linear prior's coefficients are fitted by least
squares on the training cases' brain voxels (the same fit as ``evaluate --baseline linear``) and stored in the
graph; HFGAN learns the residual and the log-scale of a Laplace distribution of its error. Each step draws random
crops around the brain (tumor-biased) of random views' slices, drops one modality per sample (t1c more often),
optionally changes each input's contrast by a random gamma (``--gamma``: scanners differ in contrast, the target
does not depend on it) and learns with L1 + SSIM + the Laplace likelihood (``training/losses.py``); the last
``--whole-from`` fraction of the steps sees whole 240x240 slices, as at inference. AdamW with warm-up and a cosine
schedule over ``--steps``. Tumor-aware terms (off by default): the L1 inside the expert tumor and its enhancing part
(``--lesion-weight``, ``--enhancing-weight``), and the segmentation-consistency term (``--seg-weight``,
``--seg-judge``): a frozen segmenter reads the real inputs with the synthesis in place, its loss against the
expert labels added (``training/losses.consistency_loss``); and an adversarial term on the tumor (``--adv-weight``):
a conditional PatchGAN trained beside the generator tells the real target's tumor patches from the synthesis's
(``training/losses.PatchDiscriminator``).

Every ``--save-every`` steps the run's state (weights, optimizer, step, recipe) goes to ``RUN_DIR/state.pt``
(atomically); ``--resume`` continues from it, and since each batch is seeded by the step, a resumed run draws the
batches an uninterrupted one would. At the end ``<checkpoint-dir>/<name>.safetensors`` holds the weights and what
the export needs, and (without ``--no-export``) ``<out>/<name>.onnx`` + ``.json`` are written.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from brasyn_infer.authoring.models.export import export
from brasyn_infer.authoring.models.hfgan import HFGANConfig
from brasyn_infer.authoring.models.residual import PriorResidualHFGAN
from brasyn_infer.constants import MODALITIES, View
from brasyn_infer.synthesis.linear import LinearStats, fit, pattern_table, prior_table

from .data import SliceSampler, find_case_folders, load_complete_case
from .losses import (
    PatchDiscriminator,
    consistency_loss,
    discriminator_term,
    generator_term,
    residual_loss,
    shown_output,
)
from .runstate import load_state, restore, save_state, warmup_cosine

PERCENTILE = 99.5
#: arguments that define the recipe: a resumed run must have the same
RECIPE_KEYS = ("cases", "holdout", "dim", "views", "batch", "lr", "steps", "crop", "whole_from", "tumor", "t1c",
               "ssim_weight", "nll_weight", "seed", "warmup", "gamma", "init", "quantile_weight", "missing_counts",
               "lesion_weight", "enhancing_weight", "seg_weight", "seg_judge", "adv_weight", "adv_lr")
#: recipe options added after runs were saved, and the value that turns each off: left out of the recipe at that
#: value, so those runs still resume
ADDED_KEYS = {"gamma": 0.0, "init": None, "quantile_weight": 0.0, "missing_counts": [1.0, 0.0, 0.0],
              "lesion_weight": 0.0, "enhancing_weight": 0.0, "seg_weight": 0.0, "seg_judge": None, "adv_weight": 0.0,
              "adv_lr": 2e-4}


#: list-valued recipe keys whose order means something (kept as given, not sorted)
ORDERED_KEYS = ("missing_counts",)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, nargs="+", default=[Path("../shared/data/cases")],
                   help="folders of complete case folders (either naming convention)")
    p.add_argument("--holdout", nargs="*", default=[], help="case IDs kept out of training (scored during training)")
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--views", nargs="+", default=["sagittal", "axial", "coronal"], choices=[v.value for v in View])
    p.add_argument("--batch", type=int, default=8, help="samples per step (crops; whole slices: scaled to the same pixels)")
    p.add_argument("--crop", type=int, default=128, help="crop side in pixels, a multiple of 16 (240: whole slices)")
    p.add_argument("--whole-from", type=float, default=0.85,
                   help="from this fraction of --steps on, whole 240x240 slices (as at inference)")
    p.add_argument("--tumor", type=float, default=0.3, help="probability that a crop is centered on the tumor")
    p.add_argument("--t1c", type=float, default=0.4, help="probability that t1c is the dropped modality (the rest "
                   "share the remainder equally)")
    p.add_argument("--missing-counts", type=float, nargs=3, default=[1.0, 0.0, 0.0], metavar=("P1", "P2", "P3"),
                   help="probabilities of 1, 2 and 3 modalities missing in a sample (the others besides the target "
                   "drawn uniformly); anything but 1 0 0 trains a model for every pattern, with a linear prior per "
                   "pattern and target in the graph (synthesis.linear.pattern_table)")
    p.add_argument("--gamma", type=float, default=0.0, help="input contrast augmentation: each input's brain "
                   "intensities on [0, 1] raised to exp(U(-GAMMA, GAMMA)), the target unchanged (0: none)")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--ssim-weight", type=float, default=0.5)
    p.add_argument("--nll-weight", type=float, default=0.1)
    p.add_argument("--quantile-weight", type=float, default=0.0,
                   help="weight of the brain's intensity-distribution loss (losses.quantile_loss; 0: off)")
    p.add_argument("--lesion-weight", type=float, default=0.0,
                   help="tumor-aware term: weight of the L1 inside the expert tumor (losses.residual_loss; 0: off)")
    p.add_argument("--enhancing-weight", type=float, default=0.0,
                   help="tumor-aware term: weight of the L1 inside the expert enhancing tumor (0: off)")
    p.add_argument("--seg-weight", type=float, default=0.0,
                   help="segmentation-consistency term: weight of the frozen --seg-judge's cross-entropy + region Dice "
                   "on the real inputs with the synthesis in place, against the expert labels (axial samples of "
                   "cases with a segmentation; losses.consistency_loss; 0: off)")
    p.add_argument("--seg-judge", type=Path, default=None, metavar="CHECKPOINT",
                   help="with --seg-weight: the segmenter it reads through, a checkpoint training.train_segmenter "
                   "wrote (e.g. weights/validation/segmenter-val.safetensors, trained without the held-out cases); "
                   "frozen")
    p.add_argument("--adv-weight", type=float, default=0.0,
                   help="weight of the adversarial term on the tumor patches (training/losses.PatchDiscriminator; 0: off)")
    p.add_argument("--adv-lr", type=float, default=2e-4, help="the discriminator's learning rate (Adam, betas 0.5, "
                   "0.999)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                   help="start from the network of a checkpoint this script wrote (<name>.safetensors, same --dim) "
                   "instead of random weights, with a fresh optimizer and schedule: a fine-tuning stage. The prior "
                   "stays the one fitted on this run's training cases")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the optimization runs")
    p.add_argument("--run-dir", type=Path, default=Path("runs/train"), help="the resumable state and the log")
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/state.pt (same recipe)")
    p.add_argument("--out", type=Path, default=Path("weights"))
    p.add_argument("--name", default="default")
    p.add_argument("--checkpoint-dir", type=Path, default=None,
                   help="where <name>.safetensors goes (default: --out, beside the ONNX file)")
    add_refiner_options(p)
    p.add_argument("--no-export", action="store_true", help="write the checkpoint only (export later with "
                   "python -m training.export_checkpoint)")
    return p.parse_args(argv)


def any_pattern(args: argparse.Namespace) -> bool:
    """Whether the run trains a model for every missing pattern (``--missing-counts`` other than ``1 0 0``)."""
    return list(args.missing_counts) != [1.0, 0.0, 0.0]


def to_torch(batch: dict[str, np.ndarray], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in batch.items()}


def missing_probabilities(t1c: float) -> tuple[float, ...]:
    rest = (1.0 - t1c) / 3
    return tuple(t1c if m.value == "t1c" else rest for m in MODALITIES)


def learning_rate(args: argparse.Namespace, step: int) -> float:
    """Linear warm-up, then cosine to 2% of ``--lr`` at ``--steps``."""
    return warmup_cosine(args.lr, args.warmup, args.steps, step, 0.02)


def whole_batch(args: argparse.Namespace) -> int:
    """Whole slices per step in the last phase: about the pixels of ``--batch`` crops, at least 2."""
    return max(2, round(args.batch * args.crop**2 / 240**2))


@torch.no_grad()
def held_out(net: PriorResidualHFGAN, sampler: SliceSampler, device: torch.device, batches: int = 4) -> dict[str, float]:
    """Mean loss parts on fixed whole-slice batches of the held-out cases (the same every time)."""
    net.eval()
    totals = {"l1": 0.0, "ssim": 0.0, "nll": 0.0}
    for i in range(batches):
        b = to_torch(sampler.batch(10**6 + i, 2, augment=False, whole=True), device)
        y, log_b = net(b["x"], b["mask"], b["missing"], b["view"])
        _, parts = residual_loss(y, log_b, b["target"], b["background"])
        for k in totals:
            totals[k] += float(parts[k]) / batches
    net.train()
    return totals


def recipe(args: argparse.Namespace) -> dict:
    """The arguments that define the run (:data:`RECIPE_KEYS`), less the :data:`ADDED_KEYS` that are off."""
    return {k: (list(map(float, v)) if k in ORDERED_KEYS else sorted(map(str, v)) if isinstance(v, list)
                else str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items() if k in RECIPE_KEYS and not (k in ADDED_KEYS and v == ADDED_KEYS[k])}


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    state_path = args.run_dir / "state.pt"
    state = load_state(state_path, args.resume, recipe(args))
    folders = find_case_folders(args.cases)
    unknown = set(args.holdout) - {p.name for p in folders}
    if unknown:
        raise SystemExit(f"--holdout names cases not in {', '.join(map(str, args.cases))}: {', '.join(sorted(unknown))}")
    judge, context, extra_planes = load_judge(args)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        train_cases = list(pool.map(lambda p: load_complete_case(p, PERCENTILE, seg_inputs=judge is not None),
                                    [p for p in folders if p.name not in args.holdout]))
        hold_cases = list(pool.map(lambda p: load_complete_case(p, PERCENTILE),
                                   [p for p in folders if p.name in args.holdout]))
    if not train_cases:
        raise SystemExit(f"no training cases in {', '.join(map(str, args.cases))}")
    views = [View(v) for v in args.views]
    patterns = any_pattern(args)
    sampler = SliceSampler(train_cases, views, args.seed, args.crop, args.tumor, missing_probabilities(args.t1c),
                           gamma=args.gamma, missing_counts=tuple(args.missing_counts), context=context)
    hold_sampler = (SliceSampler(hold_cases, views, args.seed + 1, missing_counts=tuple(args.missing_counts))
                    if hold_cases else None)
    coefs = {m: fit(c.stats[m] for c in train_cases) for m in MODALITIES}
    totals = {m: sum((c.stats[m] for c in train_cases), LinearStats.zero()) for m in MODALITIES}
    print(f"loaded {len(train_cases)} training cases ({len(sampler.items)} slices, {len(sampler.tumor_items)} with "
          f"tumor) and {len(hold_cases)} held out in {time.perf_counter() - t0:.0f} s", flush=True)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU (use --device cpu)")
    cfg = HFGANConfig(dim=args.dim, num_outputs=2)
    table = pattern_table(totals) if patterns else prior_table(coefs)
    net = PriorResidualHFGAN(cfg, table, patterns=patterns).to(device).train()
    if judge is not None:
        judge = judge.to(device)
    if args.init is not None and state is None:
        init_from(net, args.init)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    disc, extras = None, None
    if args.adv_weight > 0:
        disc = PatchDiscriminator(2 * len(MODALITIES) + 1).to(device).train()
        opt_d = torch.optim.Adam(disc.parameters(), lr=args.adv_lr, betas=(0.5, 0.999))
        extras = {"discriminator": disc, "discriminator_optimizer": opt_d}
        print(f"adversarial term on the tumor patches, weight {args.adv_weight}", flush=True)
    step, history, spent = restore(state, net, opt, extras)
    whole_step = int(args.whole_from * args.steps)
    start = time.perf_counter() - spent
    running: dict[str, float] = {}

    def draw(k: int) -> dict[str, np.ndarray]:
        return sampler.batch(k, whole_batch(args) if k >= whole_step else args.batch, whole=k >= whole_step)

    with ThreadPoolExecutor(max_workers=1) as prefetch:  # the next batch is drawn while the model works
        pending = prefetch.submit(draw, step)
        while step < args.steps:
            for group in opt.param_groups:
                group["lr"] = learning_rate(args, step)
            b = to_torch(pending.result(), device)
            pending = prefetch.submit(draw, step + 1)
            y, log_b = net(b["x"], b["mask"], b["missing"], b["view"], b["origin"])
            loss, parts = residual_loss(y, log_b, b["target"], b["background"], args.ssim_weight, args.nll_weight,
                                        args.quantile_weight, b["lesion"], args.lesion_weight, args.enhancing_weight)
            shown = shown_output(y, b["background"]) if judge is not None or disc is not None else None
            if judge is not None:
                seg, seg_parts = consistency_loss(judge, shown, b["background"], b, extra_planes)
                loss = loss + args.seg_weight * seg
                parts = {**parts, **seg_parts}
            if disc is not None:
                disc.requires_grad_(False)
                adv = generator_term(disc, b["x"], shown, b["missing"], b["lesion"])
                disc.requires_grad_(True)
                loss = loss + args.adv_weight * adv
                parts = {**parts, "adv_g": adv.detach()}
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            if disc is not None:
                loss_d = discriminator_term(disc, b["x"], b["target"], shown, b["missing"], b["lesion"])
                opt_d.zero_grad(set_to_none=True)
                if loss_d.requires_grad:
                    loss_d.backward()
                    opt_d.step()
                parts["adv_d"] = loss_d.detach()
            step += 1
            for k, v in {"loss": float(loss.detach()), **{k: float(v) for k, v in parts.items()}}.items():
                running[k] = running.get(k, v) * 0.95 + v * 0.05
            if step % 50 == 0 or step == args.steps:
                entry = {"step": step, "seconds": round(time.perf_counter() - start, 1),
                         "lr": round(learning_rate(args, step - 1), 7), **{k: round(v, 5) for k, v in running.items()}}
                if hold_sampler is not None and (step % 500 == 0 or step == args.steps):
                    entry["holdout"] = {k: round(v, 5) for k, v in held_out(net, hold_sampler, device).items()}
                history.append(entry)
                print(json.dumps(entry), flush=True)
            if step % args.save_every == 0 or step == args.steps:
                save_state(state_path, net, opt, step, recipe(args), history, time.perf_counter() - start, extras)

    record = {
        "command": "python -m training.train " + " ".join(sys.argv[1:]),
        "data": {"train": [c.case_id for c in train_cases], "holdout": [c.case_id for c in hold_cases]},
        "recipe": recipe(args), "steps": step, "train_seconds": round(time.perf_counter() - start, 1),
        "machine": (f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}" if device.type == "cuda"
                    else f"{platform.machine()} {platform.processor() or 'CPU'}, {torch.get_num_threads()} torch "
                         f"threads, torch {torch.__version__}"),
        "device": device.type,
        "prior": {m.value: [round(float(v), 7) for v in c] for m, c in coefs.items()},
        "patterns": "any" if patterns else "one",
        "final": history[-1] if history else {},
        "history": history,
    }
    reference = {m.value: float(np.exp(np.mean([np.log(c.scales[m.value]) for c in train_cases]))) for m in MODALITIES}
    normalization = {"scheme": "percentile", "percentile": PERCENTILE, "reference_scale": reference}
    ckpt = save_checkpoint(net, cfg, (args.checkpoint_dir or args.out) / f"{args.name}.safetensors",
                           {"normalization": normalization, "views": args.views, "training": record})
    print(f"checkpoint {ckpt}", flush=True)
    if not args.no_export:
        export_checkpoint(ckpt, args.out, args.name, refiner_block(args.refiner, args.refine_by_default))
    return record


def load_judge(args: argparse.Namespace) -> tuple[torch.nn.Module | None, int | None, int]:
    """The frozen segmenter of the segmentation-consistency term (``--seg-judge``, used when ``--seg-weight`` > 0):
    ``(judge, context, extra_planes)``; ``(None, None, 0)`` when the term is off. A missing-sequence segmenter
    (availability planes) is told that all four sequences are present."""
    if args.seg_weight <= 0:
        if args.seg_judge is not None:
            raise SystemExit("--seg-judge without --seg-weight: give the term a weight above 0")
        return None, None, 0
    if args.seg_judge is None or not args.seg_judge.is_file():
        raise SystemExit(f"--seg-weight needs --seg-judge CHECKPOINT (a training.train_segmenter checkpoint); "
                         f"got {args.seg_judge}")
    from .train_segmenter import load_frozen

    judge, info = load_frozen(args.seg_judge)
    context = int(info["context"])
    extra = len(MODALITIES) if info.get("availability") else 0
    print(f"segmentation-consistency term through {args.seg_judge} (context {context}"
          f"{', availability planes' if extra else ''}), weight {args.seg_weight}", flush=True)
    return judge, context, extra


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


def save_checkpoint(net: PriorResidualHFGAN, cfg: HFGANConfig, path: Path, export_info: dict) -> Path:
    """Weights (float32, CPU; the prior included) plus what the export needs (config, normalization, views, record)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(cfg.to_dict()), "export": json.dumps(export_info),
                                           "architecture": "hfgan-prior-residual",
                                           "patterns": "any" if getattr(net, "patterns", False) else "one"})
    return path


def load_trained(ckpt: Path) -> tuple[PriorResidualHFGAN, dict]:
    """The model a :func:`save_checkpoint` file holds, and its export metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(ckpt), "pt") as f:
        meta = f.metadata() or {}
    if "export" not in meta or meta.get("architecture") != "hfgan-prior-residual":
        raise SystemExit(f"{ckpt}: no export metadata of a residual model (not written by training.train); "
                         "retrain or export by hand")
    net = PriorResidualHFGAN(HFGANConfig.from_dict(json.loads(meta["config"])), patterns=meta.get("patterns") == "any")
    net.load_state_dict(load_file(str(ckpt)))
    return net.eval(), json.loads(meta["export"])


def init_from(net: PriorResidualHFGAN, ckpt: Path) -> None:
    """Load the network of checkpoint ``ckpt`` into ``net``, all but the prior (``net`` keeps its own fit)."""
    if not ckpt.is_file():
        raise SystemExit(f"--init {ckpt}: no such checkpoint (a <name>.safetensors that training.train wrote)")
    start, _ = load_trained(ckpt)
    if start.cfg.to_dict() != net.cfg.to_dict():
        raise SystemExit(f"--init {ckpt}: its generator config differs from this run's (e.g. --dim); use the same")
    weights = {k: v for k, v in start.state_dict().items() if k != "prior"}
    missing, unexpected = net.load_state_dict(weights, strict=False)
    if unexpected or set(missing) != {"prior"}:
        raise SystemExit(f"--init {ckpt}: its weights do not fit this network ({sorted(missing + unexpected)[:3]})")
    print(f"started from {ckpt} (its prior replaced by this run's)", flush=True)


def blend_block(prior: dict[str, list[float]], blend: dict[str, float]) -> dict:
    """The manifest's ``trust`` block that blends the output with the linear prior for the modalities of ``blend``
    (``output = prior + alpha * (generated - prior)``, ``brasyn_infer.synthesis.trust``): ``prior`` is the training
    record's fit (``{modality: [w1, w2, w3, b]}``, the coefficients in the graph). ``{}`` for no blend; an alpha
    of 1 is left out (the generator alone)."""
    if not all(0.0 <= a <= 1.0 for a in blend.values()):
        raise SystemExit(f"a blend is a fraction of the generator's departure from the prior, 0 to 1: {blend}")
    kept = {m: float(a) for m, a in sorted(blend.items()) if a < 1.0}
    unknown = set(kept) - set(prior)
    if unknown:
        raise SystemExit(f"no prior for {', '.join(sorted(unknown))} in the checkpoint's training record")
    return {"linear": {m: prior[m] for m in kept}, "blend": kept} if kept else {}


def export_checkpoint(ckpt: Path, out: Path, name: str, refiner: dict | None = None,
                      uncertainty: dict | None = None, blend: dict[str, float] | None = None,
                      views: list[str] | None = None) -> Path:
    """Export a checkpoint written by :func:`save_checkpoint` to ``out/<name>.onnx`` + manifest; returns the manifest.

    ``refiner``: the manifest's refiner block (:func:`refiner_block`); ``uncertainty``: the map's block, fitted on
    the validation cases (``training.validate``); ``blend``: ``{modality: alpha}``, chosen on the validation cases
    (``training.studies.posthoc_study``), blends those modalities' output with the linear prior (:func:`blend_block`);
    ``views``: the manifest's default views (default: the training's)."""
    net, info = load_trained(ckpt)
    views = [View(v) for v in (views or info["views"])]
    manifest = export(net, out, name, normalization=info["normalization"], default_view=views[0],
                      provenance={"trained_by": "training/train.py (this repository)", "checkpoint": ckpt.name},
                      training=info["training"], views=tuple(views) if len(views) > 1 else (), refiner=refiner,
                      uncertainty=uncertainty, trust=blend_block(info["training"]["prior"], blend or {}))
    print(f"exported {manifest.onnx_path} ({manifest.onnx_path.stat().st_size / 1e6:.1f} MB), manifest {manifest.path}")
    return manifest.path


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
