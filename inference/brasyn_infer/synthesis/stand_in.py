"""The stand-in for a missing sequence, and the blend of a synthesized volume toward it.

The **stand-in** is an available sequence put in place of a missing one (:data:`~brasyn_infer.constants.COPY_ORDER`:
the copy baseline of a dry run, and the usual clinical stopgap). Brought to the missing sequence's scale by the
normalizer (its normalized image restored as the synthesis would be), it keeps the real scan's texture and edges,
which a network trained on a voxel loss smooths away: where the stand-in's contrast is close to the missing one's
(t2f for t2w, t1n for t1c), it can score a higher SSIM than the synthesis.

A pattern model's manifest may say, per pattern of missing sequences and per synthesized one, how far to move the
synthesis toward its stand-in (``copy_blend``; :func:`check_copy_blend`), weights fitted on held-out cases
(``training/fit_copy_blend.py``): ``(1 - w) * synthesized + w * stand_in`` on the restored volumes (scanner units,
background 0). One missing sequence is never blended (the BraSyn contract runs the weights as they are).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from brasyn_infer.constants import COPY_ORDER, MODALITIES, Modality
from brasyn_infer.synthesis.normalize import Normalizer


def copy_source(target: Modality, available: Iterable[Modality]) -> Modality:
    """The available modality that stands in for ``target``: the first of ``COPY_ORDER[target]`` the case has."""
    have = set(available)
    return next(m for m in COPY_ORDER[target] if m in have)


def stand_in_volume(normalizer: Normalizer, x4: np.ndarray, background: np.ndarray, target: Modality,
                    available: Iterable[Modality], scales: Mapping[Modality, Any]) -> np.ndarray:
    """The stand-in for ``target``, ``(X, Y, Z)`` float32: the copy source's channel of the normalized input ``x4``
    ``(4, X, Y, Z)`` restored to ``target``'s scale as the synthesis is (``normalizer.restore`` with the same
    ``background`` and ``scales``: >= 0, background 0). ``x4`` is not modified."""
    return normalizer.restore(x4[copy_source(target, available).index].copy(), background, target, scales)


def pattern_label(modalities: Iterable[Modality]) -> str:
    """``t1c`` or ``t1c+t2f``: the modalities in MODALITIES order, joined by ``+`` (a pattern's name)."""
    chosen = set(modalities)
    return "+".join(m.value for m in MODALITIES if m in chosen)


def copy_weight(block: Mapping[str, Mapping[str, float]], target: Modality, absent: Iterable[Modality]) -> float:
    """The manifest's ``copy_blend`` weight of ``target`` when the case lacks ``target`` and ``absent``; 0 when the
    block does not name the pattern or the target."""
    return float(block.get(pattern_label([target, *absent]), {}).get(target.value, 0.0))


def blend_toward(synthesized: np.ndarray, stand_in: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * synthesized + weight * stand_in``, float32 ``(X, Y, Z)``: two restored volumes (>= 0,
    background 0), so the blend is too."""
    w = np.float32(weight)
    out = synthesized.astype(np.float32, copy=True)
    out *= np.float32(1) - w
    out += w * stand_in.astype(np.float32, copy=False)
    return out


def check_copy_blend(block: Any) -> str | None:
    """What is wrong with a manifest's ``copy_blend`` block, or None: ``{"t1c+t2w": {"t1c": 0.3, ...}, ...}``, each
    pattern two or three modalities, each weight in [0, 1] for a modality of its pattern."""
    if not isinstance(block, Mapping):
        return "copy_blend must map patterns (e.g. \"t1c+t2w\") to {modality: weight}"
    names = {m.value for m in MODALITIES}
    for pattern, weights in block.items():
        parts = str(pattern).split("+")
        if not (2 <= len(parts) <= 3 and set(parts) <= names and len(set(parts)) == len(parts)):
            return f"copy_blend pattern {pattern!r} is not two or three of {', '.join(sorted(names))} joined by +"
        if pattern_label(Modality(p) for p in parts) != pattern:
            return f"copy_blend pattern {pattern!r} is not in channel order ({pattern_label(Modality(p) for p in parts)})"
        if not isinstance(weights, Mapping):
            return f"copy_blend[{pattern!r}] must map modalities to weights"
        for mod, w in weights.items():
            if mod not in parts:
                return f"copy_blend[{pattern!r}] names {mod!r}, which that pattern does not synthesize"
            if not isinstance(w, (int, float)) or isinstance(w, bool) or not 0.0 <= float(w) <= 1.0:
                return f"copy_blend[{pattern!r}][{mod!r}] = {w!r} is not a weight in [0, 1]"
    return None
