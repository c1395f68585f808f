"""A data room reader trusts nothing it reads from the target: a key placed in the bucket, a
manifest path, an object name in SHA256SUMS, the ``latest`` label. Versions are written here by
hand at a ``file://`` target, signed with the real key or an attacker's, so each forgery is one
an attacker who can write to the bucket could make."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import minisign
import pytest

from cfxlib.core.home import Home
from cfxlib.dataroom import crypto, paths, room
from cfxlib.dataroom.crypto import DataRoomError
from cfxlib.dataroom.storage import FileStore


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_version(store: Path, key: minisign.KeyPair, label: str, files: dict[str, bytes], to: str, sums_extra=()):
    """Write a signed, encrypted version at ``store`` as ``cfx dataroom sync`` lays it out."""
    recipients = crypto.recipients([to])
    entries, sums = [], []
    for i, (path, data) in enumerate(files.items()):
        obj = f"versions/{label}/files/{i:024x}.age"
        cipher = crypto.encrypt_bytes(data, recipients)
        (store / obj).parent.mkdir(parents=True, exist_ok=True)
        (store / obj).write_bytes(cipher)
        entries.append(
            {"path": path, "object": obj, "object_sha256": _sha(cipher), "size": len(data), "sha256": _sha(data)}
        )
        sums.append(f"{_sha(cipher)}  {obj}")
    manifest = json.dumps({"label": label, "files": entries}).encode()
    secret = key.secret_key
    (store / f"versions/{label}/manifest.json.age").write_bytes(crypto.encrypt_bytes(manifest, recipients))
    (store / f"versions/{label}/manifest.json.minisig").write_bytes(
        crypto.sign(secret, manifest, f"cfx data room {label} m")
    )
    sums.append(
        f"{_sha((store / f'versions/{label}/manifest.json.age').read_bytes())}  versions/{label}/manifest.json.age"
    )
    text = ("\n".join([*sums, *sums_extra]) + "\n").encode()
    (store / f"versions/{label}/SHA256SUMS").write_bytes(text)
    (store / f"versions/{label}/SHA256SUMS.minisig").write_bytes(
        crypto.sign(secret, text, f"cfx data room {label} SHA256SUMS")
    )
    (store / crypto.SIGN_PUB).write_bytes(bytes(key.public_key))
    (store / "latest").write_text(f"{label}\n")


@pytest.fixture
def room_setup(tmp_path):
    owner = minisign.KeyPair.generate()
    secret, public = crypto.new_identity()
    ident = tmp_path / "investor.key"
    ident.write_text(secret + "\n")
    store = tmp_path / "bucket"
    store.mkdir()
    write_version(store, owner, "v1.0.0-data-room+abc1234.00000001", {"02-reports/a.txt": b"figures"}, public)
    investor_home = Home(tmp_path / "investor-home").ensure()  # no pinned key: nothing trusted yet
    owner_id = crypto.key_id(bytes(owner.public_key))
    return store, owner, owner_id, public, ident, investor_home, tmp_path


def test_an_unpinned_key_read_from_the_bucket_is_not_trusted(room_setup):
    store, _owner, owner_id, _public, ident, home, tmp = room_setup
    with pytest.raises(DataRoomError, match="no trusted signer key.*--key-id"):
        room.verify(home, store.as_uri(), ident)
    out = tmp / "out"
    result = room.verify(home, store.as_uri(), ident, out=out, signer=owner_id)
    assert result.files == 1 and (out / "02-reports" / "a.txt").read_bytes() == b"figures"
    # The owner's key id is the minisign public key itself (what `minisign -P` takes).
    assert owner_id.startswith("RW") and len(owner_id) == 56


def test_a_version_resigned_with_an_attackers_key_in_the_bucket_is_refused(room_setup):
    store, _owner, owner_id, public, ident, home, tmp = room_setup
    attacker = minisign.KeyPair.generate()
    write_version(store, attacker, "v1.0.1-data-room+abc1234.00000002", {"../../evil.txt": b"pwned"}, public)
    out = tmp / "deep" / "er" / "out"
    with pytest.raises(DataRoomError, match=r"versions/v1.0.1-data-room\+abc1234.00000002/SHA256SUMS: signature"):
        room.verify(home, store.as_uri(), ident, out=out, signer=owner_id)
    assert not out.exists() and not (tmp / "deep" / "evil.txt").exists()


@pytest.mark.parametrize("bad", ["../../evil.txt", "/tmp/evil.txt", "02-reports/../../evil.txt", "a\\..\\evil", "."])
def test_a_traversal_path_signed_by_the_real_key_is_refused_and_nothing_is_written(room_setup, bad):
    store, owner, owner_id, public, ident, home, tmp = room_setup
    label = "v1.0.2-data-room+abc1234.00000003"
    write_version(store, owner, label, {"02-reports/ok.txt": b"fine", bad: b"pwned"}, public)
    out = tmp / "deep" / "er" / "out"
    with pytest.raises(DataRoomError, match=rf"versions/{label.replace('+', '[+]')}/manifest.json.*refuses file path"):
        room.verify(home, store.as_uri(), ident, out=out, signer=owner_id)
    assert not out.exists()
    assert not list(tmp.rglob("evil.txt")) and not Path("/tmp/evil.txt").exists()


def test_object_names_and_labels_from_the_target_are_checked(room_setup):
    store, owner, owner_id, public, ident, home, tmp = room_setup
    label = "v1.0.3-data-room+abc1234.00000004"
    write_version(store, owner, label, {"02-reports/a.txt": b"x"}, public, sums_extra=[f"{'0' * 64}  ../../keys/x"])
    with pytest.raises(DataRoomError, match=r"SHA256SUMS line 3: refuses object name '../../keys/x'"):
        room.verify(home, store.as_uri(), ident, signer=owner_id)
    (store / "latest").write_text("../../../etc\n")
    with pytest.raises(DataRoomError, match="latest: '../../../etc' is not a version label"):
        room.verify(home, store.as_uri(), ident, signer=owner_id)
    with pytest.raises(DataRoomError, match="--version"):
        room.verify(home, store.as_uri(), ident, version="../x", signer=owner_id)
    with pytest.raises(Exception, match="refuses object name|outside"):
        FileStore(store).read("../investor.key")


def test_a_symlink_in_the_output_folder_cannot_redirect_a_file(room_setup):
    store, _owner, owner_id, _public, ident, home, tmp = room_setup
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    out = tmp / "out"
    out.mkdir()
    (out / "02-reports").symlink_to(elsewhere)
    with pytest.raises(DataRoomError, match="resolves outside"):
        room.verify(home, store.as_uri(), ident, out=out, signer=owner_id)
    assert not any(elsewhere.iterdir())


def test_path_rules():
    assert str(paths.relative_file("02-reports/investor_metrics.pdf", "m")) == "02-reports/investor_metrics.pdf"
    for bad in ("", "..", "a//b", ".hidden", "a/./b", "C:\\x", "a\x00b"):
        with pytest.raises(DataRoomError):
            paths.relative_file(bad, "m")
    assert paths.label("v0.1.0-data-room+abc1234.0123abcd", "x")
    with pytest.raises(DataRoomError):
        paths.label("v1/../x", "x")
