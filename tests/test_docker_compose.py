"""docker-compose.yml, the files it mounts and the image it builds, checked without Docker.

Docker cannot run in CI, so these tests read the compose file as data and hold it
against what the code expects: the settings model (env names and values), the
Prometheus and Grafana configs (ports, paths, metric names) and the repository
(mounted paths, packages the Dockerfile copies).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from config.envnames import settings_env_names
from config.settings import MetricsSettings, Settings
from sinks.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS_CONFIG = ROOT / "config" / "prometheus" / "prometheus.docker.yml"
GRAFANA_DIR = ROOT / "config" / "grafana"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"

WORKER = "worker"
PREFIX = "LEADSTREAM_"
LOOPBACK = {"127.0.0.1", "::1"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY")

# Compose interpolation: "$$" is a literal "$"; otherwise ${VAR}, ${VAR:-default},
# ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt} or $VAR.
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


# -- reading the files ---------------------------------------------------------------


@cache
def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as written (list or mapping form), values as strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: value for key, value in pairs}
    return {key: "" if value is None else _scalar(value) for key, value in env.items()}


def _scalar(value: object) -> str:
    # YAML turns `true` and `9464` into bool and int; compose passes them on as text.
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _strings(node: object) -> Iterator[str]:
    """Every string value in a parsed YAML tree (compose interpolates values, not keys)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _references() -> list[tuple[str, str | None]]:
    """(variable, operator) for every interpolation in the compose file."""
    refs: list[tuple[str, str | None]] = []
    for text in _strings(_compose()):
        for m in _INTERPOLATION.finditer(text):
            if m["escaped"] is None:
                refs.append((m["braced"] or m["bare"], m["op"]))
    return refs


def _interpolate(text: str, env: Mapping[str, str]) -> str:
    """Substitute variables the way `docker compose` does.

    >>> _interpolate("a ${X:-d} ${Y:-d} $$Z ${X:+alt} $X", {"X": "1"})
    'a 1 d $Z alt 1'
    """

    def substitute(m: re.Match[str]) -> str:
        if m["escaped"] is not None:
            return "$"
        name = m["braced"] or m["bare"]
        op, arg = m["op"], m["arg"] or ""
        value = env.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise KeyError(f"{name} is required: {arg}")
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return "" if value is None else arg
        return value or ""

    return _INTERPOLATION.sub(substitute, text)


def _dummy_env() -> dict[str, str]:
    """A made-up value for every variable the compose file uses (URL-safe, 16+ characters)."""
    return {name: f"dummy-{name.lower().replace('_', '-')}-0123456789" for name, _ in _references()}


def _worker_env() -> dict[str, str]:
    dummies = _dummy_env()
    return {k: _interpolate(v, dummies) for k, v in _environment(_services()[WORKER]).items()}


def _env_example() -> dict[str, str]:
    values = {}
    for raw in ENV_EXAMPLE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: {raw!r} is not KEY=VALUE"
            values[key.strip()] = value.strip()
    return values


def _mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
            if _is_host_path(source):
                mounts[target] = source
        elif volume.get("type") == "bind":
            mounts[volume["target"]] = volume["source"]
    return mounts


def _is_host_path(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def _host_path(source: str) -> Path:
    return (ROOT / source).resolve()


def _container_flag(service: Mapping[str, Any], flag: str) -> str | None:
    """The value of ``--flag=value`` in a service's command, if given."""
    for arg in service.get("command") or []:
        if isinstance(arg, str) and arg.startswith(f"--{flag}="):
            return arg.split("=", 1)[1]
    return None


def _host_of(path: str, mounts: Mapping[str, str]) -> Path | None:
    """The host file or folder behind a container path, through the longest matching mount."""
    for target in sorted(mounts, key=len, reverse=True):
        if path == target or path.startswith(target.rstrip("/") + "/"):
            return _host_path(mounts[target]) / Path(path).relative_to(target)
    return None


def _prometheus() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    return data


def _targets(job: Mapping[str, Any]) -> list[str]:
    return [t for sc in job.get("static_configs", []) for t in sc.get("targets", [])]


def _dashboards() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def _panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from _panels(panel)  # rows carry their collapsed panels


_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
                 "and", "or", "unless", "inf", "nan"}  # fmt: skip


def _metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (not functions, labels, keywords or durations).

    >>> sorted(_metric_names(
    ...     'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y"}[$__rate_interval])))'
    ...     ' / on (job) b offset 5m'))
    ['a_bucket', 'b']
    """
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"(?<![\w:$.])([A-Za-z_:][\w:]*)\b(?!\s*\()", expr)
    return {n for n in names if n.lower() not in _PROMQL_WORDS}


def _exported_metric_names() -> set[str]:
    """Every series name the worker's metrics can export."""
    registry = CollectorRegistry()
    Metrics.create(registry)
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"],
                "summary": ["", "_count", "_sum"], "gauge": [""]}  # fmt: skip
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }


