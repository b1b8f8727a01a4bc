"""QC pictures of a dry run: three orthogonal planes of the inputs, the synthesis, the truth, their
difference and the uncertainty map. Arrays are ``(X, Y, Z)`` as nibabel loads them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from brasyn_infer.constants import Modality
from brasyn_infer.evaluation.metrics import Scaled
from brasyn_infer.io.atomic import atomic_path


def _center(truth: np.ndarray, seg: np.ndarray | None) -> tuple[int, int, int]:
    mask = seg > 0 if seg is not None and (seg > 0).any() else truth > 0
    if not mask.any():
        return tuple(s // 2 for s in truth.shape)  # type: ignore[return-value]
    return tuple(int(round(c)) for c in np.argwhere(mask).mean(0))  # type: ignore[return-value]


def _planes(volume: np.ndarray, center: tuple[int, int, int]) -> list[np.ndarray]:
    x, y, z = center
    return [np.rot90(volume[:, :, z]), np.rot90(volume[:, y, :]), np.rot90(volume[x, :, :])]


#: the outlines' colors: the expert segmentation, the one from the real sequences, the one from the completed case
OUTLINE_COLORS = {"expert": "lime", "real": "cyan", "completed": "yellow"}


def qc_png(path: Path, inputs: Mapping[Modality, np.ndarray], synthesized: np.ndarray | Scaled,
           truth: np.ndarray | Scaled, seg: np.ndarray | None, title: str, uncertainty: np.ndarray | None = None,
           outlines: Mapping[str, np.ndarray | None] | None = None) -> None:
    """Three orthogonal slices: the inputs, the synthesized and the real volume (each on its own 0.5-99.5
    percentile scale, as the metrics compare them; either may be passed already :class:`Scaled`), their
    |difference| on those [0, 1] images, and the ``uncertainty`` map (output units) brought to the synthesized
    volume's [0, 1] scale, on the difference's color scale; written atomically. ``outlines``: segmentations (name
    -> class or label map, :data:`OUTLINE_COLORS`) whose whole tumor is outlined on the synthesized and real panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    synthesized, truth = Scaled.of(synthesized), Scaled.of(truth)
    center = _center(truth.raw, seg)
    columns = [(m.value, v, float(np.percentile(v[v > 0], 99.5)) if (v > 0).any() else 1.0)
               for m, v in inputs.items()]
    brain = truth.raw > 0
    synthesized01, truth01 = synthesized.unit, truth.unit
    difference = np.abs(synthesized01 - truth01)
    error_top = float(np.percentile(difference[brain], 99.5)) if brain.any() else 1.0
    columns += [("synthesized", synthesized01, 1.0), ("real", truth01, 1.0), ("|difference|", difference, error_top or 1.0)]
    if uncertainty is not None:
        columns.append(("uncertainty", uncertainty / max(synthesized.hi - synthesized.lo, 1e-12), error_top or 1.0))
    fig, axes = plt.subplots(3, len(columns), figsize=(2.2 * len(columns), 6.9), facecolor="black")
    for col, (name, volume, vmax) in enumerate(columns):
        for row, plane in enumerate(_planes(volume, center)):
            ax = axes[row, col]
            ax.imshow(plane, cmap="magma" if name in ("|difference|", "uncertainty") else "gray", vmin=0, vmax=vmax,
                      interpolation="nearest")
            ax.set_axis_off()
            if name in ("synthesized", "real"):
                for key, labels in (outlines or {}).items():
                    if labels is not None and (labels > 0).any():
                        ax.contour(_planes(labels > 0, center)[row].astype(np.float32), levels=[0.5],
                                   colors=OUTLINE_COLORS.get(key, "white"), linewidths=0.6)
            if row == 0:
                ax.set_title(name, color="white", fontsize=9)
    fig.suptitle(title, color="white", fontsize=10)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=80, facecolor="black", format="png")
    finally:
        plt.close(fig)
