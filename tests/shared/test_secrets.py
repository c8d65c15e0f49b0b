import stat
from pathlib import Path

from switchboard.secrets import read_or_create_secret, sign_call, verify_call


def test_secret_is_created_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "token"
    first = read_or_create_secret(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_secret(path) == first
    assert [p.name for p in path.parent.iterdir()] == ["token"]


def test_signature_covers_every_part_of_the_call() -> None:
    signature = sign_call("k", "run", 1, "filesystem.delete_file", '{"path": "/a"}')
    assert verify_call("k", signature, "run", 1, "filesystem.delete_file", '{"path": "/a"}')
    assert not verify_call("k", signature, "run", 1, "filesystem.delete_file", '{"path": "/b"}')
    assert not verify_call("k", signature, "run", 2, "filesystem.delete_file", '{"path": "/a"}')
    assert not verify_call("other", signature, "run", 1, "filesystem.delete_file", '{"path": "/a"}')
    assert not verify_call("k", "", "run", 1, "filesystem.delete_file", '{"path": "/a"}')
