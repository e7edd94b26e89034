"""The README's "Run it for real" block, run as written: services, keys, worker, generator,
report, and the dashboard through the login URL that `serve` prints, all beside the running
worker, which owns the chDB store and serves it to the others.

The block runs in bash, in a folder of its own, with `leadstream` on the PATH. Only what
isolates this run from others sharing the services is added to its environment (topic
names, consumer group, Redis prefix, chDB folder, ports). The session's services are shared,
so `leadstream services up` is run as `leadstream services status`, which fails unless all
four are up.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Services
from tests.integration._worker import WorkerRun, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def walkthrough() -> list[str]:
    """The commands of the README block marked ``walkthrough``, one per line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- walkthrough:[^>]*-->\n```sh\n(.*?)\n```", text, re.S)
    assert found, "README.md lost its walkthrough block"
    return found[1].splitlines()


def _shim(folder: Path) -> Path:
    """A `leadstream` command on the PATH, as the console script would be."""
    folder.mkdir()
    path = folder / "leadstream"
    path.write_text(
        "#!/bin/sh\n"
        "# The services are the session's: check them instead of starting them.\n"
        'if [ "$1" = services ] && [ "$2" = up ]; then set -- services status; fi\n'
        f'exec {sys.executable} -m cli.main "$@"\n'
    )
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return folder


def test_the_run_it_for_real_block_works_as_written(
    services: Services, run_id: str, tmp_path: Path
) -> None:
    lines = walkthrough()
    serve_at = next(i for i, line in enumerate(lines) if line.startswith("leadstream serve"))
    assert serve_at == len(lines) - 1, "serve runs until stopped: the block ends with it"
    work = tmp_path / "work"
    work.mkdir()
    run = WorkerRun(run_id=run_id, broker_url=services.broker_url,
                    redis_url=services.redis_url, tmp=tmp_path)  # fmt: skip
    env = {k: v for k, v in run.env().items() if k != "LEADSTREAM_PII_HASH_KEY"}
    env.pop("LEADSTREAM_LOG_LEVEL")
    api_port = free_port()
    env |= {
        "PATH": f"{_shim(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "LEADSTREAM_SERVICES__RUN_DIR": str(services.run_dir),
        "LEADSTREAM_API__PORT": str(api_port),
    }
    script = ("set -eu\n" + "\n".join(lines[:serve_at])
              + '\necho "$worker"\necho "$LEADSTREAM_API__TOKEN"\n')  # fmt: skip
    started = time.monotonic()
    # To files, not pipes: the worker left running holds the block's standard output.
    with (tmp_path / "stdout").open("w") as stdout, (tmp_path / "stderr").open("w") as stderr:
        done = subprocess.run(["bash", "-c", script], cwd=work, env=env, stdout=stdout,
                              stderr=stderr, timeout=240, check=False)  # fmt: skip
    out = subprocess.CompletedProcess(done.args, done.returncode,
                                      (tmp_path / "stdout").read_text(),
                                      (tmp_path / "stderr").read_text())  # fmt: skip
    worker_pid = int(out.stdout.strip().splitlines()[-2]) if out.returncode == 0 else None
    try:
        assert out.returncode == 0, out.stderr[-3000:]
        _report_and_serve(out, work, env, lines[serve_at], api_port)
    finally:
        if worker_pid is not None:  # the worker ran through it all: it stops cleanly now
            os.kill(worker_pid, signal.SIGTERM)
            _wait_gone(worker_pid, 60)
    worker_log = (work / "worker.log").read_text()
    assert "Traceback" not in out.stderr + worker_log
    assert "store.relay_serving" in worker_log
    # One format: every line the worker wrote is a JSON object (Faust's own lines too).
    other = [line for line in worker_log.splitlines() if line.strip() and not line.startswith("{")]
    assert not other, other[:5]
    records = [json.loads(line) for line in worker_log.splitlines() if line.strip()]
    assert not [r for r in records if r.get("level") != "info" and r["event"].startswith("broker.")]
    assert time.monotonic() - started < 300


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"the worker (pid {pid}) did not stop within {timeout} s of SIGTERM")


def _report_and_serve(
    out: subprocess.CompletedProcess[str], work: Path, env: dict[str, str], serve_line: str,
    api_port: int,
) -> None:
    """The report the block made, and the dashboard `serve` opens, while the worker runs."""
    token = out.stdout.strip().splitlines()[-1]
    assert len(token) >= 32
    # The report covers the last complete week of the generated data and found its leads.
    assert "reporting on week" in out.stderr and "no leads in" not in out.stderr
    html = next((work / "var" / "reports").glob("weekly-*/*.html")).read_text()
    leads = re.search(r"([\d,]+) new leads arrived", html)
    assert leads and int(leads[1].replace(",", "")) > 0, html[:2000]

    serve_env = env | {"LEADSTREAM_API__TOKEN": token}
    serve = subprocess.Popen(["bash", "-c", serve_line], cwd=work, env=serve_env,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert serve.stderr is not None
        said = serve.stderr.readline()
        # Not a terminal here: the URL names the variable, so the token stays out of logs.
        assert token not in said
        url = re.search(r"(http://\S+/login\?token=)\$LEADSTREAM_API__TOKEN\b", said)
        assert url, said
        with httpx.Client(timeout=10) as http:
            for _ in range(100):
                try:
                    login = http.get(url[1] + token)
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            assert login.status_code == 303 and login.cookies, login.text
            page = http.get(login.headers["location"] if "://" in login.headers["location"]
                            else f"http://127.0.0.1:{api_port}/")  # fmt: skip
            assert page.status_code == 200 and "<html" in page.text.lower()
            health = http.get(f"http://127.0.0.1:{api_port}/api/v1/model-health")
            assert health.status_code == 200
            assert health.json()["metrics"], "model health is empty on the default range"
    finally:
        serve.terminate()
        serve.wait(timeout=30)
