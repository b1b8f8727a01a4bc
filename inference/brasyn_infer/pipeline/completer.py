"""Completing a case whatever it lacks: one missing modality goes to the weights the user chose, exactly as the
BraSyn contract runs them; two or three missing go to weights whose manifest says ``"patterns": "any"`` (those
weights themselves, or the ``companion`` their manifest names). A single missing modality that the manifest's
``companion_targets`` lists goes to the companion too (e.g. t1c, for a companion trained to draw the tumor; the
shipped default lists none).

Each missing modality is synthesized from the real inputs only, all at once (not one after another with each
output fed back: docs/design.md §5 says why).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.errors import CaseError
from brasyn_infer.pipeline.synthesizer import Synthesizer
from brasyn_infer.runtime.manifest import PATTERNS_ANY, companion_path

log = logging.getLogger(__name__)


class Completer:
    """The chosen :class:`Synthesizer`, and the pattern model it names, loaded (with the same runtime knobs) the
    first time a case needs it."""

    def __init__(self, primary: Synthesizer) -> None:
        self.primary = primary
        self._companion: Synthesizer | None = None

    def for_pattern(self, absent: Sequence[Modality], folder: Path | None = None) -> Synthesizer:
        """The synthesizer that completes a case lacking ``absent``; CaseError naming the case and what the weights
        support when none does."""
        manifest = self.primary.manifest
        if not manifest.companion_completes(absent):
            if len(absent) == 1 or manifest.patterns == PATTERNS_ANY:
                return self.primary
            names = ", ".join(m.value for m in absent)
            raise CaseError(f"{len(absent)} modalities missing ({names}); the weights {manifest.name} complete "
                            f"{manifest.supported}", folder,
                            "provide all but one modality, or use weights for any pattern (the default does it)")
        if self._companion is None:
            self._companion = self.primary.sibling(companion_path(manifest))
            log.info("%s missing: completed by %s", "+".join(m.value for m in absent), self._companion.manifest.name)
        return self._companion

    def work_total(self, volumes: Mapping[Modality, np.ndarray], absent: Sequence[Modality],
                   folder: Path | None = None) -> int:
        """Slices (or windows) the case takes, all its absent modalities together: the progress bar's total."""
        return self.for_pattern(absent, folder).work_total(volumes) * len(absent)

    def complete(self, volumes: Mapping[Modality, np.ndarray], absent: Sequence[Modality],
                 on_batch: Callable[[int], None] | None = None,
                 folder: Path | None = None) -> dict[Modality, dict[str, np.ndarray]]:
        """Each absent modality's stages (:meth:`Synthesizer.synthesize_stages`), in MODALITIES order."""
        synth = self.for_pattern(absent, folder)
        ordered = [m for m in MODALITIES if m in absent]
        return {target: synth.synthesize_stages(volumes, target, on_batch,
                                                absent=[m for m in ordered if m is not target])
                for target in ordered}
