"""Parsers of the Debian data (lua dialogues, stamp descriptions, copyright files) and the parallel-voice plan."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from pipelines.seed.debian import read_license_name
from pipelines.seed.fillets import parse_fillets_dialogs
from pipelines.seed.plan import plan_synthetic_items
from pipelines.seed.real_speech import list_real_utterances, text_id_for
from pipelines.seed.sentences import read_sentences
from pipelines.seed.tuxpaint import read_stamp_descriptions
from pipelines.seed.voices import describe_voice
from schemas.seed import FormatsConfig, SyntheticConfig


def test_fillets_lua_dialogues_parse_with_multiline_and_escapes():
    lua = '''
dialogId("let-m-divna", "font_small", "What kind of strange ship is that?")
dialogStr("Co je to za divnou loď?")

dialogId("v-nenifer", "font_big", "It isn\\"t fair.")
dialogStr(
"Tohle není \\"fér\\".")
dialogId("x-silent", "", "")
'''
    dialogs = parse_fillets_dialogs(lua)
    assert [(d.dialog_id, d.font, d.text) for d in dialogs] == [
        ("let-m-divna", "font_small", "Co je to za divnou loď?"),
        ("v-nenifer", "font_big", 'Tohle není "fér".'),
        ("x-silent", "", None),
    ]
    assert dialogs[1].english == 'It isn"t fair.'


def test_stamp_description_locales(tmp_path):
    txt = tmp_path / "frog.txt"
    txt.write_text("A frog.\nfr.utf8=Une grenouille.\npt_BR.utf8=Um sapo.\n", encoding="utf-8")
    assert read_stamp_descriptions(txt) == {"en": "A frog.", "fr": "Une grenouille.", "pt_BR": "Um sapo."}


def test_text_id_joins_the_same_line_read_twice():
    assert text_id_for("cs", "Myslím, že tu ještě máme práci.") == text_id_for("cs", "myslím že tu ještě máme práci")
    assert text_id_for("cs", "Ano.") != text_id_for("nl", "Ano.")
    assert text_id_for("en", None) is None


def test_license_names_from_dep5_and_free_text():
    dep5 = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: debian/*\nLicense: GPL-3+\n\nFiles: *\nCopyright: x\nLicense: GPL-2\n")
    assert read_license_name(dep5, "anything") == "GPL-2"
    assert read_license_name("... version 2 dated June, 1991 ...", "fillets-ng-data-cs") == "GPL-2"
    assert read_license_name("something else", "fillets-ng-data-cs").startswith("see /usr/share/doc/")


def test_sentence_lists_are_valid_and_translations_point_at_english():
    english = {s.text_id for s in read_sentences("pipelines/seed/sentences_en.txt")}
    assert len(english) >= 150
    for lang in ("de", "fr", "es"):
        sentences = read_sentences(f"pipelines/seed/sentences_{lang}.txt")
        assert sentences and all(s.language == lang for s in sentences)
        assert {f"en-{s.text_id.split('-')[1]}" for s in sentences} <= english


def test_parallel_plan_gives_every_sentence_k_distinct_voices_and_balances_them():
    sentences = read_sentences("pipelines/seed/sentences_en.txt")[:60]
    ids = [f"espeak-ng:en-us+m{i}" for i in range(1, 8)] + ["espeak-ng:en-gb+f2", "espeak-ng:en-gb+f3"]
    voices = [describe_voice(v) for v in ids]
    config = SyntheticConfig(voices=ids, voices_per_sentence=4, styled_share=0.0)
    packages = defaultdict(lambda: type("P", (), {"license": "GPL-3+"})())
    items = plan_synthetic_items(sentences, voices, packages, config, FormatsConfig(), seed=1)
    per_sentence = defaultdict(set)
    for item in items:
        per_sentence[item.labels["text_id"]].add(item.labels["speaker"])
    assert all(len(v) == 4 for v in per_sentence.values()) and len(per_sentence) == 60
    uses = Counter(item.labels["speaker"] for item in items)
    assert max(uses.values()) - min(uses.values()) <= 1
    again = plan_synthetic_items(sentences, voices, packages, config, FormatsConfig(), seed=1)
    assert [i.rel_path for i in again] == [i.rel_path for i in items]


@pytest.mark.parametrize("source,min_files", [("fillets-cs", 1800), ("fillets-nl", 1500), ("tuxpaint", 7000)])
def test_real_sources_list_their_files_with_labels(source, min_files):
    utts = list_real_utterances(source)
    assert len(utts) >= min_files
    with_transcript = sum(1 for u in utts if u.labels["transcript"])
    assert with_transcript / len(utts) > 0.95
    if source == "tuxpaint":
        assert all(u.labels["speaker"] is None for u in utts)
        assert len({u.labels["language"] for u in utts}) >= 10
    else:
        speakers = Counter(u.labels["speaker"] for u in utts)
        assert speakers[f"{source}:small_fish"] > 500 and speakers[f"{source}:big_fish"] > 500
