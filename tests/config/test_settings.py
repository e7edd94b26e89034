"""Settings: sources, precedence, secrets, and errors that name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("LEADSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSTREAM_KAFKA__BOOTSTRAP", "kafka://k1:9092")
    monkeypatch.setenv("LEADSTREAM_KAFKA__TOPICS__SCORED", "sales.scored")
    monkeypatch.setenv("LEADSTREAM_MODELS__HORIZON_DAYS", "30")
    s = load_settings()
    assert s.kafka.bootstrap == "kafka://k1:9092"
    assert s.kafka.topics.scored == "sales.scored"
    assert s.models.horizon_days == 30.0


def test_toml_file_is_read_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml = tmp_path / "ls.toml"
    toml.write_text('[redis]\nkey_prefix = "from-toml"\n[metrics]\nport = 9999\n')
    monkeypatch.setenv("LEADSTREAM_METRICS__PORT", "9100")
    s = load_settings(toml)
    assert s.redis.key_prefix == "from-toml"
    assert s.metrics.port == 9100


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_secret_from_a_secrets_dir_is_masked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "LEADSTREAM_PII_HASH_KEY").write_text("a-secret-key-of-some-length")
    monkeypatch.setenv("LEADSTREAM_SECRETS_DIR", str(folder))
    s = load_settings()
    assert s.require_pii_key() == b"a-secret-key-of-some-length"
    assert "a-secret-key" not in str(s.masked())
    assert "a-secret-key" not in repr(s)


def test_nested_secrets_come_from_files_named_like_their_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "LEADSTREAM_API__TOKEN").write_text("dashboard-token-1234")
    (folder / "LEADSTREAM_SMTP__PASSWORD").write_text("smtp-password-5678")
    monkeypatch.setenv("LEADSTREAM_SECRETS_DIR", str(folder))
    s = load_settings()
    assert s.api.token is not None and s.api.token.get_secret_value() == "dashboard-token-1234"
    assert s.smtp.password is not None
    assert s.smtp.password.get_secret_value() == "smtp-password-5678"
    shown = str(s.masked()) + repr(s)
    assert "dashboard-token-1234" not in shown and "smtp-password-5678" not in shown


def test_dsn_password_is_masked() -> None:
    s = Settings(clickhouse={"dsn": "http://u:hunter2@ch:8123/leadstream"})
    assert "hunter2" not in str(s.masked())


def test_missing_or_short_pii_key_names_the_fix() -> None:
    with pytest.raises(ValueError, match="LEADSTREAM_PII_HASH_KEY"):
        Settings().require_pii_key()
    with pytest.raises(ValueError, match="at least 16"):
        Settings(pii_hash_key="short").require_pii_key()


def test_bands_must_descend() -> None:
    with pytest.raises(ValidationError, match="must descend"):
        Settings(models={"band_a": 0.2, "band_b": 0.3, "band_c": 0.1})


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.log_level = "debug"  # type: ignore[misc]


def test_dotenv_sets_settings_but_never_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "LEADSTREAM_API__PORT=1234\nLEADSTREAM_API__TOKEN=a-token-in-dotenv-0123\n"
        "LEADSTREAM_PII_HASH_KEY=a-key-in-dotenv-0123456\nLEADSTREAM_SMTP__PASSWORD=pw\n"
    )
    s = load_settings()
    assert s.api.port == 1234  # .env is read
    assert s.api.token is None and s.pii_hash_key is None and s.smtp.password is None
    with pytest.raises(ValueError, match=r"in the environment or a secrets file, never \.env"):
        s.require_pii_key()
    monkeypatch.setenv("LEADSTREAM_PII_HASH_KEY", "change-me-pii-hash-key-at-least-16-characters")
    with pytest.raises(ValueError, match=r"public placeholder from \.env\.example; make one with"):
        load_settings().require_pii_key()
