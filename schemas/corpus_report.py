"""Config of ``jobs/corpus_report.py``: which lake, where the HTML (and optional JSON) goes, how much to show.

Validated at start-up (``schemas.curate.load_config(path, CorpusReportConfig)``);
unknown keys are errors that name the key. Relative paths resolve against
``$LSM_HOME``, else the working directory (``schemas.storage.resolve_uri``);
``output_path`` and ``json_path`` may also be ``s3://`` URIs.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.storage import StorageConfig

__all__ = ["CorpusReportConfig"]


class CorpusReportConfig(BaseModel):
    """The corpus report: measure the lake's metadata, write one self-contained HTML file, print a summary.

    Example:
        >>> CorpusReportConfig(segments_filter="split = 'train'").output_path
        'data/reports/corpus.html'
    """

    model_config = ConfigDict(extra="forbid")

    lake_root: str = "data/lake"
    output_path: str = Field(default="data/reports/corpus.html", description="the HTML file (a path or s3:// URI)")
    json_path: str | None = Field(default=None, description="also write the figures as JSON here; None: no JSON")
    title: str = "Corpus report"
    segments_filter: str | None = Field(default=None, description=(
        "Lance SQL over `segments` choosing the seed the report describes, e.g. \"split = 'train'\"; None: all"))
    top_speakers: int = Field(default=10, ge=1, description="speakers listed in the printed summary")
    histogram_bins: int = Field(default=30, ge=2, le=500, description="bins of each quality-metric histogram")
    max_table_rows: int = Field(default=200, ge=1, description="rows per hours-by-label table in the HTML")
    grid_max_speakers: int = Field(default=60, ge=1, description=(
        "speakers (rows) drawn in the speaker x environment grid, most hours first; the new-cell list is complete"))
    grid_max_environments: int = Field(default=30, ge=1, description="environments (columns) drawn in the grid")
    max_runs: int = Field(default=10, ge=0, description="most recent `runs` rows listed")
    storage: StorageConfig = Field(default_factory=StorageConfig)
