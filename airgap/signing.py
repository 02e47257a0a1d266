"""Ed25519 keys and manifest signatures.

The signature covers the exact bytes of ``manifest.json``; ``manifest.sig`` is a small JSON
document ``{"alg": "ed25519", "keyid": <hex>, "sig": <base64>}``. The key id is the sha256
of the raw 32-byte public key. Verification is fail-closed: an empty trusted-key set, an
unknown key id, another algorithm or a bad signature are all :class:`SignatureError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import mmap
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ._fs import atomic_write_bytes
from .errors import SignatureError, UsageError
from .limits import MAX_KEY_BYTES, read_small_file

PASSPHRASE_ENV = "AIRGAP_KEY_PASSPHRASE"


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Signer:
    private_key: Ed25519PrivateKey

    @property
    def keyid(self) -> str:
        return key_id(self.private_key.public_key())

    def sign(self, data: bytes) -> bytes:
        """Return the ``manifest.sig`` bytes for ``data``."""
        sig = self.private_key.sign(data)
        doc = {"alg": "ed25519", "keyid": self.keyid, "sig": base64.b64encode(sig).decode("ascii")}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class TrustedKeys:
    keys: dict[str, Ed25519PublicKey]

    def verify(self, data: bytes | mmap.mmap, sig_doc: bytes) -> str:
        """Check ``sig_doc`` over ``data``; return the signer's key id."""
        if not self.keys:
            raise SignatureError(
                "no trusted key configured: expected --trusted-key PUB or trusted_keys in the config; refusing to trust an unverified archive"
            )
        try:
            doc = json.loads(sig_doc.decode("utf-8"))
            alg, kid, sig_b64 = doc["alg"], doc["keyid"], doc["sig"]
            if not (isinstance(alg, str) and isinstance(kid, str) and isinstance(sig_b64, str)):
                raise TypeError
            sig = base64.b64decode(sig_b64, validate=True)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, binascii.Error, RecursionError):
            raise SignatureError("manifest.sig: expected a JSON document {alg, keyid, sig}, found something unreadable") from None
        if alg != "ed25519":
            raise SignatureError(f"manifest.sig: expected algorithm ed25519, found {alg!r}")
        public = self.keys.get(kid)
        if public is None:
            trusted = ", ".join(k[:16] for k in sorted(self.keys))
            raise SignatureError(f"archive is signed by key {kid[:16]}, which is not trusted (trusted: {trusted})")
        try:
            with memoryview(data) as view:  # a big manifest is mapped (airgap.archive.reader)
                public.verify(sig, view)
        except InvalidSignature:
            raise SignatureError(f"manifest signature does not verify with key {kid[:16]}: the manifest or signature was altered") from None
        return kid


def generate_keypair(path: Path, passphrase: bytes | None = None, force: bool = False) -> str:
    """Write a new private key to ``path`` (mode 0600) and its public key to ``path.pub``."""
    path = Path(path)
    pub_path = path.with_name(path.name + ".pub")
    for p in (path, pub_path):
        if p.exists() and not force:
            raise UsageError(f"{p}: expected a new file, found an existing one (use --force to overwrite)")
    if not path.parent.is_dir():  # `keygen ~/keys/airgap` with no ~/keys yet: make it, private to its owner
        try:
            path.parent.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            raise UsageError(f"{path.parent}: expected a directory for the key, found a file") from None
        except OSError as exc:
            raise UsageError(f"{path.parent}: expected a directory for the key, cannot create it: {exc.strerror}") from None
    key = Ed25519PrivateKey.generate()
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write_bytes(path, pem, mode=0o600)
    atomic_write_bytes(pub_path, pub, mode=0o644)
    return key_id(key.public_key())


def passphrase_from_env() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode("utf-8") if value else None


def _read_key_file(p: Path, what: str) -> bytes:
    try:
        return read_small_file(p, MAX_KEY_BYTES, f"an Ed25519 {what} key (PEM)")
    except FileNotFoundError:
        raise UsageError(f"{p}: expected an Ed25519 {what} key (PEM), cannot read it: no such file") from None


def check_private_key_mode(p: Path) -> None:
    """Refuse a private key others may read, as ssh does (the key could have been copied already)."""
    try:
        mode = stat.S_IMODE(os.stat(p).st_mode)
    except OSError:
        return  # reading it reports the problem
    if mode & 0o077:
        raise UsageError(
            f"{p}: expected a private key only its owner can read, found mode {mode:04o} (readable by "
            f"{'others' if mode & 0o007 else 'the group'}); run: chmod 600 {p}"
        )


def load_signer(path: str | os.PathLike[str]) -> Signer:
    p = Path(path)
    data = _read_key_file(p, "private")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase_from_env())
    except TypeError as exc:
        raise UsageError(f"{p}: {exc}; set {PASSPHRASE_ENV} for an encrypted key, unset it for a plain one") from None
    except ValueError:
        raise UsageError(f"{p}: expected an Ed25519 private key in PEM form (or the passphrase in {PASSPHRASE_ENV} is wrong)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{p}: expected an Ed25519 private key, found {type(key).__name__}")
    check_private_key_mode(p)
    return Signer(key)


def load_trusted_keys(paths: list[str] | tuple[str, ...]) -> TrustedKeys:
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        p = Path(path)
        data = _read_key_file(p, "public")
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            raise UsageError(f"{p}: expected an Ed25519 public key in PEM form (the .pub written by airgap keygen)") from None
        if not isinstance(key, Ed25519PublicKey):
            raise UsageError(f"{p}: expected an Ed25519 public key, found {type(key).__name__}")
        keys[key_id(key)] = key
    return TrustedKeys(keys)
