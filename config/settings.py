"""The one settings object, read once in the entry point and passed down.

Sources, highest priority first: constructor arguments, environment variables
(``LEADSTREAM_`` prefix, ``__`` between a section and its field, for example
``LEADSTREAM_KAFKA__BOOTSTRAP``), a ``.env`` file, an optional TOML file
(``LEADSTREAM_CONFIG_FILE`` or ``--config``), a secrets directory (one file per
secret, named like the field), then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

STAGES: tuple[str, ...] = ("mql", "sql", "opportunity", "won", "lost")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TopicNames(_Section):
    """Kafka topic names; the defaults are the ones in DESIGN.md."""

    leads: str = Field("leads.raw", description="lead created or updated, keyed by lead_id")
    touchpoints: str = Field("touchpoints.raw", description="engagement events, keyed by lead_id")
    conversions: str = Field("conversions.raw", description="stage changes, keyed by lead_id")
    spend: str = Field("spend.raw", description="daily campaign spend, keyed by campaign_id")
    scored: str = Field("leads.scored", description="scored leads for sales tools")
    training: str = Field(
        "training.examples", description="labelled examples for the learner (one partition)"
    )
    anomalies: str = Field("anomalies", description="detected anomalies and drift")
    deadletter: str = Field("deadletter", description="rejected events with their reason")

    def raw(self) -> dict[str, str]:
        """Map each raw topic name to the kind of event it carries."""
        return {
            self.leads: "lead",
            self.touchpoints: "touchpoint",
            self.conversions: "conversion",
            self.spend: "spend",
        }


class KafkaSettings(_Section):
    """Broker connection and consumer tuning."""

    bootstrap: str = Field(
        "kafka://127.0.0.1:19092",
        description="Kafka bootstrap servers, Faust style (`kafka://host:port;kafka://host2:port`)",
    )
    app_id: str = Field("leadstream", description="consumer group and Faust app id")
    topics: TopicNames = TopicNames()
    partitions: int = Field(4, ge=1, description="partitions of the topics leadstream creates")
    replication_factor: int = Field(
        1, ge=1, description="replication factor of the topics leadstream creates"
    )
    # Tansu (and Kafka) make a joining member wait about half the session timeout.
    session_timeout_s: float = Field(
        10.0,
        gt=0,
        description="consumer group session timeout (a joining member waits about half of it)",
    )
    heartbeat_interval_s: float = Field(1.0, gt=0, description="consumer heartbeat interval")
    batch_size: int = Field(2000, ge=1, description="max events one agent handles per batch")
    batch_within_s: float = Field(0.2, gt=0, description="max seconds a batch waits to fill")
    max_event_bytes: int = Field(256 * 1024, ge=1024, description="larger events are rejected")
    commit_interval_s: float = Field(
        1.0, gt=0, description="how often processed offsets are committed"
    )
    data_dir: Path = Field(
        Path("var/faust"), description="Faust's local folder (no state that matters)"
    )


class RedisSettings(_Section):
    """Redis holds the state that matters across restarts: dedup keys, engagement, snapshots."""

    url: str = Field(
        "redis://127.0.0.1:16379/0",
        description="Redis URL for dedup keys, engagement, snapshots and models",
    )
    key_prefix: str = Field("ls", description="prefix of every Redis key (one per deployment)")
    dedup_ttl_s: int = Field(
        7 * 24 * 3600, ge=60, description="how long an event_id is remembered for deduplication"
    )


class ClickHouseSettings(_Section):
    """Either a server DSN (production) or a chDB directory (embedded)."""

    dsn: str | None = Field(
        None, description="http(s)://user:password@host:8123/database; empty means chDB"
    )
    chdb_path: Path = Field(
        Path("var/chdb"),
        description="chDB data directory (embedded ClickHouse, used when no DSN is set)",
    )
    database: str = Field("leadstream", description="ClickHouse database")


class MetricsSettings(_Section):
    """The worker's Prometheus /metrics endpoint."""

    host: str = Field("127.0.0.1", description="address the worker serves /metrics on")
    port: int = Field(9464, ge=0, le=65535, description="0 turns the endpoint off")


