"""Helpers shared by the training tests."""

from __future__ import annotations

from pathlib import Path


def validation_model(folder: Path, trained_on: list[str]):
    """A tiny exported prior-residual generator (width 8, with its log-scale output) whose manifest records
    ``trained_on`` as its training cases: what ``make train`` leaves for the validation steps. Needs torch."""
    import torch

    from brasyn_infer.authoring.models.export import export
    from brasyn_infer.authoring.models.hfgan import HFGANConfig
    from brasyn_infer.authoring.models.residual import PriorResidualHFGAN

    torch.manual_seed(0)
    normalization = {"scheme": "percentile", "percentile": 99.5,
                     "reference_scale": {m: 1000.0 for m in ("t1c", "t1n", "t2f", "t2w")}}
    return export(PriorResidualHFGAN(HFGANConfig(dim=8, num_outputs=2)), folder, "val",
                  normalization=normalization, training={"data": {"train": trained_on}})
