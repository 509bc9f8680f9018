"""Settings, read once from HAZARDLOOP_* environment variables and an optional hazardloop.toml.

Environment variables win over the file so that a deployment can override one value
without editing the file that operators keep under version control.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

SUPPORTED_LANGUAGES = ("zh-CN", "en")


def _config_file() -> Path:
    return Path(os.environ.get("HAZARDLOOP_CONFIG", "hazardloop.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HAZARDLOOP_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Where the database, keys and files live.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite under data_dir.")
    host: str = "127.0.0.1"
    port: int = 8000
    default_language: str = "zh-CN"
    secret_key: str = Field(default="", description="Signs session cookies; generated under data_dir if empty.")
    session_hours: int = 12
    cookie_secure: bool = Field(
        default=False,
        description="Mark the session cookie Secure (serve over HTTPS). Off by default for http://127.0.0.1.",
    )
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, description="Largest single file (photo, import).")
    max_request_bytes: int = Field(
        default=64 * 1024 * 1024,
        description="Largest request body (all photos of one form together), refused before it is read or "
        "spooled to disk; never below max_upload_bytes + 1 MiB. Give the reverse proxy the same limit.",
    )
    scheduler_enabled: bool = Field(default=True, description="Run deadline reminders/escalation in-process.")
    scheduler_interval_minutes: int = Field(default=10, ge=1, le=1440)
    demo_stream: bool = Field(default=True, description="Stream the demo plant live when this database holds it.")
    readings_url: str = Field(
        default="",
        description="Where sensor readings live: empty = a DuckDB file under data_dir (one process); "
        "a postgresql+psycopg:// URL = a PostgreSQL table several ingest workers can share.",
    )
    mqtt_url: str = Field(
        default="",
        description="MQTT broker (mqtt://host:1883) the server ingests live readings from, and the demo "
        "plant publishes to; empty = no broker (the demo streams in-process).",
    )
    mqtt_topic: str = Field(default="hazardloop/{site}/{tag}", description="Topic template (connectors/README.md).")
    mqtt_group: str = Field(default="hazardloop", description="MQTT v5 shared-subscription group of ingest workers.")
    mqtt_client_id: str = Field(
        default="",
        description="MQTT client id of the server's connector; empty = hazardloop-server-<host name>-<8 hex of "
        "sha256(data_dir, port)>, stable across restarts so the broker resumes the session. With PostgreSQL, "
        "server processes sharing an id take turns through an advisory lock (one connection at a time).",
    )
    mqtt_session_expiry_s: int = Field(
        default=3600,
        ge=0,
        description="How long the broker keeps the server's MQTT session (and the QoS 1 messages not yet "
        "acknowledged) after a disconnect or crash; 0 = none, messages in flight are lost on a crash.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_config_file()))

    @field_validator("default_language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in SUPPORTED_LANGUAGES:
            raise ValueError(f"default_language must be one of {', '.join(SUPPORTED_LANGUAGES)}")
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hazardloop.db').resolve()}"

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def resolved_secret_key(self) -> str:
        """A configured key, else one generated once and kept beside the database so sessions survive restarts."""
        if self.secret_key:
            return self.secret_key
        key_file = self.ensure_data_dir() / "secret.key"
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(48))
            key_file.chmod(0o600)
        return key_file.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
