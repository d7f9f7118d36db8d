"""Lance SQL literals built from Python values (filters are strings; quoting lives in one place)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["sql_quote", "sql_list"]


def sql_quote(value: str) -> str:
    """``value`` as a Lance SQL string literal.

    Example:
        >>> sql_quote("it's")
        "'it''s'"
    """
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: Iterable[str]) -> str:
    """Comma-separated string literals, for ``x IN (...)``."""
    return ", ".join(sql_quote(v) for v in values)
