"""Data room pieces that need no server: labels (release tags), the manifest spec, the local
target's generation preconditions, and decryption that never leaves a partial file."""

from __future__ import annotations

import subprocess

import pytest

from cfxlib.core.errors import UserError
from cfxlib.dataroom import crypto, room, spec
from cfxlib.dataroom.crypto import DataRoomError
from cfxlib.dataroom.storage import Conflict, FileStore, open_target


def test_label_carries_the_commit_and_a_release_tag_when_one_points_at_it(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (
        ["init", "-q"],
        ["config", "user.email", "t@example.com"],
        ["config", "user.name", "T"],
        ["commit", "-q", "--allow-empty", "-m", "one"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    data = "ab" * 32
    assert room.version_label(commit, data, repo) == f"v0.1.0-data-room+{commit[:7]}.abababab"
    subprocess.run(["git", "tag", "-a", "v1.2.3", "-m", "release"], cwd=repo, check=True)
    assert room.version_label(commit, data, repo) == f"v1.2.3+{commit[:7]}.abababab"


def test_the_repository_spec_loads_and_a_bad_one_names_line_and_field(tmp_path):
    room_spec = spec.load()
    names = [f.name for s in room_spec.sections for f in s.files]
    assert {"investor_metrics.pdf", "metrics_snapshot.json", "investor-deck.pdf"} <= set(names)
    bad = tmp_path / "manifest.yml"
    bad.write_text(
        "schema_version: 1\ntitle: x\nsections:\n  - id: 01-a\n    title: A\n    files:\n"
        "      - {name: a.csv, from: table}\n"
    )
    with pytest.raises(UserError, match=r"manifest.yml:7: .*sections.0.files.0.*needs a path"):
        spec.load(bad)


def test_local_target_preconditions(tmp_path):
    store = open_target((tmp_path / "store").as_uri())
    assert isinstance(store, FileStore)
    store.upload(b"v1\n", "latest", if_generation_match=0)
    generation = store.generation("latest")
    with pytest.raises(Conflict):
        store.upload(b"v2\n", "latest", if_generation_match=0)  # exists already
    store.upload(b"v2\n", "latest", if_generation_match=generation)
    with pytest.raises(Conflict):
        store.upload(b"v3\n", "latest", if_generation_match=generation)  # someone wrote since
    assert store.read("latest") == b"v2\n"
    with pytest.raises(UserError, match="gs://BUCKET/PREFIX or file:///PATH"):
        open_target("s3://elsewhere")


def test_a_tampered_or_truncated_file_leaves_nothing_behind(tmp_path):
    secret, public = crypto.new_identity()
    key = tmp_path / "k"
    crypto.write_private(key, secret + "\n")
    ident = crypto.identity(key)
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x" * 300_000)
    enc = tmp_path / "plain.age"
    crypto.encrypt_file(plain, enc, crypto.recipients([public]))
    for damage in ("flip", "truncate"):
        data = bytearray(enc.read_bytes())
        if damage == "flip":
            data[len(data) // 2] ^= 1
        else:
            data = data[: len(data) - 1000]
        bad = tmp_path / f"{damage}.age"
        bad.write_bytes(bytes(data))
        out = tmp_path / "out" / f"{damage}.bin"
        with pytest.raises(DataRoomError, match=f"{damage}-object"):
            crypto.decrypt_file(bad, out, ident, f"{damage}-object")
        assert not out.exists() and list(out.parent.iterdir()) == []
    crypto.decrypt_file(enc, tmp_path / "good.bin", ident, "good")
    assert (tmp_path / "good.bin").read_bytes() == plain.read_bytes()
    with pytest.raises(UserError, match="exists"):
        crypto.write_private(key, "again")


def test_data_room_tables_hold_dollars_in_whole_cents():
    import pandas as pd

    from cfxlib.dataroom.bundle import whole_cents

    frame = pd.DataFrame(
        {"month": ["2025-01"], "arpa": [2349.5532000000003], "nrr": [1.0300000000000002], "sales_usd": [12.5]}
    )
    text = whole_cents(frame).to_csv(index=False, float_format="%.12g")
    assert text.splitlines()[1] == "2025-01,2349.55,1.03,12.50"
