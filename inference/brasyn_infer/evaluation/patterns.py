"""Which modalities a dry run drops at once (a **pattern**). The copy baseline's source for each missing one is
:func:`brasyn_infer.synthesis.stand_in.copy_source`.

A pattern is a tuple of one to three modalities in MODALITIES order, labelled ``t1c`` or ``t1c+t2f``. ``--drop``
takes a comma list of patterns (``t1c``, ``t1c+t2f``) or a group: ``all`` (each modality in turn, one missing:
the BraSyn setting), ``pairs`` (the six patterns of two missing), ``singles`` (the four patterns that leave one
input), ``every`` (all fourteen).
"""

from __future__ import annotations

from itertools import combinations

from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.errors import UsageError
from brasyn_infer.synthesis.stand_in import pattern_label

Pattern = tuple[Modality, ...]


def ordered(modalities) -> Pattern:
    """The modalities as a pattern: unique, in MODALITIES order."""
    chosen = set(modalities)
    return tuple(m for m in MODALITIES if m in chosen)


def label(pattern: Pattern) -> str:
    """``t1c`` or ``t1c+t2f``."""
    return pattern_label(pattern)


def group(name: str) -> list[Pattern]:
    """The patterns of a group name: ``all``, ``pairs``, ``singles`` or ``every``."""
    if name == "all":
        return [(m,) for m in MODALITIES]
    if name == "pairs":
        return [ordered(c) for c in combinations(MODALITIES, 2)]
    if name == "singles":
        return [ordered(c) for c in combinations(MODALITIES, 3)]
    if name == "every":
        return group("all") + group("pairs") + group("singles")
    raise KeyError(name)


def parse_drop(text: str) -> list[Pattern]:
    """``--drop``: patterns and groups, comma-separated; UsageError naming the bad item."""
    patterns: list[Pattern] = []
    for item in (t.strip().lower() for t in text.split(",") if t.strip()):
        found = group(item) if item in GROUPS else [_pattern(item)]
        patterns += [p for p in found if p not in patterns]
    if not patterns:
        raise UsageError(f"--drop {text!r} names no pattern", fix="e.g. --drop all")
    return patterns


GROUPS = ("all", "pairs", "singles", "every")


def _pattern(item: str) -> Pattern:
    """One ``--drop`` item that is no group: ``t1c`` or ``t1c+t2f``."""
    try:
        mods = [Modality(part.strip()) for part in item.split("+")]
    except ValueError as error:
        raise UsageError(f"--drop {item!r}: {error}", fix="use t1c,t1n,t2f,t2w, patterns such as t1c+t2f, "
                         "or all, pairs, singles, every") from None
    if len(set(mods)) != len(mods) or len(mods) > 3:
        raise UsageError(f"--drop {item!r}: a pattern drops one to three different modalities", fix="e.g. t1c+t2f")
    return ordered(mods)
