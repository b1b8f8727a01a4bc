"""One case and pattern of a dry run: complete the case as ``run`` does, score each synthesized modality (the model's
stages, the ``mean`` and ``copy`` baselines), segment the completed cases and the reduced one (``direct``:
the missing-sequence segmenter on what the pattern leaves) (``evaluate --segment``), keep the volumes
(``--save-volumes``) and draw the QC picture."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import numpy as np

from brasyn_infer.constants import Modality
from brasyn_infer.evaluation.baselines import baseline_output, predict_mean
from brasyn_infer.evaluation.metrics import Scaled, score
from brasyn_infer.evaluation.patterns import Pattern, label
from brasyn_infer.evaluation.qc import qc_png
from brasyn_infer.evaluation.ranking import MapErrors, map_quality
from brasyn_infer.io.cases import CaseFiles
from brasyn_infer.io.nifti import Volume, output_image, write_atomic
from brasyn_infer.pipeline.synthesizer import STAGES, final_stage
from brasyn_infer.synthesis.stand_in import copy_source

MODEL, REFINED, ENHANCED, REAL, DIRECT = "model", "model+refiner", "model+enhance", "real", "direct"
#: the row of each stage of :meth:`~brasyn_infer.pipeline.synthesizer.Synthesizer.synthesize_stages`
STAGE_METHODS = {"generator": MODEL, "refined": REFINED, "enhanced": ENHANCED}


def score_pattern(run, files: CaseFiles, loaded: Mapping[Modality, Volume], pattern: Pattern,
                  tumor: np.ndarray | None, save_path: Callable[..., Path]) -> list[dict]:
    """The rows of one case with ``pattern`` dropped (``run``: the dry run's :class:`~.dry_run.Run`)."""
    synth, options = run.synth, run.options
    inputs = {m: v.data for m, v in loaded.items() if m not in pattern}
    engine = run.completer.for_pattern(pattern, files.folder)
    border = options.ssim_border
    rows: list[dict] = []
    outputs: dict[Modality, dict[str, np.ndarray]] = {}
    seconds: dict[Modality, dict[str, float]] = {}
    for target in pattern:  # what `brasyn-infer run` calls for this case
        outputs[target] = engine.synthesize_stages(inputs, target, absent=[m for m in pattern if m is not target])
        seconds[target] = dict(engine.last_seconds)
    like = loaded[pattern[0]].image
    if options.save_volumes is not None:
        for target, stages in outputs.items():
            path = save_path(options.save_volumes, files.case_id, pattern, target)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(output_image(stages["generator"], like), path)
            if "uncertainty" in stages:  # the map beside it, as `run --uncertainty` names it
                write_atomic(output_image(stages["uncertainty"], like),
                             save_path(options.save_volumes, files.case_id, pattern, target, map_file=True))
    downstream: dict[str, dict] = {}
    outlines: dict[str, np.ndarray] = {}
    protocol = run.protocol
    if protocol is not None:
        # the completed case of each stage: a target without that stage (the enhancement is t1c's) at its last
        # stage before it; the refiner's stage only where every target was refined
        completed = {stage: {**inputs, **{t: final_stage({k: v for k, v in s.items() if k in STAGES[:i + 1]})
                                          for t, s in outputs.items()}}
                     for i, stage in enumerate(STAGES)
                     if (any if stage == "enhanced" else all)(stage in s for s in outputs.values())}
        for stage, volumes in completed.items():  # the QC picture outlines the last stage's, the one it shows
            classes, downstream[STAGE_METHODS[stage]] = protocol.score(volumes)
            outlines = {"expert": protocol.expert, "real": protocol.real, "completed": classes}
        if "copy" in options.baselines:
            _, downstream["copy"] = protocol.score({**inputs, **{t: inputs[copy_source(t, inputs)] for t in pattern}})
        downstream[REAL] = protocol.real_scores()
        if protocol.direct is not None:
            downstream[DIRECT] = protocol.direct_scores(inputs)
    for target in pattern:
        stages = outputs[target]
        base = {"case": files.case_id, "pattern": label(pattern), "modality": target.value}
        truth = Scaled.of(loaded[target].data)  # scaled once for every score, the map's errors and the picture
        scaled = {stage: Scaled.of(stages[stage]) for stage in STAGES if stage in stages}
        quality = {}
        if "uncertainty" in stages:  # how the map ranks the generator stage's real errors, over the brain
            quality = map_quality(stages["uncertainty"], MapErrors.of(scaled["generator"], truth))
        elapsed = seconds[target]
        for i, stage in enumerate(STAGES):  # each stage's seconds include the stages before it
            method, spent = STAGE_METHODS[stage], sum(elapsed.get(s, 0.0) for s in STAGES[:i + 1])
            if stage in stages:
                rows.append({**base, "method": method, **score(scaled[stage], truth, tumor=tumor, border=border),
                             **downstream.get(method, {}), **(quality if stage == "generator" else {}),
                             "seconds": spent})
        if "mean" in options.baselines:
            started = time.perf_counter()
            y = baseline_output(synth.normalizer, inputs, target,
                                partial(predict_mean, missing=target, absent=[m for m in pattern if m is not target]))
            rows.append({**base, "method": "mean", **score(y, truth, tumor=tumor, border=border),
                         "seconds": time.perf_counter() - started})
        if "copy" in options.baselines:
            started = time.perf_counter()
            source = copy_source(target, inputs)
            rows.append({**base, "method": "copy", **score(inputs[source], truth, tumor=tumor, border=border),
                         **downstream.get("copy", {}), "seconds": time.perf_counter() - started})
        for method in (REAL, DIRECT):
            if method in downstream:
                rows.append({**base, "method": method, **downstream[method]})
        if target is pattern[0]:
            name = files.case_id + "-" + label(pattern).replace("+", "_")
            qc_png(run.report_dir / f"{name}.png", inputs, final_stage(scaled), truth,
                   tumor, title=f"{files.case_id}: {label(pattern)} synthesized, {target.value} shown ({synth.label})",
                   uncertainty=stages.get("uncertainty"), outlines=outlines)
    return rows
