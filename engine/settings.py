"""All settings, each read from a ``CREDENCIA_*`` environment variable with a default.

Read once per process through :func:`load`; tests build their own ``Settings``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(f"CREDENCIA_{name}", default)


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _env_list(name: str, default: str) -> tuple[int, ...]:
    return tuple(int(x) for x in _env(name, default).split(",") if x.strip())


@dataclass(frozen=True)
class Settings:
    database_url: str = field(
        default_factory=lambda: _env(
            "DATABASE_URL", f"sqlite:///{ROOT / 'instance' / 'credencia.db'}"
        )
    )
    processes_dir: Path = field(
        default_factory=lambda: Path(_env("PROCESSES_DIR", str(ROOT / "processes")))
    )
    max_upload_bytes: int = field(
        default_factory=lambda: _env_int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
    )
    timezone: str = field(default_factory=lambda: _env("TIMEZONE", "America/Sao_Paulo"))
    default_sla_business_days: int = field(default_factory=lambda: _env_int("DEFAULT_SLA_DAYS", 5))
    base_url: str = field(default_factory=lambda: _env("BASE_URL", "http://127.0.0.1:5000"))
    smtp_host: str = field(default_factory=lambda: _env("SMTP_HOST", "127.0.0.1"))
    smtp_port: int = field(default_factory=lambda: _env_int("SMTP_PORT", 8025))
    smtp_starttls: bool = field(default_factory=lambda: _env("SMTP_STARTTLS", "0") == "1")
    smtp_user: str = field(default_factory=lambda: _env("SMTP_USER", ""))
    smtp_password: str = field(default_factory=lambda: _env("SMTP_PASSWORD", ""))
    mail_from: str = field(
        default_factory=lambda: _env("MAIL_FROM", "Credencia <credencia@localhost>")
    )
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto are trusted.
    trusted_proxies: int = field(default_factory=lambda: _env_int("TRUSTED_PROXIES", 0))
    environment: str = field(default_factory=lambda: _env("ENV", "development"))
    certificate_require_icp_brasil: bool = field(
        default_factory=lambda: _env("CERTIFICATE_REQUIRE_ICP_BRASIL", "1") == "1"
    )
    # A PEM file of extra trust anchors (a homologation installation's test PKI).
    certificate_extra_anchors: str = field(
        default_factory=lambda: _env("CERTIFICATE_EXTRA_ANCHORS", "")
    )
    smtp_timeout_seconds: int = field(default_factory=lambda: _env_int("SMTP_TIMEOUT_SECONDS", 20))
    outbox_max_attempts: int = field(default_factory=lambda: _env_int("OUTBOX_MAX_ATTEMPTS", 8))
    outbox_base_delay_seconds: int = field(
        default_factory=lambda: _env_int("OUTBOX_BASE_DELAY_SECONDS", 30)
    )
    outbox_max_delay_seconds: int = field(
        default_factory=lambda: _env_int("OUTBOX_MAX_DELAY_SECONDS", 3600)
    )
    outbox_lease_seconds: int = field(default_factory=lambda: _env_int("OUTBOX_LEASE_SECONDS", 120))
    outbox_batch: int = field(default_factory=lambda: _env_int("OUTBOX_BATCH", 50))
    certificate_reminder_days: tuple[int, ...] = field(
        default_factory=lambda: _env_list("CERTIFICATE_REMINDER_DAYS", "60,30,15,7,1")
    )
    # Uploads attached to no process (nor kept by a saved draft) are deleted after this long.
    upload_ttl_hours: int = field(default_factory=lambda: _env_int("UPLOAD_TTL_HOURS", 48))
    # Per user, the uploads not attached to a process yet (drafts' included) at any time.
    upload_quota_files: int = field(default_factory=lambda: _env_int("UPLOAD_QUOTA_FILES", 100))
    upload_quota_bytes: int = field(
        default_factory=lambda: _env_int("UPLOAD_QUOTA_BYTES", 200 * 1024 * 1024)
    )


_settings: Settings | None = None


def load() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings
