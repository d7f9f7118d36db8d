"""Config of ``jobs/maintain.py``: which tables, how to compact them, which versions to keep, which indexes to keep.

One config serves every subcommand (``compact``, ``index``, ``cleanup``,
``tag``, ``tags``, ``restore``): each reads the blocks it needs. Unknown keys
are errors that name the key (``jobs._cli.load_job_config``). ``lake_root``
resolves against ``$LSM_HOME``, else the working directory, as in every job.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.encode_factors import FactorsIndexConfig
from schemas.lake import LAKE_TABLES, TABLE_KEYS, TableName
from schemas.storage import StorageConfig

__all__ = ["MaintainConfig", "CompactionConfig", "RetentionConfig", "IndexMaintenanceConfig", "LAKE_TABLES",
           "DEFAULT_SCALAR_INDEXES", "TableName"]

#: BTREE indexes on the columns that lookups and merge-inserts filter on (the first column of each key).
#: Every action skips a table not written yet.
DEFAULT_SCALAR_INDEXES: dict[str, list[str]] = {table: [keys[0]] for table, keys in TABLE_KEYS.items()}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompactionConfig(_Strict):
    """How ``compact`` rewrites small fragments (Lance ``optimize.compact_files``)."""

    target_rows_per_fragment: int = Field(default=1_048_576, ge=1, description=(
        "rows a compacted fragment aims at (Lance's default); many small appends merge up to this"))
    max_rows_per_group: int = Field(default=1024, ge=1, description=(
        "rows per row group in rewritten files (Lance's default); smaller groups cost more metadata"))
    materialize_deletions_threshold: float = Field(default=0.1, gt=0, le=1, description=(
        "a fragment whose deleted share is above this is rewritten without its deleted rows "
        "(merge-inserts that update, e.g. the `runs` rows, leave deletions behind)"))


class RetentionConfig(_Strict):
    """Which old versions ``cleanup`` keeps. A version is removed only when no rule keeps it."""

    keep_days: float = Field(default=7.0, ge=0, description="keep every version newer than this many days")
    keep_last_versions: int = Field(default=5, ge=1, description=(
        "keep at least the newest K versions of each table, however old"))
    keep_latest_run_versions: bool = Field(default=True, description=(
        "keep the versions recorded by the latest succeeded run of each job (so 'as of run' reads of recent "
        "runs still work); tagged versions are always kept"))


class IndexMaintenanceConfig(_Strict):
    """What ``index`` builds or brings up to date."""

    scalar: dict[TableName, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in
                                                                         DEFAULT_SCALAR_INDEXES.items()},
                                               description=(
        "BTREE indexes per table (named `<column>_idx`), created if missing, else given the appended rows"))
    factors: FactorsIndexConfig = Field(default_factory=FactorsIndexConfig, description=(
        "the vector index on `factors` (pipelines.factor_search.update_factor_index); build: false skips it"))


class MaintainConfig(_Strict):
    """The whole job: one lake, the tables to maintain and how."""

    lake_root: str = "data/lake"
    tables: list[TableName] = Field(default_factory=lambda: list(LAKE_TABLES), min_length=1, description=(
        "tables every action covers (tables not written yet are skipped); --table narrows it per call"))
    compaction: CompactionConfig = Field(default_factory=CompactionConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    index: IndexMaintenanceConfig = Field(default_factory=IndexMaintenanceConfig)
    record_runs: bool = Field(default=True, description=(
        "write a `runs` row (job `maintain:<action>`) for every action that changes the lake"))
    storage: StorageConfig = Field(default_factory=StorageConfig)

    @model_validator(mode="after")
    def _check(self) -> "MaintainConfig":
        if len(set(self.tables)) != len(self.tables):
            raise ValueError(f"tables lists a table twice: {self.tables}")
        return self
