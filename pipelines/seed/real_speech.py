"""Real human speech in Debian main: which packages, which files, which labels the package really gives.

Tux Paint and Fish Fillets have their own modules; the small sources are
catalogued here file by file, because their labels sit in per-package files
(pocketsphinx's ``transcription``) or in a README (codec2), not in a pattern.
Nothing is guessed: a label the package does not give stays None.

``text_id`` of real speech is ``txt:<language>:<hash of the normalized
transcript>``: the same line read by two people (the two fish often say the
same sentence) joins like the synthetic parallel sentences do.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

from pipelines.seed.fillets import list_fillets_utterances
from pipelines.seed.items import FileSource, RealUtterance
from pipelines.seed.tuxpaint import list_tuxpaint_utterances

__all__ = ["REAL_SOURCE_PACKAGES", "list_real_utterances", "text_id_for"]

#: real source -> Debian packages it needs (data + the package holding its transcripts)
REAL_SOURCE_PACKAGES: dict[str, tuple[str, ...]] = {
    "tuxpaint": ("tuxpaint-stamps-default",),
    "fillets-cs": ("fillets-ng-data", "fillets-ng-data-cs"),
    "fillets-nl": ("fillets-ng-data", "fillets-ng-data-nl"),
    "codec2": ("codec2-examples",),
    "pocketsphinx": ("pocketsphinx-testdata",),
    "alsa": ("alsa-utils",),
    "linphone": ("linphone-common",),
}

_CODEC2 = Path("/usr/share/codec2")
# Original speech only: f2400/m2400/all.wav are codec outputs, the rest of raw/ are modem test signals.
_CODEC2_FILES = ("wav/big_dog.wav", "wav/cross.wav", "wav/david4.wav", "wav/forig.wav", "wav/morig.wav",
                 "wav/hts1a.wav", "wav/hts2a.wav", "wav/mmt1.wav", "wav/ve9qrp.wav", "wav/vk2tpm_004.wav",
                 "wav/vk5qi.wav", "wav/wia_16kHz.wav", "raw/speech_orig_16k.wav")
_POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
_ALSA = Path("/usr/share/sounds/alsa")
_LINPHONE = Path("/usr/share/sounds/linphone")
_TIDIGITS_WORDS = {"z": "zero", "o": "oh", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
                   "6": "six", "7": "seven", "8": "eight", "9": "nine"}


def text_id_for(language: str | None, transcript: str | None) -> str | None:
    """``txt:<lang>:<12 hex>`` of the case- and punctuation-folded transcript (None without one)."""
    if not transcript:
        return None
    folded = unicodedata.normalize("NFKC", transcript).casefold()
    folded = " ".join(re.sub(r"[^\w\s']", " ", folded).split())
    if not folded:
        return None
    return f"txt:{language or 'und'}:{hashlib.sha1(folded.encode()).hexdigest()[:12]}"


def _read_sphinx_transcription(path: Path) -> dict[str, str]:
    """``<s> words </s> (file_id)`` lines -> {file_id: words}."""
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"^\s*(?:<s>)?\s*(.*?)\s*(?:</s>)?\s*\(([^)]+)\)\s*$", line)
        if m:
            out[m.group(2)] = m.group(1)
    return out


def _pocketsphinx() -> list[RealUtterance]:
    out = []
    libri = _read_sphinx_transcription(_POCKETSPHINX / "librivox" / "transcription")
    for file_id, words in sorted(libri.items()):
        # One LibriVox chapter file is read by one volunteer: the chapter names the speaker.
        out.append(_utt("pocketsphinx", "pocketsphinx-testdata", _POCKETSPHINX / "librivox" / f"{file_id}.wav",
                        f"librivox/{file_id}.wav", transcript=words, language="en",
                        speaker="pocketsphinx:librivox_sense_and_sensibility_01"))
    cards = _read_sphinx_transcription(_POCKETSPHINX / "cards" / "cards.transcription")
    for file_id, words in sorted(cards.items()):
        out.append(_utt("pocketsphinx", "pocketsphinx-testdata", _POCKETSPHINX / "cards" / f"{file_id}.wav",
                        f"cards/{file_id}.wav", transcript=words, language="en"))
    # TIDIGITS names a file by the digits spoken (z = zero, o = oh), the transcript follows from the name.
    raw = _POCKETSPHINX / "tidigits" / "dhd.2934z.raw"
    digits = raw.name.split(".")[1]
    words = " ".join(_TIDIGITS_WORDS[c] for c in digits if c in _TIDIGITS_WORDS)
    out.append(_utt("pocketsphinx", "pocketsphinx-testdata", raw, "tidigits/dhd.2934z.wav", transcript=words,
                    language="en", raw_rate_hz=16000))
    for name in ("goforward", "numbers", "something"):
        out.append(_utt("pocketsphinx", "pocketsphinx-testdata", _POCKETSPHINX / f"{name}.raw", f"{name}.wav",
                        language="en", raw_rate_hz=16000))
    return out


def _codec2() -> list[RealUtterance]:
    return [_utt("codec2", "codec2-examples", _CODEC2 / rel, Path(rel).name, recording_id=Path(rel).stem)
            for rel in _CODEC2_FILES]


def _alsa() -> list[RealUtterance]:
    # speaker-test plays Front_Left.wav when it says "Front left": the file name is the utterance.
    names = ("Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right", "Side_Left",
             "Side_Right")
    return [_utt("alsa", "alsa-utils", _ALSA / f"{n}.wav", f"{n}.wav", language="en",
                 transcript=n.replace("_", " ").capitalize()) for n in names]


def _linphone() -> list[RealUtterance]:
    return [_utt("linphone", "linphone-common", _LINPHONE / f"hello{rate}.wav", f"hello{rate}.wav")
            for rate in (8000, 16000)]


def _utt(corpus: str, package: str, path: Path, out_name: str, *, transcript: str | None = None,
         language: str | None = None, speaker: str | None = None, raw_rate_hz: int | None = None,
         **extra: str) -> RealUtterance:
    labels = {"language": language, "transcript": transcript, "speaker": speaker, **extra}
    return RealUtterance(source=FileSource(str(path), raw_rate_hz=raw_rate_hz), corpus=corpus, package=package,
                         rel_path=f"audio/{corpus}/{out_name}", labels=labels)


def list_real_utterances(source: str) -> list[RealUtterance]:
    """All utterances of one real source (``schemas.seed.REAL_SOURCES``), sorted, ``text_id`` filled in."""
    if source == "tuxpaint":
        utts = list_tuxpaint_utterances()
    elif source.startswith("fillets-"):
        utts = list_fillets_utterances(source.split("-", 1)[1])
    else:
        utts = {"codec2": _codec2, "pocketsphinx": _pocketsphinx, "alsa": _alsa, "linphone": _linphone}[source]()
    out = []
    for u in utts:
        if not Path(u.source.path).exists():
            continue
        labels = dict(u.labels)
        labels["text_id"] = text_id_for(labels.get("language"), labels.get("transcript"))
        out.append(RealUtterance(source=u.source, corpus=u.corpus, package=u.package, rel_path=u.rel_path,
                                 labels=labels))
    return sorted(out, key=lambda u: u.rel_path)
