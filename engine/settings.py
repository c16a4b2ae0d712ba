"""All settings, each read from a ``CREDENCIA_*`` environment variable with a default.

Read once per process through :func:`load`; tests build their own ``Settings``.

Values are parsed strictly and a bad one stops the start (:class:`SettingsError`, naming the
variable): a switch that fails open (``…REQUIRE_ICP_BRASIL=true`` read as "off") is worse than
no start at all. Booleans take true/false, 1/0, yes/no, on/off in any case; integers are
decimal; ``CREDENCIA_ENV`` is one of :data:`ENVIRONMENTS`. Secret settings (:data:`SECRETS`)
can instead be read from a file named by ``<NAME>_FILE`` (Docker/systemd credentials).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "CREDENCIA_"


def bundled(name: str) -> Path:
    """``processes`` or ``migrations``: shipped in the installed package as
    ``credencia_<name>`` (setup.py), beside the code in a checkout."""
    installed = ROOT / f"credencia_{name}"
    return installed if installed.is_dir() else ROOT / name


def instance_dir() -> Path:
    """Where the local files go (the SQLite database, the local key, the ICP-Brasil roots
    bundle): ``CREDENCIA_INSTANCE_DIR``, by default ``instance/`` in the working directory —
    never inside the installed package."""
    return Path(os.environ.get(PREFIX + "INSTANCE_DIR") or Path.cwd() / "instance").absolute()


TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})
ENVIRONMENTS = ("development", "test", "homologation", "production")
# Settings that may hold a password; each can also come from CREDENCIA_<NAME>_FILE.
# (The master key, CREDENCIA_SECRET_KEY[_FILE], is read by engine.secrets.)
SECRETS = frozenset({"DATABASE_URL", "SMTP_USER", "SMTP_PASSWORD", "METRICS_TOKEN"})


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable (shown as is)."""


def read(
    var: str, default: str = "", *, secret: bool = False, environ: Mapping[str, str] | None = None
) -> str:
    """The value of environment variable ``var``; for a ``secret`` one, the content of the file
    named by ``<var>_FILE`` instead when that is set (without its trailing newline)."""
    env = os.environ if environ is None else environ
    path = env.get(f"{var}_FILE", "") if secret else ""
    if not path:
        return env.get(var, default)
    if var in env:
        raise SettingsError(f"Defina {var} ou {var}_FILE, não os dois.")
    try:
        content = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SettingsError(f"Não foi possível ler {var}_FILE={path}: {reason}.") from None
    return content.removesuffix("\n").removesuffix("\r")


def _text(name: str, default: str) -> str:
    return read(PREFIX + name, default, secret=name in SECRETS)


def _bool(name: str, default: bool) -> bool:
    raw = _text(name, "")
    value = raw.strip().lower()
    if not value:
        return default
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise SettingsError(
        f"{PREFIX}{name}={raw!r} não é um valor lógico: use true/false, 1/0, yes/no ou on/off."
    )


def _int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = _text(name, "")
    if not raw.strip():
        return default
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name}={raw!r} não é um número inteiro.") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"entre {minimum} e {maximum}" if maximum is not None else f"≥ {minimum}"
        raise SettingsError(f"{PREFIX}{name}={value} fora do intervalo ({bounds}).")
    return value


def _int_list(name: str, default: str) -> tuple[int, ...]:
    raw = _text(name, default)
    try:
        values = tuple(int(x.strip(), 10) for x in raw.split(",") if x.strip())
    except ValueError:
        raise SettingsError(
            f"{PREFIX}{name}={raw!r} deve ser uma lista de inteiros separados por vírgula."
        ) from None
    if any(v < 0 for v in values):
        raise SettingsError(f"{PREFIX}{name}={raw!r}: os números não podem ser negativos.")
    return values


