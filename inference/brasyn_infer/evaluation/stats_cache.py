"""The linear baseline's statistics of each case, kept in ``REPORT_DIR/linear-stats/`` so shards and reruns share
them (:mod:`brasyn_infer.synthesis.linear`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from brasyn_infer.constants import Modality
from brasyn_infer.io.atomic import write_json_atomic
from brasyn_infer.synthesis.linear import LinearStats, StatsTable


class StatsCache:
    """One JSON file per case (written atomically)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.table = StatsTable()

    def path(self, case_id: str) -> Path:
        return self.folder / f"{case_id}.json"

    def load(self, case_id: str, drops: list[Modality]) -> bool:
        """Load a case's statistics if kept (for every modality of ``drops``); whether they were."""
        if all(self.table.has(case_id, m) for m in drops):
            return True
        try:
            data = json.loads(self.path(case_id).read_text())
        except (OSError, ValueError):
            return False
        if not all(m.value in data for m in drops):
            return False
        for m in drops:
            self.table.add(case_id, m, LinearStats.from_json(data[m.value]))
        return True

    def store(self, case_id: str, stats: Mapping[Modality, LinearStats]) -> None:
        for m, s in stats.items():
            self.table.add(case_id, m, s)
        write_json_atomic(self.path(case_id), {m.value: s.to_json() for m, s in self.table.cases[case_id].items()})
