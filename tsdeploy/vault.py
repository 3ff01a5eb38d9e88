"""Read and write an inventory's ansible-vault file (AES256, ansible-core's VaultLib) with its password file."""

from __future__ import annotations

from pathlib import Path

from ansible.parsing.vault import VaultLib, VaultSecret, is_encrypted


def _vault(password_file: str | Path) -> VaultLib:
    password = Path(password_file).read_bytes().strip()
    return VaultLib([("default", VaultSecret(password))])


def encrypt(plaintext: str, password_file: str | Path) -> str:
    """`plaintext` encrypted as an ansible-vault file body."""
    return _vault(password_file).encrypt(plaintext).decode()


def decrypt(ciphertext: str, password_file: str | Path) -> str:
    return _vault(password_file).decrypt(ciphertext).decode()


def encrypted(text: str) -> bool:
    """Whether `text` is a whole-file ansible-vault body."""
    return is_encrypted(text)