class ModelSettings(_Section):
    """Online model, label join and score bands."""

    learning_rate: float = Field(
        0.01, gt=0, description="SGD step size of the online logistic regression"
    )
    l2: float = Field(1e-4, ge=0, description="L2 regularisation of the online model")
    target_stage: Literal["mql", "sql", "opportunity", "won"] = Field(
        "sql", description="the stage that counts as a conversion"
    )
    horizon_days: float = Field(
        90.0,
        gt=0,
        description="a lead without the target stage this many days after creation is a negative",
    )
    band_a: float = Field(0.5, gt=0, lt=1, description="score at or above: band A")
    band_b: float = Field(0.25, gt=0, lt=1, description="score at or above: band B")
    band_c: float = Field(0.1, gt=0, lt=1, description="score at or above: band C (below: D)")
    top_reasons: int = Field(5, ge=1, le=50, description="contributions published with each score")
    publish_every_s: float = Field(2.0, gt=0, description="learner snapshot interval")
    reload_every_s: float = Field(1.0, gt=0, description="scorers look for a newer model")
    sweep_every_s: float = Field(1.0, gt=0, description="negative-label sweep interval")

    @model_validator(mode="after")
    def _bands_descend(self) -> ModelSettings:
        if not self.band_a > self.band_b > self.band_c:
            raise ValueError(
                f"score bands must descend: band_a ({self.band_a}) > band_b ({self.band_b})"
                f" > band_c ({self.band_c})"
            )
        return self


class ServiceSettings(_Section):
    """Ports and folders for `leadstream services` (local development and tests)."""

    run_dir: Path = Field(
        Path("var/run"), description="pid files, logs and data of `leadstream services`"
    )
    broker_port: int = Field(19092, description="port of the local broker")
    redis_port: int = Field(16379, description="port of the local Redis")
    prometheus_port: int = Field(19090, description="port of the local Prometheus")
    alertmanager_port: int = Field(19093, description="port of the local Alertmanager")


class Settings(BaseSettings):
    """Everything leadstream reads from its environment, in one frozen object."""

    model_config = SettingsConfigDict(
        env_prefix="LEADSTREAM_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    metrics: MetricsSettings = MetricsSettings()
    models: ModelSettings = ModelSettings()
    services: ServiceSettings = ServiceSettings()
    pii_hash_key: SecretStr | None = Field(
        None, description="HMAC key for personal data; from the environment or secrets dir only"
    )
    pii_fields: tuple[str, ...] = (
        "email",
        "phone",
        "first_name",
        "last_name",
        "name",
        "ip_address",
    )
    log_format: Literal["console", "json"] = Field(
        "json", description="log lines as JSON (production) or for a console"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="lowest level logged"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        toml_file = os.environ.get("LEADSTREAM_CONFIG_FILE")
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        sources.append(file_secret_settings)
        return tuple(sources)

    def masked(self) -> dict[str, Any]:
        """The settings as a plain dict with secrets masked, safe to log."""
        data = self.model_dump(mode="json")
        if self.pii_hash_key is not None:
            data["pii_hash_key"] = "**********"
        if self.clickhouse.dsn:
            data["clickhouse"]["dsn"] = _mask_dsn(self.clickhouse.dsn)
        data["redis"]["url"] = _mask_dsn(self.redis.url)
        return data

    def require_pii_key(self) -> bytes:
        """The PII hashing key as bytes, or a ValueError that names the fix."""
        if self.pii_hash_key is None or not self.pii_hash_key.get_secret_value():
            raise ValueError(
                "no PII hashing key: set LEADSTREAM_PII_HASH_KEY (at least 16 characters) "
                "in the environment or a secrets file"
            )
        key = self.pii_hash_key.get_secret_value()
        if len(key) < 16:
            raise ValueError("LEADSTREAM_PII_HASH_KEY must have at least 16 characters")
        return key.encode()


def _mask_dsn(dsn: str) -> str:
    """Hide the password in a URL-style DSN.

    >>> _mask_dsn("http://user:secret@host:8123/db")
    'http://user:***@host:8123/db'
    >>> _mask_dsn("redis://127.0.0.1:6379/0")
    'redis://127.0.0.1:6379/0'
    """
    scheme, sep, rest = dsn.partition("://")
    if not sep or "@" not in rest:
        return dsn
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once; `config_file` names an optional TOML file.

    ``LEADSTREAM_SECRETS_DIR`` names a folder with one file per secret (for
    example ``LEADSTREAM_PII_HASH_KEY``), as Docker and Kubernetes mount them.
    """
    if config_file is not None:
        if not config_file.is_file():
            raise ValueError(f"config file {config_file} does not exist")
        os.environ["LEADSTREAM_CONFIG_FILE"] = str(config_file)
    secrets_dir = os.environ.get("LEADSTREAM_SECRETS_DIR")
    if secrets_dir:
        if not Path(secrets_dir).is_dir():
            raise ValueError(f"LEADSTREAM_SECRETS_DIR {secrets_dir} is not a folder")
        return Settings(_secrets_dir=secrets_dir, **overrides)
    return Settings(**overrides)
