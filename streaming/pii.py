"""Personal data: derive the useful features, then replace the value by a keyed hash.

Pure functions, no I/O. The key comes from the settings; a hash is
HMAC-SHA256 over the normalised value, so the same person hashes the same way
in every event and the hash cannot be reversed without the key.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Any

FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "hotmail.com",
        "outlook.com", "live.com", "msn.com", "aol.com", "icloud.com", "me.com",
        "mail.com", "gmx.com", "gmx.de", "web.de", "proton.me", "protonmail.com",
        "yandex.ru", "qq.com", "163.com", "zoho.com", "fastmail.com",
    }
)  # fmt: skip
ROLE_MAILBOXES: frozenset[str] = frozenset(
    {"info", "sales", "admin", "contact", "support", "hello", "office", "marketing"}
)

# Repeats are bounded (RFC 5321 lengths; phones under 32 characters): unbounded ones
# backtrack quadratically on a long run of letters or digits, one event could stall ingest.
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,24}")
IPV4_RE = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
PHONE_RE = re.compile(r"\+?\d[\d ()\-.]{7,30}\d")


def keyed_hash(key: bytes, value: str) -> str:
    """HMAC-SHA256 of a normalised value, as 64 hex characters.

    >>> keyed_hash(b"k" * 16, "a@b.com") == hmac.new(b"k" * 16, b"a@b.com", "sha256").hexdigest()
    True
    >>> len(keyed_hash(b"k" * 16, "a@b.com"))
    64
    """
    # hmac.digest is the one-shot OpenSSL path: several times faster than hmac.new(...).
    return hmac.digest(key, value.encode("utf-8"), "sha256").hex()


def normalise_pii(field: str, value: str) -> str:
    """The form a personal value is hashed in: e-mails lower-cased, phones digits only.

    >>> normalise_pii("email", "  Ann.Lee@Example.COM ")
    'ann.lee@example.com'
    >>> normalise_pii("phone", "+1 (555) 010-2030")
    '+15550102030'
    """
    text = value.strip()
    if field == "email":
        return text.lower()
    if field == "phone":
        return ("+" if text.startswith("+") else "") + re.sub(r"\D", "", text)
    return " ".join(text.lower().split())


def email_features(email: str) -> dict[str, Any]:
    """What an e-mail address says about a lead, without the address.

    >>> email_features("Ann@Acme.io")
    {'email_domain': 'acme.io', 'email_is_free': False, 'email_is_role': False}
    >>> email_features("info@gmail.com")["email_is_free"]
    True
    """
    local, _, domain = email.strip().lower().rpartition("@")
    return {
        "email_domain": domain or None,
        "email_is_free": domain in FREE_MAIL_DOMAINS,
        "email_is_role": local in ROLE_MAILBOXES,
    }


def hash_personal_fields(
    record: Mapping[str, Any], fields: Iterable[str], key: bytes
) -> dict[str, Any]:
    """Replace each personal field by ``<field>_hash``, after deriving e-mail features.

    Strings in other fields that look like an e-mail address are hashed in
    place, so an unknown extra field cannot smuggle one through.

    >>> out = hash_personal_fields({"email": "A@acme.io", "note": "x@y.com"}, ["email"], b"k" * 16)
    >>> sorted(out)
    ['email_domain', 'email_hash', 'email_is_free', 'email_is_role', 'note']
    >>> "@" in out["note"]
    False
    """
    personal = set(fields)
    out: dict[str, Any] = {}
    for name, value in record.items():
        if name in personal:
            if value is None or value == "":
                continue
            text = str(value)
            if name == "email":
                out.update(email_features(text))
            out[f"{name}_hash"] = keyed_hash(key, normalise_pii(name, text))
        elif isinstance(value, str) and "@" in value:
            out[name] = EMAIL_RE.sub(lambda m: "email:" + keyed_hash(key, m[0].lower())[:16], value)
        else:
            out[name] = value
    return out


def scrub_text(text: str, key: bytes) -> str:
    """Hash e-mails, IPv4 addresses and phone-like digit runs (9+ digits) in free text.

    Used for rejection reasons and payloads that could not be parsed, before they go to the
    dead-letter topic. Shorter digit runs (dates such as 2026-01-05, prices) are left alone.

    >>> scrub_text("on 2026-01-05 call +44 20 7946 0958", b"k" * 16)
    'on 2026-01-05 call phone:...'
    >>> s = scrub_text('{"email": "ann@acme.io", "ip": "10.1.2.3", "tel": "+44 20 7946 0958"', b"k" * 16)
    >>> any(p in s for p in ("ann@acme.io", "10.1.2.3", "7946"))
    False
    """
    if "@" in text:
        text = EMAIL_RE.sub(lambda m: "email:" + keyed_hash(key, m[0].lower())[:16], text)
    if not any(c.isdigit() for c in text):
        return text
    text = IPV4_RE.sub(lambda m: "ip:" + keyed_hash(key, m[0])[:16], text)

    def phone(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m[0])
        return "phone:" + keyed_hash(key, digits)[:16] if len(digits) >= 9 else m[0]

    return PHONE_RE.sub(phone, text)
