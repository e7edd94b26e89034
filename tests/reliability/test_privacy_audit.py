"""Privacy audit: the whole pipeline on generated people, then a search for them everywhere.

Promise: no clear e-mail address, phone number, name or IP address of any person in
the input is in ClickHouse (every column of every table), on any topic leadstream
writes (scored leads, training examples, anomalies, dead letters), in the worker's
logs, or in the reports and API views built from ClickHouse. The raw input topics
are the sources' own data and are not searched.

The search is made sensitive (lower-cased text; phone numbers as digit runs whatever
the separators; names as whole words) and a positive control proves it: values
planted unhashed in ClickHouse, on a topic and in a log line are all found.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streaming import synthetic
from streaming.producer import bootstrap_servers
from tests.integration._worker import WorkerRun, wait_handled

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Person:
    email: str
    phone: str | None
    first: str
    last: str
    ip: str


def people(events: Iterable[synthetic.Emitted]) -> list[Person]:
    """Everyone in the input, good events and spoiled copies alike."""
    out = {}
    for e in events:
        v = e.value
        if e.kind == "lead" and isinstance(v, dict) and "email" in v:
            out[v["email"]] = Person(v["email"], v.get("phone"), v["first_name"], v["last_name"],
                                     v["ip_address"])  # fmt: skip
    return list(out.values())


class Scanner:
    """Finds any person's clear values in text, in their normalised forms."""

    def __init__(self, persons: list[Person]) -> None:
        self.emails = {p.email.lower() for p in persons}
        self.local_parts = {p.email.lower().split("@")[0] for p in persons}
        self.phones = {_digits(p.phone)[-9:] for p in persons if p.phone}
        self.ips = {p.ip for p in persons}
        names = {f"{p.first} {p.last}".lower() for p in persons}
        names |= {p.last.lower() for p in persons} | {p.first.lower() for p in persons}
        self.names = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(names))) + r")\b")
        self.ip_re = re.compile(
            r"(?<![\d.])(?:" + "|".join(map(re.escape, sorted(self.ips))) + r")(?![\d.])"
        )

    def find(self, text: str) -> list[tuple[str, str]]:
        """(kind, value) of every clear personal value in ``text``."""
        low = " ".join(text.lower().split())
        hits = [("email", e) for e in self.emails if e in low]
        hits += [("email local part", p) for p in self.local_parts if len(p) > 6 and f"{p}@" in low]
        hits += [("ip", m[0]) for m in self.ip_re.finditer(low)]
        hits += [("name", m[0]) for m in self.names.finditer(low)]
        # Digits joined across phone separators, each run compared on its last 9 digits.
        runs = re.findall(r"\d[\d ()\-./]{6,}\d", low)
        hits += [("phone", r) for r in runs if any(p in _digits(r) for p in self.phones)]
        return hits


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@pytest.fixture
def run(broker_url: str, redis_url: str, run_id: str, tmp_path: Path) -> Iterator[WorkerRun]:
    worker = WorkerRun(run_id=run_id, broker_url=broker_url, redis_url=redis_url, tmp=tmp_path)
    worker.extra_env.update(
        {"LEADSTREAM_LOG_LEVEL": "info", "LEADSTREAM_MODELS__HORIZON_DAYS": "5"}
    )
    yield worker
    if worker.process is not None and worker.process.poll() is None:
        worker.stop()


