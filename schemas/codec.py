"""Config of the speech codec (model hyperparameters, losses) and of ``jobs/train_codec.py`` (data, budget, Ray).

Validated at start-up (``schemas.curate.load_config(path, TrainCodecConfig)``);
unknown keys are errors that name the key (``extra="forbid"`` on every block).
Only ``models.codec.builders`` turns these into modules; the model code itself
takes typed keyword arguments and never sees a config object.

A model is named by a preset (``preset: codec_50hz_2x8555``, resolved by
``models.codec.builders.resolve_model_config``) or spelled out in full under
``model:``, never both. This module stays importable without torch.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from schemas.sql import sql_list
from schemas.storage import StorageConfig

__all__ = [
    "FSQConfig", "SEANetConfig", "SpectralSideConfig", "SpectralConfig", "CodecModelConfig", "CodecLossConfig", "CodecTrainingConfig",
    "CodecExecutionConfig", "TrainCodecConfig", "MAX_CODEBOOK_SIZE", "DEFAULT_HOLDOUT_CORPORA", "segments_filter",
]

#: Codes are stored as uint16 (``latents.codes``): one stage's index must fit.
MAX_CODEBOOK_SIZE = 1 << 16

#: Corpora of real recordings that codec training never sees, whatever their split: the "real recordings"
#: held-out set of ``jobs/eval_codec.py`` (codec2 test talkers, pocketsphinx LibriVox/TIDIGITS, alsa and
#: linphone prompts: ~5 minutes of real speech from talkers absent from the rest of the seed corpus).
DEFAULT_HOLDOUT_CORPORA: tuple[str, ...] = ("alsa", "codec2", "linphone", "pocketsphinx")


def segments_filter(*, split: str | None, holdout_corpora: list[str] | tuple[str, ...] = DEFAULT_HOLDOUT_CORPORA,
                    holdout: bool = False) -> str:
    """Lance SQL over ``segments`` selecting one split outside the held-out corpora, or the held-out corpora.

    Training and validation read ``segments_filter(split="train")`` / ``(split="valid")``; evaluation reads
    ``(split="test")`` and ``(split=None, holdout=True)`` (every split of the held-out corpora), so the two
    held-out sets never overlap anything training read.

    Example:
        >>> segments_filter(split="train", holdout_corpora=["codec2"])
        "split = 'train' AND (corpus IS NULL OR corpus NOT IN ('codec2'))"
    """
    parts = [] if split is None else [f"split = '{split}'"]
    if holdout:
        if not holdout_corpora:
            raise ValueError("holdout=True needs at least one held-out corpus")
        parts.append(f"corpus IN ({sql_list(holdout_corpora)})")
    elif holdout_corpora:
        parts.append(f"(corpus IS NULL OR corpus NOT IN ({sql_list(holdout_corpora)}))")
    return " AND ".join(parts) if parts else "true"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FSQConfig(_Strict):
    """Finite Scalar Quantization: ``levels[d]`` values on latent dimension d, ``stages`` residual stages."""

    levels: list[int] = Field(min_length=1, max_length=16, description="levels per latent dimension, each >= 2")
    stages: int = Field(default=1, ge=1, le=8)

    @model_validator(mode="after")
    def _check_levels(self) -> "FSQConfig":
        if any(level < 2 for level in self.levels):
            raise ValueError(f"every FSQ level must be >= 2, got {self.levels}")
        if math.prod(self.levels) > MAX_CODEBOOK_SIZE:
            raise ValueError(f"prod(levels) = {math.prod(self.levels)} does not fit uint16 codes (max {MAX_CODEBOOK_SIZE})")
        return self

    @property
    def bits_per_frame(self) -> float:
        """stages x log2(prod(levels))."""
        return self.stages * math.log2(math.prod(self.levels))


class SEANetConfig(_Strict):
    """One side (encoder or decoder) of the SEANet conv stack; strides are shared and live on the model."""

    channels: int = Field(default=16, ge=1, description="channels after the first conv; doubled at each stride")
    max_channels: int = Field(default=256, ge=1, description="cap on the doubling (keeps the deep layers affordable)")
    dimension: int = Field(default=64, ge=1, description="channels of the frame-rate latent before/after projection")
    residual_layers: int = Field(default=1, ge=0, description="residual units per resolution")
    dilation_base: int = Field(default=2, ge=1, description="dilation of residual unit j is dilation_base**j")
    kernel_size: int = Field(default=7, ge=1)
    residual_kernel_size: int = Field(default=3, ge=1)
    compress: int = Field(default=2, ge=1, description="channel reduction inside a residual unit")


class SpectralSideConfig(_Strict):
    """One side (encoder or decoder) of a spectral codec: a ConvNeXt stack at the STFT frame rate."""

    dim: int = Field(ge=1, description="channels of the ConvNeXt blocks")
    intermediate: int = Field(ge=1, description="hidden width inside a block (3 x dim is the ConvNeXt default)")
    layers: int = Field(ge=0, description="ConvNeXt blocks")
    kernel_size: int = Field(default=7, ge=1, description="depthwise conv over time, in STFT frames (odd)")

    @model_validator(mode="after")
    def _check_kernel(self) -> "SpectralSideConfig":
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (centred padding), got {self.kernel_size}")
        return self


class SpectralConfig(_Strict):
    """STFT front end + inverse-STFT head instead of SEANet (``models.codec.spectral``: why, and the framing)."""

    n_fft: int = Field(default=640, ge=16, description="STFT size and Hann window length")
    frames_per_latent: int = Field(default=2, ge=1, description="STFT frames per latent frame (STFT hop = hop / this)")
    dimension: int = Field(default=64, ge=1, description="channels of the frame-rate latent before/after projection")
    in_proj_init_gain: float = Field(default=3.0, gt=0, description=(
        "scale of the initial projection onto the FSQ grid; the STFT encoder's output has std ~0.6 at init, "
        "so 3 spreads the latent to std ~1 (SEANet's ~0.05 needs 20)"))
    encoder: SpectralSideConfig
    decoder: SpectralSideConfig
    decoder_head: Literal["istft", "harmonic"] = Field(default="istft", description=(
        "istft: predicted log-magnitude and phase through an inverse STFT; harmonic: sines at k x a predicted "
        "f0 plus shaped noise (models.codec.harmonic; train with loss.f0_weight > 0)"))
    harmonics: int = Field(default=80, ge=1, le=400, description="sines per frame of the harmonic head")
    encoder_max_hz: float | None = Field(default=None, gt=0, description=(
        "the encoder reads STFT bins up to this frequency only (higher bins read as the floor); None: all bins. "
        "Why: a resampler's anti-alias filter rolls off the top ~8% of the band (7.3-8 kHz at 16 kHz), so a file "
        "that went through another sample rate differs there by 0.6-1.8 nats of log magnitude, which moved 80% "
        "of the codes of an encoder reading every bin"))
    encoder_log_floor: float = Field(default=1e-5, gt=0, description=(
        "the encoder reads log(|STFT| + this); 16-bit quantization noise is ~1.4e-4 per bin (640-point Hann), "
        "so a floor well above it keeps requantization noise out of the codes"))

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> dict:
        data = handler(self)
        if self.decoder_head == "istft":  # ids of inverse-STFT codecs made before the harmonic head stay put
            data.pop("decoder_head", None)
            data.pop("harmonics", None)
        for name in ("encoder_max_hz", "encoder_log_floor"):  # ... and those made before these fields, at defaults
            if getattr(self, name) == type(self).model_fields[name].default:
                data.pop(name, None)
        return data


class CodecModelConfig(_Strict):
    """Everything that determines a codec's weights' shape and meaning; its hash is the codec id.

    ``spectral`` set: the encoder and decoder are the STFT / inverse-STFT
    stacks it describes, and ``encoder``/``decoder`` (SEANet) must not be
    given. ``spectral`` unset is left out of the serialized config, so the
    ids of SEANet codecs made before the field existed do not change.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    sample_rate_hz: Literal[16000] = 16000
    strides: list[int] = Field(min_length=1, max_length=8, description="encoder downsampling, first to last")
    causal: bool = False
    weight_norm: bool = True
    encoder: SEANetConfig = Field(default_factory=SEANetConfig)
    decoder: SEANetConfig = Field(default_factory=SEANetConfig)
    fsq: FSQConfig
    spectral: SpectralConfig | None = None

    @model_validator(mode="after")
    def _check_strides(self) -> "CodecModelConfig":
        if any(s < 1 for s in self.strides):
            raise ValueError(f"strides must be >= 1, got {self.strides}")
        if self.spectral is not None:
            given = sorted({"encoder", "decoder"} & self.model_fields_set)
            if given:
                raise ValueError(f"{', '.join(given)} are SEANet settings; a spectral codec takes "
                                 "spectral.encoder / spectral.decoder")
            if self.causal:
                raise ValueError("a spectral codec cannot be causal (its STFT window looks ahead)")
            stft_hop, rest = divmod(self.hop_length, self.spectral.frames_per_latent)
            if rest or (self.spectral.n_fft - stft_hop) % 2 or self.spectral.n_fft < stft_hop:
                raise ValueError(f"spectral framing does not fit: hop {self.hop_length} / frames_per_latent "
                                 f"{self.spectral.frames_per_latent} must be a whole STFT hop <= n_fft "
                                 f"{self.spectral.n_fft} with an even difference")
        return self

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> dict:
        data = handler(self)
        if self.spectral is None:
            data.pop("spectral", None)  # SEANet ids stay what they were before the field existed
        else:
            data.pop("encoder", None)
            data.pop("decoder", None)
        return data

    @property
    def hop_length(self) -> int:
        """Samples per latent frame."""
        return math.prod(self.strides)

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate_hz / self.hop_length

    @property
    def bitrate_bps(self) -> float:
        """frame rate x stages x log2(prod(levels))."""
        return self.frame_rate_hz * self.fsq.bits_per_frame


