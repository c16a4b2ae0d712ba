"""Secret form values (a PEC token, a contra-chave) encrypted at rest.

AES-256-GCM (authenticated: a changed byte is detected, never decrypted into garbage) under a
key derived with HKDF from the installation's master key. The master key comes from
``CREDENCIA_SECRET_KEY_FILE`` (a file holding the base64 key) or ``CREDENCIA_SECRET_KEY``
(32 random bytes in base64; ``credencia secrets generate-key`` makes one). Deriving keeps the
encryption key distinct from any other use of the same setting (Flask signs sessions with it).

A token is ``cv1.<key id>.<base64url(nonce || ciphertext)>``: the key id says which key
opened it, so ``rotate`` can re-encrypt everything under a new key while old keys are still
readable (``CREDENCIA_SECRET_OLD_KEYS``, comma-separated). Rows in ``secret_value`` are bound
to their place (organization, instance, field) as associated data, so a ciphertext copied to
another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets as random_source
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

TOKEN_PREFIX = "cv1"  # noqa: S105 - a format marker, not a secret
KEY_BYTES = 32
NONCE_BYTES = 12
MASK = "••••••••"

KEY_ENV = "CREDENCIA_SECRET_KEY"
KEY_FILE_ENV = "CREDENCIA_SECRET_KEY_FILE"
OLD_KEYS_ENV = "CREDENCIA_SECRET_OLD_KEYS"

MISSING_KEY_MESSAGE = (
    "CREDENCIA_SECRET_KEY não configurada: gere uma com `credencia secrets generate-key` e "
    "defina CREDENCIA_SECRET_KEY (ou CREDENCIA_SECRET_KEY_FILE com o caminho de um arquivo "
    "que a contenha). Sem ela os valores secretos dos formulários não podem ser cifrados, e "
    "o modo de produção não inicia."
)


class SecretKeyError(RuntimeError):
    """The key configuration is missing or wrong; the message says how to fix it (pt-BR)."""


class SecretDecryptError(ValueError):
    """A token that no configured key opens: altered, moved, or under an unknown key."""


# --- keys --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    id: str
    _aead: AESGCM = dc_field(repr=False, compare=False)
    # Derived for signing web sessions, so every process of an installation agrees on it.
    signing_key: bytes = dc_field(repr=False, compare=False, default=b"")

    @classmethod
    def from_master(cls, master: bytes) -> Key:
        if len(master) != KEY_BYTES:
            raise SecretKeyError(
                f"A chave de cifragem deve ter {KEY_BYTES} bytes em base64 (recebidos "
                f"{len(master)}); gere uma com `credencia secrets generate-key`."
            )
        key_id = _derive(master, b"credencia/secret-values/key-id", 8).hex()
        aead = AESGCM(_derive(master, b"credencia/secret-values/aes-256-gcm", 32))
        return cls(key_id, aead, _derive(master, b"credencia/web-session-signing", 32))

    @classmethod
    def from_text(cls, text: str | bytes) -> Key:
        """A key from its base64 text (standard or URL-safe alphabet, padding optional)."""
        raw = text.decode("ascii", "replace") if isinstance(text, bytes) else str(text)
        norm = raw.strip().replace("-", "+").replace("_", "/")
        try:
            master = base64.b64decode(norm + "=" * (-len(norm) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise SecretKeyError(
                "A chave de cifragem não é base64 válido; gere uma com "
                "`credencia secrets generate-key`."
            ) from None
        return cls.from_master(master)


def _derive(master: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


def generate_key() -> str:
    """A new master key, base64 of 32 random bytes."""
    return base64.b64encode(random_source.token_bytes(KEY_BYTES)).decode("ascii")


class Keyring:
    """The current key (encrypts) and older ones (still decrypt, during a rotation)."""

    def __init__(self, current: Key, older: Iterable[Key] = ()) -> None:
        self.current = current
        self.keys: dict[str, Key] = {current.id: current}
        for key in older:
            self.keys.setdefault(key.id, key)

    def encrypt(self, value: str, *, context: str = "") -> str:
        nonce = random_source.token_bytes(NONCE_BYTES)
        sealed = self.current._aead.encrypt(
            nonce, value.encode("utf-8"), _aad(self.current.id, context)
        )
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{TOKEN_PREFIX}.{self.current.id}.{body}"

    def decrypt(self, token: str, *, context: str = "") -> str:
        key_id, body = _split(token)
        key = self.keys.get(key_id)
        if key is None:
            raise SecretDecryptError(
                f"Valor cifrado com uma chave desconhecida ({key_id}); configure a chave antiga "
                "em CREDENCIA_SECRET_OLD_KEYS."
            )
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = key._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(key_id, context))
        except (InvalidTag, ValueError, binascii.Error):
            raise SecretDecryptError("Valor cifrado inválido ou adulterado.") from None
        return plain.decode("utf-8")


def _aad(key_id: str, context: str) -> bytes:
    return f"{TOKEN_PREFIX}:{key_id}:{context}".encode()


def _split(token: str) -> tuple[str, str]:
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        raise SecretDecryptError("Valor cifrado em formato desconhecido.")
    return parts[1], parts[2]


def key_id_of(token: str) -> str:
    return _split(token)[0]


def is_token(value: object) -> bool:
    try:
        _split(value)
    except SecretDecryptError:
        return False
    return True


# --- configuration -------------------------------------------------------------------------


def load_keyring(environ: Mapping[str, str] | None = None) -> Keyring | None:
    """The keyring from the environment, or None when no key is configured."""
    env = os.environ if environ is None else environ
    path = env.get(KEY_FILE_ENV, "").strip()
    text = env.get(KEY_ENV, "").strip()
    if path:
        try:
            text = Path(path).read_text(encoding="ascii").strip()
        except OSError as exc:
            raise SecretKeyError(
                f"Não foi possível ler {KEY_FILE_ENV}={path}: {exc.strerror or exc}."
            ) from None
        if not text:
            raise SecretKeyError(f"O arquivo {path} ({KEY_FILE_ENV}) está vazio.")
    if not text:
        return None
    try:
        current = Key.from_text(text)
    except SecretKeyError as exc:
        raise SecretKeyError(f"{KEY_ENV} inválida: {exc}") from None
    from engine.settings import read

    old_keys = read(OLD_KEYS_ENV, secret=True, environ=env)  # or CREDENCIA_SECRET_OLD_KEYS_FILE
    older = [Key.from_text(t) for t in old_keys.split(",") if t.strip()]
    return Keyring(current, older)


def ensure_key_file(path: Path) -> Path:
    """Create ``path`` with a new key (mode 0600) unless it exists; for local runs."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(generate_key() + "\n")
    return path


