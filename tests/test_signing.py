"""Keys and signatures: keygen, passphrases, fail-closed verification."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from airgap.errors import SignatureError, UsageError
from airgap.signing import PASSPHRASE_ENV, TrustedKeys, generate_keypair, load_signer, load_trusted_keys


def test_keygen_modes_and_roundtrip(tmp_path: Path) -> None:
    kid = generate_keypair(tmp_path / "k")
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert (tmp_path / "k.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    signer = load_signer(tmp_path / "k")
    assert signer.keyid == kid
    sig = signer.sign(b"manifest")
    assert load_trusted_keys([str(tmp_path / "k.pub")]).verify(b"manifest", sig) == kid


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "k")
    with pytest.raises(UsageError, match="expected a new file"):
        generate_keypair(tmp_path / "k")


def test_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generate_keypair(tmp_path / "k", passphrase=b"s3cret")
    assert b"ENCRYPTED" in (tmp_path / "k").read_bytes()
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    with pytest.raises(UsageError, match=PASSPHRASE_ENV):
        load_signer(tmp_path / "k")
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(UsageError, match="passphrase"):
        load_signer(tmp_path / "k")
    monkeypatch.setenv(PASSPHRASE_ENV, "s3cret")
    assert load_signer(tmp_path / "k").sign(b"x")


def test_verification_fails_closed(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "a")
    generate_keypair(tmp_path / "b")
    sig = load_signer(tmp_path / "a").sign(b"data")
    only_b = load_trusted_keys([str(tmp_path / "b.pub")])
    with pytest.raises(SignatureError, match="not trusted"):
        only_b.verify(b"data", sig)
    with pytest.raises(SignatureError, match="no trusted key"):
        TrustedKeys({}).verify(b"data", sig)
    a = load_trusted_keys([str(tmp_path / "a.pub")])
    with pytest.raises(SignatureError, match="does not verify"):
        a.verify(b"dat4", sig)
    doc = json.loads(sig)
    with pytest.raises(SignatureError, match="algorithm"):
        a.verify(b"data", json.dumps({**doc, "alg": "none"}).encode())
    with pytest.raises(SignatureError, match="unreadable"):
        a.verify(b"data", b"\xff garbage")


def test_wrong_key_files(tmp_path: Path) -> None:
    (tmp_path / "junk").write_text("hello")
    with pytest.raises(UsageError, match="expected an Ed25519 private key"):
        load_signer(tmp_path / "junk")
    with pytest.raises(UsageError, match="expected an Ed25519 public key"):
        load_trusted_keys([str(tmp_path / "junk")])
    with pytest.raises(UsageError, match="cannot read"):
        load_trusted_keys([str(tmp_path / "missing.pub")])