class CodecLossConfig(_Strict):
    """Multi-resolution STFT (spectral convergence + log magnitude) and multi-resolution log-mel L1."""

    stft_fft_sizes: list[int] = Field(default_factory=lambda: [256, 512, 1024], min_length=1)
    mel_fft_sizes: list[int] = Field(default_factory=lambda: [256, 512, 1024], min_length=1)
    mel_bins: list[int] = Field(default_factory=lambda: [32, 64, 80], min_length=1)
    spectral_convergence_weight: float = Field(default=1.0, ge=0)
    log_magnitude_weight: float = Field(default=1.0, ge=0)
    mel_weight: float = Field(default=1.0, ge=0)
    latent_penalty_weight: float = Field(default=1.0, ge=0, description=(
        "weight of mean(relu(|z| - latent_bound)^2) on the pre-quantization latent z"))
    f0_weight: float = Field(default=0.0, ge=0, description=(
        "weight of the L1 between log f0 predicted by a harmonic decoder and the input's YIN f0 on voiced frames "
        "(models.codec.pitch); ignored by decoders that predict no f0"))
    consistency_weight: float = Field(default=0.0, ge=0, description=(
        "weight of the MSE between the pre-quantization latents of each crop with and without faint white noise "
        "(models.codec.recipe.noise_consistency): keeps codes put under inaudible noise. One Ray Train worker only"))
    consistency_noise_dbfs: tuple[float, float] = Field(default=(-90.0, -70.0), description=(
        "RMS range of that noise in dBFS, drawn uniformly per crop"))
    latent_bound: float = Field(default=2.0, gt=0, description=(
        "|z| beyond this is penalized: FSQ's tanh is flat there, so without a restoring force Adam let z "
        "drift to |z| ~ 60 here, every frame got the same code, and the decoder learned to ignore the latent"))
    adversarial_weight: float = Field(default=0.0, ge=0, description=(
        "weight of the least-squares generator loss against the critics (models.codec.discriminators: "
        "multi-period and multi-resolution spectrogram); > 0 trains the critics beside the codec"))
    feature_matching_weight: float = Field(default=0.0, ge=0, description=(
        "weight of the L1 between the critics' hidden features on real and decoded audio (needs the critics)"))
    critic_periods: list[int] = Field(default_factory=lambda: [2, 3, 5, 7, 11], description=(
        "periods of the multi-period critics (HiFi-GAN's primes)"))
    critic_fft_sizes: list[int] = Field(default_factory=lambda: [256, 512, 1024], description=(
        "FFT sizes of the spectrogram critics"))

    @model_validator(mode="after")
    def _check_mel(self) -> "CodecLossConfig":
        if len(self.mel_bins) != len(self.mel_fft_sizes):
            raise ValueError(f"mel_bins ({len(self.mel_bins)}) and mel_fft_sizes ({len(self.mel_fft_sizes)}) "
                             "must have the same length")
        low, high = self.consistency_noise_dbfs
        if not low <= high < 0:
            raise ValueError(f"consistency_noise_dbfs must be [low, high] with low <= high < 0, got [{low}, {high}]")
        if self.adversarial and not (self.critic_periods or self.critic_fft_sizes):
            raise ValueError("adversarial_weight / feature_matching_weight need critic_periods or critic_fft_sizes")
        if any(p < 2 for p in self.critic_periods) or any(n < 16 for n in self.critic_fft_sizes):
            raise ValueError("critic_periods must be >= 2 and critic_fft_sizes >= 16")
        return self

    @property
    def adversarial(self) -> bool:
        """True when the critics train beside the codec."""
        return self.adversarial_weight > 0 or self.feature_matching_weight > 0


