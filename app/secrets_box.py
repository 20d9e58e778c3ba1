"""Encryption at rest for shop credentials and webhook secrets (Fernet, key from ORDERLINE_SECRET_KEY)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("ORDERLINE_SECRET_KEY is empty: set it to encrypt shop secrets")
        # Accept any passphrase: a Fernet key is derived from it, so operators need not mint one specially.
        derived = base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())
        self._fernet = Fernet(derived)

    def seal(self, value: Any) -> str:
        return self._fernet.encrypt(json.dumps(value).encode()).decode()

    def open(self, token: str) -> Any:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as err:
            raise ValueError("a stored secret cannot be decrypted: was ORDERLINE_SECRET_KEY changed?") from err