# -- the compose file --------------------------------------------------------------------


def test_compose_file_parses() -> None:
    assert _services(), "docker-compose.yml defines no services"
    assert WORKER in _services()


def test_every_service_has_image_or_build() -> None:
    missing = [
        name for name, svc in _services().items() if "image" not in svc and "build" not in svc
    ]
    assert not missing, f"services with neither image nor build: {missing}"


def test_build_context_has_a_dockerfile() -> None:
    for name, svc in _services().items():
        build = svc.get("build")
        if build is None:
            continue
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert (_host_path(context) / dockerfile).is_file(), f"{name}: no {dockerfile} in {context}"


def test_leadstream_variables_name_settings_fields() -> None:
    valid = settings_env_names()
    used = {
        key for svc in _services().values() for key in _environment(svc) if key.startswith(PREFIX)
    }
    used |= {name for name, _ in _references() if name.startswith(PREFIX)}
    unknown = sorted(used - valid)
    assert not unknown, f"not settings fields (see config/settings.py): {unknown}"


def test_worker_environment_builds_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = _worker_env()
    for key in [k for k in os.environ if k.startswith(PREFIX)]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    # No pydantic mypy plugin here: fields declared with Field(default) look required.
    settings = Settings()  # type: ignore[call-arg]

    assert settings.kafka.bootstrap == env["LEADSTREAM_KAFKA__BOOTSTRAP"]
    assert settings.redis.url == env["LEADSTREAM_REDIS__URL"]
    assert settings.clickhouse.dsn == env["LEADSTREAM_CLICKHOUSE__DSN"]
    assert settings.require_pii_key() == env["LEADSTREAM_PII_HASH_KEY"].encode()
    # And every other variable the worker is given lands where its name says.
    for key, value in env.items():
        if key.startswith(PREFIX):
            assert _setting_text(settings, key) == value, key


def _setting_text(settings: Settings, env_name: str) -> str:
    node: Any = settings
    for part in env_name.removeprefix(PREFIX).lower().split("__"):
        node = getattr(node, part)
    if isinstance(node, SecretStr):
        return node.get_secret_value()
    return _scalar(node)


def _metrics_default(name: str) -> str:
    return _scalar(MetricsSettings.model_fields[name].default)


def test_worker_metrics_listen_beyond_loopback() -> None:
    host = _worker_env().get("LEADSTREAM_METRICS__HOST", _metrics_default("host"))
    assert host not in LOOPBACK | {"localhost"}, "Prometheus in another container cannot reach it"


def test_worker_connects_to_services_it_waits_for() -> None:
    env = _worker_env()
    depends = _depends_on(_services()[WORKER])
    for key in (
        "LEADSTREAM_KAFKA__BOOTSTRAP",
        "LEADSTREAM_REDIS__URL",
        "LEADSTREAM_CLICKHOUSE__DSN",
    ):
        host = urlsplit(env[key]).hostname
        assert host in _services(), f"{key}: {host} is not a compose service"
        assert host in depends, f"the worker uses {host} ({key}) but does not depend on it"


def test_clickhouse_dsn_matches_the_server() -> None:
    env = _worker_env()
    server = {
        k: _interpolate(v, _dummy_env()) for k, v in _environment(_services()["clickhouse"]).items()
    }
    dsn = urlsplit(env["LEADSTREAM_CLICKHOUSE__DSN"])
    assert dsn.username == server["CLICKHOUSE_USER"]
    assert dsn.password == server["CLICKHOUSE_PASSWORD"]
    assert dsn.path.strip("/") == server["CLICKHOUSE_DB"]
    assert env.get("LEADSTREAM_CLICKHOUSE__DATABASE", "leadstream") == server["CLICKHOUSE_DB"]


