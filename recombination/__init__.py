"""Recombination: plan factor swaps, make them in latent space, judge them, report them. No Ray and no IO here
(``pipelines.recombine`` wires the stage and the tables).

- ``recombination.plan``: which (content, speaker, style, environment, channel) combinations to make;
- ``recombination.swap``: factorize codes, mix factors, back to codes;
- ``recombination.gates``: pass/fail per output from its scores;
- ``recombination.judges``: independent judges (Resemblyzer speaker encoder, DNSMOS);
- ``recombination.report``: the self-contained HTML report.

Submodules are imported on use: the judges pull in librosa and onnxruntime, the swaps torch.
"""

from __future__ import annotations

__all__ = ["plan", "swap", "gates", "judges", "report"]
