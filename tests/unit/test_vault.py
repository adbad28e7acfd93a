"""The vault: sealed at rest, bound to its name, never shown."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.vault import Vault, VaultError


def test_round_trip_and_nothing_readable_at_rest(tmp_path: Path) -> None:
    vault = Vault.open(tmp_path, {}, create=True)
    vault.set(name="shop", kind="mysql", username="shop_rw", secret="s3cr3t-Pa55")
    cred = Vault.open(tmp_path, {}).get("shop")
    assert cred.username == "shop_rw" and cred.secret.reveal() == "s3cr3t-Pa55"
    assert "s3cr3t" not in repr(cred) and "s3cr3t" not in str(cred.secret)
    raw = (tmp_path / "vault.json").read_text()
    assert "s3cr3t" not in raw
    assert stat.S_IMODE(os.stat(tmp_path / "vault.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "vault.key").st_mode) == 0o600
    assert vault.names() == [("shop", "mysql")]


def test_wrong_key_and_swapped_entries_are_refused(tmp_path: Path) -> None:
    vault = Vault.open(tmp_path, {}, create=True)
    vault.set(name="a", kind="mysql", username="u1", secret="one")
    vault.set(name="b", kind="mysql", username="u2", secret="two")
    data = json.loads((tmp_path / "vault.json").read_text())
    data["entries"]["a"], data["entries"]["b"] = data["entries"]["b"], data["entries"]["a"]
    (tmp_path / "vault.json").write_text(json.dumps(data))
    with pytest.raises(VaultError, match="cannot be decrypted"):
        vault.get("a")
    other = Vault(tmp_path / "vault.json", os.urandom(32))
    with pytest.raises(VaultError, match="wrong vault key"):
        other.get("b")
    with pytest.raises(VaultError, match="no credential named 'zzz'"):
        vault.get("zzz")


def test_cli_set_list_never_prints_the_secret(tmp_path: Path) -> None:
    env = {**os.environ, "WARDGATE_DATA_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "gateway.cli"]
    out = subprocess.run(
        [*cmd, "vault", "set", "shop", "--username", "app", "--stdin"],
        input="hunter2\n",
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "hunter2" not in out.stdout + out.stderr
    listed = subprocess.run(
        [*cmd, "vault", "list", "--json"], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(listed.stdout) == [{"kind": "mysql", "name": "shop"}]
    assert "app" not in listed.stdout and "hunter2" not in listed.stdout
    missing = subprocess.run(
        [*cmd, "vault", "delete", "nope"], capture_output=True, text=True, env=env
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == "wardgate: no credential named 'nope' in the vault"