def _one_of(name: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
    """One of ``choices`` (the first is the default); anything else names the variable."""
    raw = _text(name, "")
    value = raw.strip().upper() if upper else raw.strip().lower()
    if not value:
        return choices[0]
    if value not in choices:
        raise SettingsError(f"{PREFIX}{name}={raw!r} desconhecido: use {', '.join(choices)}.")
    return value


def _environment() -> str:
    raw = _text("ENV", "")
    value = raw.strip().lower() or "development"
    if value not in ENVIRONMENTS:
        raise SettingsError(f"{PREFIX}ENV={raw!r} desconhecido: use {', '.join(ENVIRONMENTS)}.")
    return value


def _timezone() -> str:
    value = _text("TIMEZONE", "America/Sao_Paulo").strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"{PREFIX}TIMEZONE={value!r} não é um fuso horário conhecido (ex.: America/Sao_Paulo)."
        ) from None
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str = field(
        default_factory=lambda: _text(
            "DATABASE_URL", f"sqlite:///{instance_dir() / 'credencia.db'}"
        )
    )
    # PostgreSQL: how long one statement of a web request may run before the server cancels
    # it and the request answers 503 (0: no limit). Commands and the scheduler have none.
    db_statement_timeout_seconds: int = field(
        default_factory=lambda: _int("DB_STATEMENT_TIMEOUT_SECONDS", 60, maximum=86_400)
    )
    processes_dir: Path = field(
        default_factory=lambda: Path(_text("PROCESSES_DIR", str(bundled("processes"))))
    )
    max_upload_bytes: int = field(
        default_factory=lambda: _int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024, minimum=1)
    )
    timezone: str = field(default_factory=_timezone)
    default_sla_business_days: int = field(
        default_factory=lambda: _int("DEFAULT_SLA_DAYS", 5, minimum=1)
    )
    base_url: str = field(default_factory=lambda: _text("BASE_URL", "http://127.0.0.1:5000"))
    smtp_host: str = field(default_factory=lambda: _text("SMTP_HOST", "127.0.0.1"))
    smtp_port: int = field(
        default_factory=lambda: _int("SMTP_PORT", 8025, minimum=1, maximum=65535)
    )
    smtp_starttls: bool = field(default_factory=lambda: _bool("SMTP_STARTTLS", False))
    smtp_user: str = field(default_factory=lambda: _text("SMTP_USER", ""))
    smtp_password: str = field(default_factory=lambda: _text("SMTP_PASSWORD", ""))
    mail_from: str = field(
        default_factory=lambda: _text("MAIL_FROM", "Credencia <credencia@localhost>")
    )
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto are trusted.
    trusted_proxies: int = field(default_factory=lambda: _int("TRUSTED_PROXIES", 0))
    # One of ENVIRONMENTS, lower case whatever the case it was written in.
    environment: str = field(default_factory=_environment)
    certificate_require_icp_brasil: bool = field(
        default_factory=lambda: _bool("CERTIFICATE_REQUIRE_ICP_BRASIL", True)
    )
    # A PEM file of extra trust anchors (a homologation installation's test PKI).
    certificate_extra_anchors: str = field(
        default_factory=lambda: _text("CERTIFICATE_EXTRA_ANCHORS", "")
    )
    smtp_timeout_seconds: int = field(
        default_factory=lambda: _int("SMTP_TIMEOUT_SECONDS", 20, minimum=1)
    )
    outbox_max_attempts: int = field(
        default_factory=lambda: _int("OUTBOX_MAX_ATTEMPTS", 8, minimum=1)
    )
    # The ICP-Brasil roots bundle installed by `credencia certificates update-roots`; while it
    # exists it overrides the one shipped in engine/pki/data.
    certificate_roots_file: str = field(
        default_factory=lambda: _text(
            "CERTIFICATE_ROOTS_FILE", str(instance_dir() / "icp-brasil.pem")
        )
    )
    outbox_base_delay_seconds: int = field(
        default_factory=lambda: _int("OUTBOX_BASE_DELAY_SECONDS", 30)
    )
    outbox_max_delay_seconds: int = field(
        default_factory=lambda: _int("OUTBOX_MAX_DELAY_SECONDS", 3600)
    )
    outbox_lease_seconds: int = field(
        default_factory=lambda: _int("OUTBOX_LEASE_SECONDS", 120, minimum=1)
    )
    outbox_batch: int = field(default_factory=lambda: _int("OUTBOX_BATCH", 50, minimum=1))
    certificate_reminder_days: tuple[int, ...] = field(
        default_factory=lambda: _int_list("CERTIFICATE_REMINDER_DAYS", "60,30,15,7,1")
    )
    # Uploads attached to no process (nor kept by a saved draft) are deleted after this long.
    upload_ttl_hours: int = field(default_factory=lambda: _int("UPLOAD_TTL_HOURS", 48, minimum=1))
    # Per user, the uploads not attached to a process yet (drafts' included) at any time.
    upload_quota_files: int = field(
        default_factory=lambda: _int("UPLOAD_QUOTA_FILES", 100, minimum=1)
    )
    upload_quota_bytes: int = field(
        default_factory=lambda: _int("UPLOAD_QUOTA_BYTES", 200 * 1024 * 1024, minimum=1)
    )
    # /readyz fails when no scheduler job started for this long (0: the check is off, e.g.
    # for a web-only test installation).
    # /metrics answers only with "Authorization: Bearer <this>"; empty: /metrics is off (404).
    metrics_token: str = field(default_factory=lambda: _text("METRICS_TOKEN", ""))
    log_format: str = field(default_factory=lambda: _one_of("LOG_FORMAT", ("text", "json")))
    log_level: str = field(
        default_factory=lambda: _one_of(
            "LOG_LEVEL", ("INFO", "DEBUG", "WARNING", "ERROR"), upper=True
        )
    )
    # The analytics refresh leaves out task rows younger than this (their transaction may not
    # have committed yet), and forecasts need this many instances gone to production.
    analytics_lag_seconds: int = field(default_factory=lambda: _int("ANALYTICS_LAG_SECONDS", 60))
    analytics_forecast_min_history: int = field(
        default_factory=lambda: _int("ANALYTICS_FORECAST_MIN_HISTORY", 5, minimum=1)
    )
    ready_scheduler_minutes: int = field(
        default_factory=lambda: _int("READY_SCHEDULER_MINUTES", 10)
    )
    # Sign-in with e-mail and password on this installation; false: only the OpenID providers.
    local_login: bool = field(default_factory=lambda: _bool("LOCAL_LOGIN", True))
    # OpenID Connect providers (gov.br, a Keycloak...): a JSON file, see docs/operations.md.
    oidc_providers: tuple[OidcProvider, ...] = field(
        default_factory=lambda: oidc_providers_from_file(_text("OIDC_PROVIDERS_FILE", ""))
    )
    # Allowance for the providers' clocks when checking an ID token's times.
    oidc_clock_skew_seconds: int = field(
        default_factory=lambda: _int("OIDC_CLOCK_SKEW_SECONDS", 60, maximum=600)
    )
    # How long a password reset link works.
    password_reset_minutes: int = field(
        default_factory=lambda: _int("PASSWORD_RESET_MINUTES", 30, minimum=5, maximum=1440)
    )
    # Admins must set up a second factor (TOTP) before using the app.
    totp_required_for_admins: bool = field(
        default_factory=lambda: _bool("TOTP_REQUIRED_FOR_ADMINS", False)
    )
    # LGPD retention (days), per kind of data: docs/lgpd.md, engine/lgpd/retention.py.
    lgpd_retention_finished_days: int = field(
        default_factory=lambda: _int("LGPD_RETENTION_FINISHED_DAYS", 1825)
    )
    lgpd_retention_drafts_days: int = field(
        default_factory=lambda: _int("LGPD_RETENTION_DRAFTS_DAYS", 90, minimum=1)
    )
    lgpd_retention_sessions_days: int = field(
        default_factory=lambda: _int("LGPD_RETENTION_SESSIONS_DAYS", 30, minimum=1)
    )
    lgpd_retention_access_log_days: int = field(
        default_factory=lambda: _int("LGPD_RETENTION_ACCESS_LOG_DAYS", 183, minimum=1)
    )
    lgpd_retention_notifications_days: int = field(
        default_factory=lambda: _int("LGPD_RETENTION_NOTIFICATIONS_DAYS", 365, minimum=1)
    )

    @property
    def production(self) -> bool:
        return self.environment == "production"


