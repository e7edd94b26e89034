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
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from config._sources import SecretlessDotEnv, is_placeholder

STAGES: tuple[str, ...] = ("mql", "sql", "opportunity", "won", "lost")


#: How to make a real secret; every message about a missing or placeholder secret ends with it.
HOW_TO_MAKE_A_KEY = (
    "make one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'` and export it"
)


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
    valid: str = Field(
        "events.valid",
        description="validated events (personal data hashed) on their way to ClickHouse",
    )

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
    batch_within_s: float = Field(
        0.02, gt=0,
        description="longest an idle consumer waits for records before it handles what it has",
    )  # fmt: skip
    max_event_bytes: int = Field(256 * 1024, ge=1024, description="larger events are rejected")
    sink_flush_s: float = Field(
        1.0, gt=0,
        description="longest the ClickHouse sink buffers rows before it inserts and commits",
    )  # fmt: skip
    sink_max_rows: int = Field(
        50_000, ge=1, description="rows the ClickHouse sink buffers at most before it inserts"
    )
    commit_interval_s: float = Field(
        1.0, gt=0, description="how often processed offsets are committed"
    )
    data_dir: Path = Field(
        Path("var/faust"), description="Faust's local folder (no state that matters)"
    )
    # A broker that lost a topic (restarted on memory storage, or the topic deleted) leaves
    # the producer waiting for a partition leader; see streaming/topic_guard.py.
    produce_timeout_s: float = Field(
        30.0,
        gt=0,
        description="longest a produced message waits for the broker; then its batch fails"
        " and is handled again (Faust's own default is 20 minutes)",
    )
    topic_check_every_s: float = Field(
        5.0,
        ge=0,
        description="how often the worker checks that its topics exist and recreates missing"
        " ones with the configured partitions (0 turns the check off)",
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

    kind: Literal["logistic", "newton", "hoeffding", "forest"] = Field(
        "logistic",
        description="the champion's model kind when the learner starts from nothing"
        " (`newton`: the model `leadstream evaluate` measures)",
    )
    optimizer: Literal["sgd", "adagrad"] = Field(
        "adagrad", description="how the logistic model steps: one rate, or AdaGrad per feature"
    )
    learning_rate: float = Field(
        0.1, gt=0, description="step size (sgd) or base step size (adagrad) of the logistic model"
    )
    l2: float = Field(1e-4, ge=0, description="L2 regularisation of the online model")
    challengers: tuple[str, ...] = Field(
        (),
        description="models learning in shadow, e.g. `newton`, `hoeffding`, `forest`,"
        " `logistic:optimizer=sgd,learning_rate=0.01`",
    )
    tree_max_size_mb: float = Field(
        32.0, gt=0, description="memory cap of a tree model (a forest shares it among its trees)"
    )
    threshold: float = Field(
        0.25, gt=0, lt=1, description="score at which precision, recall and F1 count a lead"
    )
    metrics_window: int = Field(
        5000, ge=100, description="examples in the rolling window of the prequential metrics"
    )
    promote_min_examples: int = Field(
        2000, ge=100, description="examples both models scored before a challenger may win"
    )
    promote_z: float = Field(
        3.0, gt=0, description="z of the paired log-loss test a challenger must exceed"
    )
    promote_margin: float = Field(
        0.005, ge=0, description="relative log-loss improvement a challenger must also show"
    )
    drift_delta: float = Field(
        0.05, gt=0, description="Page-Hinkley tolerance on the champion's excess log loss"
    )
    drift_threshold: float = Field(
        100.0, gt=0, description="Page-Hinkley threshold: higher, fewer false alarms, later"
    )
    drift_conversions_delta: float = Field(
        0.2,
        gt=0,
        description="tolerance of the drift test over conversions alone (they"
        " arrive first after a drift)",
    )
    drift_conversions_threshold: float = Field(
        25.0, gt=0, description="threshold of the drift test over conversions alone"
    )
    revenue_min_examples: int = Field(
        30, ge=1, description="won deals learned before revenue is predicted per lead"
    )
    value_cap: float = Field(
        2.0, ge=1, description="band: score × expected/mean revenue, the ratio capped both ways"
    )
    target_stage: Literal["mql", "sql", "opportunity", "won"] = Field(
        "sql", description="the stage that counts as a conversion"
    )
    horizon_days: float = Field(
        90.0,
        gt=0,
        description="a lead without the target stage this many days after creation is a negative",
    )
    label_policy: Literal["horizon", "fake_negative", "fnw", "es_dfm"] = Field(
        "es_dfm",
        description="how leads whose outcome is not known yet are learned: with their outcome"
        " only (`horizon`); as a negative when scored, a conversion then as a positive"
        " (`fake_negative`; the published score is q / (1 - q) of the model's q); the same"
        " with importance weights (`fnw`); or as a negative once `window_days` pass without a"
        " conversion, weighted by the conversion delays learned per channel (`es_dfm`)",
    )
    window_days: float = Field(
        3.0,
        gt=0,
        description="`es_dfm`: days after creation a lead without a conversion is"
        " learned as a (weighted) negative",
    )
    band_a: float = Field(0.5, gt=0, lt=1, description="score at or above: band A")
    band_b: float = Field(0.25, gt=0, lt=1, description="score at or above: band B")
    band_c: float = Field(0.1, gt=0, lt=1, description="score at or above: band C (below: D)")
    top_reasons: int = Field(5, ge=1, le=50, description="contributions published with each score")
    explain: bool = Field(
        True, description="publish each score's contributions; off scores without them (faster)"
    )
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


class ApiSettings(_Section):
    """The dashboard and JSON API (`leadstream serve`)."""

    host: str = Field("127.0.0.1", description="address the dashboard and API listen on")
    port: int = Field(8600, ge=0, le=65535, description="port of the dashboard and API")
    auth_enabled: bool = Field(
        True, description="require a bearer token or user/password (off only for the demo)"
    )
    token: SecretStr | None = Field(
        None, description="bearer token for the API and dashboard; environment or secrets file"
    )
    username: str | None = Field(None, description="user for HTTP basic authentication")
    password: SecretStr | None = Field(
        None, description="password for HTTP basic authentication; environment or secrets file"
    )
    cache_ttl_s: int = Field(
        300, ge=0, description="Redis cache lifetime of a query result (0 turns caching off)"
    )
    watermark_every_s: float = Field(
        1.0, ge=0, description="how often the data watermark that keys the cache is re-read"
    )
    refresh_s: float = Field(5.0, ge=1, description="dashboard live-refresh interval")
    max_rows: int = Field(500, ge=10, le=10_000, description="most leads a drill-down returns")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses of reverse proxies whose X-Forwarded-Proto/-For are believed",
    )
    login_attempts: int = Field(
        10, ge=1, description="failed /login attempts a client address has per window"
    )
    login_window_s: float = Field(
        300.0, gt=0, description="the window of login_attempts, in seconds"
    )
    chdb_handles: int = Field(
        4, ge=1, le=32, description="chDB connection handles the views query through at once"
    )
    clickhouse_dsn: SecretStr | None = Field(
        None,
        description="read-only ClickHouse DSN for the views (user leadstream_ro); empty: the main one",
    )


