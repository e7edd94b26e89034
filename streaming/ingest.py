"""From raw bytes on a raw topic to a clean event or a dead-letter record.

Pure: no I/O and no clock (the caller passes ``now``). Parsing and validation
run in one pass with pydantic's JSON parser; personal data is replaced by keyed
hashes before anything leaves this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from streaming.events import EVENT_MODELS, describe_errors
from streaming.pii import hash_personal_fields, scrub_text

#: Events further in the future than this, against the ingest clock, are rejected.
MAX_CLOCK_SKEW = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid event: normalised, personal data hashed, ready for state and sinks."""

    kind: str
    key: str
    event_id: str
    occurred_at: datetime
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejected:
    """An event that failed; ``payload`` is the original with personal data hashed."""

    source_topic: str
    reason: str
    code: str
    payload: bytes
    payload_sha256: str
    partition: int = -1
    offset: int = -1

    def envelope(self, received_at: datetime) -> dict[str, Any]:
        """The dead-letter message body."""
        return {
            "reason": self.reason,
            "reason_code": self.code,
            "source_topic": self.source_topic,
            "partition": self.partition,
            "offset": self.offset,
            "received_at": received_at,
            "payload_sha256": self.payload_sha256,
            "payload": self.payload.decode("utf-8", errors="replace"),
        }


class Ingestor:
    """Validate, normalise and de-identify raw events of one topic.

    Parameters
    ----------
    topic
        The source topic name (used in reasons).
    kind
        One of ``lead``, ``touchpoint``, ``conversion``, ``spend``.
    pii_fields
        Field names holding personal data.
    key
        The HMAC key for personal data.
    max_bytes
        Larger payloads are rejected without being parsed.

    Examples
    --------
    >>> ing = Ingestor("conversions.raw", "conversion", ("email",), b"k" * 16)
    >>> now = datetime.fromisoformat("2026-01-06T00:00:00+00:00")
    >>> ing.ingest(b'{"event_id": "e1"', now).reason
    'conversions.raw: not valid JSON (EOF while parsing an object at line 1 column 17)'
    >>> ok = ing.ingest(b'{"event_id": "e2", "event_type": "stage_change", "schema_version": 1,'
    ...     b' "occurred_at": "2026-01-05T10:00:00Z", "lead_id": "L1", "stage": "SQL"}', now)
    >>> ok.kind, ok.key, ok.event["stage"]
    ('conversion', 'L1', 'sql')
    """

    def __init__(
        self,
        topic: str,
        kind: str,
        pii_fields: tuple[str, ...],
        key: bytes,
        max_bytes: int = 256 * 1024,
    ) -> None:
        if kind not in EVENT_MODELS:
            raise ValueError(f"unknown event kind {kind!r}; known: {', '.join(EVENT_MODELS)}")
        self.topic = topic
        self.kind = kind
        self.pii_fields = pii_fields
        self.key = key
        self.max_bytes = max_bytes
        self._model = EVENT_MODELS[kind]
        self._key_field = "campaign_id" if kind == "spend" else "lead_id"

    def ingest(
        self, raw: bytes | None, now: datetime, partition: int = -1, offset: int = -1
    ) -> Accepted | Rejected:
        """Turn one raw message into an :class:`Accepted` or a :class:`Rejected`."""
        if raw is None or not raw.strip():
            return self._reject(
                raw or b"", "empty", f"{self.topic}: empty message", partition, offset
            )
        if len(raw) > self.max_bytes:
            return self._reject(
                raw[:1024],
                "too_large",
                f"{self.topic}: event is {len(raw)} bytes, over the {self.max_bytes}-byte limit",
                partition,
                offset,
            )
        try:
            model = self._model.model_validate_json(raw)
        except ValidationError as exc:
            code, reason = self._reason(exc)
            return self._reject(raw, code, reason, partition, offset)
        if model.occurred_at > now + MAX_CLOCK_SKEW:
            return self._reject(
                raw,
                "future",
                f"{self.topic}: occurred_at {model.occurred_at.isoformat()} is in the future",
                partition,
                offset,
            )
        # The models are flat: their fields and extras are the event (cheaper than model_dump).
        fields = {**model.__dict__, **(model.__pydantic_extra__ or {})}
        event = hash_personal_fields(fields, self.pii_fields, self.key)
        return Accepted(
            kind=self.kind,
            key=str(event[self._key_field]),
            event_id=model.event_id,
            occurred_at=model.occurred_at,
            event=event,
        )

    def _reason(self, exc: ValidationError) -> tuple[str, str]:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            detail = str(errors[0].get("ctx", {}).get("error", "")).strip()
            return "invalid_json", f"{self.topic}: not valid JSON ({detail})"
        if errors and errors[0]["type"] in {"model_type", "model_attributes_type"}:
            return "not_an_object", f"{self.topic}: an event must be a JSON object"
        if any(e["loc"] == ("event_type",) for e in errors):
            code = "unknown_event_type"
        elif any(e["type"] == "missing" for e in errors):
            code = "missing_field"
        else:
            code = "invalid_field"
        # Reasons quote the offending values; hash anything personal in them.
        return code, scrub_text(describe_errors(self.topic, exc), self.key)

    def _reject(self, raw: bytes, code: str, reason: str, partition: int, offset: int) -> Rejected:
        return Rejected(
            source_topic=self.topic,
            reason=reason,
            code=code,
            payload=self._deidentify(raw),
            payload_sha256=hashlib.sha256(raw).hexdigest(),
            partition=partition,
            offset=offset,
        )

    def _deidentify(self, raw: bytes) -> bytes:
        """The payload with personal fields hashed and personal-looking text scrubbed."""
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            cleaned = hash_personal_fields(parsed, self.pii_fields, self.key)
            raw = orjson.dumps(cleaned, default=str)
        text = raw.decode("utf-8", errors="replace")
        return scrub_text(text, self.key).encode("utf-8")
