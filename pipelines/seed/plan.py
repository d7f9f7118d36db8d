"""Plan every output file of the seed corpus: which voice reads which sentence, which variants, which format.

All random choices happen here, from ``seed``, so a plan is reproducible and
each item renders independently. Three choices matter downstream:

* Parallel voices: each sentence goes to the ``k`` least-used voices of its
  language (random tie-break), so every sentence has ``k`` voices and every
  voice covers about ``sentences * k / voices`` sentences.
* Parallel styles: a share of (sentence, voice) pairs is also rendered in a
  second style (rate and/or pitch), same speaker and text.
* Variants: room, noise and channel types are dealt round-robin from shuffled
  lists, so even a tiny build covers every type; a variant keeps its clean
  utterance's ``speaker``, ``text_id`` and ``utterance_id``.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

import numpy as np

from pipelines.seed.debian import PackageInfo
from pipelines.seed.effects import plan_room
from pipelines.seed.formats import ENCODINGS, OPUS_RATES_HZ
from pipelines.seed.items import (ChannelStep, EffectPlan, EncodingPlan, FileSource, NoisePlan, RealUtterance,
                                  RenderItem, SynthSource)
from pipelines.seed.sentences import Sentence
from pipelines.seed.voices import Voice, voice_packages
from schemas.seed import EnvironmentConfig, FormatsConfig, SyntheticConfig

__all__ = ["item_seed", "assign_encoding", "plan_real_items", "plan_synthetic_items", "plan_variant_items",
           "plan_styles"]


def item_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one item, stable under reordering of the plan."""
    return int.from_bytes(hashlib.sha256(f"{seed}|{key}".encode()).digest()[:8], "little") >> 1


def assign_encoding(rng: np.random.Generator, formats: FormatsConfig, *, rate_hz: int | None = None,
                    mono: bool = False) -> EncodingPlan:
    """Draw an encoding (by weight), a rate (unless fixed) and mono/stereo."""
    names = sorted(formats.encodings)
    weights = np.array([formats.encodings[n] for n in names], dtype=np.float64)
    encoding = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    rates = [rate_hz] if rate_hz else list(formats.sample_rates_hz)
    if encoding == "ogg_opus":
        rates = [r for r in rates if r in OPUS_RATES_HZ] or [8000 if rate_hz == 8000 else 16000]
    rate = int(rates[int(rng.integers(len(rates)))])
    channels = 2 if (not mono and rng.random() < formats.stereo_share) else 1
    return EncodingPlan(encoding=encoding, sample_rate_hz=rate, channels=channels)


def _suffix(encoding: EncodingPlan) -> str:
    return ENCODINGS[encoding.encoding][2]


def plan_real_items(utterances: list[RealUtterance], packages: dict[str, PackageInfo], *, seed: int,
                    max_files: int | None) -> list[RenderItem]:
    """Copy real recordings verbatim (headerless raw PCM becomes 16-bit WAV); ``max_files`` per corpus, spread."""
    by_corpus: dict[str, list[RealUtterance]] = {}
    for u in utterances:
        by_corpus.setdefault(u.corpus, []).append(u)
    items = []
    for corpus, utts in sorted(by_corpus.items()):
        if max_files is not None and len(utts) > max_files:
            rng = np.random.default_rng(item_seed(seed, f"real-subset/{corpus}"))
            utts = [utts[i] for i in sorted(rng.choice(len(utts), size=max_files, replace=False))]
        for u in utts:
            labels = {**u.labels, "corpus": u.corpus, "origin": f"{u.package}:{u.source.path}",
                      "license": packages[u.package].license, "synthetic": False,
                      "utterance_id": f"{u.corpus}/{PurePosixPath(u.rel_path).relative_to('audio/' + u.corpus)}"}
            encoding = None
            rel_path = u.rel_path
            if u.source.raw_rate_hz:
                encoding = EncodingPlan("wav_pcm16", u.source.raw_rate_hz, 1)
                rel_path = str(PurePosixPath(u.rel_path).with_suffix(".wav"))
            items.append(RenderItem(rel_path=rel_path, source=u.source, labels=labels, encoding=encoding,
                                    seed=item_seed(seed, rel_path), part="real"))
    return items


