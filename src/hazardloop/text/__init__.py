"""Hazard text intelligence: suggest category, GB 6441 accident type and level; find duplicates
and recurring patterns; learn from people's verdicts.

A pure library plus the ``hazardloop text`` commands; the hazard register calls these
functions with plain records and stores the verdicts (until then, :mod:`feedback` keeps them
in a JSON Lines file).

Names are loaded on first use (PEP 562) so that importing ``hazardloop.text.cli`` — which the
main ``hazardloop`` command does for every command — does not import scikit-learn.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "classifier": ("MODEL_NAME", "Prediction", "TextClassifier"),
    "clusters": ("HazardCluster", "cluster_hazards"),
    "duplicates": ("DuplicateMatch", "duplicate_guard", "exact_duplicate_groups", "near_duplicates"),
    "errors": ("DatasetError", "ModelFileError", "RuleTableError", "TextError", "TextInputError"),
    "feedback": ("Label", "accuracy_over_time", "read_labels", "record_label"),
    "level": ("Level", "LevelSuggestion", "combine_levels", "suggest_level"),
    "modelfile": ("TextModel", "build_model", "load_model", "save_model"),
    "records": ("HazardText",),
    "suggest": ("Suggestion", "suggest"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'hazardloop.text' has no attribute {name!r}")
    value = getattr(import_module(f"hazardloop.text.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