class CodecTrainingConfig(_Strict):
    """The training budget and optimizer; training stops at whichever of max_steps / max_minutes comes first."""

    max_steps: int = Field(default=10000, ge=1)
    max_minutes: float | None = Field(default=None, gt=0, description="wall-clock budget; None: steps only")
    batch_size: int = Field(default=8, ge=1, description="crops per step (global, split across workers)")
    crop_s: float = Field(default=1.0, gt=0)
    learning_rate: float = Field(default=1e-3, gt=0)
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = Field(default=0.0, ge=0)
    grad_clip_norm: float | None = Field(default=1.0, gt=0)
    lr_warmup_steps: int = Field(default=100, ge=0)
    checkpoint_every_steps: int = Field(default=250, ge=1)
    valid_every_steps: int = Field(default=250, ge=1)
    log_every_steps: int = Field(default=10, ge=1)
    seed: int = 0
    keep_checkpoints: int = Field(default=3, ge=1, description="step checkpoints kept besides latest.pt")
    valid_clips: int = Field(default=64, ge=1, description="valid-split segments scored at each validation")
    valid_crop_s: float = Field(default=2.0, gt=0, description="seconds from the start of each valid segment")
    critic_learning_rate: float = Field(default=2e-4, gt=0, description=(
        "AdamW rate of the critics (constant; only with loss.adversarial_weight or feature_matching_weight)"))
    decoder_only: bool = Field(default=False, description=(
        "train the decoder alone: encoder and quantizer stay frozen, so every code (and the latents table, and "
        "every model trained on it) stays valid; for a fine-tune of the decoder such as an adversarial one"))