class AnomalySettings(_Section):
    """Windowed series, their detectors, feature drift and the alerts they raise."""

    enabled: bool = Field(True, description="watch the series for anomalies and drift")
    window_s: int = Field(
        3600, ge=60, le=86400, description="length of a series window in event time (seconds)"
    )
    allowed_lateness_s: int = Field(
        600, ge=0, description="a window closes this long (event time) after its end"
    )
    warmup_days: float = Field(
        14.0, ge=0, description="event-time days a series is learned before it can alert"
    )
    threshold: float = Field(
        4.5, gt=0, description="tail probability below 10^-threshold is a warning anomaly"
    )
    critical: float = Field(
        6.5, gt=0, description="tail probability below 10^-critical is a critical anomaly"
    )
    cooldown_windows: int = Field(
        6, ge=0, description="windows a series stays quiet after it fired (unless it worsens)"
    )
    min_leads: int = Field(
        20, ge=1, description="fewest leads in a window for a rate, score or cost series"
    )
    conversion_stage: Literal["mql", "sql", "opportunity", "won"] = Field(
        "mql", description="the stage counted as a conversion by the series"
    )
    conversion_within_s: int = Field(
        86400,
        ge=60,
        description="a window's leads count as converted if they reach the stage this soon",
    )
    psi_threshold: float = Field(
        0.25, gt=0, description="population stability index that counts as feature drift"
    )
    psi_min_leads: int = Field(
        500, ge=10, description="fewest leads in a window for a PSI (drift) check"
    )


class SmtpSettings(_Section):
    """The SMTP server that e-mails reports."""

    host: str | None = Field(None, description="SMTP server; empty turns e-mail delivery off")
    port: int = Field(
        587, ge=1, le=65535, description="SMTP port (587 STARTTLS, 465 TLS, 25 plain)"
    )
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="STARTTLS after connecting, TLS from the start, or none"
    )
    username: str | None = Field(None, description="SMTP login; empty sends without authentication")
    password: SecretStr | None = Field(
        None, description="SMTP password; environment or secrets file only"
    )
    sender: str = Field("leadstream@localhost", description="From address of report e-mails")
    recipients: tuple[str, ...] = Field((), description="addresses that receive the reports")
    timeout_s: float = Field(30.0, gt=0, description="SMTP connect and command timeout")
    verify_tls: bool = Field(True, description="check the server certificate (off only for tests)")


class WebhookSettings(_Section):
    """A Slack-compatible incoming webhook told when a report is out."""

    url: SecretStr | None = Field(
        None, description="webhook URL (it embeds a token); environment or secrets file only"
    )
    timeout_s: float = Field(10.0, gt=0, description="webhook request timeout")


