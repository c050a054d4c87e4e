"""The record explorer's settings (``LABELLOOP_EXPLORER__*``): where its index lives, how it is fed."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ExplorerSettings(BaseModel):
    """The explorer's index and its indexer (``LABELLOOP_EXPLORER__*``).

    ``database_url`` None keeps the index in SQLite under the worker's data dir
    (``<data_dir>/explorer.sqlite3``, nothing to start); a
    ``postgresql://user:password@host/db`` URL shares one PostgreSQL database
    between every worker and ``labelloop explorer run`` process.

    Examples
    --------
    >>> settings = ExplorerSettings(database_url="postgresql://loop:s3cret@db/labelloop")
    >>> "s3cret" in repr(settings)
    False
    >>> settings.url_for(Path("/data"))
    'postgresql+psycopg://loop:s3cret@db/labelloop'
    >>> ExplorerSettings().url_for(Path("/data"))
    'sqlite:////data/explorer.sqlite3'
    """

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    #: Whether a worker runs the indexer and serves ``/explorer/api/*`` (off: neither).
    enabled: bool = True
    #: Whether the worker itself feeds the index (off when a ``labelloop explorer run`` process does).
    index_in_worker: bool = True
    database_url: SecretStr | None = Field(default=None, repr=False)
    #: Records per fetch and per database transaction of the indexer.
    batch_max_records: int = Field(default=5_000, ge=1, le=100_000)
    poll_timeout_ms: int = Field(default=500, ge=1, le=10_000)
    #: Dimensions of the hashed TF-IDF vector of events without an embedding.
    hashed_dim: int = Field(default=256, ge=16, le=4_096)
    #: The largest page the API serves (a bigger ``per_page`` is a 400).
    max_per_page: int = Field(default=500, ge=1, le=10_000)
    #: Most events one bulk label (or its undo) touches (``LABELLOOP_EXPLORER__BULK_CAP``).
    bulk_cap: int = Field(default=1_000, ge=1, le=5_000)
    #: Deepest offset of a page (page * per_page): deeper pages are a 400; narrow the filter instead.
    max_offset: int = Field(default=100_000, ge=1)

    def url_for(self, data_dir: Path) -> str:
        """The SQLAlchemy URL of the index: PostgreSQL through psycopg 3, else SQLite in ``data_dir``."""
        if self.database_url is None:
            return f"sqlite:///{(data_dir / 'explorer.sqlite3').as_posix()}"
        url = self.database_url.get_secret_value()
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+psycopg://" + url[len(plain) :]
        return url
