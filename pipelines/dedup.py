"""Exact dedup by PCM hash, deterministic across runs and resumes.

Rule: a segment whose PCM hash is already in the table loses to the row
there (first ingested wins, so downstream tables never lose their source);
among new segments with the same hash, the one with the most labels wins
(a bare copy must not displace the labelled original), then the smallest
(source_uri, start_s). Chunks are processed in sorted source order, so a run killed and
resumed keeps exactly the segments an uninterrupted run keeps.

Rows are identified by (segment_id, source_uri): two byte-identical files
give the same ``segment_id`` (it hashes the content), and only one of them
may stay.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DedupDecision", "decide_duplicates", "RowKey"]

RowKey = tuple[str, str]  # (segment_id, source_uri)


@dataclass(frozen=True)
class DedupDecision:
    """What to do with the new segments of one chunk."""

    already_present: frozenset[RowKey]  # this exact row is in the table (resumed run): skip silently
    duplicates: dict[RowKey, str]  # row -> segment_id of the copy that is kept


def decide_duplicates(
    new: list[tuple[str, str, str, float, int]],
    existing_by_hash: dict[str, str],
    existing_rows: set[RowKey],
) -> DedupDecision:
    """Decide over new (segment_id, pcm_hash, source_uri, start_s, label_count) rows, given the table's state."""
    present = frozenset((r[0], r[2]) for r in new if (r[0], r[2]) in existing_rows)
    dupes: dict[RowKey, str] = {}
    winners: dict[str, str] = {}
    for sid, pcm, uri, _start, _labels in sorted(new, key=lambda r: (-r[4], r[2], r[3], r[0])):
        key = (sid, uri)
        if key in present:
            continue
        if pcm in existing_by_hash:
            dupes[key] = existing_by_hash[pcm]
        elif pcm in winners:
            dupes[key] = winners[pcm]
        else:
            winners[pcm] = sid
    return DedupDecision(present, dupes)