def require_key(
    production: bool,
    *,
    environ: Mapping[str, str] | None = None,
    local_key_file: Path | None = None,
) -> Keyring:
    """The configured keyring, installed for :func:`encrypt`/:func:`decrypt`.

    Production without a key refuses to start (:class:`SecretKeyError` with the message to
    show). Elsewhere a local key file is created once (``instance/secret.key``) so
    ``make run`` works out of the box; its values are unreadable without that file.
    """
    ring = load_keyring(environ)
    if ring is None:
        if production:
            raise SecretKeyError(MISSING_KEY_MESSAGE)
        if local_key_file is None:
            from engine.settings import instance_dir

            local_key_file = instance_dir() / "secret.key"
        path = ensure_key_file(local_key_file)
        log.warning(
            "no CREDENCIA_SECRET_KEY: using the local key file %s (not for production)", path
        )
        ring = Keyring(Key.from_text(path.read_text(encoding="ascii")))
    configure(ring)
    return ring


_keyring: Keyring | None = None


def configure(ring: Keyring | None) -> None:
    """Install the process-wide keyring (the app factory and tests call this)."""
    global _keyring
    _keyring = ring


def keyring() -> Keyring:
    """The installed keyring, else the one from the environment; SecretKeyError if none."""
    global _keyring
    if _keyring is None:
        _keyring = load_keyring()
    if _keyring is None:
        raise SecretKeyError(MISSING_KEY_MESSAGE)
    return _keyring


def encrypt(value: str, *, context: str = "") -> str:
    return keyring().encrypt(value, context=context)


def decrypt(token: str, *, context: str = "") -> str:
    return keyring().decrypt(token, context=context)


def mask(value: object) -> str:
    """What every screen shows instead of a secret: the same mask whatever its length (the
    length is not revealed); empty stays empty so "not filled in" still shows."""
    if value is None or value == "":
        return ""
    return MASK
