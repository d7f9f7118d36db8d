"""espeak-ng phonemization of the real seed sentences, its cache, the inventory, and PER."""

from __future__ import annotations

import json
import random

import pytest

from pipelines.phonemes import (BLANK, UNKNOWN, WORD_BOUNDARY, ErrorCounts, PhonemeInventory, PhonemizeError,
                                Phonemizer, count_errors, edit_distance, espeak_voice, phoneme_error_rate,
                                phonemize)
from pipelines.seed.sentences import read_sentences

EN = [s.text for s in read_sentences("pipelines/seed/sentences_en.txt")[:12]]
FR = [s.text for s in read_sentences("pipelines/seed/sentences_fr.txt")[:8]]


def test_real_sentences_phonemize_in_one_call_deterministically(tmp_path):
    ph = Phonemizer(cache_dir=tmp_path)
    en = ph(EN, "en")
    assert ph.espeak_calls == 1                       # one process for the whole batch
    assert len(en) == len(EN) and all(len(p) >= 10 for p in en)
    # "The quick brown fox": ð ə k w ɪ k b ɹ aʊ n f ɑ k s
    assert en[0][:14] == ["ð", "ə", "k", "w", "ɪ", "k", "b", "ɹ", "aʊ", "n", "f", "ɑ", "k", "s"]
    symbols = {s for p in en for s in p}
    assert not symbols & set("ˈˌːˑ-_ |")               # stress, length, separators stripped
    fr = ph(FR, "fr")
    assert ph.espeak_calls == 2 and all(p for p in fr)
    assert {"ʁ", "ɑ̃"} <= {s for p in fr for s in p}    # French segments: uvular r, nasal vowel kept whole
    # a fresh phonemizer without a cache gives the same result (espeak is deterministic), batch order irrelevant
    again = Phonemizer()(list(reversed(EN)), "en")
    assert list(reversed(again)) == en


def test_cache_hit_spawns_no_espeak_and_persists(tmp_path):
    ph = Phonemizer(cache_dir=tmp_path)
    first = ph(EN[:5], "en")
    assert ph.espeak_calls == 1
    assert ph(EN[:5] + EN[:2], "en") == first + first[:2] and ph.espeak_calls == 1   # all hits
    ph(EN[:6], "en")
    assert ph.espeak_calls == 2                                            # only the new text went to espeak
    reopened = Phonemizer(cache_dir=tmp_path)                              # from the JSON file
    assert len(reopened) == 6 and reopened(EN[:5], "en") == first and reopened.espeak_calls == 0
    data = json.loads(ph.path.read_text(encoding="utf-8"))
    assert set(data["phonemes"]) == {"en-us"} and ph.path.name.startswith("phonemes-espeak-ng-")


def test_word_boundaries_empty_texts_and_newlines():
    ph = Phonemizer(word_boundaries=True)
    out = ph(["Hello world.", "", "  ...  ", "two\nlines"], "en")
    assert out[0] == ["h", "ə", "l", "oʊ", WORD_BOUNDARY, "w", "ɜ", "l", "d"]
    assert out[1] == [] and out[2] == []
    assert out[3].count(WORD_BOUNDARY) == 1 and ph.espeak_calls == 1
    assert phonemize(["Hello world."], "en") == [[p for p in out[0] if p != WORD_BOUNDARY]]


def test_language_codes_map_to_voices_and_unknown_fails_in_one_line():
    assert espeak_voice("en") == "en-us" and espeak_voice("fr") == "fr-fr"
    assert espeak_voice("pt-BR") == "pt-br" and espeak_voice("ca-valencia") == "ca" and espeak_voice("de") == "de"
    with pytest.raises(PhonemizeError, match="no espeak-ng voice for language 'xx-yy'") as err:
        phonemize(["hi"], "xx-yy")
    assert "\n" not in str(err.value)


def test_missing_espeak_is_a_clear_error(monkeypatch):
    ph = Phonemizer()
    espeak_voice("en")  # voices cached; now espeak disappears from PATH
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PhonemizeError, match="espeak-ng not found on PATH"):
        ph(["hello"], "en")


def test_corrupt_cache_file_is_a_clear_error(tmp_path):
    ph = Phonemizer(cache_dir=tmp_path)
    ph(["hello"], "en")
    ph.path.write_text("{not json", encoding="utf-8")
    with pytest.raises(PhonemizeError, match="unreadable phoneme cache"):
        Phonemizer(cache_dir=tmp_path)


def test_inventory_round_trip_blank_and_unknown():
    inv = PhonemeInventory.from_sequences([["b", "a"], ["a", "tʃ"]])
    assert inv.symbols == ("a", "b", "tʃ") and inv.num_classes == 5 and inv.blank_id == 0
    assert inv.encode(["tʃ", "a", "zz"]) == [4, 2, 1]
    assert inv.decode([0, 4, 0, 2, 1]) == ["tʃ", "a", UNKNOWN]
    with pytest.raises(ValueError, match="not in the inventory"):
        inv.encode(["zz"], strict=True)
    with pytest.raises(ValueError):
        PhonemeInventory(("a", BLANK))
    assert PhonemeInventory.from_sequences([["tʃ", "a", "b"]]) == inv   # order-independent ids


def test_edit_distance_and_per_exact():
    assert edit_distance(list("kitten"), list("sitting")) == 3
    assert edit_distance([], ["a", "b"]) == 2 and edit_distance(["a"], []) == 1
    ref = [["ð", "ə", "k", "æ", "t"], ["s", "ɪ", "t", "s"]]
    assert phoneme_error_rate(ref, ref) == 0.0
    # one substitution (æ->ɛ), one deletion (t) in row 0; one insertion in row 1: 3 edits / 9 phonemes
    hyp = [["ð", "ə", "k", "ɛ"], ["s", "ɪ", "t", "s", "s"]]
    assert count_errors(ref, hyp) == ErrorCounts(edits=3, ref_length=9)
    assert phoneme_error_rate(ref, hyp) == pytest.approx(3 / 9)
    assert (count_errors(ref[:1], hyp[:1]) + count_errors(ref[1:], hyp[1:])).rate == pytest.approx(3 / 9)
    with pytest.raises(ValueError, match="2 references but 1"):
        phoneme_error_rate(ref, hyp[:1])
    with pytest.raises(ValueError, match="undefined"):
        phoneme_error_rate([[]], [["a"]])


def _reference_levenshtein(a, b) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def test_edit_distance_matches_plain_dynamic_programming():
    rng = random.Random(0)
    for _ in range(200):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 12))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 12))]
        assert edit_distance(a, b) == _reference_levenshtein(a, b)
