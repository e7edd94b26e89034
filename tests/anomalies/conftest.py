"""A private Prometheus + Alertmanager pair and the receivers the alerts are delivered to.

The pair runs the project's binaries, rule files and Alertmanager configuration on free
ports (the shared services keep their own config); only the Alertmanager's timings are
shortened (group_wait, group_interval) so a test sees a notification within seconds,
and its webhooks and SMTP server point at this test's receivers on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from cli._procs import HOST, start_prometheus
from cli._service_config import render_alertmanager_config, templates_dir
from cli._spawn import ServiceHandle, spawn
from tests.anomalies._alerting import Mailbox, Webhook
from tests.integration._worker import free_port


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((HOST, hook.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    server.shutdown()
    server.server_close()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname=HOST, port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def alertmanager(
    tmp_path: Path, webhook: Webhook, mailbox: tuple[Mailbox, int]
) -> Iterator[ServiceHandle]:
    """The project's Alertmanager config with short timings, delivering to this test."""
    cfg = yaml.safe_load((templates_dir() / "alertmanager" / "alertmanager.yml").read_text())
    cfg["global"]["smtp_smarthost"] = f"{HOST}:{mailbox[1]}"

    def shorten(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            shorten(child)

    shorten(cfg["route"])
    template = tmp_path / "alertmanager-template.yml"
    template.write_text(yaml.safe_dump(cfg))
    port = free_port()

    def argv(binary: Path, directory: Path) -> list[str]:
        config = render_alertmanager_config(directory, webhook_port=webhook.port, template=template)
        return [str(binary), f"--config.file={config}", f"--storage.path={directory / 'data'}",
                f"--web.listen-address={HOST}:{port}", "--cluster.listen-address="]  # fmt: skip

    with spawn("alertmanager", port, tmp_path / "run", argv, timeout=30, detach=False) as handle:
        yield handle


@pytest.fixture
def prometheus_for(
    tmp_path: Path, alertmanager: ServiceHandle
) -> Iterator[Callable[[int], ServiceHandle]]:
    """Start a Prometheus scraping a worker's /metrics port, loading the project's rules."""
    handles: list[ServiceHandle] = []

    def start(worker_port: int) -> ServiceHandle:
        handle = start_prometheus(
            free_port(), tmp_path / "run", alertmanager_port=alertmanager.port,
            worker_port=worker_port, detach=False,
        )  # fmt: skip
        handles.append(handle)
        return handle

    yield start
    for h in handles:
        h.stop()