# ---------------------------------------------------------------- OpenID Connect providers

GOVBR_DISCOVERY = "https://sso.acesso.gov.br/.well-known/openid-configuration"
GOVBR_STAGING_DISCOVERY = "https://sso.staging.acesso.gov.br/.well-known/openid-configuration"
GOVBR_SCOPES = ("openid", "email", "profile", "govbr_confiabilidades")
LEVELS = ("bronze", "prata", "ouro")
MATCHES = ("email", "cpf")
# Organization-wide roles a provider's claim may give (scoped ones need establishments chosen
# in Credencia).
MAPPABLE_ROLES = ("admin", "datasus", "auditor")


@dataclass(frozen=True)
class OidcProvider:
    """One OpenID provider as the installation configured it (engine/accounts/oidc.py uses it).

    ``match`` lists how a person is found, in order: ``email`` (a verified e-mail claim) and/or
    ``cpf`` (the ``cpf_claim``). ``min_level`` (gov.br) is the lowest account level accepted.
    """

    name: str
    label: str
    discovery_url: str
    issuer: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    preset: str = "generic"  # generic | govbr
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    match: tuple[str, ...] = ("email",)
    cpf_claim: str = "cpf"
    logout: bool = True
    min_level: str = ""
    level_claim: str = "reliability_info"
    # Off unless set: a claim (e.g. "groups") whose values give roles in Credencia, each value
    # mapped to (organization slug, role); roles are only added, never taken away by it.
    role_claim: str = ""
    role_map: tuple[tuple[str, str, str], ...] = ()
    # Create an account (no password, no role unless mapped) for a verified identity that
    # matches none; off by default.
    create_accounts: bool = False

    @property
    def govbr(self) -> bool:
        return self.preset == "govbr"


