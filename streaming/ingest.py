"""From raw bytes on a raw topic to a clean event or a dead-letter record.

Pure: no I/O and no clock (the caller passes ``now``). Parsing and validation
run in one pass with pydantic's JSON parser; personal data is replaced by keyed
hashes before anything leaves this module.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from pydantic import ValidationError

from config.settings import STAGES
from streaming.events import EVENT_MODELS, EVENT_TYPES, describe_errors
from streaming.pii import hash_personal_fields, keyed_hash, scrub_text

#: Events further in the future than this, against the ingest clock, are rejected.
MAX_CLOCK_SKEW = timedelta(days=1)
#: Events older than this are rejected: no lead history is older, and ancient dates would
#: each open their own monthly ClickHouse partition (and expire at once by TTL).
EARLIEST_OCCURRED_AT = datetime(2000, 1, 1, tzinfo=UTC)
#: Extra (unknown) fields may nest this deep; deeper structures are rejected.
MAX_EXTRA_DEPTH = 16
# Fields leadstream derives itself or writes as columns: a source may not send them.
_DERIVED = frozenset(
    {"email_domain", "email_is_free", "email_is_role", "ingested_at", "attributes"}
)
_INT64 = (-(2**63), 2**63 - 1)
_WORD = re.compile(r'[^\s{}\[\],:"\\]+')
_HARMLESS = re.compile(r"[-+.\dTZ]{0,40}")
_LONG_DIGITS = re.compile(r"\d{9}")
_VOCABULARY = frozenset(
    {name for model in EVENT_MODELS.values() for name in model.model_fields}
    | {t for types in EVENT_TYPES.values() for t in types}
    | {"true", "false", "null", *STAGES}
)


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
        if model.occurred_at < EARLIEST_OCCURRED_AT:
            return self._reject(
                raw,
                "too_old",
                f"{self.topic}: occurred_at {model.occurred_at.isoformat()} is before"
                f" {EARLIEST_OCCURRED_AT.date().isoformat()}",
                partition,
                offset,
            )
        extra = model.__pydantic_extra__
        if extra:
            problem = self._check_extra(extra)
            if problem is not None:
                return self._reject(
                    raw, "invalid_field", f"{self.topic}: {problem}", partition, offset
                )
            extra = {name: self._scrub(value, 1, name) for name, value in extra.items()}
        # The models are flat: their fields and extras are the event (cheaper than model_dump).
        fields = {**model.__dict__, **(extra or {})}
        event = hash_personal_fields(fields, self.pii_fields, self.key)
        return Accepted(
            kind=self.kind,
            key=str(event[self._key_field]),
            event_id=model.event_id,
            occurred_at=model.occurred_at,
            event=event,
        )

    def _check_extra(self, extra: dict[str, Any]) -> str | None:
        """Why the unknown fields cannot be kept as they are, or None if they can."""
        reserved = _DERIVED | {f"{f}_hash" for f in self.pii_fields}
        for name in extra:
            if name in reserved:
                return f"{name} is derived by leadstream and may not be sent"
        stack: list[tuple[Any, int]] = [(v, 1) for v in extra.values()]
        while stack:
            value, depth = stack.pop()
            if isinstance(value, dict | list):
                if depth > MAX_EXTRA_DEPTH:
                    return f"extra fields nest deeper than {MAX_EXTRA_DEPTH} levels"
                items = value.values() if isinstance(value, dict) else value
                stack.extend((v, depth + 1) for v in items)
            elif isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
                return f"an extra field holds an integer beyond 64 bits ({str(value)[:20]}...)"
        return None

    def _scrub(self, value: Any, depth: int = 0, name: str = "") -> Any:
        """An unknown field's value with personal data hashed, however deeply it is nested.

        Personal field names are matched in nested objects too, in any case and with a
        typo or a prefix (``Email``, ``e-mail``, ``frist_name``, ``mobile_phone``); any
        text that looks like an e-mail, IPv4 address or phone number is hashed.
        """
        if name and value is not None and _looks_personal(name, self.pii_fields):
            text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
            return "hash:" + keyed_hash(self.key, " ".join(text.lower().split()))[:16]
        if isinstance(value, str):
            return scrub_text(value, self.key)
        if depth > 2 * MAX_EXTRA_DEPTH and isinstance(value, list | dict):
            return "(nested too deep)"  # only in dead-letter payloads: extras are shallower
        if isinstance(value, list):
            return [self._scrub(v, depth + 1) for v in value]
        if isinstance(value, dict):
            exact = {
                str(k).lower(): v for k, v in value.items() if str(k).lower() in self.pii_fields
            }
            rest = {
                str(k): self._scrub(v, depth + 1, str(k))
                for k, v in value.items()
                if str(k).lower() not in exact
            }
            return {**rest, **hash_personal_fields(exact, self.pii_fields, self.key)}
        return value

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
        # Reasons quote the offending values; hash anything personal in them, but not the
        # topic's name, which may hold a run of digits (a tenant or test prefix).
        return code, f"{self.topic}: {scrub_text(describe_errors(exc), self.key)}"

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
            # Nested personal fields too (any case), then the top level.
            cleaned = hash_personal_fields(self._scrub(parsed), self.pii_fields, self.key)
            try:
                return orjson.dumps(cleaned, default=str)  # every string was scrubbed
            except orjson.JSONEncodeError:  # nested deeper than orjson writes: use the text
                pass
        # Not a JSON object (often cut off mid-way, or corrupted): nothing says which text
        # is personal, so every word that is not a field name, an event type or a short
        # number is replaced by a hash. The structure stays readable for diagnosis.
        # Phone numbers first: their digit groups would each pass as a short number.
        text = scrub_text(raw.decode("utf-8", errors="replace"), self.key)
        return _WORD.sub(lambda m: _mask_word(m[0], self.key), text).encode("utf-8")


def _mask_word(word: str, key: bytes) -> str:
    """A word of an unparseable payload, or its hash if it could be personal.

    >>> [_mask_word(w, b"k" * 16) for w in ("last_name", "2026-01-05T10", "Quibbleworth")]
    ['last_name', '2026-01-05T10', '~...']
    """
    if word in _VOCABULARY or (_HARMLESS.fullmatch(word) and not _LONG_DIGITS.search(word)):
        return word
    return "~" + keyed_hash(key, word)[:10]


_PERSONAL_WORDS = ("email", "mail", "phone", "mobile", "firstname", "lastname", "fullname",
                   "surname", "ipaddress")  # fmt: skip


@lru_cache(maxsize=4096)
def _looks_personal(name: str, fields: tuple[str, ...]) -> bool:
    """Whether an unknown field's name says it holds personal data (typos and prefixes too).

    >>> [_looks_personal(n, ("email", "first_name")) for n in ("E-Mail", " irst_name", "utm")]
    [True, True, False]
    """
    norm = re.sub(r"[^a-z0-9]", "", name.lower())
    if not norm:
        return False
    targets = {re.sub(r"[^a-z0-9]", "", f.lower()) for f in fields}
    if norm in targets or any(w in norm for w in _PERSONAL_WORDS):
        return True
    return any(_one_edit_apart(norm, t) for t in targets if len(t) >= 4)


def _one_edit_apart(a: str, b: str) -> bool:
    """Whether one insertion, deletion or substitution turns ``a`` into ``b``.

    >>> _one_edit_apart("irstname", "firstname"), _one_edit_apart("phnoe", "phone")
    (True, False)
    """
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
    if len(a) == len(b):
        return a[i + 1 :] == b[i + 1 :]
    return a[i:] == b[i + 1 :]
