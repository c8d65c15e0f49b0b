"""Secrets kept in the state directory (mode 0600): the API token, the internal key, the approval key,
the Redis password."""

from __future__ import annotations

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
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)  # a copied or restored secret readable by others is made private again
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


SECRET_FILES = ("token", "internal.key", "approval.key", "policy.key", "redis.password")


def main() -> None:
    """`python -m switchboard.secrets DIR`: make every secret an install needs in DIR (keeping any that
    exist); Compose runs it once before the services start. Prints the file names, never a secret."""
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m switchboard.secrets DIR")
    folder = Path(sys.argv[1])
    for name in SECRET_FILES:
        read_or_create_secret(folder / name)
        print(f"{folder / name}: present, mode 0600")


if __name__ == "__main__":
    main()
