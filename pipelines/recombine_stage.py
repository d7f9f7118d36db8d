"""The recombine stage: plan rows (+ latents row offsets) in, ``synthetic`` rows out.

A callable class for ``map_batches`` (STYLE.md): codec and factorizer are
built once per actor from the state dicts the driver checked and shipped,
the ``latents`` table is opened at the pinned version, and (when the gates
use it) the independent speaker encoder is loaded. It never writes.

Per batch: the codes of every distinct segment the rows name (content and
donors) come in one ``take``; :mod:`recombination.swap` factorizes them once
and makes every row's output codes (or, for ``jobs/generate.py``, the generator
samples them from the content's phonemes and the donors' vectors:
:mod:`recombination.generate`); :mod:`recombination.gates` scores them.
Audio is decoded only when something needs it (the speaker judge, DNSMOS,
or ``output.audio``), each row on its own so a row's audio never depends on
its batch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.encode_stage import codes_array
from pipelines.lance_io import open_table
from schemas.recombine import FACTORS, GateConfig
from schemas.storage import StorageConfig
from schemas.synthetic import GATE_COLUMNS, SYNTHETIC_SCHEMA

__all__ = ["RecombineRows", "OFFSET_COLUMNS"]

#: Columns the driver adds to plan rows: the latents row offset of the content and of each factor's donor.
OFFSET_COLUMNS: tuple[str, ...] = ("content_offset", *(f"{f}_offset" for f in FACTORS))


class RecombineRows:
    """``map_batches`` stage: plan rows with :data:`OFFSET_COLUMNS` -> a :data:`SYNTHETIC_SCHEMA` table."""

    def __init__(self, *, codec_config: Any, codec_state: dict, factorizer_config: Any, factorizer_state: dict,
                 latents_uri: str, latents_version: int, storage: StorageConfig, gates: GateConfig,
                 with_audio: bool, run_id: str, created_at: datetime, torch_threads: int | None = 1,
                 generator_config: Any = None, generator_state: dict | None = None,
                 phonemes: dict[str, list[int]] | None = None, temperature: float = 0.0) -> None:
        import torch

        from models.codec import build_codec
        from models.factorizer import build_factorizer

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.codec = build_codec(codec_config)
        self.codec.load_state_dict(codec_state)
        self.codec.eval()
        self.factorizer = build_factorizer(factorizer_config)
        self.factorizer.load_state_dict(factorizer_state)
        self.factorizer.eval()
        self.generator, self.phonemes, self.temperature = None, phonemes or {}, float(temperature)
        if generator_config is not None:  # jobs/generate.py: the generator makes the rows, not the swap
            from models.generator import build_generator

            self.generator = build_generator(generator_config)
            self.generator.load_state_dict(generator_state)
            self.generator.eval()
        self.gates = gates
        self.with_audio = with_audio
        self.run_id, self.created_at = run_id, created_at
        self.latents = open_table(latents_uri, storage, version=latents_version)
        if self.latents is None:
            raise FileNotFoundError(f"latents table not found: {latents_uri} (version {latents_version})")
        self.judge = None
        if gates.speaker_judge:
            from recombination.judges import SpeakerJudge

            self.judge = SpeakerJudge()
        self.dnsmos = None
        if gates.dnsmos:
            from recombination.judges import NaturalnessJudge

            self.dnsmos = NaturalnessJudge()

    def _codes(self, offsets: list[int]) -> dict[int, np.ndarray]:
        table = self.latents.take(offsets, columns=["codes", "num_frames", "num_stages"])
        out = {}
        for off, codes, frames, stages in zip(offsets, table.column("codes"), table.column("num_frames"),
                                              table.column("num_stages")):
            out[off] = codes.values.to_numpy().reshape(frames.as_py(), stages.as_py())
        return out

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        import torch

        return self.codec.decode(torch.from_numpy(codes.astype(np.int64))[None])[0].numpy()

    def __call__(self, batch: pa.Table) -> pa.Table:
        import torch

        from pipelines.audio.flac import encode_flac
        from recombination.gates import apply_gates
        from recombination.swap import factorize_codes, latent_scores, recombine

        n = batch.num_rows
        offsets = {c: batch.column(c).to_pylist() for c in OFFSET_COLUMNS}
        distinct = sorted({o for col in offsets.values() for o in col})
        codes = self._codes(distinct)
        pos = {o: i for i, o in enumerate(distinct)}
        factors = factorize_codes(self.factorizer, self.codec, [codes[o] for o in distinct])
        content_rows = [pos[o] for o in offsets["content_offset"]]
        donor_rows = {f: [pos[o] for o in offsets[f"{f}_offset"]] for f in FACTORS}
        if self.generator is None:
            out = recombine(self.factorizer, self.codec, factors, content_rows=content_rows, donor_rows=donor_rows)
        else:
            from recombination.generate import generate_rows
            from schemas._arrow import stable_id

            ids = batch.column("synth_id").to_pylist()
            out = generate_rows(self.generator, self.factorizer, self.codec, factors, content_rows=content_rows,
                                donor_rows=donor_rows, temperature=self.temperature,
                                phonemes=[self.phonemes[s] for s in batch.column("content_segment_id").to_pylist()],
                                seed=int(stable_id(*ids)[:8], 16))
        scores = latent_scores(self.factorizer, out,
                               factors.vectors["speaker"][torch.as_tensor(content_rows, dtype=torch.int64)])
        for name in ("judge_speaker_target_sim", "judge_speaker_source_sim", "dnsmos_ovrl"):
            scores[name] = np.full(n, np.nan, dtype=np.float32)

        need_audio = self.with_audio or self.judge is not None or self.dnsmos is not None
        wavs = [self._decode(c) for c in out.codes] if need_audio else []
        if self.judge is not None:
            rate = self.codec.sample_rate_hz
            refs = {o: self.judge.embed(self._decode(codes[o]), rate)
                    for o in {*offsets["content_offset"], *offsets["speaker_offset"]}}
            for i, wav in enumerate(wavs):
                emb = self.judge.embed(wav, rate)
                scores["judge_speaker_target_sim"][i] = self.judge.similarity(emb, refs[offsets["speaker_offset"][i]])
                scores["judge_speaker_source_sim"][i] = self.judge.similarity(emb, refs[offsets["content_offset"][i]])
        if self.dnsmos is not None:
            scores["dnsmos_ovrl"] = np.array([self.dnsmos(w, self.codec.sample_rate_hz).ovrl for w in wavs],
                                             dtype=np.float32)
        passed, rejected = apply_gates(scores, batch.column("varied").to_pylist(), self.gates)
        audio = ([encode_flac(w, self.codec.sample_rate_hz) for w in wavs] if self.with_audio else [None] * n)
        columns = {name: batch.column(name) for name in SYNTHETIC_SCHEMA.names if name in batch.column_names}
        columns.update({
            "run_id": pa.array([self.run_id] * n), "created_at": pa.array([self.created_at] * n,
                                                                          pa.timestamp("us", tz="UTC")),
            "num_frames": pa.array([len(c) for c in out.codes], pa.int32()),
            "num_stages": pa.array([c.shape[1] for c in out.codes], pa.int16()),
            "frame_rate_hz": pa.array([float(self.codec.frame_rate_hz)] * n),
            # NaN (not judged) is stored as null, so `judge_speaker_target_sim IS NULL` finds them
            **{name: pa.array(scores[name], pa.float32(), from_pandas=True) for name in GATE_COLUMNS},
            "passed": pa.array(passed), "rejected_by": pa.array(rejected),
            "codes": codes_array(out.codes), "audio": pa.array(audio, pa.large_binary()),
        })
        return pa.table({name: columns[name] for name in SYNTHETIC_SCHEMA.names}).cast(SYNTHETIC_SCHEMA)
