"""Ingest: validation reasons, normalisation, and that no clear personal data survives."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streaming.ingest import Accepted, Ingestor, Rejected

KEY = b"test-key-0123456789"
PII = ("email", "phone", "first_name", "last_name", "name", "ip_address")
NOW = datetime(2026, 1, 10, tzinfo=UTC)


def lead(**over: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": "ev-1",
        "event_type": "lead_created",
        "occurred_at": "2026-01-05T10:00:00+01:00",
        "schema_version": 1,
        "lead_id": "L1",
        "channel": " Paid Search ",
        "campaign_id": "ps-01",
        "email": "  Ann.Lee@Acme.IO ",
        "phone": "+1 (555) 010-2030",
        "first_name": "Zoltana",
        "last_name": "Quibbleworth",
        "ip_address": "203.0.113.9",
        "country": "deu",
        "company_size": 120,
        "pages_viewed": 4,
        "utm_content": "hero-banner",
    }
    event.update(over)
    return event


def ingest(topic: str, kind: str, payload: bytes) -> Accepted | Rejected:
    return Ingestor(topic, kind, PII, KEY).ingest(payload, NOW, partition=0, offset=7)


def test_lead_is_normalised_and_extras_kept() -> None:
    out = ingest("leads.raw", "lead", orjson.dumps(lead()))
    assert isinstance(out, Accepted)
    e = out.event
    assert e["channel"] == "paid_search"
    assert e["country"] == "DE"
    assert e["occurred_at"] == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert e["email_domain"] == "acme.io" and e["email_is_free"] is False
    assert e["utm_content"] == "hero-banner"
    assert out.key == "L1"


def test_email_is_lower_cased_before_hashing() -> None:
    a = ingest("leads.raw", "lead", orjson.dumps(lead(email="ANN.LEE@acme.io")))
    b = ingest("leads.raw", "lead", orjson.dumps(lead(email=" ann.lee@ACME.io")))
    assert isinstance(a, Accepted) and isinstance(b, Accepted)
    assert a.event["email_hash"] == b.event["email_hash"]


def test_no_clear_personal_data_survives() -> None:
    out = ingest("leads.raw", "lead", orjson.dumps(lead(notes="call ann.lee@acme.io")))
    assert isinstance(out, Accepted)
    text = orjson.dumps(out.event, default=str).decode().lower()
    for clear in ("ann.lee@", "zoltana", "quibbleworth", "010-2030", "5550102030", "203.0.113.9"):
        assert clear not in text, clear
    assert {"email", "phone", "first_name", "last_name", "ip_address"}.isdisjoint(out.event)


def test_spend_amount_is_a_decimal() -> None:
    payload = {
        "event_id": "s1",
        "event_type": "spend",
        "occurred_at": "2026-01-05T00:00:00Z",
        "schema_version": 1,
        "campaign_id": "ps-01",
        "channel": "Paid Search",
        "date": "2026-01-05",
        "amount": "1234.50",
        "currency": "usd",
    }
    out = ingest("spend.raw", "spend", orjson.dumps(payload))
    assert isinstance(out, Accepted)
    assert str(out.event["amount"]) == "1234.50" and out.event["currency"] == "USD"
    assert out.key == "ps-01"


@pytest.mark.parametrize(
    ("topic", "kind", "payload", "code", "reason"),
    [
        (
            "conversions.raw",
            "conversion",
            {
                "event_id": "c1",
                "event_type": "stage_change",
                "occurred_at": "2026-01-05T10:00:00Z",
                "schema_version": 1,
                "lead_id": "L1",
                "stage": "closed",
            },
            "invalid_field",
            "conversions.raw: stage 'closed' is not one of mql, sql, opportunity, won, lost",
        ),
        (
            "leads.raw",
            "lead",
            lead(event_type="lead_deleted"),
            "unknown_event_type",
            "leads.raw: event_type 'lead_deleted' is not one of lead_created or lead_updated",
        ),
        (
            "leads.raw",
            "lead",
            {k: v for k, v in lead().items() if k != "lead_id"},
            "missing_field",
            "leads.raw: lead_id is missing",
        ),
        (
            "leads.raw",
            "lead",
            lead(pages_viewed="lots"),
            "invalid_field",
            "leads.raw: pages_viewed 'lots'",
        ),
        (
            "leads.raw",
            "lead",
            lead(occurred_at="2026-01-05T10:00:00"),
            "invalid_field",
            "occurred_at needs a time zone",
        ),
        (
            "leads.raw",
            "lead",
            lead(country="Atlantis"),
            "invalid_field",
            "country 'Atlantis' is not an ISO 3166 code or country name",
        ),
        (
            "leads.raw",
            "lead",
            lead(schema_version=9),
            "invalid_field",
            "schema_version 9 is not supported",
        ),
        (
            "leads.raw",
            "lead",
            lead(occurred_at="2027-06-01T00:00:00Z"),
            "future",
            "is in the future",
        ),
    ],
)
def test_reasons_are_precise(
    topic: str, kind: str, payload: dict[str, object], code: str, reason: str
) -> None:
    out = ingest(topic, kind, orjson.dumps(payload))
    assert isinstance(out, Rejected)
    assert out.code == code
    assert reason in out.reason
    assert out.source_topic == topic and out.offset == 7


def test_reason_keeps_a_topic_name_that_looks_like_a_phone_number() -> None:
    """Only the quoted values are scrubbed: a ten-digit topic prefix stays readable."""
    topic = "t5462663760.leads.raw"
    out = ingest(topic, "lead", orjson.dumps(lead(event_type="nope", phone_note="+1 555 010 2030")))
    assert isinstance(out, Rejected)
    assert out.reason.startswith(topic + ": event_type 'nope'")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "empty"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"a string"', "not_an_object"),
        (b"\xff\xfe\x00", "invalid_json"),
        (b"[" * 5000 + b"]" * 5000, "invalid_json"),
        (b'{"x": "' + b"a" * 300_000 + b'"}', "too_large"),
    ],
)
def test_malformed_payloads_are_rejected(payload: bytes, code: str) -> None:
    out = ingest("leads.raw", "lead", payload)
    assert isinstance(out, Rejected)
    assert out.code == code


def test_rejected_payload_has_no_clear_personal_data() -> None:
    bad = lead(pages_viewed="lots", email="ann.lee@acme.io")
    out = ingest("leads.raw", "lead", orjson.dumps(bad))
    assert isinstance(out, Rejected)
    body = out.payload.decode()
    for clear in ("ann.lee@acme.io", "Zoltana", "Quibbleworth", "203.0.113.9", "010-2030"):
        assert clear not in body
    assert "pages_viewed" in body  # the rest of the event is kept for diagnosis


def test_reason_does_not_echo_personal_data() -> None:
    out = ingest("leads.raw", "lead", orjson.dumps(lead(email=["ann.lee@acme.io"])))
    assert isinstance(out, Rejected)
    assert "ann.lee@acme.io" not in out.reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_any_bytes_give_an_answer_never_an_exception(payload: bytes) -> None:
    out = ingest("touchpoints.raw", "touchpoint", payload)
    assert isinstance(out, Accepted | Rejected)
