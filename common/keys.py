"""API key material: generation and hashing (the store keeps only the sha256).

A key is ``vihub_<43 url-safe chars>`` (256 bits of entropy); a fast hash is enough for
keys of that entropy (no password-style KDF needed), and lookups are by exact hash.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "vihub_"
DISPLAY_PREFIX_LEN = 12


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    """The part of a key shown in listings (``vihub_AbCdEf``)."""
    return key[:DISPLAY_PREFIX_LEN]
