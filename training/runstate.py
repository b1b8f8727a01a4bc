"""A training run's resumable state (``RUN_DIR/state.pt``): written atomically, read back only for the same recipe.
Shared by the generator's and the segmenter's trainers."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch


def load_state(path: Path, resume: bool, recipe: dict) -> dict | None:
    """The state saved at ``path`` when ``resume`` and it exists; SystemExit naming what differs when it was saved
    with another recipe; None otherwise."""
    if not (resume and path.is_file()):
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["recipe"] != recipe:
        changed = sorted(k for k in set(state["recipe"]) | set(recipe) if state["recipe"].get(k) != recipe.get(k))
        raise SystemExit(f"{path}: saved with another recipe ({', '.join(changed)} differ); "
                         "use another --run-dir, or the same arguments")
    return state


def restore(state: dict | None, net: torch.nn.Module, opt: torch.optim.Optimizer,
            extras: dict | None = None) -> tuple[int, list[dict], float]:
    """Load a :func:`load_state` state into ``net`` and ``opt`` (and each of ``extras``, name -> object with
    ``load_state_dict``, as :func:`save_state` saved them); returns its step, history and seconds (a fresh run's
    ``0, [], 0.0`` without one), saying where it resumes."""
    if state is None:
        return 0, [], 0.0
    net.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    for name, obj in (extras or {}).items():
        obj.load_state_dict(state["extras"][name])
    print(f"resumed at step {state['step']} ({state['seconds'] / 60:.1f} min of training so far)", flush=True)
    return state["step"], state["history"], state["seconds"]


def save_state(path: Path, net: torch.nn.Module, opt: torch.optim.Optimizer, step: int, recipe: dict,
               history: list[dict], seconds: float, extras: dict | None = None) -> None:
    """The resumable state, written to a temp file and renamed (a kill never leaves half a state); ``extras``: more
    objects with a ``state_dict`` (a discriminator and its optimizer), by name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step, "recipe": recipe,
                "history": history, "seconds": seconds,
                **({"extras": {k: v.state_dict() for k, v in extras.items()}} if extras else {})}, tmp)
    os.replace(tmp, path)


def warmup_cosine(lr: float, warmup: int, steps: int, step: int, floor: float) -> float:
    """The learning rate at ``step`` (from 0): linear warm-up over ``warmup`` steps, then a cosine to ``floor`` x
    ``lr`` at ``steps``, held there after."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * max(floor, 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
