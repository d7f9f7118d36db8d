"""Where tables and raw audio live: local paths or ``s3://`` URIs, and how to reach S3.

One config block feeds both clients that touch S3 here: s3fs (listing and
reading raw audio) and Lance's object store (tables). Credentials are never in
config: they come from the usual ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
environment variables (or the instance role on a cluster).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

__all__ = ["StorageConfig", "resolve_uri", "is_remote"]


def is_remote(uri: str) -> bool:
    """True for ``scheme://`` URIs other than ``file://``."""
    return "://" in uri and not uri.startswith("file://")


def resolve_uri(uri: str, base: Path | None = None) -> str:
    """Absolute path for local URIs (relative ones against ``$LSM_HOME`` or the cwd); remote URIs as given.

    Why ``LSM_HOME``: ``ray job submit`` runs the job in an unpacked copy of
    the working dir under /tmp, so a relative ``data/lake`` would land there
    and vanish; setting ``LSM_HOME`` (or using absolute paths) pins it.
    """
    if is_remote(uri):
        return uri.rstrip("/")
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    path = Path(uri).expanduser()
    if not path.is_absolute():
        root = base or Path(os.environ.get("LSM_HOME") or os.getcwd())
        path = root / path
    return str(path.resolve())


class StorageConfig(BaseModel):
    """How to reach S3 (ignored for local paths)."""

    model_config = ConfigDict(extra="forbid")

    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_allow_http: bool = False

    def fsspec_options(self) -> dict:
        """Keyword arguments for ``s3fs.S3FileSystem``."""
        opts: dict = {"client_kwargs": {"region_name": self.s3_region}}
        if self.s3_endpoint_url:
            opts["client_kwargs"]["endpoint_url"] = self.s3_endpoint_url
        return opts

    def lance_options(self) -> dict[str, str]:
        """``storage_options`` for Lance (object_store keys)."""
        opts = {"region": self.s3_region}
        if self.s3_endpoint_url:
            opts["endpoint"] = self.s3_endpoint_url
            opts["aws_endpoint"] = self.s3_endpoint_url
        if self.s3_allow_http or (self.s3_endpoint_url or "").startswith("http://"):
            opts["allow_http"] = "true"
        for env, key in (("AWS_ACCESS_KEY_ID", "access_key_id"), ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
                         ("AWS_SESSION_TOKEN", "session_token")):
            if os.environ.get(env):
                opts[key] = os.environ[env]
        return opts