def plan_styles(voice: Voice, config: SyntheticConfig) -> list[tuple[str, float, float]]:
    """(style name, speaking_rate, pitch_shift) choices for a voice's styled renders."""
    styles = []
    for r in config.style_rates:
        if r != 1.0:
            styles.append(("fast" if r > 1 else "slow", r, 1.0))
    if voice.supports_pitch:
        for p in config.style_pitches:
            if p != 1.0:
                styles.append(("high" if p > 1 else "low", 1.0, p))
        for r in config.style_rates:
            for p in config.style_pitches:
                if r != 1.0 and p != 1.0 and (r > 1) == (p > 1):
                    styles.append((f"{'fast' if r > 1 else 'slow'}_{'high' if p > 1 else 'low'}", r, p))
    return styles


def plan_synthetic_items(sentences: list[Sentence], voices: list[Voice], packages: dict[str, PackageInfo],
                         config: SyntheticConfig, formats: FormatsConfig, *, seed: int) -> list[RenderItem]:
    """Parallel renderings: each sentence by ``k`` voices of its language, some also in a second style."""
    by_lang: dict[str, list[Sentence]] = {}
    for s in sentences:
        by_lang.setdefault(s.language.split("-")[0], []).append(s)
    items = []
    for lang, sents in sorted(by_lang.items()):
        if config.max_sentences_per_language is not None:
            sents = sents[: config.max_sentences_per_language]
        lang_voices = [v for v in voices if v.language == lang]
        if len(lang_voices) < 2:
            raise ValueError(f"sentences in '{lang}' need at least 2 voices of that language, got "
                             f"{[v.voice_id for v in lang_voices]}")
        k = min(config.voices_per_sentence, len(lang_voices))
        rng = np.random.default_rng(item_seed(seed, f"voices/{lang}"))
        uses = {v.voice_id: 0 for v in lang_voices}
        for s in sents:
            ties = rng.random(len(lang_voices))
            order = sorted(range(len(lang_voices)), key=lambda i: (uses[lang_voices[i].voice_id], ties[i]))
            for i in order[:k]:
                voice = lang_voices[i]
                uses[voice.voice_id] += 1
                renders = [("neutral", 1.0, 1.0)]
                styles = plan_styles(voice, config)
                if styles and rng.random() < config.styled_share:
                    renders.append(styles[int(rng.integers(len(styles)))])
                for style, rate, pitch in renders:
                    items.append(_synthetic_item(s, voice, packages, formats, style, rate, pitch, seed))
    return items


def _synthetic_item(sentence: Sentence, voice: Voice, packages: dict[str, PackageInfo], formats: FormatsConfig,
                    style: str, rate: float, pitch: float, seed: int) -> RenderItem:
    key = f"{voice.voice_id}|{sentence.text_id}|{style}"
    iseed = item_seed(seed, key)
    encoding = assign_encoding(np.random.default_rng(iseed), formats)
    name = sentence.text_id if style == "neutral" else f"{sentence.text_id}_{style}"
    rel_path = f"audio/{voice.engine}/{voice.name}/{name}{_suffix(encoding)}"
    labels = {
        "speaker": voice.voice_id, "gender": voice.gender, "language": sentence.language,
        "transcript": sentence.text, "text_id": sentence.text_id, "style": style, "speaking_rate": rate,
        "pitch_shift": pitch, "environment": "clean", "channel": "clean", "corpus": voice.engine,
        "license": packages[voice_packages(voice.voice_id)[-1]].license, "synthetic": True, "utterance_id": key,
    }
    if voice.source_talker:
        labels["source_talker"] = voice.source_talker
    if not sentence.text_id.startswith("en-"):
        labels["translation_of"] = "en-" + sentence.text_id.split("-", 1)[1]
    return RenderItem(rel_path=rel_path, source=SynthSource(voice.voice_id, sentence.text, rate, pitch),
                      labels=labels, encoding=encoding, seed=iseed, part="synthetic")


class _Dealer:
    """Deals items of a list round-robin, reshuffling (seeded) after each pass."""

    def __init__(self, options: list, rng: np.random.Generator):
        self._options, self._rng, self._queue = list(options), rng, []

    def next(self):
        if not self._queue:
            self._queue = [self._options[i] for i in self._rng.permutation(len(self._options))]
        return self._queue.pop(0)


