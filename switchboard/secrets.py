"""Secrets kept in the state directory: the API token and the approval signing key."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """Return the secret stored at `path`, creating it (mode 0600) on first use.

    The secret is written to a temporary file and hard-linked into place, which fails if the file
    exists: two services starting at once agree on one secret and never see a half-written one.
    """
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(nbytes) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; use its secret
    finally:
        os.unlink(tmp)
    return path.read_text().strip()


def sign_call(key: str, run_id: str, step: int, tool: str, arguments_json: str) -> str:
    """The gateway's approval of exactly this call: an HMAC over everything that defines it."""
    message = "\x1f".join((run_id, str(step), tool, arguments_json)).encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def verify_call(key: str, signature: str, run_id: str, step: int, tool: str, arguments_json: str) -> bool:
    """True when `signature` approves this exact call."""
    return bool(signature) and hmac.compare_digest(signature, sign_call(key, run_id, step, tool, arguments_json))
