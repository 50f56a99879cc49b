"""Typed settings, read once.

Every process builds one :class:`Settings` (``get_settings()``) at start-up and hands it to the
parts that need it. ``DATABASE_URL``, ``MLFLOW_TRACKING_URI`` and ``DASK_SCHEDULER_ADDRESS`` are read
under their usual names; everything else under the ``DAJIA_`` prefix.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DAJIA_", extra="ignore", frozen=True)

    home: Path = Field(default=Path("."), description="folder for the default SQLite file and mlruns/")
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "DAJIA_DATABASE_URL"),
        description="SQLAlchemy URL; default: a SQLite file dajia.db under home",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "DAJIA_MLFLOW_TRACKING_URI"),
        description="MLflow tracking URI; default: the local store mlruns/ under home",
    )
    dask_scheduler_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DASK_SCHEDULER_ADDRESS", "DAJIA_DASK_SCHEDULER_ADDRESS"),
    )
    model_name: str = "dajia-shop-risk"
    environment: str = Field(default="development", pattern="^(development|test|production)$")
    # sanctions
    compensation_multiplier: float = Field(default=3.0, ge=0)
    compensation_minimum: float = Field(default=500.0, ge=0)
    affected_window_days: int = Field(default=180, gt=0)
    compensation_deadline_days: int = Field(default=30, gt=0)
    audit_key_file: Path | None = Field(
        default=None, description="Ed25519 key (hex) signing audit checkpoints; default: a key kept in the store"
    )
    # serving
    max_batch: int = Field(default=1000, gt=0, le=100_000)
    lightgbm_threads: int = Field(default=1, gt=0)
    public_rate_per_minute: float = Field(default=300.0, ge=0)  # per client IP, unkeyed endpoints; 0: off
    public_rate_burst: int = Field(default=120, ge=1)  # requests a client may send at once before the rate applies
    # online feature store (features.online_store): the SQLite file the sweep materialises each shop's feature
    # row into and scoring by id reads; default online.db under home
    online_store: str | None = Field(
        default=None, description="online feature store: sqlite:///PATH or a file path; default online.db under home"
    )
    # a row last computed longer ago than this is scored but reported stale (response and metrics); 0: never
    online_max_age_hours: float = Field(default=168.0, ge=0)
    # prediction log: rows older than this many days are archived and deleted by `dajia predictions prune`
    # (run it from cron or a timer); None: kept until pruned by hand with --older-than
    prediction_retention_days: float | None = Field(default=None, gt=0)
    # the reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated IPs or
    # networks, e.g. "10.0.0.5,10.1.0.0/16"; "*" any). Empty: none, the client is the peer of the socket
    # (uvicorn on its own would trust 127.0.0.1, so anyone on the host could pick their rate-limit bucket)
    trusted_proxies: str = Field(default="", pattern=r"^[0-9A-Fa-f.:/*,\s]*$")

    @field_validator("database_url", "mlflow_tracking_uri")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            return None
        return v

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'dajia.db').resolve()}"

    @property
    def resolved_tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.home / 'mlruns' / 'mlflow.db').resolve()}"

    @property
    def resolved_online_store(self) -> str:
        if self.online_store:
            return self.online_store
        return f"sqlite:///{(self.home / 'online.db').resolve()}"

    @property
    def artifact_root(self) -> Path | None:
        """Where a local store keeps run artifacts and models: ``artifacts`` beside its SQLite database
        (MLflow's own default is ``./mlruns`` under whatever folder the command runs in). None for a
        tracking server or another database: the server decides."""
        db = sqlite_file(self.resolved_tracking_uri)
        return None if db is None else (db.parent / "artifacts").resolve()


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (SQLAlchemy's reading of it); None for an in-memory database or
    another database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