_PROVIDER_KEYS = frozenset(
    {"name", "label", "preset", "discovery_url", "issuer", "client_id", "client_secret_file",
     "scopes", "match", "cpf_claim", "logout", "min_level", "level_claim", "staging",
     "role_claim", "role_map", "create_accounts"}
)  # fmt: skip
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def oidc_providers_from_file(path: str) -> tuple[OidcProvider, ...]:
    """The providers listed in the JSON file ``path`` (none when empty); see docs/operations.md."""
    if not path.strip():
        return ()
    var = PREFIX + "OIDC_PROVIDERS_FILE"
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SettingsError(f"Não foi possível ler {var}={path}: {exc}.") from None
    if not isinstance(raw, list):
        raise SettingsError(f"{var}: o arquivo deve conter uma lista de provedores.")
    return oidc_providers(raw, base_dir=Path(path).parent)


def oidc_providers(raw: list, *, base_dir: Path | None = None) -> tuple[OidcProvider, ...]:
    """Validate a list of provider objects (as in the providers file)."""
    found: list[OidcProvider] = []
    for i, item in enumerate(raw):
        where = f"{PREFIX}OIDC_PROVIDERS_FILE, provedor {i + 1}"
        if not isinstance(item, dict):
            raise SettingsError(f"{where}: deve ser um objeto.")
        unknown = set(item) - _PROVIDER_KEYS
        if unknown:
            raise SettingsError(f"{where}: chave(s) desconhecida(s): {', '.join(sorted(unknown))}.")
        preset = item.get("preset", "generic")
        if preset not in ("generic", "govbr"):
            raise SettingsError(f"{where}: preset deve ser generic ou govbr.")
        govbr = preset == "govbr"
        name = item.get("name", "govbr" if govbr else "")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise SettingsError(f"{where}: name deve ter letras minúsculas, números, - ou _.")
        if any(p.name == name for p in found):
            raise SettingsError(f"{where}: há dois provedores com o nome {name!r}.")
        discovery = item.get("discovery_url") or (
            (GOVBR_STAGING_DISCOVERY if item.get("staging") else GOVBR_DISCOVERY) if govbr else ""
        )
        if not isinstance(discovery, str) or not discovery.startswith(("https://", "http://")):
            raise SettingsError(f"{where}: discovery_url deve ser um endereço http(s).")
        issuer = item.get("issuer") or discovery.removesuffix("/.well-known/openid-configuration")
        if govbr and not item.get("issuer"):
            issuer = issuer.rstrip("/") + "/"  # gov.br's issuer ends with a slash
        client_id = item.get("client_id", "")
        if not isinstance(client_id, str) or not client_id:
            raise SettingsError(f"{where}: client_id é obrigatório.")
        secret = ""
        secret_file = item.get("client_secret_file", "")
        if secret_file:
            secret_path = Path(secret_file)
            if not secret_path.is_absolute() and base_dir is not None:
                secret_path = base_dir / secret_path
            try:
                secret = secret_path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise SettingsError(
                    f"{where}: não foi possível ler client_secret_file: {exc}."
                ) from None
        default_scopes = GOVBR_SCOPES if govbr else ("openid", "email", "profile")
        scopes = item.get("scopes", list(default_scopes))
        if isinstance(scopes, str):
            scopes = scopes.split()
        if not isinstance(scopes, list) or "openid" not in scopes:
            raise SettingsError(f"{where}: scopes deve incluir openid.")
        match = item.get("match", ["cpf"] if govbr else ["email"])
        if isinstance(match, str):
            match = [match]
        if not match or any(m not in MATCHES for m in match):
            raise SettingsError(f"{where}: match deve listar email e/ou cpf.")
        min_level = item.get("min_level", "") or ""
        if min_level and min_level not in LEVELS:
            raise SettingsError(f"{where}: min_level deve ser bronze, prata ou ouro.")
        logout = item.get("logout", True)
        if not isinstance(logout, bool) or (govbr and not logout):
            raise SettingsError(f"{where}: logout deve ser true ou false (gov.br exige true).")
        role_claim = item.get("role_claim", "") or ""
        raw_map = item.get("role_map", {}) or {}
        if not isinstance(raw_map, dict) or (raw_map and not role_claim):
            raise SettingsError(f"{where}: role_map deve ser um objeto e exige role_claim.")
        role_map = []
        for value, target in raw_map.items():
            if not isinstance(target, dict) or not target.get("org") or not target.get("role"):
                raise SettingsError(f"{where}: role_map[{value!r}] deve ter org e role.")
            if target["role"] not in MAPPABLE_ROLES:
                raise SettingsError(f"{where}: role_map[{value!r}]: papel deve ser um de "
                                    f"{', '.join(MAPPABLE_ROLES)}.")  # fmt: skip
            role_map.append((str(value), str(target["org"]), str(target["role"])))
        create_accounts = item.get("create_accounts", False)
        if not isinstance(create_accounts, bool):
            raise SettingsError(f"{where}: create_accounts deve ser true ou false.")
        found.append(
            OidcProvider(
                name=name,
                label=item.get("label") or ("gov.br" if govbr else name),
                discovery_url=discovery,
                issuer=issuer,
                client_id=client_id,
                client_secret=secret,
                preset=preset,
                scopes=tuple(scopes),
                match=tuple(match),
                cpf_claim=item.get("cpf_claim") or ("sub" if govbr else "cpf"),
                logout=logout,
                min_level=min_level,
                level_claim=item.get("level_claim") or "reliability_info",
                role_claim=role_claim,
                role_map=tuple(role_map),
                create_accounts=create_accounts,
            )
        )
    return tuple(found)


_settings: Settings | None = None


def load() -> Settings:
    """The process's settings, read from the environment on first use (SettingsError when one
    is unusable)."""
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings
