"""The security MCP server, called through the SDK's in-memory client on files the tests write."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from mcp import Client

from services.toolhost.servers.security import build_server
from services.toolhost.settings import ToolHostSettings
from tests.toolhost.mcp_helpers import assert_matches_contract, ok, refused, stdio_parameters

# Values that look real to the detectors; each is asserted never to appear in a result.
CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"
SSN = "123-45-6789"
EMAIL = "jane.doe@example.com"
PHONE = "+49 30 1234 5678"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
DB_PASSWORD = "Xk9mP2vQ7rLs"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"  # a sample token
SECRET_VALUES = (AWS_KEY, GITHUB_TOKEN, DB_PASSWORD, JWT, "MIIEowIBAAKCAQEA")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = (tmp_path / "root").resolve()
    (folder / "people").mkdir(parents=True)
    (folder / "people" / "customers.txt").write_text(
        f"Jane Doe, {EMAIL}, phone {PHONE}\n"
        f"paid with {CARD} (a valid test number); refund 4111 1111 1111 1112 is not a card\n"
        f"IBAN {IBAN}, bad IBAN DE00 3704 0044 0532 0130 00\n"
        f"SSN {SSN}, born 1990-01-15, logged in from 10.1.2.3\n"
    )
    (folder / "people" / "photo.bin").write_bytes(b"\x89PNG\0\0" + EMAIL.encode())
    project = folder / "project"
    (project / ".git").mkdir(parents=True)
    (project / ".git" / "config").write_text(f"token = {GITHUB_TOKEN}\n")
    (project / "settings.py").write_text(
        f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n'
        f'GITHUB = "{GITHUB_TOKEN}"\n'
        "password = user_password\n"
        'api_key = "changeme"\n'
        f"AUTH_HEADER = 'Bearer {JWT}'\n"
    )
    (project / ".env").write_text(f"DB_PASSWORD={DB_PASSWORD}\n")
    (project / "id_rsa").write_text(
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"
    )
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = (tmp_path / "outside").resolve()
    folder.mkdir()
    (folder / "secret.txt").write_text(f"{AWS_KEY}\n")
    return folder


def assert_no_value_leaks(result: dict[str, object], values: tuple[str, ...]) -> None:
    text = json.dumps(result)
    for value in values:
        assert value not in text and value.replace(" ", "") not in text, value


async def test_tools_match_the_contract(settings: ToolHostSettings) -> None:
    await assert_matches_contract(build_server, settings, "security")


async def test_scan_for_pii_finds_each_kind_with_masked_excerpts(settings: ToolHostSettings, root: Path) -> None:
    result = await ok(build_server, settings, "scan_for_pii", path=str(root / "people"))
    found = {(f["kind"], f["line"]) for f in result["findings"]}
    assert found == {
        ("email", 1),
        ("phone", 1),
        ("credit_card", 2),
        ("iban", 3),
        ("ssn", 4),
        ("ip", 4),
    }
    by_kind = {f["kind"]: f for f in result["findings"]}
    assert by_kind["credit_card"]["excerpt"].startswith("paid with **** **** **** 1111")
    assert by_kind["ssn"]["excerpt"].startswith("SSN ***-**-6789")
    assert by_kind["email"]["path"] == str(root / "people" / "customers.txt")
    assert "j***@example.com" in by_kind["email"]["excerpt"]
    assert all(f["category"] == "pii" for f in result["findings"])
    assert result["files_scanned"] == 1 and result["files_skipped"] == 1
    assert "binary" in result["skipped"][0]["reason"]
    assert_no_value_leaks(result, (CARD, IBAN, SSN, EMAIL, PHONE, "10.1.2.3"))


async def test_scan_for_pii_only_the_asked_kinds(settings: ToolHostSettings, root: Path) -> None:
    result = await ok(build_server, settings, "scan_for_pii", path=str(root / "people"), types=["credit_card", "ssn"])
    assert sorted(f["kind"] for f in result["findings"]) == ["credit_card", "ssn"]
    assert result["kinds_checked"] == ["credit_card", "ssn"]
    # Values of kinds not asked for are still masked in the excerpts.
    assert_no_value_leaks(result, (EMAIL, PHONE, SSN, CARD))


async def test_scan_for_pii_rejects_unknown_types_and_missing_paths(settings: ToolHostSettings, root: Path) -> None:
    text = await refused(build_server, settings, "scan_for_pii", path=str(root), types=["passport"])
    assert "credit_card" in text and "email" in text
    assert "does not exist" in await refused(build_server, settings, "scan_for_pii", path=str(root / "nope"))


async def test_scan_for_secrets_finds_known_formats_and_masks_them(settings: ToolHostSettings, root: Path) -> None:
    result = await ok(build_server, settings, "scan_for_secrets", path=str(root / "project"))
    found = {(Path(f["path"]).name, f["line"], f["kind"]) for f in result["findings"]}
    assert found == {
        ("settings.py", 1, "aws_access_key_id"),
        ("settings.py", 2, "github_token"),
        ("settings.py", 5, "jwt"),
        (".env", 1, "password"),
        ("id_rsa", 1, "private_key"),
    }
    excerpts = {f["kind"]: f["excerpt"] for f in result["findings"]}
    assert excerpts["aws_access_key_id"] == 'AWS_ACCESS_KEY_ID = "AKIA****LE"'
    assert excerpts["password"] == "DB_PASSWORD=X****s"
    assert all(f["category"] == "secret" for f in result["findings"])
    # .git is not scanned: the token there is the tooling's, not a leak in the project.
    assert not any(".git" in Path(f["path"]).parts for f in result["findings"])
    assert_no_value_leaks(result, SECRET_VALUES)


async def test_scan_for_secrets_on_one_file(settings: ToolHostSettings, root: Path) -> None:
    result = await ok(build_server, settings, "scan_for_secrets", path=str(root / "project" / ".env"))
    assert [f["kind"] for f in result["findings"]] == ["password"] and result["files_scanned"] == 1


async def test_find_duplicates_by_hash_content_and_name(settings: ToolHostSettings, root: Path) -> None:
    photos = root / "photos"
    (photos / "backup").mkdir(parents=True)
    original, copy = photos / "a.jpg", photos / "backup" / "a copy.jpg"
    original.write_bytes(b"same bytes" * 100)
    copy.write_bytes(b"same bytes" * 100)
    os.utime(original, (time.time() - 1000, time.time() - 1000))
    (photos / "other.jpg").write_bytes(b"diff bytes" * 100)  # same size, other content
    (photos / "backup" / "other.jpg").write_bytes(b"not the same at all")
    (photos / "empty1").touch()
    (photos / "empty2").touch()

    by_hash = await ok(build_server, settings, "find_duplicates", path=str(photos))
    assert [[f["path"] for f in group] for group in by_hash["groups"]] == [[str(original), str(copy)]]
    assert by_hash["groups"][0][0]["sha256"] == hashlib.sha256(b"same bytes" * 100).hexdigest()
    assert by_hash["wasted_bytes"] == 1000 and by_hash["identical_content"] == [True]
    assert by_hash["findings"] == [
        {
            "path": str(copy),
            "line": None,
            "column": None,
            "kind": "duplicate_file",
            "category": "duplicate",
            "excerpt": "",
            "duplicate_of": str(original),
        }
    ]

    by_content = await ok(build_server, settings, "find_duplicates", path=str(photos), method="content")
    assert [[f["path"] for f in g] for g in by_content["groups"]] == [[str(original), str(copy)]]

    by_name = await ok(build_server, settings, "find_duplicates", path=str(photos), method="name")
    assert [sorted(Path(f["path"]).name for f in g) for g in by_name["groups"]] == [["other.jpg", "other.jpg"]]
    assert by_name["identical_content"] == [False] and by_name["findings"] == []

    assert "hash" in await refused(build_server, settings, "find_duplicates", path=str(photos), method="fuzzy")
    assert "folder" in await refused(build_server, settings, "find_duplicates", path=str(original))


async def test_propose_cleanup_from_findings_changes_nothing(settings: ToolHostSettings, root: Path) -> None:
    secrets = await ok(build_server, settings, "scan_for_secrets", path=str(root / "project" / "settings.py"))
    pii = await ok(build_server, settings, "scan_for_pii", path=str(root / "people"))
    (root / "dup.txt").write_text("Jane Doe, x\n")
    (root / "dup copy.txt").write_text("Jane Doe, x\n")
    dups = await ok(build_server, settings, "find_duplicates", path=str(root))
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    proposal = await ok(
        build_server,
        settings,
        "propose_cleanup",
        findings=secrets["findings"] + pii["findings"] + dups["findings"],
    )
    actions = {(a["action"], Path(a["path"]).name): a for a in proposal["actions"]}
    assert set(actions) == {("remove_secret", "settings.py"), ("encrypt", "customers.txt"), ("delete", "dup copy.txt")}
    assert actions[("remove_secret", "settings.py")]["lines"] == [1, 2, 5]
    assert "rotate" in actions[("remove_secret", "settings.py")]["reason"]
    assert actions[("encrypt", "customers.txt")]["suggested_tool"] == "security.encrypt_file"
    delete = actions[("delete", "dup copy.txt")]
    assert delete["keep"] == str(root / "dup.txt") and delete["suggested_tool"] == "filesystem.delete_file"
    assert proposal["reclaimable_bytes"] == delete["size"] == 12
    assert proposal["changed_nothing"] is True
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


async def test_propose_cleanup_reviews_a_folder(settings: ToolHostSettings, root: Path) -> None:
    junk = root / "junk"
    junk.mkdir()
    (junk / "report.docx~").write_text("lock")
    (junk / "notes.tmp").write_text("scratch")
    old = junk / "old.txt"
    old.write_text("ancient")
    os.utime(old, (time.time() - 3 * 365 * 86400, time.time() - 3 * 365 * 86400))
    (junk / "fresh.txt").write_text("new")
    proposal = await ok(build_server, settings, "propose_cleanup", findings=[{"path": str(junk)}])
    assert sorted((a["action"], Path(a["path"]).name) for a in proposal["actions"]) == [
        ("archive", "old.txt"),
        ("delete", "notes.tmp"),
        ("delete", "report.docx~"),
    ]
    assert proposal["reclaimable_bytes"] == len("lock") + len("scratch")
    assert sorted(p.name for p in junk.iterdir()) == ["fresh.txt", "notes.tmp", "old.txt", "report.docx~"]


async def test_propose_cleanup_with_no_findings(settings: ToolHostSettings) -> None:
    proposal = await ok(build_server, settings, "propose_cleanup", findings=[])
    assert proposal["actions"] == [] and "Nothing to propose" in proposal["note"]


async def test_encrypt_then_decrypt_round_trip(settings: ToolHostSettings, root: Path) -> None:
    plain = root / "people" / "customers.txt"
    content = plain.read_bytes()
    encrypted = await ok(build_server, settings, "encrypt_file", path=str(plain))
    enc = Path(encrypted["path"])
    assert enc == plain.with_name("customers.txt.enc") and encrypted["original_kept"] is True
    assert plain.read_bytes() == content
    data = enc.read_bytes()
    assert data.startswith(b"SBENC\x01") and EMAIL.encode() not in data
    assert encrypted["undo"] == [
        {
            "kind": "remove_created",
            "path": str(enc),
            "sha256": hashlib.sha256(data).hexdigest(),
            "original_path": "",
            "trash_id": "",
            "replace": False,
        }
    ]
    # The key is in the key store under the state folder, not anywhere beside the ciphertext.
    key_store = Path(encrypted["key_store"])
    assert key_store.is_relative_to(settings.state_dir) and key_store.stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in enc.parent.iterdir()) == ["customers.txt", "customers.txt.enc", "photo.bin"]

    # Decrypting next to the still-present original keeps the original in the trash first.
    decrypted = await ok(build_server, settings, "decrypt_file", path=str(enc))
    assert decrypted["path"] == str(plain) and decrypted["overwrote"] is True
    assert plain.read_bytes() == content
    [undo] = decrypted["undo"]
    assert undo["kind"] == "restore_trash" and undo["replace"] is True and undo["trash_id"] == decrypted["trash_id"]
    manifest = json.loads((settings.trash_dir / decrypted["trash_id"] / "manifest.json").read_text())
    assert manifest["original_path"] == str(plain)

    elsewhere = await ok(build_server, settings, "decrypt_file", path=str(enc), output_path=str(root / "out" / "c.txt"))
    assert Path(elsewhere["path"]).read_bytes() == content and elsewhere["undo"][0]["kind"] == "remove_created"


async def test_decrypt_refuses_tampered_foreign_and_plain_files(settings: ToolHostSettings, root: Path) -> None:
    plain = root / "people" / "customers.txt"
    encrypted = await ok(build_server, settings, "encrypt_file", path=str(plain), output_path=str(root / "c.enc"))
    enc = Path(encrypted["path"])
    tampered = bytearray(enc.read_bytes())
    tampered[-1] ^= 1
    (root / "tampered.enc").write_bytes(bytes(tampered))
    text = await refused(build_server, settings, "decrypt_file", path=str(root / "tampered.enc"))
    assert "changed or damaged" in text
    assert not (root / "tampered").exists()

    other_machine = settings.model_copy(update={"state_dir": settings.state_dir.parent / "other-state"})
    assert "not in the key store" in await refused(build_server, other_machine, "decrypt_file", path=str(enc))
    assert "not a file encrypted" in await refused(
        build_server, settings, "decrypt_file", path=str(plain), output_path=str(root / "x.txt")
    )
    assert "output_path" in await refused(build_server, settings, "decrypt_file", path=str(plain))
    assert "already encrypted" in await refused(build_server, settings, "encrypt_file", path=str(enc))


async def test_encrypt_over_an_existing_file_keeps_it_in_the_trash(settings: ToolHostSettings, root: Path) -> None:
    plain = root / "people" / "customers.txt"
    (root / "people" / "customers.txt.enc").write_text("an older file")
    result = await ok(build_server, settings, "encrypt_file", path=str(plain))
    assert result["overwrote"] is True
    [undo] = result["undo"]
    assert undo["kind"] == "restore_trash" and undo["replace"] is True
    manifest = json.loads((settings.trash_dir / undo["trash_id"] / "manifest.json").read_text())
    assert (settings.trash_dir / undo["trash_id"] / manifest["stored_as"]).read_text() == "an older file"


async def test_paths_outside_the_roots_are_refused(settings: ToolHostSettings, root: Path, outside: Path) -> None:
    attempts = [
        ("scan_for_pii", {"path": str(outside)}),
        ("scan_for_secrets", {"path": str(outside / "secret.txt")}),
        ("find_duplicates", {"path": str(outside)}),
        ("propose_cleanup", {"findings": [{"path": str(outside / "secret.txt")}]}),
        ("encrypt_file", {"path": str(outside / "secret.txt")}),
        ("encrypt_file", {"path": str(root / "project" / ".env"), "output_path": str(outside / "x.enc")}),
        ("decrypt_file", {"path": str(outside / "secret.txt"), "output_path": str(root / "x")}),
    ]
    for tool, arguments in attempts:
        text = await refused(build_server, settings, tool, **arguments)
        assert "outside the allowed folders" in text and str(root) in text, (tool, text)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


async def test_server_runs_over_stdio(settings: ToolHostSettings, root: Path) -> None:
    params = stdio_parameters("security", settings)
    async with Client(params) as client:
        result = await client.call_tool("scan_for_secrets", {"path": str(root / "project" / ".env")})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["findings"][0]["kind"] == "password"
