"""Labels that travel with raw audio: the manifest row of the seed corpus and of user corpora.

A manifest is JSONL, one object per audio file. ``path`` is relative to the
manifest's folder (or an absolute path / URI). Every other field is optional
and typed here; fields this model does not know are kept verbatim in
``extra_labels_json`` of ``segments`` rather than dropped, so a user's own
labels are never lost. The same object (without ``path``) is the ``.json``
member of a WebDataset sample.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SegmentLabels", "ManifestRow", "LABEL_FIELDS"]


class SegmentLabels(BaseModel):
    """What is known about the speech in one file, all optional.

    Units are in the names. ``speaker`` is a stable id (``corpus:voice``);
    ``text_id`` names a sentence of a fixed list so that parallel renderings
    (one sentence, several voices) can be found by a join.
    """

    model_config = ConfigDict(extra="allow")

    # who / what
    speaker: str | None = None
    gender: str | None = None
    language: str | None = None
    transcript: str | None = None
    text_id: str | None = None
    # style
    style: str | None = None
    speaking_rate: float | None = Field(default=None, description="relative to the voice's default, 1.0 = default")
    pitch_shift: float | None = Field(default=None, description="relative pitch factor, 1.0 = default")
    # environment
    environment: str | None = Field(default=None, description="e.g. clean, room, noise, room+noise")
    room: str | None = Field(default=None, description="room preset name, e.g. small_office")
    rt60_s: float | None = None
    room_volume_m3: float | None = None
    noise_type: str | None = None
    noise_snr_db: float | None = None
    # channel
    channel: str | None = Field(default=None, description="effect chain, e.g. clean, telephone+codec2_1200")
    band_low_hz: float | None = None
    band_high_hz: float | None = None
    clip_threshold: float | None = None
    bit_depth: int | None = None
    codec: str | None = None
    codec_bitrate_bps: int | None = None
    # provenance
    corpus: str | None = Field(default=None, description="where the file comes from, e.g. tuxpaint, fillets-cs, espeak-ng")
    origin: str | None = Field(default=None, description="package/file or synthesizer command that made it")
    license: str | None = None
    synthetic: bool | None = None


class ManifestRow(SegmentLabels):
    """One JSONL line of a manifest: a path plus its labels."""

    path: str


LABEL_FIELDS: tuple[str, ...] = tuple(SegmentLabels.model_fields)
