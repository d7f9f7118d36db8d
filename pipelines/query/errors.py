"""The one error type of the query interface: whatever the user got wrong, said in one line."""

from __future__ import annotations

__all__ = ["QueryError"]


class QueryError(ValueError):
    """A query that cannot run (missing table or column, bad SQL, wrong vector size, unknown version or run).

    The CLI prints ``error: <message>`` and exits 2; library callers catch it like any ``ValueError``.
    """
