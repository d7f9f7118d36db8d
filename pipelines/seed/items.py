"""The build plan's data types: where a clean signal comes from, what is done to it, how it is written.

Every output file is one :class:`RenderItem`, fully specified at planning time
(all random draws already made), so rendering is a pure function of the item:
that is what makes the build parallel, resumable and reproducible, and what the
spec hash in the ledger fingerprints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FileSource", "SynthSource", "Source", "RoomPlan", "NoisePlan", "ChannelStep", "EffectPlan",
    "EncodingPlan", "RenderItem", "RealUtterance", "spec_hash",
]

RENDER_VERSION = 4
"""Bump when rendering changes in a way that alters output bytes: every file is rebuilt."""


@dataclass(frozen=True)
class FileSource:
    """A recording on disk; ``raw_rate_hz`` set for headerless 16-bit little-endian PCM."""

    path: str
    raw_rate_hz: int | None = None


@dataclass(frozen=True)
class SynthSource:
    """A sentence spoken by a synthesizer voice with a speaking-rate and pitch factor (1.0 = voice default)."""

    voice_id: str
    text: str
    speaking_rate: float = 1.0
    pitch_shift: float = 1.0


Source = FileSource | SynthSource


@dataclass(frozen=True)
class RoomPlan:
    """A shoebox room (pyroomacoustics image-source RIR) with fixed source and mic positions."""

    name: str
    dims_m: tuple[float, float, float]
    rt60_target_s: float
    source_m: tuple[float, float, float]
    mic_m: tuple[float, float, float]


@dataclass(frozen=True)
class NoisePlan:
    """Additive noise at a known SNR; babble from ``donors``, ambience from a real recording."""

    noise_type: str
    snr_db: float
    donors: tuple[Source, ...] = ()
    ambience: FileSource | None = None
    ambience_name: str | None = None


@dataclass(frozen=True)
class ChannelStep:
    """One channel effect; ``params`` are its parameters (also its labels)."""

    kind: str
    params: tuple[tuple[str, float], ...] = ()

    def param(self, name: str) -> float:
        return dict(self.params)[name]


@dataclass(frozen=True)
class EffectPlan:
    """Room, then noise, then the channel chain, in that order."""

    room: RoomPlan | None = None
    noise: NoisePlan | None = None
    channel: tuple[ChannelStep, ...] = ()


@dataclass(frozen=True)
class EncodingPlan:
    """Target file encoding: name from ``pipelines.seed.formats.ENCODINGS``, rate, channel count."""

    encoding: str
    sample_rate_hz: int
    channels: int = 1


@dataclass(frozen=True)
class RenderItem:
    """One output file: ``encoding=None`` copies the source file's bytes verbatim."""

    rel_path: str
    source: Source
    labels: dict[str, Any] = field(default_factory=dict, hash=False)
    effects: EffectPlan | None = None
    encoding: EncodingPlan | None = None
    seed: int = 0
    part: str = "synthetic"


@dataclass(frozen=True)
class RealUtterance:
    """A human recording found in a Debian package, with the labels the package really gives."""

    source: FileSource
    corpus: str
    package: str
    rel_path: str
    labels: dict[str, Any] = field(default_factory=dict, hash=False)


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        fields = {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return {"__type__": type(obj).__name__, **fields}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    return obj


def _file_stamps(item: RenderItem) -> list[list]:
    """Size and mtime of every input file, so a changed Debian package rebuilds what came from it."""
    paths = []
    sources: list[Any] = [item.source]
    if item.effects is not None and item.effects.noise is not None:
        sources += list(item.effects.noise.donors)
        if item.effects.noise.ambience is not None:
            sources.append(item.effects.noise.ambience)
    for src in sources:
        if isinstance(src, FileSource):
            try:
                st = os.stat(src.path)
                paths.append([src.path, st.st_size, st.st_mtime_ns])
            except FileNotFoundError:
                paths.append([src.path, None, None])
    return paths


def _espeak_argument_if_renamed(source: Source) -> str | None:
    """The ``espeak-ng -v`` argument of an espeak-ng voice when it is not the voice's name (see
    ``espeak_voice_argument``: voices with a variant), else None.

    Part of the spec from the fix of dropped variants on: every variant voice's items get a new hash once,
    and re-render (bytes unchanged where the variant was already applied); voices without one keep their hash.
    """
    engine, _, name = source.voice_id.partition(":") if isinstance(source, SynthSource) else ("", "", "")
    if engine != "espeak-ng":
        return None
    from pipelines.seed.voices import espeak_voice_argument

    argument = espeak_voice_argument(name)
    return argument if argument != name else None


def spec_hash(item: RenderItem) -> str:
    """Fingerprint of everything that determines the output bytes (and labels) of ``item``."""
    payload = {"v": RENDER_VERSION, "item": _jsonable(item), "inputs": _file_stamps(item)}
    voice = _espeak_argument_if_renamed(item.source)
    if voice is not None:  # only items whose espeak-ng variant used to be dropped get a new hash and re-render
        payload["espeak_voice"] = voice
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]
