"""The shipped alert rules and Alertmanager routes, checked by promtool and amtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cli._service_config import render_alertmanager_config, templates_dir

RULES = sorted((templates_dir() / "prometheus" / "rules").glob("*.yml"))
ALERTMANAGER = templates_dir() / "alertmanager" / "alertmanager.yml"
RULE_TESTS = sorted((Path(__file__).parent / "rules").glob("*.test.yml"))


def run(*argv: str) -> str:
    tool = shutil.which(argv[0])
    assert tool, f"{argv[0]} is not installed: run scripts/install-system-deps.sh"
    result = subprocess.run([tool, *argv[1:]], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_rules_pass_promtool_check() -> None:
    assert {p.name for p in RULES} >= {"leadstream.yml", "anomalies.yml"}
    out = run("promtool", "check", "rules", *map(str, RULES))
    assert "SUCCESS: 4 rules found" in out and "SUCCESS: 6 rules found" in out


def test_rules_pass_their_promtool_unit_tests() -> None:
    assert RULE_TESTS
    out = run("promtool", "test", "rules", *map(str, RULE_TESTS))
    assert "SUCCESS" in out


def test_every_rule_is_unit_tested() -> None:
    import yaml

    names = {
        r["alert"] for f in RULES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]
    }
    tested = {
        case["alertname"]
        for f in RULE_TESTS
        for t in yaml.safe_load(f.read_text())["tests"]
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert names == tested


def test_alertmanager_config_passes_amtool_as_shipped_and_rendered(tmp_path: Path) -> None:
    run("amtool", "check-config", str(ALERTMANAGER))
    rendered = render_alertmanager_config(tmp_path, webhook_port=45678)
    out = run("amtool", "check-config", str(rendered))
    assert "2 inhibit rules" in out and "3 receivers" in out
    assert "127.0.0.1:45678/alerts/critical" in rendered.read_text()


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "component=anomaly", "series=overall/lead_volume"], "oncall"),
        (["severity=critical", "alertname=LeadstreamWorkerDown"], "oncall"),
        (["severity=warning", "component=pipeline"], "leadstream-webhook"),
        (["severity=info", "component=anomaly"], "marketing"),
        (["alertname=SomethingUnlabelled"], "leadstream-webhook"),
    ],
)
def test_routes_by_severity(labels: list[str], receiver: str) -> None:
    out = run("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert out.strip().splitlines()[-1].strip() == receiver