class ReportSettings(_Section):
    """Scheduled reports, their delivery and the budget recommendations in them."""

    timezone: str = Field("UTC", description="time zone of the schedules and report periods")
    weekly_cron: str = Field(
        "0 7 * * mon", description="when the weekly report goes out (cron: min hour day month dow)"
    )
    monthly_cron: str = Field(
        "0 7 1 * *", description="when the monthly report goes out (cron: min hour day month dow)"
    )
    formats: tuple[Literal["pdf", "html", "csv", "xlsx"], ...] = Field(
        ("pdf", "html", "xlsx"), description="artefacts a scheduled report is built in"
    )
    out_dir: Path = Field(Path("var/reports"), description="where report artefacts are written")
    misfire_grace_s: int = Field(
        6 * 3600, ge=0, description="a report missed (scheduler down) is still sent this long after"
    )
    retries: int = Field(4, ge=1, le=20, description="delivery attempts before giving up")
    backoff_s: float = Field(
        2.0, ge=0, description="first wait between attempts (doubles each time)"
    )
    public_url: str | None = Field(None, description="dashboard link put in notifications")
    currency: str = Field("USD", description="currency label of money in reports")
    max_shift: float = Field(
        0.2, gt=0, le=1, description="share of the paid budget a recommendation may move per period"
    )
    max_increase: float = Field(
        1.0, gt=0, description="a campaign's spend may grow by at most this share per period"
    )
    max_decrease: float = Field(
        0.5,
        gt=0,
        le=1,
        description="a campaign's spend may shrink by at most this share per period",
    )
    floor: float = Field(
        0.005, ge=0, lt=1, description="no campaign is cut below this share of the paid budget"
    )
    attribution_model: Literal[
        "first_touch", "last_touch", "last_non_direct", "linear", "time_decay",
        "position_based", "data_driven", "markov",
    ] = Field(
        "first_touch",
        description="attribution model that credits campaigns with conversions in the budget "
        "recommendations (first_touch: each campaign earns its own leads' conversions)",
    )  # fmt: skip


class RetentionSettings(_Section):
    """How long ClickHouse keeps each group of tables, in days (0 keeps rows forever).

    Applied at worker start as ClickHouse TTLs (`ALTER TABLE … MODIFY TTL`); rows
    past their time disappear at the next merge.
    """

    events_days: int = Field(
        730, ge=0, description="leads, touchpoints and conversions, by the event's time"
    )
    scores_days: int = Field(730, ge=0, description="scored leads, by the time of the lead event")
    training_days: int = Field(730, ge=0, description="labelled training examples, by label time")
    rejected_days: int = Field(90, ge=0, description="rejected (dead-letter) events, by arrival")
    spend_days: int = Field(1825, ge=0, description="campaign spend (no personal data), by day")


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
    anomalies: AnomalySettings = AnomalySettings()
    api: ApiSettings = ApiSettings()
    reports: ReportSettings = ReportSettings()
    smtp: SmtpSettings = SmtpSettings()
    webhook: WebhookSettings = WebhookSettings()
    retention: RetentionSettings = RetentionSettings()
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
        # Secrets never come from .env (DESIGN.md): only the environment or the secrets dir.
        dotenv = SecretlessDotEnv(settings_cls, dotenv_settings)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv]
        toml_file = os.environ.get("LEADSTREAM_CONFIG_FILE")
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        # Nested secrets by file name too: LEADSTREAM_SMTP__PASSWORD, LEADSTREAM_API__TOKEN.
        sources.append(
            NestedSecretsSettingsSource(file_secret_settings, secrets_nested_delimiter="__")
        )
        return tuple(sources)

    def masked(self) -> dict[str, Any]:
        """The settings as a plain dict with secrets masked, safe to log."""
        data = self.model_dump(mode="json")
        if self.pii_hash_key is not None:
            data["pii_hash_key"] = "**********"
        if self.clickhouse.dsn:
            data["clickhouse"]["dsn"] = _mask_dsn(self.clickhouse.dsn)
        data["redis"]["url"] = _mask_dsn(self.redis.url)
        data["smtp"]["recipients"] = f"{len(self.smtp.recipients)} address(es)"  # personal data
        return data

    def require_pii_key(self) -> bytes:
        """The PII hashing key as bytes, or a ValueError that names the fix."""
        if self.pii_hash_key is None or not self.pii_hash_key.get_secret_value():
            raise ValueError(
                "no PII hashing key: set LEADSTREAM_PII_HASH_KEY (at least 16 characters) in the "
                f"environment or a secrets file, never .env; {HOW_TO_MAKE_A_KEY}"
            )
        key = self.pii_hash_key.get_secret_value()
        if is_placeholder(key):
            raise ValueError(
                "LEADSTREAM_PII_HASH_KEY is the public placeholder from .env.example; "
                f"{HOW_TO_MAKE_A_KEY}"
            )
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
