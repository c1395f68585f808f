"""Keys, encryption (age, via ``pyrage``) and signatures (minisign, via ``py-minisign``).

* Investors hold age X25519 identities (``cfx dataroom keygen``, or the ``age-keygen`` command);
  files are encrypted for their public recipients (``age1...``) and open with the ``age``
  command as well as with cfx.
* The data room signs with an Ed25519 minisign key kept at ``$CFX_HOME/keys/dataroom-sign.key``
  (mode 0600, made on first use); its public key is published beside the versions, and
  ``minisign -Vm FILE -p dataroom-sign.pub`` checks a signature without cfx.
* Decryption writes to a temporary file and renames it only when the whole file authenticated:
  pyrage's streaming decrypt raises a plain ``OSError`` after writing the good prefix of a
  tampered file, so nothing partial is ever left behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import minisign
import pyrage

from cfxlib.core.errors import UserError

SIGN_KEY = "dataroom-sign.key"
SIGN_PUB = "dataroom-sign.pub"


class DataRoomError(UserError):
    """A data room object that fails a check; the message names it."""


def new_identity() -> tuple[str, str]:
    """A new age identity and its public recipient: (``AGE-SECRET-KEY-1...``, ``age1...``)."""
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def write_private(path: Path, text: str) -> None:
    """Write a secret to ``path`` with mode 0600 (refuses to overwrite an existing file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UserError(f"{path} exists; choose another file (keys are never overwritten)") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def recipients(keys: list[str]) -> list:
    """Parse public recipient keys; a bad one is named."""
    if not keys:
        raise UserError(
            "no data room recipients: set CFX_DATAROOM__RECIPIENTS to a JSON list of age public keys "
            "(age1...; `cfx dataroom keygen --out FILE` makes a key pair)"
        )
    out = []
    for i, key in enumerate(keys):
        try:
            out.append(pyrage.x25519.Recipient.from_str(key.strip()))
        except (pyrage.RecipientError, ValueError):
            raise UserError(
                f"CFX_DATAROOM__RECIPIENTS[{i}] is not an age public key (age1...): {key[:12]}..."
            ) from None
    return out


def identity(path: Path):
    """The age identity in ``path`` (comment lines allowed, as ``age-keygen`` writes them)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read the identity file {path}: {exc.strerror}") from None
    keys = [line.strip() for line in lines if line.strip().startswith("AGE-SECRET-KEY-")]
    if not keys:
        raise UserError(f"{path} holds no age identity (a line AGE-SECRET-KEY-1...)")
    try:
        return pyrage.x25519.Identity.from_str(keys[0])
    except (pyrage.IdentityError, ValueError):
        raise UserError(f"{path}: the AGE-SECRET-KEY line is not a valid identity") from None


def encrypt_file(src: Path, dst: Path, to: list) -> None:
    """Stream-encrypt ``src`` into ``dst`` for the recipients ``to``."""
    pyrage.encrypt_file(str(src), str(dst), to)


def decrypt_file(src: Path, dst: Path, ident, name: str) -> None:
    """Decrypt ``src`` to ``dst`` only if the whole file authenticates; otherwise raise
    :class:`DataRoomError` naming ``name`` and leave nothing at ``dst``."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
    os.close(fd)
    try:
        pyrage.decrypt_file(str(src), tmp, [ident])
    except (pyrage.DecryptError, OSError) as exc:
        Path(tmp).unlink(missing_ok=True)
        why = "wrong key (not encrypted for this identity)" if "no matching keys" in str(exc).lower() else str(exc)
        raise DataRoomError(f"{name}: cannot be decrypted: {why}") from None
    os.replace(tmp, dst)


def decrypt_bytes(data: bytes, ident, name: str) -> bytes:
    try:
        return pyrage.decrypt(data, [ident])
    except (pyrage.DecryptError, OSError, ValueError) as exc:
        why = "wrong key (not encrypted for this identity)" if "no matching keys" in str(exc).lower() else str(exc)
        raise DataRoomError(f"{name}: cannot be decrypted: {why}") from None


def encrypt_bytes(data: bytes, to: list) -> bytes:
    return pyrage.encrypt(data, to)


def signing_key(keys_dir: Path) -> minisign.SecretKey:
    """The data room's signing key, made (mode 0600) on first use, with its public key beside it."""
    path = Path(keys_dir) / SIGN_KEY
    if not path.exists():
        pair = minisign.KeyPair.generate()
        write_private(path, bytes(pair.secret_key).decode("ascii"))
        (Path(keys_dir) / SIGN_PUB).write_bytes(bytes(pair.public_key))
    return minisign.SecretKey.from_bytes(path.read_bytes())


def public_key_bytes(keys_dir: Path) -> bytes:
    signing_key(keys_dir)
    return (Path(keys_dir) / SIGN_PUB).read_bytes()


def key_id(public_key: bytes) -> str:
    """The signer key id cfx prints and trusts: the minisign public key itself, in the base64 form
    ``minisign -P`` takes (``RW...``, 56 characters).

    minisign's own 16-hex "key number" is chosen by whoever makes the key, so a forger can copy
    it; the whole public key cannot be forged, so it is the id."""
    try:
        return _b64(minisign.PublicKey.from_bytes(public_key).to_base64())
    except (minisign.Error, ValueError) as exc:
        raise DataRoomError(f"{SIGN_PUB}: not a minisign public key ({exc})") from None


def public_key_from_id(text: str, source: str) -> bytes:
    """The public key (file bytes) of a signer key id given by a person; ``source`` names where
    it came from in the error."""
    value = "".join(text.split())
    try:
        pk = minisign.PublicKey.from_base64(value)
    except (minisign.Error, ValueError):
        raise UserError(
            f"{source}: {value[:12]!r}... is not a data room signer key id (the minisign public key, RW... "
            "56 characters, as printed by `cfx dataroom sync`)"
        ) from None
    return f"untrusted comment: cfx data room signer\n{_b64(pk.to_base64())}\n".encode("ascii")


def _b64(value: bytes | str) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


def sign(key: minisign.SecretKey, data: bytes, comment: str) -> bytes:
    """A minisign signature file (prehashed Ed25519, as ``minisign -S`` writes) over ``data``."""
    return bytes(key.sign(data, prehash=True, trusted_comment=comment)) + b"\n"


def verify(public_key: bytes, data: bytes, signature: bytes, name: str) -> str:
    """Check a minisign signature; returns its trusted comment or raises :class:`DataRoomError`."""
    try:
        pk = minisign.PublicKey.from_bytes(public_key)
        sig = minisign.Signature.from_bytes(signature)
        pk.verify(data, sig)
    except (minisign.Error, ValueError) as exc:
        raise DataRoomError(f"{name}: signature does not verify ({exc})") from None
    return sig.trusted_comment