def test_no_clear_personal_data_anywhere(run: WorkerRun) -> None:
    cfg = synthetic.GeneratorConfig(seed=41, leads=150, days=20, bad_fraction=0.1)
    events = list(synthetic.generate(cfg))
    persons = people(events)
    assert len(persons) > 120
    scanner = Scanner(persons)
    run.start()
    sent = run.send(events)
    wait_handled(run, sum(sent.values()))
    time.sleep(1.5)  # the learner and sinks after the last batch
    run.stop(signal.SIGKILL)  # what is written is durable; a clean stop is tested elsewhere

    found: dict[str, list[tuple[str, str]]] = {}
    client = run.clickhouse()
    try:
        for table, text in clickhouse_texts(client):
            if hits := scanner.find(text):
                found[f"clickhouse {table}"] = hits[:5]
        for name, text in report_texts(client, run):
            if hits := scanner.find(text):
                found[f"report {name}"] = hits[:5]
        topics = asyncio.run(topic_texts(run.broker_url, run.run_id))
        assert {run.topics.scored, run.topics.training, run.topics.deadletter} <= set(topics)
        for topic, text in topics.items():
            if hits := scanner.find(text):
                found[f"topic {topic}"] = hits[:5]
        logs = "\n".join(p.read_text(errors="replace") for p in run.tmp.glob("worker-*.log"))
        assert "event.rejected" in logs  # the log holds the dead-letter reasons it should
        if hits := scanner.find(logs):
            found["worker log"] = hits[:5]
        assert found == {}

        # Positive control: the same searches find values planted unhashed.
        p = persons[0]
        assert p.phone
        planted = (f'{{"note": "{p.email.upper()}", "tel": "{_spaced(p.phone)}",'
                   f' "who": "{p.first.upper()}  {p.last}", "ip": "{p.ip}"}}')  # fmt: skip
        client.command(
            "INSERT INTO leadstream.rejected_events (source_topic, payload_sha256, reason,"
            " reason_code, payload, received_at) VALUES ('control', repeat('0', 64), 'control',"
            " 'control', {p:String}, now64(3))",
            parameters={"p": planted},
        )
        kinds = {kind for _, text in clickhouse_texts(client) for kind, _ in scanner.find(text)}
        assert {"email", "phone", "name", "ip"} <= kinds
    finally:
        client.close()
    asyncio.run(_produce(run.broker_url, run.topics.anomalies, planted.encode()))
    topics = asyncio.run(topic_texts(run.broker_url, run.run_id))
    assert {k for k, _ in scanner.find(topics[run.topics.anomalies])} >= {"email", "phone", "ip"}
    assert {k for k, _ in scanner.find(logs + "\n" + planted)} >= {"email", "name", "ip"}


def _spaced(phone: str) -> str:
    """The same number written another way: '+49 151 2345678' -> '(0049) 151-234-5678'."""
    d = _digits(phone)
    return f"(00{d[:2]}) {d[2:5]}-{d[5:8]}-{d[8:]}"


def clickhouse_texts(client: Any) -> Iterator[tuple[str, str]]:
    """Every table of the database as text: every column cast to String (aggregate states
    as hex), rows joined by newlines."""
    tables = client.query(
        "SELECT name FROM system.tables WHERE database = 'leadstream' AND engine NOT LIKE '%View'"
    ).result_rows
    assert len(tables) >= 8
    for (table,) in tables:
        cols = client.query(
            "SELECT name, type FROM system.columns WHERE database = 'leadstream' AND table = {t:String}",
            parameters={"t": table},
        ).result_rows
        exprs = [f"hex(finalizeAggregation(`{c}`))" if t.startswith("AggregateFunction")
                 else f"toString(`{c}`)" for c, t in cols]  # fmt: skip
        rows = client.query(
            f"SELECT arrayStringConcat([{', '.join(exprs)}], '\\t') FROM leadstream.`{table}`"
        ).result_rows
        yield table, "\n".join(r[0] for r in rows)


def report_texts(client: Any, run: WorkerRun) -> Iterator[tuple[str, str]]:
    """What the reports and the API views show for the whole period of the input."""
    from reporting.queries import Analytics, Filters
    from reporting.summary import run_summary

    yield "run summary", repr(run_summary(client, "leadstream"))
    analytics = Analytics(client, "leadstream")
    f = Filters(start=date(2026, 1, 1), end=date(2026, 3, 31))
    options = analytics.options()
    yield "api options", repr(options)
    yield "api kpis", repr(analytics.kpis(f))
    assert options.channels
    for channel in options.channels:  # the lead drill-down an API client sees, per channel
        leads = analytics.leads(f.model_copy(update={"channel": channel}), limit=1000)
        assert leads
        yield f"api leads {channel}", repr(leads)


async def topic_texts(broker_url: str, run_id: str) -> dict[str, str]:
    """Every message of every topic of this run except the raw input topics."""
    servers = bootstrap_servers(broker_url)
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        names = sorted(t for t in await consumer.topics() if run_id in t and not t.endswith(".raw"))
        consumer.subscribe(names)
        texts: dict[str, list[str]] = {n: [] for n in names}
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=700)
            idle = 0 if batch else idle + 1
            for tp, records in batch.items():
                texts[tp.topic].extend(
                    (r.key or b"").decode(errors="replace") + " " + (r.value or b"").decode(errors="replace")
                    for r in records
                )  # fmt: skip
    finally:
        await consumer.stop()
    return {n: "\n".join(v) for n, v in texts.items()}


async def _produce(broker_url: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(broker_url))
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
