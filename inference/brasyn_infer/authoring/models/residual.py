"""HFGAN as a residual over a linear prior, with a second output for its own uncertainty (docs/design.md).

``PriorResidualHFGAN.forward(x, mask, missing, view) -> (y, log_scale)``, both ``(B, 1, H, W)``:

- ``prior = sum_c w[missing, c] * x[:, c] + w[missing, 4]``: a per-voxel linear regression from the available
  channels (the weight of the missing channel is 0), with one row of coefficients per missing modality, fitted on
  the training cases' brain voxels by least squares (:func:`brasyn_infer.synthesis.linear.prior_table`, the same
  fit as ``evaluate --baseline linear``). It is a buffer of the graph, not a trained parameter.
- ``y = prior + r``, where ``r`` is HFGAN's first output channel: the network learns only what the regression
  misses, and starts from it (the last layer's weights of ``r`` start at zero, so an untrained model is the prior).
- ``log_scale``: HFGAN's second output channel, the log of the scale ``b`` of a Laplace distribution of the error
  ``|y - truth|`` (``E|error| = b``), trained with the Laplace negative log-likelihood (``training/losses.py``).

Both outputs are in normalized units. The ONNX graph has the same inputs as HFGAN's and the outputs ``y`` and
``log_scale`` (docs/model-contract.md).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from brasyn_infer.authoring.models.hfgan import HFGAN, HFGANConfig
from brasyn_infer.authoring.models.hfgan_layers import NUM_MODALITIES

ARCHITECTURE = "hfgan-prior-residual"


class PriorResidualHFGAN(nn.Module):
    """An HFGAN of ``num_outputs=2`` (residual, log-scale) on top of a fixed linear prior: ``(4, 5)`` (one row per
    missing modality, the other three available) or, with ``patterns``, ``(4, 16, 5)`` (one row per target and
    availability code ``mask @ [1, 2, 4, 8]``, :func:`brasyn_infer.synthesis.linear.pattern_table`): a model for
    cases with one, two or three modalities missing."""

    def __init__(self, cfg: HFGANConfig, prior: np.ndarray | None = None, patterns: bool = False) -> None:
        super().__init__()
        if cfg.num_outputs != 2:
            raise ValueError("the residual model needs num_outputs=2 (the residual and the log-scale)")
        self.cfg = cfg
        self.patterns = patterns
        self.net = HFGAN(cfg)
        shape = (NUM_MODALITIES, 2**NUM_MODALITIES, NUM_MODALITIES + 1) if patterns else (NUM_MODALITIES, NUM_MODALITIES + 1)
        table = np.zeros(shape, np.float32) if prior is None else prior
        if tuple(np.shape(table)) != shape:
            raise ValueError(f"the prior table must be {shape}, got {tuple(np.shape(table))}")
        self.register_buffer("prior", torch.as_tensor(np.asarray(table, dtype=np.float32)))
        last = self.net.decoder.conv_final[-1]
        with torch.no_grad():  # the residual starts at 0: an untrained model outputs the prior
            last.weight[0].zero_()
            last.bias[0].zero_()

    def linear_prior(self, x: torch.Tensor, missing: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 1, H, W)``: the regression of the missing channel from the others (``missing`` ``(B,)`` float); with
        a pattern table, from the channels ``mask`` ``(B, 4)`` marks available."""
        if self.patterns:
            if mask is None:
                raise ValueError("a pattern prior needs the availability mask")
            bits = torch.tensor([1.0, 2.0, 4.0, 8.0], device=x.device, dtype=torch.float32)
            index = missing.to(torch.float32) * float(2**NUM_MODALITIES) + (mask.to(torch.float32) * bits).sum(dim=1)
            codes = torch.arange(NUM_MODALITIES * 2**NUM_MODALITIES, device=x.device, dtype=torch.float32)
            onehot = index[:, None] == codes[None, :]
            table = self.prior.reshape(NUM_MODALITIES * 2**NUM_MODALITIES, NUM_MODALITIES + 1)
        else:
            onehot = (missing.to(torch.float32)[:, None] == torch.arange(NUM_MODALITIES, device=x.device)[None, :])
            table = self.prior
        rows = onehot.to(x.dtype) @ table.to(x.dtype)  # (B, 5)
        weights = rows[:, :NUM_MODALITIES, None, None]
        return (x * weights).sum(dim=1, keepdim=True) + rows[:, NUM_MODALITIES:, None, None]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, missing: torch.Tensor, view: torch.Tensor,
                origin: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(x, mask, missing, view, origin)
        return self.linear_prior(x, missing, mask) + out[:, 0:1], out[:, 1:2]
