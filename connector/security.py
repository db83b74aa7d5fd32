"""API tokens (stored as SHA-256, shown once) and encryption of destination secrets at rest (Fernet)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

TOKEN_PREFIX = "ctk_"
MASK = "********"


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SecretBox:
    """Encrypts and decrypts a dict of secrets with a key derived from ``CONNECTOR_SECRET_KEY``."""

    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(("connector-secrets:" + secret_key).encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, values: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode()).decode()

    def decrypt(self, token: str | None) -> dict[str, Any]:
        if not token:
            return {}
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ValueError("stored secrets cannot be decrypted with this CONNECTOR_SECRET_KEY") from exc
