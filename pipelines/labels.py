"""Split raw label dicts (manifest rows, WebDataset ``.json``) into typed columns and the rest.

Nothing a user labelled is dropped: a known field with a value of the wrong
type, and every unknown field, go to ``extra_labels_json`` verbatim.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from schemas.labels import LABEL_FIELDS, SegmentLabels

__all__ = ["split_labels"]


def split_labels(raw: dict) -> tuple[dict, str | None]:
    """(typed label columns, JSON of everything else or None)."""
    typed: dict = {}
    extra: dict = {}
    for key, value in raw.items():
        if key == "path":
            continue
        if key not in LABEL_FIELDS:
            extra[key] = value
            continue
        try:
            typed[key] = getattr(SegmentLabels.model_validate({key: value}), key)
        except ValidationError:
            extra[key] = value
    return typed, (json.dumps(extra, sort_keys=True, default=str) if extra else None)
