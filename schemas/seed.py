"""Config of ``jobs/make_seed_corpus.py``: which real speech, which voices, which rooms/noises/channels, which formats.

Validated at start-up (``schemas.curate.load_config(path, SeedConfig)``);
unknown keys are errors that name the key (``extra="forbid"`` on every block).
Relative ``output_dir`` resolves against ``$LSM_HOME`` or the cwd; relative
``sentence_files`` against the repository root (they ship with the code).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "RealSource", "RoomName", "NoiseType", "ChannelKind", "EncodingName",
    "RealSpeechConfig", "SyntheticConfig", "EnvironmentConfig", "FormatsConfig", "BadInputsConfig", "SeedConfig",
    "REAL_SOURCES", "ROOM_NAMES", "NOISE_TYPES", "CHANNEL_KINDS", "ENCODING_NAMES",
]

RealSource = Literal["tuxpaint", "fillets-cs", "fillets-nl", "codec2", "pocketsphinx", "alsa", "linphone"]
RoomName = Literal["small_office", "living_room", "bathroom", "classroom", "lecture_hall"]
NoiseType = Literal["white", "pink", "brown", "babble", "ambience"]
ChannelKind = Literal["telephone", "eq", "clipping", "low_bit_depth", "codec2", "opus"]
EncodingName = Literal["wav_pcm16", "wav_pcm24", "wav_float", "flac_pcm16", "flac_pcm24", "ogg_vorbis", "ogg_opus"]
SampleRate = Literal[8000, 16000, 22050, 24000, 32000, 44100, 48000]
Codec2Mode = Literal[3200, 2400, 1600, 1400, 1300, 1200, 700]

REAL_SOURCES: tuple[str, ...] = RealSource.__args__
ROOM_NAMES: tuple[str, ...] = RoomName.__args__
NOISE_TYPES: tuple[str, ...] = NoiseType.__args__
CHANNEL_KINDS: tuple[str, ...] = ChannelKind.__args__
ENCODING_NAMES: tuple[str, ...] = EncodingName.__args__


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RealSpeechConfig(_Strict):
    """Human speech shipped in Debian packages, copied byte for byte (see ``pipelines.seed.real_speech``)."""

    sources: list[RealSource] = Field(default_factory=lambda: list(REAL_SOURCES))
    max_files_per_source: int | None = Field(default=None, ge=1, description="None: every file (the full corpus)")


class SyntheticConfig(_Strict):
    """Parallel speech: every sentence spoken by several voices, some of them also in a second style."""

    sentence_files: list[str] = Field(default_factory=lambda: ["pipelines/seed/sentences_en.txt"], min_length=1)
    max_sentences_per_language: int | None = Field(default=None, ge=1)
    voices: list[str] = Field(min_length=3, description="engine:voice, e.g. espeak-ng:en-us+m3, flite:slt")
    voices_per_sentence: int = Field(default=4, ge=2, description="capped by the voices of the sentence's language")
    styled_share: float = Field(default=0.25, ge=0, le=1,
                                description="share of (sentence, voice) pairs also rendered in a non-neutral style")
    style_rates: list[float] = Field(default_factory=lambda: [0.75, 1.3],
                                     description="speaking-rate factors for styled renders")
    style_pitches: list[float] = Field(default_factory=lambda: [0.8, 1.25],
                                       description="pitch factors for styled renders")

    @field_validator("voices")
    @classmethod
    def _check_voice_ids(cls, voices: list[str]) -> list[str]:
        for voice in voices:
            engine, _, name = voice.partition(":")
            if engine not in ("espeak-ng", "flite", "festival") or not name:
                raise ValueError(f"voice {voice!r}: expected espeak-ng:<voice>, flite:<voice> or festival:<voice>")
        if len(set(voices)) != len(voices):
            raise ValueError("voices: duplicates")
        return voices

    @field_validator("style_rates", "style_pitches")
    @classmethod
    def _check_factors(cls, factors: list[float]) -> list[float]:
        if any(not 0.5 <= f <= 2.0 for f in factors):
            raise ValueError("style factors must lie in [0.5, 2.0]")
        return factors


class EnvironmentConfig(_Strict):
    """Labeled room / noise / channel variants of clean utterances (see ``pipelines.seed.effects``)."""

    synthetic_share: float = Field(default=0.3, ge=0, le=1,
                                   description="share of clean synthetic utterances that get one variant")
    real_share: float = Field(default=0.02, ge=0, le=1, description="share of real utterances that get one variant")
    room_probability: float = Field(default=0.5, ge=0, le=1)
    noise_probability: float = Field(default=0.6, ge=0, le=1)
    channel_probability: float = Field(default=0.6, ge=0, le=1)
    rooms: list[RoomName] = Field(default_factory=lambda: list(ROOM_NAMES), min_length=1)
    noise_types: list[NoiseType] = Field(default_factory=lambda: list(NOISE_TYPES), min_length=1)
    snr_db_range: tuple[float, float] = (0.0, 25.0)
    channels: list[ChannelKind] = Field(default_factory=lambda: list(CHANNEL_KINDS), min_length=1)
    codec2_modes_bps: list[Codec2Mode] = Field(default_factory=lambda: [3200, 1600, 1200, 700], min_length=1)
    opus_bitrates_bps: list[int] = Field(default_factory=lambda: [6000, 12000, 24000], min_length=1)
    babble_talkers: int = Field(default=5, ge=2, le=12)

    @field_validator("opus_bitrates_bps")
    @classmethod
    def _check_opus(cls, rates: list[int]) -> list[int]:
        if any(not 6000 <= r <= 256000 for r in rates):
            raise ValueError("opus bitrates must lie in [6000, 256000] bps")
        return rates

    @model_validator(mode="after")
    def _check_snr(self) -> EnvironmentConfig:
        low, high = self.snr_db_range
        if low > high:
            raise ValueError(f"snr_db_range: low ({low}) must be <= high ({high})")
        return self


class FormatsConfig(_Strict):
    """How files are written: encodings (weights), sample rates, stereo share, shard sizes."""

    sample_rates_hz: list[SampleRate] = Field(default_factory=lambda: [8000, 16000, 22050, 24000, 32000, 44100, 48000],
                                              min_length=1)
    encodings: dict[EncodingName, float] = Field(default_factory=lambda: {
        "wav_pcm16": 0.35, "wav_pcm24": 0.1, "wav_float": 0.05, "flac_pcm16": 0.2, "flac_pcm24": 0.05,
        "ogg_vorbis": 0.2, "ogg_opus": 0.05})
    stereo_share: float = Field(default=0.15, ge=0, le=1)
    shard_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    shard_max_files: int = Field(default=5000, ge=1)

    @field_validator("encodings")
    @classmethod
    def _check_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("encodings: non-negative weights, at least one > 0")
        return weights


class BadInputsConfig(_Strict):
    """Deliberately broken inputs under ``bad/`` (never mixed into ``audio/``)."""

    enabled: bool = True
    long_file_s: float | None = Field(default=None, gt=0,
                                      description="also write a valid speech file this long (stress input)")


class SeedConfig(_Strict):
    """The whole seed-corpus build."""

    seed: int = 0
    output_dir: str = "data/seed"
    workers: int = Field(default=2, ge=1)
    install_missing_packages: bool = Field(default=True,
                                           description="apt-get install missing Debian packages when root")
    real: RealSpeechConfig = Field(default_factory=RealSpeechConfig)
    synthetic: SyntheticConfig
    environment: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    formats: FormatsConfig = Field(default_factory=FormatsConfig)
    bad: BadInputsConfig = Field(default_factory=BadInputsConfig)