class CodecExecutionConfig(_Strict):
    """How Ray Train runs it; defaults suit 2 cores (fractional CPUs leave room for the Ray Data input)."""

    num_workers: int = Field(default=1, ge=1)
    cpus_per_worker: float = Field(default=1.0, gt=0, description=(
        "Ray CPUs per train worker; leave at least one CPU of the cluster for the Ray Data crop readers"))
    data_cpus_per_task: float = Field(default=0.25, gt=0, description="Ray CPUs per crop-reading task")
    crops_per_block: int = Field(default=256, ge=1, description="crops per Ray Data block (memory ~ 64 KB/s/crop)")
    torch_threads: int | None = Field(default=1, ge=1, description=(
        "intra-op threads per worker; 1 is steadiest on a shared 2-core machine (2 threads stalled 3-10x on "
        "barriers when other processes took a core); None: torch's default"))
    ray_address: str | None = Field(default=None, description="None: connect to RAY_ADDRESS or start local Ray")


class TrainCodecConfig(_Strict):
    """The whole codec training job: which model, on which segments, for how long, where checkpoints go."""

    lake_root: str = "data/lake"
    output_dir: str = Field(default="data/checkpoints/codec", description=(
        "checkpoints/, metrics.jsonl and loss_curve.png go here (a path or s3:// URI); a re-run resumes from it"))
    train_split: str = "train"
    valid_split: str = "valid"
    holdout_corpora: list[str] = Field(default_factory=lambda: list(DEFAULT_HOLDOUT_CORPORA), description=(
        "corpora never read for training or validation (the real-recordings evaluation set)"))
    storage: StorageConfig = Field(default_factory=StorageConfig)
    preset: str | None = Field(default=None, description="a name from models.codec.presets.PRESETS")
    model: CodecModelConfig | None = None
    init_from: str | None = Field(default=None, description=(
        "a codec checkpoint whose weights start this run (every tensor must have the same shape: a fine-tune "
        "after a change that keeps them, such as the spectral encoder's band limit); the optimizer and the step "
        "start afresh. Ignored once output_dir holds a checkpoint: a re-run resumes from that"))
    loss: CodecLossConfig = Field(default_factory=CodecLossConfig)
    training: CodecTrainingConfig = Field(default_factory=CodecTrainingConfig)
    execution: CodecExecutionConfig = Field(default_factory=CodecExecutionConfig)

    @model_validator(mode="after")
    def _one_model(self) -> "TrainCodecConfig":
        if (self.preset is None) == (self.model is None):
            raise ValueError("give exactly one of `preset` (a preset name) or `model` (a full model config)")
        if self.loss.consistency_weight > 0 and self.execution.num_workers > 1:
            # its second encoder pass runs outside DDP's forward; not tested with gradient sync, so not offered
            raise ValueError("loss.consistency_weight > 0 needs execution.num_workers: 1")
        if self.loss.adversarial and self.execution.num_workers > 1:
            # the critics are not DDP-wrapped; not tested with gradient sync, so not offered
            raise ValueError("loss.adversarial_weight / feature_matching_weight > 0 need execution.num_workers: 1")
        return self