def _channel_chain(kind: str, env: EnvironmentConfig, rng: np.random.Generator) -> tuple[ChannelStep, ...]:
    def codec2() -> ChannelStep:
        return ChannelStep("codec2", (("codec_bitrate_bps", float(rng.choice(env.codec2_modes_bps))),))

    if kind == "telephone":
        steps = [ChannelStep("telephone", (("band_low_hz", 300.0), ("band_high_hz", 3400.0)))]
        if "codec2" in env.channels and rng.random() < 0.5:
            steps.append(codec2())
        return tuple(steps)
    if kind == "eq":
        return (ChannelStep("eq", (("band_low_hz", round(float(rng.uniform(80, 300)), 1)),
                                   ("band_high_hz", round(float(rng.uniform(3000, 8000)), 1)),
                                   ("eq_peak_hz", round(float(rng.uniform(800, 4000)), 1)),
                                   ("eq_peak_gain_db", round(float(rng.uniform(-8, 8)), 2)))),)
    if kind == "clipping":
        return (ChannelStep("clipping", (("clip_threshold", round(float(rng.uniform(0.1, 0.5)), 3)),)),)
    if kind == "low_bit_depth":
        return (ChannelStep("low_bit_depth", (("bit_depth", float(rng.integers(4, 9))),)),)
    if kind == "codec2":
        return (codec2(),)
    if kind == "opus":
        return (ChannelStep("opus", (("codec_bitrate_bps", float(rng.choice(env.opus_bitrates_bps))),)),)
    raise ValueError(kind)


def plan_variant_items(clean: list[RenderItem], env: EnvironmentConfig, formats: FormatsConfig, *, seed: int,
                       share: float, ambience: list[tuple[str, FileSource, str]], babble_pool: list[RenderItem],
                       tag: str) -> list[RenderItem]:
    """One room/noise/channel variant for a ``share`` of the ``clean`` items (sorted by path)."""
    rng = np.random.default_rng(item_seed(seed, f"variants/{tag}"))
    noise_types = [t for t in env.noise_types if t != "ambience" or ambience]
    rooms, noises = _Dealer(env.rooms, rng), _Dealer(noise_types or ["white"], rng)
    channels, ambiences = _Dealer(env.channels, rng), _Dealer(ambience or [None], rng)
    items = []
    for item in sorted(clean, key=lambda i: i.rel_path):
        if rng.random() >= share:
            continue
        use = [rng.random() < env.room_probability, rng.random() < env.noise_probability,
               rng.random() < env.channel_probability]
        if not any(use):
            use[int(rng.integers(3))] = True
        room = plan_room(rooms.next(), rng) if use[0] else None
        noise = None
        if use[1]:
            noise_type = noises.next()
            snr = round(float(rng.uniform(*env.snr_db_range)), 1)
            donors: tuple = ()
            amb_source = amb_name = None
            if noise_type == "babble":
                others = [b for b in babble_pool if b.labels.get("text_id") != item.labels.get("text_id")]
                picks = rng.choice(len(others), size=min(env.babble_talkers, len(others)), replace=False)
                donors = tuple(others[i].source for i in sorted(picks))
            elif noise_type == "ambience":
                amb_name, amb_source, _ = ambiences.next()
            noise = NoisePlan(noise_type, snr, donors, amb_source, amb_name)
        chain = _channel_chain(channels.next(), env, rng) if use[2] else ()
        narrowband = any(step.kind in ("telephone", "codec2") for step in chain)
        iseed = item_seed(seed, f"variant|{item.rel_path}")
        encoding = assign_encoding(np.random.default_rng(iseed), formats, rate_hz=8000 if narrowband else None,
                                   mono=narrowband)
        stem = item.rel_path.rpartition(".")[0]
        rel_path = f"{stem}__var{_suffix(encoding)}"
        labels = {k: v for k, v in item.labels.items() if k not in ("environment", "channel")}
        labels["clean_path"] = item.rel_path
        items.append(RenderItem(rel_path=rel_path, source=item.source, labels=labels,
                                effects=EffectPlan(room=room, noise=noise, channel=chain), encoding=encoding,
                                seed=iseed, part=f"variants-{tag}"))
    return items
