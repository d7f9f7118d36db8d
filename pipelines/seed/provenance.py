"""Where every part of the seed corpus comes from: package, version, license, hours, speaker policy.

Written as ``provenance.json`` (for programs) and ``PROVENANCE.md`` (for
people) next to the manifest. Content is derived from the manifest rows and
dpkg, so it is deterministic and rewritten only when it changes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from pipelines.seed.debian import PackageInfo
from pipelines.seed.formats import write_bytes_if_changed

__all__ = ["CORPUS_NOTES", "summarize_provenance", "write_provenance"]

CORPUS_NOTES: dict[str, str] = {
    "tuxpaint": "Spoken stamp descriptions, transcript from the stamp's .txt (locale line). Readers are not "
                "identified per file (the changelog credits one or more per language): speaker=None, "
                "speaker_proxy=tuxpaint:<language> is a language-level proxy, not a speaker id.",
    "fillets-cs": "Acted dialogue; transcript = dialogStr of script/<level>/dialogs_cs.lua, transcript_en = its "
                  "English source. Speaker from the subtitle font: small_fish / big_fish across levels, other "
                  "characters scoped by level.",
    "fillets-nl": "As fillets-cs, Dutch (only the two fish are dubbed).",
    "codec2": "codec2 test recordings (8 kHz, some off-air HF radio). No transcripts, no speaker ids in the package.",
    "pocketsphinx": "pocketsphinx test data; transcripts from its transcription files (LibriVox, cards) and the "
                    "TIDIGITS file-name convention; speaker only for the LibriVox chapter.",
    "alsa": "speaker-test channel names; transcript is the file name (Front_Left -> 'Front left').",
    "linphone": "linphone 'hello' prompts (8 and 16 kHz). No transcript in the package.",
    "espeak-ng": "Formant synthesis; voice = language voice + variant (speaker = espeak-ng:<voice>).",
    "flite": "CMU Flite voices (kal16 diphone; awb, rms, slt clustergen from CMU ARCTIC talkers).",
    "festival": "Festival voices (kal/ked diphone, slt HTS from CMU ARCTIC).",
}


def summarize_provenance(rows: list[dict], packages: dict[str, PackageInfo], corpus_packages: dict[str, list[str]],
                         ambience: list[tuple[str, str, str]], tools: list[str]) -> dict:
    """Per corpus: packages (version, license), files and hours (clean / variants), speakers, languages."""
    stats: dict[str, dict] = defaultdict(lambda: {"files": 0, "hours_clean": 0.0, "hours_variants": 0.0,
                                                  "speakers": set(), "languages": set(), "licenses": set()})
    for row in rows:
        s = stats[row["corpus"]]
        s["files"] += 1
        s["hours_variants" if row.get("clean_path") else "hours_clean"] += row.get("duration_s", 0.0) / 3600
        if row.get("speaker"):
            s["speakers"].add(row["speaker"])
        if row.get("language"):
            s["languages"].add(row["language"])
        s["licenses"].add(row.get("license"))
    corpora = {}
    for corpus, s in sorted(stats.items()):
        corpora[corpus] = {
            "packages": [_package(packages[p]) for p in corpus_packages.get(corpus, []) if p in packages],
            "files": s["files"], "hours_clean": round(s["hours_clean"], 4),
            "hours_variants": round(s["hours_variants"], 4),
            "speakers_known": len(s["speakers"]), "languages": sorted(s["languages"]),
            "licenses": sorted(x for x in s["licenses"] if x), "notes": CORPUS_NOTES.get(corpus, ""),
        }
    return {
        "corpora": corpora,
        "ambience_noise": [{"name": n, "path": p, **_package(packages[pkg])}
                           for n, p, pkg in ambience if pkg in packages],
        "tools": [_package(packages[t]) for t in tools if t in packages],
    }


def _package(info: PackageInfo) -> dict:
    return {"package": info.name, "version": info.version, "license": info.license, "copyright": info.copyright_path}


def write_provenance(root: Path, summary: dict) -> None:
    """``provenance.json`` and ``PROVENANCE.md`` under ``root`` (only rewritten when changed)."""
    blob = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
    write_bytes_if_changed(root / "provenance.json", blob.encode())
    lines = ["# Seed corpus provenance", "",
             "Every file comes from a Debian main package (real recordings copied byte for byte, or synthesized "
             "by a Debian synthesizer). License = short name from `/usr/share/doc/<package>/copyright`.", "",
             "| corpus | files | hours clean | hours variants | packages (version, license) |",
             "| --- | ---: | ---: | ---: | --- |"]
    for corpus, c in summary["corpora"].items():
        pkgs = "; ".join(f"{p['package']} {p['version']} ({p['license']})" for p in c["packages"])
        lines.append(f"| {corpus} | {c['files']} | {c['hours_clean']:.3f} | {c['hours_variants']:.3f} | {pkgs} |")
    lines += ["", "## Notes per corpus", ""]
    lines += [f"- **{corpus}**: {c['notes']}" for corpus, c in summary["corpora"].items()]
    lines += ["", "## Ambience recordings used as noise", ""]
    lines += [f"- `{a['name']}`: {a['path']} ({a['package']} {a['version']}, {a['license']})"
              for a in summary["ambience_noise"]]
    lines += ["", "## Tools", ""]
    lines += [f"- {t['package']} {t['version']} ({t['license']})" for t in summary["tools"]]
    write_bytes_if_changed(root / "PROVENANCE.md", ("\n".join(lines) + "\n").encode())
