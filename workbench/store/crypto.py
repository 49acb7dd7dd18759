"""Secrets at rest: Fernet with a key from WORKBENCH_SECRET_KEY or a 0600 key file in the data dir."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from workbench.base.errors import WorkbenchError
from workbench.store.config import get_settings


def _key_file() -> Path:
    return get_settings().data_dir / "secret.key"


@lru_cache(maxsize=1)
def _fernet() -> Fernet:
    settings = get_settings()
    if settings.secret_key:
        return Fernet(settings.secret_key.encode())
    path = _key_file()
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new data dir is the owner's only
        # O_EXCL: two processes starting at once must not write two different keys
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
    return Fernet(path.read_bytes().strip())


def encrypt_secret(plain: str) -> bytes:
    """Encrypt a secret (API key, password) for storage."""
    return _fernet().encrypt(plain.encode())


def decrypt_secret(token: bytes) -> str:
    """Decrypt a stored secret; a wrong key gives a clear error, never the ciphertext."""
    try:
        return _fernet().decrypt(token).decode()
    except InvalidToken as exc:
        raise WorkbenchError("secret cannot be decrypted with the current key", key="error.secret_key") from exc
