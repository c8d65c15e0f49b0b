"""The shared path policy: expansion on the text alone, and the four verdicts in their order."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.paths import PathPolicy, PathVerdict

HOME = Path("/home/user")
POLICY = PathPolicy(roots=(HOME,), home=HOME)
# A container whose only root lives under /root, a system folder.
CONTAINER = PathPolicy(roots=(Path("/root/.local/state/switchboard/workspace"),), home=Path("/root"))


@pytest.mark.parametrize(
    ("raw", "expanded"),
    [
        ("~", "/home/user"),
        ("~/Documents/a.txt", "/home/user/Documents/a.txt"),
        ("/tmp/x", "/tmp/x"),
        ("notes/todo.md", "/home/user/notes/todo.md"),
        ("~/Documents/../../../etc/passwd", "/etc/passwd"),
        ("/home/user/./a/../b", "/home/user/b"),
        ("//etc", "/etc"),
        ("~bob/x", "/home/bob/x"),
        ("$HOME/x", "/home/user/x"),
        ("C:\\Windows\\System32", "C:/Windows/System32"),
    ],
)
def test_expand(raw: str, expanded: str) -> None:
    assert str(POLICY.expand(raw)) == expanded


def test_expand_uses_the_given_home_not_the_process_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/somewhere/else")
    assert POLICY.expand("~/a") == Path("/home/user/a")


def test_expand_never_touches_the_disk(tmp_path: Path) -> None:
    # A symlink would be followed by realpath; the policy judges the words as typed.
    (tmp_path / "link").symlink_to("/etc")
    policy = PathPolicy(roots=(tmp_path,), home=tmp_path)
    assert policy.expand("~/link/passwd") == tmp_path / "link" / "passwd"
    assert policy.classify("~/link/passwd") is PathVerdict.INSIDE


@pytest.mark.parametrize(
    "raw",
    [
        "/etc/shadow",
        "/etc/sudoers",
        "/etc/sudoers.d/90-users",
        "/private/etc/master.passwd",
        "~/.ssh",
        "~/.ssh/config",
        "/root/.ssh/id_rsa",
        "~/backup/id_ed25519",
        "~/.gnupg/private-keys-v1.d",
        "~/.aws/credentials",
        "~/.netrc",
        "~/.git-credentials",
        "~/Library/Keychains/login.keychain-db",
        "~/.local/share/keyrings/login.keyring",
        "~/.config/google-chrome/Default/Login Data",
        "~/.mozilla/firefox/abc.default/logins.json",
        "~/.mozilla/firefox/abc.default/key4.db",
        "~/Vault/passwords.kdbx",
        "/etc/ssh/ssh_host_ed25519_key",
        "C:\\Users\\ana\\.ssh\\id_rsa",
        "~/Documents/../.ssh/id_rsa",
    ],
)
def test_secrets_wherever_they_are(raw: str) -> None:
    assert POLICY.classify(raw) is PathVerdict.SECRET


def test_a_secret_inside_a_root_is_still_a_secret() -> None:
    assert POLICY.classify("/home/user/.ssh/id_rsa") is PathVerdict.SECRET
    assert CONTAINER.classify("/root/.local/state/switchboard/workspace/.aws/credentials") is PathVerdict.SECRET


@pytest.mark.parametrize(
    "raw",
    ["/.env", "~/Projects/atlas/.env", "~/id_rsa.pub", "~/certs/site.pem", "~/talks/keynote.key", "~/ssh-notes.md"],
)
def test_look_alikes_are_not_secrets(raw: str) -> None:
    assert POLICY.classify(raw) is not PathVerdict.SECRET


@pytest.mark.parametrize(
    "raw",
    [
        "/",
        "/etc/passwd",
        "/etc/resolv.conf",
        "/usr/bin/python3",
        "/bin",
        "/sbin/init",
        "/lib/x86_64-linux-gnu",
        "/lib64",
        "/boot/vmlinuz",
        "/proc/1/environ",
        "/sys/class",
        "/dev/sda",
        "/var/log/syslog",
        "/opt/app",
        "/srv/www",
        "/root",
        "/root/scans/id-card.png",
        "/System/Library",
        "/Library/Preferences",
        "C:\\Windows\\System32",
        "C:\\Program Files\\App",
        "C:\\",
        "~/Documents/../../../etc/passwd",
    ],
)
def test_system_locations(raw: str) -> None:
    assert POLICY.classify(raw) is PathVerdict.SYSTEM


def test_a_root_under_root_is_not_system() -> None:
    assert CONTAINER.classify("/root/.local/state/switchboard/workspace") is PathVerdict.INSIDE
    assert CONTAINER.classify("/root/.local/state/switchboard/workspace/a/b.txt") is PathVerdict.INSIDE
    assert CONTAINER.classify("a/b.txt") is PathVerdict.INSIDE
    # Beside the root, /root is still the system's.
    assert CONTAINER.classify("/root/notes.txt") is PathVerdict.SYSTEM
    assert CONTAINER.classify("~/notes.txt") is PathVerdict.SYSTEM


def test_a_root_above_a_system_folder_does_not_open_it() -> None:
    careless = PathPolicy(roots=(Path("/"),), home=HOME)
    assert careless.classify("/") is PathVerdict.SYSTEM
    assert careless.classify("/etc/hosts") is PathVerdict.SYSTEM
    assert careless.classify("/home/user/a") is PathVerdict.INSIDE


@pytest.mark.parametrize("raw", ["~", "~/", "/home/user", "/home/user/", "~/Documents/a.txt", "notes/x.md"])
def test_inside(raw: str) -> None:
    assert POLICY.classify(raw) is PathVerdict.INSIDE


@pytest.mark.parametrize(
    "raw", ["/tmp/x", "/home/other/a", "/home/username", "/home", "~bob/x", "D:\\data", "/mnt/usb"]
)
def test_outside(raw: str) -> None:
    assert POLICY.classify(raw) is PathVerdict.OUTSIDE


def test_dot_dot_escapes_are_caught() -> None:
    assert POLICY.classify("~/Documents/../../other/a") is PathVerdict.OUTSIDE
    assert POLICY.classify("/home/user/../../etc/passwd") is PathVerdict.SYSTEM
    assert POLICY.classify("../../tmp/x") is PathVerdict.OUTSIDE


def test_several_roots() -> None:
    policy = PathPolicy(roots=(Path("/data/a"), Path("/srv/share")), home=HOME)
    assert policy.classify("/data/a/x") is PathVerdict.INSIDE
    assert policy.classify("/srv/share/x") is PathVerdict.INSIDE
    assert policy.classify("/srv/other") is PathVerdict.SYSTEM
    assert policy.classify("rel.txt") is PathVerdict.INSIDE
    assert policy.expand("rel.txt") == Path("/data/a/rel.txt")


def test_explain_names_the_path_and_why() -> None:
    outside = POLICY.explain("/tmp/x")
    assert "/tmp/x" in outside and "/home/user" in outside and "outside" in outside
    secret = POLICY.explain("~/.ssh/id_rsa")
    assert "~/.ssh/id_rsa" in secret and "/home/user/.ssh/id_rsa" in secret and "credentials" in secret
    system = POLICY.explain("~/Documents/../../../etc/passwd")
    assert "/etc/passwd" in system and "operating-system" in system


@pytest.mark.parametrize("raw", ["/tmp/x", "~/.ssh/id_rsa", "/etc/passwd", "/", "~/a.txt"])
def test_explain_is_one_sentence(raw: str) -> None:
    sentence = POLICY.explain(raw)
    assert sentence.endswith(".") and sentence.count(". ") == 0
