"""One case's synthesis, top to bottom: normalize -> generate -> (prior, uncertainty) -> de-normalize -> refine
-> (t1c) enhance.

:class:`Synthesizer` holds the weights and the runtime knobs and turns three ``(X, Y, Z)`` volumes into the
missing one; :mod:`brasyn_infer.pipeline.run` drives it over many cases with reading and writing overlapped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from brasyn_infer.constants import Device, Modality, View
from brasyn_infer.errors import WeightsError
from brasyn_infer.runtime.manifest import LOG_SCALE, PATTERNS_ANY, WINDOW3D, Manifest, load_manifest, verify
from brasyn_infer.runtime.refiner_manifest import load_refiner_manifest
from brasyn_infer.runtime.segmenter import Segmenter
from brasyn_infer.runtime.sessions import GeneratorSession, RefinerSession, trt_shapes
from brasyn_infer.synthesis.enhance import Enhancement
from brasyn_infer.synthesis.generate import generate_views, generate_volume, generate_windows, slice_count, window_total
from brasyn_infer.synthesis.normalize import Normalizer, background_mask
from brasyn_infer.synthesis.refine import refine_volume, window_count
from brasyn_infer.synthesis.stand_in import blend_toward, copy_weight, stand_in_volume
from brasyn_infer.synthesis.tone import Tone
from brasyn_infer.synthesis.trust import Trust, blend, features, laplace_scale, linear_prior
from brasyn_infer.synthesis.uncertainty import ScaleMap, scale_map
from brasyn_infer.synthesis.windows import BlendMode

log = logging.getLogger(__name__)

#: the stages :meth:`Synthesizer.synthesize_stages` may return, first to last (``uncertainty`` is a map, not a stage)
STAGES = ("generator", "refined", "enhanced")


def final_stage(stages: Mapping[str, np.ndarray]) -> np.ndarray:
    """The volume a run writes: the last of :data:`STAGES` that ran."""
    return next(stages[s] for s in reversed(STAGES) if s in stages)


class Synthesizer:
    """Weights + runtime knobs: turns three input volumes into the missing one (in scanner units).

    Built in two steps like nnU-Net's predictor: the constructor takes the knobs, the weights are
    loaded (and their sha256 verified) once.
    """

    def __init__(self, weights: str | Path | None = None, views: View | Sequence[View] | None = None,
                 batch_size: int | None = None, device: Device = Device.AUTO, threads: int | None = None,
                 fp16: bool = False, refine: bool | None = None, refiner: str | Path | None = None,
                 tta: bool | None = None, prior: bool = True, uncertainty: bool | None = False,
                 tone: bool = True, enhance: bool | None = None, guide: str | Path | None = None) -> None:
        """``refine``: run the 3D Refiner after the generator (None: the manifest's default);
        ``refiner``: the refiner's NAME or manifest path instead of the one the manifest names (implies refine);
        ``tta``: flip test-time augmentation (None: the manifest's ``trust.tta``, else off); ``prior``: blend
        with the manifest's linear prior where it has one (``trust.blend``), and, with several missing, toward the
        stand-in where the manifest says (``copy_blend``); ``uncertainty``: also produce the
        voxel-wise uncertainty map (stage ``"uncertainty"``; None: when the weights make one possible); ``tone``:
        take the output through the manifest's tone curve where it has one (``tone``, :mod:`brasyn_infer.synthesis.tone`);
        ``enhance``: give a synthesized t1c the enhancement stage of the manifest's ``enhance`` block
        (:mod:`brasyn_infer.synthesis.enhance`; None: the block's ``enabled``); ``guide``: the missing-sequence
        segmenter's NAME or manifest path instead of the one the block names (implies enhance)."""
        #: the runtime knobs, for :meth:`sibling`
        self.knobs = {"views": views, "batch_size": batch_size, "device": device, "threads": threads, "fp16": fp16,
                      "tta": tta, "prior": prior, "uncertainty": uncertainty, "tone": tone}
        self.manifest: Manifest = load_manifest(weights)
        verify(self.manifest)
        self.normalizer = Normalizer.from_manifest(self.manifest.normalization)
        self.trust = Trust.from_manifest(self.manifest.trust)
        self.tta = bool(self.manifest.trust.get("tta", False)) if tta is None else tta
        self.prior = prior
        self.tone = Tone.from_manifest(self.manifest.tone, self.manifest.path) if tone else Tone()
        if isinstance(views, View):
            views = (views,)
        self.three_d = self.manifest.kind == WINDOW3D
        if self.three_d and views:
            log.warning("--view does not apply to a 3D (window3d) generator: ignored")
        #: views generated and averaged (one view: plain slice-wise synthesis); () for a 3D generator
        self.views: tuple[View, ...] = () if self.three_d else (tuple(dict.fromkeys(views)) if views else self.manifest.default_views)
        self.session = GeneratorSession(self.manifest.onnx_path, device, batch_size or (1 if self.three_d else None),
                                        threads, fp16=fp16, shapes=trt_shapes(self.manifest))
        self.batch_size = min(self.session.batch_size, int(self.manifest.config.get("max_batch", self.session.batch_size)))
        block = self.manifest.refiner
        if refine is None:
            refine = refiner is not None or bool(block.get("enabled", False))
        spec = refiner or block.get("weights")
        if refine and not spec:
            raise WeightsError("these weights name no refiner", self.manifest.path,
                               "run without --refine, or pass --refiner NAME|PATH")
        self.refiner: RefinerStage | None = RefinerStage(spec, self.manifest.path.parent, device, threads) if refine else None
        self.enhancer: EnhanceStage | None = EnhanceStage.of(self.manifest, enhance, guide, device, threads)
        #: volumes an uncalibrated map takes the spread of: each view, and each view's two passes with --tta
        spread_members = len(self.views) * (1 + self.tta)
        #: the map from the graph's own log-scale output (2D generators that have one)
        self.own_scale = self.manifest.has_log_scale and not self.three_d
        self.scale_map = ScaleMap.from_manifest(self.manifest.uncertainty)
        if uncertainty is None:
            uncertainty = self.own_scale or bool(self.trust.uncertainty) or spread_members >= 2
        self.uncertainty = uncertainty
        if self.tta and self.three_d:
            raise WeightsError("--tta applies to 2D (slice2d) generators only", self.manifest.path, "run without --tta")
        if uncertainty and self.own_scale:
            # the synthesis is the graph's first output, whatever its name (docs/model-contract.md)
            self.session.select_outputs([self.session.output_names[0], LOG_SCALE])
        elif uncertainty and self.three_d and not self.trust.uncertainty:
            raise WeightsError("this 3D (window3d) generator makes no uncertainty map: it has no log_scale output "
                               "and no fitted uncertainty model (trust.uncertainty)", self.manifest.path,
                               "run without --uncertainty, or export the model with a second output log_scale "
                               "(docs/model-contract.md)")
        elif uncertainty and not self.trust.uncertainty and spread_members < 2:
            raise WeightsError("these weights have no fitted uncertainty model (trust.uncertainty), and one view "
                               "without --tta gives no spread to measure", self.manifest.path,
                               "add views (--view sagittal --view axial ...) or --tta, fit one with training/studies/fit_trust.py, or "
                               "give the graph a log_scale output (docs/model-contract.md)")
        if uncertainty and self.trust.uncertainty and set(self.views) != set(self.manifest.default_views):
            log.warning("the uncertainty model was fitted with the views %s; with %s it is not calibrated",
                        "+".join(v.value for v in self.manifest.default_views), self.view_label)
        self.last_seconds: dict[str, float] = {}

    def sibling(self, weights: str | Path) -> Synthesizer:
        """Other weights with this synthesizer's runtime knobs (the views only where the user chose them; no
        refiner; this one's enhancement stage): e.g. the companion that completes cases lacking two or three
        modalities."""
        other = Synthesizer(weights, refine=False, enhance=False, **self.knobs)
        other.enhancer = self.enhancer
        return other

    @property
    def view_label(self) -> str:
        """``sagittal``, or ``sagittal+axial+coronal`` when views are fused; ``3d windows of XxYxZ``."""
        if self.three_d:
            return "3d windows of " + "x".join(map(str, self.manifest.window))
        return "+".join(v.value for v in self.views)

    def work_total(self, volumes: Mapping[Modality, np.ndarray]) -> int:
        """Slices (2D) or windows (3D) one case takes: the progress bar's total."""
        shape = next(iter(volumes.values())).shape
        if not self.three_d:
            return slice_count(shape, self.views)
        background = np.sum([v <= 0 for v in volumes.values()], axis=0) >= 2
        plan = self.manifest.window_plan
        return window_total(shape, background, self.manifest.window, plan["overlap"], plan["placement"], plan["crop"])

    def generate(self, x4: np.ndarray, missing: Modality, background: np.ndarray,
                 on_batch: Callable[[int], None] | None = None, absent: Sequence[Modality] = ()) -> np.ndarray:
        """The generator on the normalized ``(4, X, Y, Z)`` input -> ``(X, Y, Z)`` normalized."""
        fill = self.normalizer.fill
        if not self.three_d:
            return generate_volume(self.session, x4, missing, self.views, self.batch_size, on_batch, fill=fill,
                                   tta=self.tta, absent=absent)
        plan = self.manifest.window_plan
        return generate_windows(lambda x, m: self.session(x, missing=m), x4, missing, background, self.manifest.window,
                                plan["overlap"], BlendMode(plan["blend"]), plan["placement"], plan["crop"],
                                self.batch_size, fill, on_batch)

    @property
    def label(self) -> str:
        """What runs, for logs and reports: weights, views, refiner, the enhancement stage's guide."""
        refiner = f", refiner {self.refiner.manifest.name}" if self.refiner else ""
        enhancer = f", t1c enhanced by {self.enhancer.guide.manifest.name}" if self.enhancer else ""
        return f"{self.manifest.name}, {self.view_label}{refiner}{enhancer}"

    def describe(self) -> dict[str, object]:
        """What runs, for run summaries: weights and refiner with their sha256, views, the enhancement stage (its
        settings and guide) when it runs."""
        refiner = self.refiner.manifest if self.refiner else None
        return {"name": self.manifest.name, "onnx": self.manifest.onnx, "sha256": self.manifest.sha256,
                "views": [v.value for v in self.views],
                "refiner": {"name": refiner.name, "sha256": refiner.sha256} if refiner else None,
                **({"enhance": self.enhancer.describe()} if self.enhancer else {})}

    def synthesize_stages(self, volumes: Mapping[Modality, np.ndarray], missing: Modality,
                          on_batch: Callable[[int], None] | None = None,
                          absent: Sequence[Modality] = ()) -> dict[str, np.ndarray]:
        """Like :meth:`synthesize`, keeping each stage: ``{"generator": ..., "refined": ..., "enhanced": ...}``
        (``refined`` only with a refiner, ``enhanced`` only for t1c with the enhancement stage, from the last stage
        before it); each stage's seconds go to ``self.last_seconds``. ``absent``: the
        modalities the case lacks besides ``missing`` (weights with ``patterns: any`` only); the blend with the
        three-input prior, the tone curve and the refiner apply to one missing only, the blend toward the stand-in
        (the manifest's ``copy_blend``, :mod:`brasyn_infer.synthesis.stand_in`; off with ``prior=False``) to
        several missing only. The uncertainty map is the generator's, before that blend."""
        absent = tuple(m for m in absent if m is not missing)
        if absent and self.manifest.patterns != PATTERNS_ANY:
            raise WeightsError(f"these weights complete {self.manifest.supported}", self.manifest.path,
                               "use weights whose manifest says \"patterns\": \"any\"")
        started = time.perf_counter()
        norm, trust = self.normalizer, self.trust
        x4, scales = norm.stack({m: v for m, v in volumes.items() if m not in absent}, missing)
        background = background_mask(x4, missing, norm.fill, absent)
        members: list[np.ndarray] = []
        own_map = None
        if self.uncertainty and self.own_scale:  # the graph's scale and the views' moments, in one pass
            moments = generate_volume(self.session, x4, missing, self.views, self.batch_size, on_batch, fill=norm.fill,
                                      tta=self.tta, with_scale=True, absent=absent)
            y, own_map = scale_map(moments, missing, self.scale_map)
            del moments
        elif self.uncertainty and not self.three_d and (not trust.calibrated(missing) or "views" in trust.features):
            # the members' spread is needed: keep each view (and, for an uncalibrated map, each TTA pass)
            y, members = generate_views(self.session, x4, missing, self.views, self.batch_size, on_batch, norm.fill,
                                        tta=self.tta, split_tta=not trust.calibrated(missing), absent=absent)
        else:
            y = self.generate(x4, missing, background, on_batch, absent)
        prior = None
        if not absent and missing in trust.linear and ((self.prior and missing in trust.blend) or self.uncertainty):
            prior = linear_prior(x4, missing, trust.linear[missing])
        toward = copy_weight(self.manifest.copy_blend, missing, absent) if absent and self.prior else 0.0
        stand_in = stand_in_volume(norm, x4, background, missing, [m for m in volumes if m not in absent], scales
                                   ) if toward > 0 else None
        del x4
        generated = y
        if prior is not None and self.prior and missing in trust.blend:
            y = blend(y, prior, trust.blend[missing])
        stages = {}
        if self.uncertainty:
            stages["uncertainty"] = self._uncertainty(members or [generated], y, prior, background, missing, scales,
                                                      own_map)
        restored = norm.restore(y, background, missing, scales)
        if stand_in is not None:
            restored = blend_toward(restored, stand_in, toward)
        stages["generator"] = restored if absent else self.tone.apply(restored, missing)
        self.last_seconds = {"generator": time.perf_counter() - started}
        if self.refiner is not None and absent:
            log.warning("the refiner takes three inputs: not run for %s (%d modalities missing)", missing.value,
                        len(absent) + 1)
        elif self.refiner is not None:
            started = time.perf_counter()
            log.info("refining %s (%s windows of %s)", missing.value,
                     window_count(background, self.refiner.manifest.window,
                                  self.refiner.manifest.overlap), "x".join(map(str, self.refiner.manifest.window)))
            stages["refined"] = self.refiner(volumes, stages["generator"], background, missing)
            self.last_seconds["refined"] = time.perf_counter() - started
        if self.enhancer is not None and missing is Modality.T1C:
            started = time.perf_counter()
            present = {m: v for m, v in volumes.items() if m is not missing and m not in absent}
            stages["enhanced"] = self.enhancer(present, final_stage(stages))
            self.last_seconds["enhanced"] = time.perf_counter() - started
        return stages

    def _uncertainty(self, members: list[np.ndarray], output: np.ndarray, prior: np.ndarray | None,
                     background: np.ndarray, missing: Modality, scales: Mapping[Modality, object],
                     own_map: np.ndarray | None = None) -> np.ndarray:
        """The uncertainty map in the output's units, ``(X, Y, Z)`` float32, background 0: the graph's own scale
        (``own_map``), else the fitted Laplace scale (``trust.uncertainty``), else the members' standard deviation
        (uncalibrated)."""
        trust = self.trust
        if own_map is not None:
            scale = own_map
        elif trust.calibrated(missing):
            feats = features(members, output, prior, background, self.normalizer.fill, trust.features, trust.smooth)
            scale = laplace_scale(feats, trust.uncertainty[missing])
        elif len(members) > 1:
            scale = np.std(np.stack(members), axis=0).astype(np.float32)
        else:
            raise WeightsError(f"no uncertainty model for {missing.value} and a single volume to measure spread on",
                               self.manifest.path, "add views (--view ...) or --tta")
        scale *= np.float32(self.normalizer.slope(missing, scales))
        scale[background] = 0
        return scale

    def synthesize(self, volumes: Mapping[Modality, np.ndarray], missing: Modality,
                   on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """``volumes``: the three available ``(X, Y, Z)`` arrays -> the missing one, ``(X, Y, Z)`` float32, background 0."""
        return final_stage(self.synthesize_stages(volumes, missing, on_batch))


class RefinerStage:
    """A refiner's manifest and ONNX session, ready to refine volumes."""

    def __init__(self, spec: str | Path, beside: Path | None = None, device: Device = Device.AUTO,
                 threads: int | None = None) -> None:
        self.manifest = load_refiner_manifest(spec, beside)
        self.session = RefinerSession(self.manifest.onnx_path, self.manifest.window, device, threads)

    def __call__(self, inputs: Mapping[Modality, np.ndarray], synthesized: np.ndarray, background: np.ndarray,
                 missing: Modality, on_window: Callable[[int], None] | None = None) -> np.ndarray:
        m = self.manifest
        return refine_volume(self.session, inputs, synthesized, background, missing, m.window, m.overlap, m.blend,
                             on_window)


class EnhanceStage:
    """The enhancement stage (:mod:`brasyn_infer.synthesis.enhance`): its settings and its guide, loaded."""

    def __init__(self, settings: Enhancement, guide: Segmenter) -> None:
        self.settings, self.guide = settings, guide

    @classmethod
    def of(cls, manifest: Manifest, enhance: bool | None, guide: str | Path | None, device: Device = Device.AUTO,
           threads: int | None = None) -> EnhanceStage | None:
        """The stage ``manifest``'s ``enhance`` block describes, when it runs: ``enhance`` True, or None with the
        block ``enabled`` or a ``guide`` given. WeightsError when asked for and the weights have no such block, or
        when the guide is not a missing-sequence segmenter."""
        settings = Enhancement.from_manifest(manifest.enhance, manifest.path)
        if enhance is None:
            enhance = guide is not None or settings.enabled
        if not enhance:
            return None
        if not settings:
            raise WeightsError("these weights have no enhancement stage (no enhance block in the manifest)",
                               manifest.path, "run without --enhance/--guide, or use weights that have one (the default)")
        spec = guide or settings.guide
        if spec is None:
            raise WeightsError("the enhance block names no guide", manifest.path,
                               "pass --guide NAME|PATH (a missing-sequence segmenter), or add \"guide\" to the block")
        segmenter = Segmenter(spec, device, threads)
        if not segmenter.direct:
            raise WeightsError("the enhancement stage's guide must be a missing-sequence segmenter (its manifest has "
                               "no availability)", segmenter.manifest.path, "name one trained with --any-pattern")
        return cls(settings, segmenter)

    def describe(self) -> dict[str, object]:
        s = self.settings
        return {"guide": self.guide.describe(), "ratio": s.ratio, "necrosis": s.necrosis, "feather": s.feather}

    def __call__(self, present: Mapping[Modality, np.ndarray], t1c: np.ndarray) -> np.ndarray:
        """``t1c`` ``(X, Y, Z)`` with the guide's tumor, found in the ``present`` real modalities, given real t1c's
        contrast."""
        return self.settings(t1c, self.guide.segment(present))