def _depends_on(service: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return {name: spec or {} for name, spec in deps.items()}


def test_depends_on_targets_exist() -> None:
    for name, svc in _services().items():
        for target, spec in _depends_on(svc).items():
            assert target in _services(), f"{name} depends on unknown service {target}"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in _services()[target], (
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
                )


def test_worker_waits_for_healthy_backends() -> None:
    deps = _depends_on(_services()[WORKER])
    for backend in ("kafka", "clickhouse", "redis"):
        assert deps.get(backend, {}).get("condition") == "service_healthy", backend


def test_mounted_host_paths_exist_and_volumes_are_declared() -> None:
    declared = set(_compose().get("volumes") or {})
    for name, svc in _services().items():
        for volume in svc.get("volumes", []):
            if isinstance(volume, str):
                kind = "bind" if _is_host_path(volume.split(":")[0]) else "volume"
                source = volume.split(":")[0]
            else:
                kind, source = volume.get("type", "volume"), volume.get("source", "")
            if kind == "bind":
                assert not Path(source).is_absolute(), f"{name}: {source} is not inside the repo"
                assert _host_path(source).exists(), f"{name} mounts {source}, which does not exist"
            elif kind == "volume" and source:
                assert source in declared, (
                    f"{name} uses volume {source}, not declared under volumes:"
                )
    for config_name, config in (_compose().get("configs") or {}).items():
        if "file" in config:
            assert _host_path(config["file"]).exists(), f"config {config_name}: no {config['file']}"


def test_published_ports_bind_loopback() -> None:
    for name, svc in _services().items():
        assert svc.get("network_mode") != "host", f"{name} uses the host network"
        for port in svc.get("ports", []):
            assert _port_host_ip(port) in LOOPBACK, f"{name} publishes {port!r} beyond 127.0.0.1"


def _port_host_ip(port: object) -> str | None:
    if isinstance(port, Mapping):
        return port.get("host_ip")
    text = str(port).split("/")[0]
    if text.startswith("["):
        return text[1 : text.index("]")]
    parts = text.split(":")
    return parts[0] if len(parts) == 3 else None


def test_secrets_have_no_default() -> None:
    for name, op in _references():
        if SECRET_NAME.search(name):
            assert op not in (":-", "-", ":+", "+"), f"${{{name}}} must not have a default"


def test_required_variables_fail_fast() -> None:
    with pytest.raises(KeyError, match="CLICKHOUSE_PASSWORD"):
        _interpolate(_environment(_services()["clickhouse"])["CLICKHOUSE_PASSWORD"], {})


def test_env_example_lists_every_variable() -> None:
    used = {name for name, _ in _references()}
    listed = set(_env_example())
    assert not used - listed, f"missing from .env.example: {sorted(used - listed)}"
    assert not listed - used, (
        f"in .env.example but unused by docker-compose.yml: {sorted(listed - used)}"
    )


def test_env_example_values_are_placeholders() -> None:
    assert "change every value" in ENV_EXAMPLE.read_text().lower()
    for key, value in _env_example().items():
        assert "change-me" in value, f".env.example: {key} does not look like a placeholder"


# -- Prometheus ----------------------------------------------------------------------


def test_prometheus_scrapes_the_worker_metrics_port() -> None:
    expected = int(_worker_env().get("LEADSTREAM_METRICS__PORT", _metrics_default("port")))
    ports = [
        int(target.rpartition(":")[2])
        for job in _prometheus()["scrape_configs"]
        for target in _targets(job)
        if target.rpartition(":")[0] == WORKER
    ]
    ports += [
        int(sd["port"])
        for job in _prometheus()["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        if WORKER in sd.get("names", [])
    ]
    assert ports, f"prometheus.docker.yml does not scrape the {WORKER} service"
    assert set(ports) == {expected}


def test_prometheus_job_matches_the_alert_rules() -> None:
    jobs = {job["job_name"]: job for job in _prometheus()["scrape_configs"]}
    names = {n for sd in jobs["leadstream"].get("dns_sd_configs", []) for n in sd["names"]}
    assert any(t.startswith(f"{WORKER}:") for t in _targets(jobs["leadstream"])) or WORKER in names


def test_worker_roles_are_services_that_scale() -> None:
    """Each role is a service; none has a fixed name or host port, so `--scale` works."""
    services = _services()
    roles: dict[str, str] = {}
    for name, svc in services.items():
        command = svc.get("command") or []
        if command[:1] == ["worker"]:
            assert "--role" in command, f"{name}: a worker service names its role"
            roles[command[command.index("--role") + 1]] = name
            assert "container_name" not in svc and "ports" not in svc, f"{name} cannot scale"
    assert set(roles) == {"stream", "learner", "sink"}, roles
    assert roles["stream"] == WORKER
    # Every replica of every role is scraped.
    jobs = {job["job_name"]: job for job in _prometheus()["scrape_configs"]}
    names = {n for sd in jobs["leadstream"].get("dns_sd_configs", []) for n in sd["names"]}
    assert set(roles.values()) <= names


def test_prometheus_targets_are_services() -> None:
    cfg = _prometheus()
    targets = [t for job in cfg["scrape_configs"] for t in _targets(job)]
    targets += [t for am in cfg["alerting"]["alertmanagers"] for t in _targets(am)]
    for target in targets:
        host = target.rpartition(":")[0]
        assert host == "localhost" or host in _services(), f"{target}: unknown host"
    assert "alertmanager:9093" in targets


def test_prometheus_config_and_rules_are_mounted() -> None:
    svc = _services()["prometheus"]
    mounts = _mounts(svc)
    config_path = _container_flag(svc, "config.file") or "/etc/prometheus/prometheus.yml"
    assert _host_of(config_path, mounts) == PROMETHEUS_CONFIG.resolve()
    for pattern in _prometheus()["rule_files"]:
        folder = _host_of(str(Path(pattern).parent), mounts)
        assert folder is not None, f"rule_files {pattern} is not mounted"
        assert list(folder.glob(Path(pattern).name)), f"no rule files behind {pattern}"


def test_alertmanager_config_is_mounted() -> None:
    svc = _services()["alertmanager"]
    config_path = _container_flag(svc, "config.file") or "/etc/alertmanager/alertmanager.yml"
    host = _host_of(config_path, _mounts(svc))
    assert host is not None and host.is_file(), f"{config_path} is not mounted from the repo"


# -- Grafana -------------------------------------------------------------------------


def _datasource_uids() -> set[str]:
    data = yaml.safe_load(DATASOURCES.read_text())
    return {ds["uid"] for ds in data["datasources"]}


def test_grafana_datasource_points_at_prometheus() -> None:
    data = yaml.safe_load(DATASOURCES.read_text())
    (prom,) = [ds for ds in data["datasources"] if ds["type"] == "prometheus"]
    url = urlsplit(prom["url"])
    assert url.hostname == "prometheus" and url.port == 9090
    assert "prometheus" in _services()


def test_grafana_provisioning_is_mounted() -> None:
    mounts = _mounts(_services()["grafana"])
    assert _host_of("/etc/grafana/provisioning", mounts) == (GRAFANA_DIR / "provisioning").resolve()
    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    for provider in providers:
        folder = _host_of(provider["options"]["path"], mounts)
        assert folder == DASHBOARDS_DIR.resolve(), (
            f"provider {provider['name']} reads an unmounted path"
        )


def test_grafana_dashboards_use_leadstream_metrics() -> None:
    assert _dashboards(), "no dashboard JSON in config/grafana/dashboards"
    exported = _exported_metric_names()
    uids = _datasource_uids()
    for path in _dashboards():
        dashboard = json.loads(path.read_text())
        assert dashboard.get("uid") and dashboard.get("title"), path.name
        panels = [p for p in _panels(dashboard) if p.get("type") != "row"]
        assert panels, f"{path.name} has no panels"
        for panel in panels:
            targets = panel.get("targets", [])
            assert targets, f"{path.name}: panel {panel.get('title')!r} has no queries"
            for target in targets:
                names = _metric_names(target["expr"])
                assert names, f"{path.name}: no metric in {target['expr']!r}"
                for name in names:
                    assert name.startswith("leadstream_"), f"{path.name}: {name} is not ours"
                    assert name in exported, f"{path.name}: the worker exports no {name}"
                ds = target.get("datasource") or panel.get("datasource") or {}
                assert ds.get("uid") in uids, f"{path.name}: unknown data source {ds}"


def test_grafana_dashboard_covers_the_core_metrics() -> None:
    text = " ".join(
        t["expr"]
        for path in _dashboards()
        for p in _panels(json.loads(path.read_text()))
        for t in p.get("targets", [])
    )
    for metric in ("leadstream_events_in_total", "leadstream_events_rejected_total",
                   "leadstream_scoring_latency_seconds_bucket", "leadstream_model_version"):  # fmt: skip
        assert metric in text, metric


# -- Dockerfile ----------------------------------------------------------------------


def test_dockerfile_copies_every_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    dockerfile = DOCKERFILE.read_text()
    for pattern in include:
        package = pattern.rstrip("*").rstrip(".")
        assert re.search(rf"^COPY\s+{package}/\s", dockerfile, re.M), (
            f"Dockerfile misses {package}/"
        )
    readme = pyproject["project"].get("readme")
    if readme:
        assert re.search(rf"^COPY\s.*\b{re.escape(readme)}\b", dockerfile, re.M)


def test_dockerfile_runs_leadstream_as_non_root() -> None:
    lines = [line.split() for line in DOCKERFILE.read_text().splitlines() if line.strip()]
    users = [words[1] for words in lines if words[0] == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ["ENTRYPOINT", '["leadstream"]'] in lines
    bases = [words[1] for words in lines if words[0] == "FROM"]
    assert bases and all(base == "python:3.11-slim-bookworm" for base in bases), bases
