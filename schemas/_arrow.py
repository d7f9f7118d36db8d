"""Helpers shared by the table schemas: id hashing and the pydantic -> arrow check."""

from __future__ import annotations

import hashlib
import types
import typing
from datetime import datetime

import pyarrow as pa
from pydantic import BaseModel

__all__ = ["stable_id", "arrow_type_for", "check_model_matches_schema", "BLOB_METADATA"]

#: Field metadata that makes Lance store a large_binary column as a blob (out of line).
BLOB_METADATA = {"lance-encoding:blob": "true"}

_PY_TO_ARROW: dict[type, pa.DataType] = {
    str: pa.string(),
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),
    bytes: pa.large_binary(),
    datetime: pa.timestamp("us", tz="UTC"),
}


def stable_id(*parts: object) -> str:
    """A deterministic 32-hex id of the parts (blake2b-128); same inputs -> same id, on any machine."""
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\x1f")
    return h.hexdigest()


def _unwrap_optional(annotation: object) -> tuple[object, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return annotation, False


def arrow_type_for(annotation: object) -> tuple[pa.DataType, bool]:
    """The arrow type a pydantic annotation maps to, and whether it is nullable."""
    inner, nullable = _unwrap_optional(annotation)
    if typing.get_origin(inner) is typing.Literal:
        return pa.string(), nullable
    if isinstance(inner, type) and issubclass(inner, str):  # str enums
        return pa.string(), nullable
    return _PY_TO_ARROW[inner], nullable  # type: ignore[index]


def _same_family(a: pa.DataType, b: pa.DataType) -> bool:
    if a == b:
        return True
    families = (pa.types.is_integer, pa.types.is_floating, pa.types.is_string, pa.types.is_binary,
                pa.types.is_large_binary, pa.types.is_timestamp, pa.types.is_boolean)
    return any(f(a) and f(b) for f in families) or (
        (pa.types.is_binary(a) or pa.types.is_large_binary(a)) and (pa.types.is_binary(b) or pa.types.is_large_binary(b)))


def check_model_matches_schema(model: type[BaseModel], schema: pa.Schema) -> list[str]:
    """Differences between a row model and its table schema (empty list = they agree).

    Widths may differ (a python ``float`` is stored as float32 where the table
    says so) but the family, the nullability and the set of names may not.
    """
    problems: list[str] = []
    fields = model.model_fields
    for name in fields.keys() - set(schema.names):
        problems.append(f"{model.__name__}.{name} has no column in the table schema")
    for name in set(schema.names) - fields.keys():
        problems.append(f"column {name!r} has no field in {model.__name__}")
    for name, info in fields.items():
        if name not in schema.names:
            continue
        expected, nullable = arrow_type_for(info.annotation)
        field = schema.field(name)
        if not _same_family(expected, field.type):
            problems.append(f"{name}: model says {expected}, table says {field.type}")
        if nullable != field.nullable:
            problems.append(f"{name}: model nullable={nullable}, table nullable={field.nullable}")
    return problems
