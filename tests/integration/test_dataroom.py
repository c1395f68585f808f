"""The data room against a real GCS API (fake-gcs-server on 127.0.0.1) with the official client:
sync, re-sync uploads nothing, a new version reuses unchanged files, old versions stay readable,
tampering and wrong keys are refused by name, the bucket holds no plaintext, the `age` and
`minisign` commands open and verify it without cfx, and a sync killed with the storage resumes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from standardwebhooks.webhooks import Webhook

from cfxlib.dataroom import spec
from tests.conftest import CFX, REPO, run_cfx
from tests.servers import GcsEmulator, WebhookReceiver

pytestmark = pytest.mark.xdist_group("pipeline")


@pytest.fixture
def home(published_copy):
    return published_copy


@pytest.fixture
def investor(home, tmp_path):
    """An investor's identity file and public key, made with `cfx dataroom keygen`."""
    key = tmp_path / "investor.key"
    result = run_cfx("dataroom", "keygen", "--out", str(key), home=home)
    assert result.returncode == 0, result.stderr
    public = result.stdout.strip().splitlines()[-1]
    assert public.startswith("age1") and oct(key.stat().st_mode & 0o777) == "0o600"
    return key, public


def env_for(gcs: GcsEmulator, public: str, **extra) -> dict:
    return {
        "STORAGE_EMULATOR_HOST": gcs.host,
        "CFX_DATAROOM__TARGET": "gs://room/series-a",
        "CFX_DATAROOM__RECIPIENTS": json.dumps([public]),
        "CFX_DATAROOM__TIMEOUT_S": "5",
        "CFX_DATAROOM__GIT_TAG": "false",  # never tag the repository under test; the tag test asks with --tag
        **extra,
    }


def objects(gcs: GcsEmulator) -> dict[str, bytes]:
    return {b.name: b.download_as_bytes() for b in gcs.client().bucket("room").list_blobs()}


def new_publication(home, mark: str = "f") -> None:
    """A later publication: the same run folder with changed data (a new hash, ``mark`` x 64, and ARR)."""
    current = os.readlink(home / "published")
    run = (home / current).parent
    later = run.with_name(run.name + f"-later-{mark}")
    shutil.copytree(run, later, symlinks=True)
    snap_path = later / "publish" / "metrics_snapshot.json"
    snap = json.loads(snap_path.read_text())
    snap.update(data_hash=mark * 64, arr=snap["arr"] + 120.0, run_id=later.name)
    snap_path.write_text(json.dumps(snap, indent=2))
    os.remove(home / "published")
    os.symlink(os.path.relpath(later / "publish", home), home / "published")


def test_sync_verify_open_without_plaintext_and_with_standard_tools(home, investor, tmp_path):
    key, public = investor
    gcs = GcsEmulator().start()
    try:
        gcs.bucket("room")
        env = env_for(gcs, public)
        first = run_cfx("dataroom", "sync", "--allow-demo", home=home, env=env)
        assert first.returncode == 0, first.stderr
        label = first.stdout.strip().splitlines()[-1]
        snap = json.loads((home / "published" / "metrics_snapshot.json").read_text())
        assert label == f"v0.1.0-data-room+{snap['code_commit'][:7]}.{snap['data_hash'][:8]}"
        stored = objects(gcs)
        assert stored["series-a/latest"] == f"{label}\n".encode()
        # No plaintext at the target: no PDF, no CSV header, no snapshot keys, no manifest.
        for name, data in stored.items():
            if name.endswith((".pub", ".minisig", "/SHA256SUMS", "/latest")):
                continue
            assert data.startswith(b"age-encryption.org/v1\n"), name
            for marker in (b"%PDF", b"arr_growth_mom", b"data_hash", b"month,"):
                assert marker not in data, (name, marker)
        # Re-sync: nothing uploaded, no object rewritten.
        generations = {b.name: b.generation for b in gcs.client().bucket("room").list_blobs()}
        again = run_cfx("dataroom", "sync", "--allow-demo", home=home, env=env)
        assert again.returncode == 0 and "nothing uploaded" in again.stdout and again.stdout.strip().endswith(label)
        assert {b.name: b.generation for b in gcs.client().bucket("room").list_blobs()} == generations
        # verify (signatures and hashes), then open with the investor's key.
        assert run_cfx("dataroom", "verify", home=home, env=env).returncode == 0
        # An investor's own home has no pinned key: the key in the bucket is not trusted by itself.
        signer = next(x for x in first.stdout.splitlines() if x.startswith("signer key id: ")).split(": ")[1]
        elsewhere = tmp_path / "investor-home"
        out = tmp_path / "opened"
        refused = run_cfx("dataroom", "open", "--identity", str(key), "--out", str(out), home=elsewhere, env=env)
        assert refused.returncode == 2 and "--key-id" in refused.stderr and not out.exists(), refused.stderr
        opened = run_cfx(
            "dataroom", "open", "--identity", str(key), "--out", str(out), "--key-id", signer, home=elsewhere, env=env
        )
        assert opened.returncode == 0, opened.stderr
        pub = home / "published"
        assert (out / "02-reports" / "investor_metrics.pdf").read_bytes() == (
            pub / "reports" / "investor_metrics.pdf"
        ).read_bytes()
        assert (out / "03-metrics" / "metrics_snapshot.json").read_bytes() == (
            pub / "metrics_snapshot.json"
        ).read_bytes()
        assert (out / "01-company" / "investor-deck.pdf").read_bytes().startswith(b"%PDF")
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["label"] == label and manifest["code_commit"] == snap["code_commit"]
        assert {f["section"] for f in manifest["files"]} >= {"01-company", "02-reports", "03-metrics", "04-forecast"}
        # Without cfx: the age command decrypts an object, minisign checks the signed checksums.
        work = tmp_path / "by-hand"
        work.mkdir()
        entry = next(f for f in manifest["files"] if f["path"] == "03-metrics/metrics_snapshot.json")
        (work / "obj.age").write_bytes(stored[f"series-a/{entry['object']}"])
        age = subprocess.run(
            ["age", "-d", "-i", str(key), "-o", str(work / "snap.json"), str(work / "obj.age")],
            capture_output=True,
            text=True,
        )
        assert age.returncode == 0, age.stderr
        assert (work / "snap.json").read_bytes() == (pub / "metrics_snapshot.json").read_bytes()
        (work / "SHA256SUMS").write_bytes(stored[f"series-a/versions/{label}/SHA256SUMS"])
        (work / "SHA256SUMS.minisig").write_bytes(stored[f"series-a/versions/{label}/SHA256SUMS.minisig"])
        (work / "key.pub").write_bytes(stored["series-a/dataroom-sign.pub"])
        check = subprocess.run(
            ["minisign", "-Vm", str(work / "SHA256SUMS"), "-p", str(work / "key.pub")], capture_output=True, text=True
        )
        assert check.returncode == 0 and label in check.stdout, check.stdout + check.stderr
        (work / "SHA256SUMS").write_bytes(stored[f"series-a/versions/{label}/SHA256SUMS"].replace(b"0", b"1", 1))
        forged = subprocess.run(
            ["minisign", "-Vm", str(work / "SHA256SUMS"), "-p", str(work / "key.pub")], capture_output=True, text=True
        )
        assert forged.returncode != 0
    finally:
        gcs.kill()


def test_a_new_version_uploads_only_what_changed_and_old_versions_stay_readable(home, investor, tmp_path):
    key, public = investor
    gcs, hooks = GcsEmulator().start(), WebhookReceiver().start()
    secret = run_cfx("notify", "webhook-secret", home=home).stdout.strip()
    try:
        gcs.bucket("room")
        env = env_for(gcs, public, CFX_WEBHOOKS__URLS=json.dumps([hooks.url]), CFX_WEBHOOKS__SECRET=secret)
        first = run_cfx("dataroom", "sync", "--allow-demo", home=home, env=env).stdout.strip().splitlines()[-1]
        new_publication(home)
        result = run_cfx("dataroom", "sync", "--allow-demo", home=home, env=env)
        assert result.returncode == 0, result.stderr
        second = result.stdout.strip().splitlines()[-1]
        assert second != first and second.endswith(".ffffffff")
        out = tmp_path / "v2"
        assert (
            run_cfx("dataroom", "open", "--identity", str(key), "--out", str(out), home=home, env=env).returncode == 0
        )
        changes = json.loads((out / "manifest.json").read_text())["changes"]
        assert changes["previous"] == first and "03-metrics/metrics_snapshot.json" in changes["changed"]
        assert "02-reports/investor_metrics.pdf" in changes["unchanged"]
        assert f"uploaded {len(changes['changed']) + len(changes['added'])} files" in result.stdout
        old = tmp_path / "v1"
        opened = run_cfx(
            "dataroom", "open", "--identity", str(key), "--out", str(old), "--version", first, home=home, env=env
        )
        assert opened.returncode == 0, opened.stderr
        assert json.loads((old / "manifest.json").read_text())["label"] == first
        listing = json.loads(run_cfx("dataroom", "list", "--json", home=home, env=env).stdout)
        assert [(r["label"], r["latest"]) for r in listing] == sorted([(first, False), (second, True)])
        # Each version was announced once through the outbox, signed.
        published = [Webhook(secret).verify(r["body"], r["headers"]) for r in hooks.accepted()]
        published = [p["data"] for p in published if p["type"] == "dataroom.published"]
        assert [p["label"] for p in published] == [first, second]
        assert published[1]["changes"]["changed"] == changes["changed"]
    finally:
        gcs.kill()
        hooks.stop()


def test_tampering_and_wrong_keys_are_refused_naming_the_object(home, investor, tmp_path):
    key, public = investor
    gcs = GcsEmulator().start()
    try:
        gcs.bucket("room")
        env = env_for(gcs, public)
        label = run_cfx("dataroom", "sync", "--allow-demo", home=home, env=env).stdout.strip().splitlines()[-1]
        bucket = gcs.client().bucket("room")
        names = sorted(b.name for b in bucket.list_blobs(prefix=f"series-a/versions/{label}/files/"))
        a, b = names[0], names[1]
        original = bucket.blob(a).download_as_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        bucket.blob(a).upload_from_string(bytes(flipped))
        short = a.removeprefix("series-a/")
        result = run_cfx("dataroom", "verify", home=home, env=env)
        assert result.returncode == 2 and short in result.stderr and "Traceback" not in result.stderr
        out = tmp_path / "out"
        opened = run_cfx("dataroom", "open", "--identity", str(key), "--out", str(out), home=home, env=env)
        assert opened.returncode == 2 and short in opened.stderr
        assert not out.exists() or not any(p.is_file() for p in out.rglob("*")), "a partial open was left behind"
        bucket.blob(a).upload_from_string(bucket.blob(b).download_as_bytes())  # a swapped object
        assert short in run_cfx("dataroom", "verify", home=home, env=env).stderr
        bucket.blob(a).upload_from_string(original)
        assert run_cfx("dataroom", "verify", home=home, env=env).returncode == 0
        other = tmp_path / "other.key"
        run_cfx("dataroom", "keygen", "--out", str(other), home=home)
        wrong = run_cfx("dataroom", "open", "--identity", str(other), "--out", str(out), home=home, env=env)
        assert wrong.returncode == 2 and "wrong key" in wrong.stderr and "manifest.json.age" in wrong.stderr
    finally:
        gcs.kill()


def test_a_sync_cut_off_by_the_storage_resumes(home, investor, tmp_path):
    key, public = investor
    root = tmp_path / "gcs"
    gcs = GcsEmulator(root=root).start()
    gcs.bucket("room")
    env = env_for(gcs, public)
    full = {k: v for k, v in os.environ.items() if not k.startswith("CFX_")}
    full.update(env, CFX_HOME=str(home))
    proc = subprocess.Popen(
        [str(CFX), "dataroom", "sync", "--allow-demo"],
        cwd=REPO,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    files = root / "room" / "series-a" / "versions"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if files.exists() and any(p.is_file() for p in files.rglob("*.age")):
            break
        time.sleep(0.005)
    gcs.kill()  # the storage goes away in the middle of the upload
    out, errors = proc.communicate(timeout=120)
    assert proc.returncode == 2, out + errors
    assert "cannot be reached" in errors and "Traceback" not in errors
    assert not (root / "room" / "series-a" / "latest").exists(), "latest must be written last"
    uploaded_before = sum(1 for _ in files.rglob("*.age"))
    gcs.start()
    resumed = run_cfx("dataroom", "sync", "--allow-demo", home=home, env=env)
    assert resumed.returncode == 0, resumed.stderr
    manifest_files = sum(len(section.files) for section in spec.load().sections)
    uploaded_now = int(resumed.stdout.split("uploaded ")[1].split(" ")[0])
    assert uploaded_now <= manifest_files - max(uploaded_before - 1, 0)
    check = run_cfx("dataroom", "verify", "--identity", str(key), home=home, env=env)
    assert check.returncode == 0 and f"{manifest_files} files decrypted and checked" in check.stdout, check.stderr
    gcs.kill()


def test_generation_preconditions_on_the_gcs_api(monkeypatch):
    """Two syncs never overwrite each other: create-only and replace-if-unchanged get 412s."""
    from cfxlib.dataroom.storage import Conflict, GcsStore

    gcs = GcsEmulator().start()
    try:
        gcs.bucket("room")
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.host)
        store = GcsStore("room", "series-a", timeout_s=5)
        store.upload(b"v1\n", "latest", if_generation_match=0)
        first = store.generation("latest")
        with pytest.raises(Conflict):
            store.upload(b"other\n", "latest", if_generation_match=0)
        store.upload(b"v2\n", "latest", if_generation_match=first)
        with pytest.raises(Conflict):
            store.upload(b"v3\n", "latest", if_generation_match=first)  # a second sync read v1 too
        assert store.read("latest") == b"v2\n" and store.sha256("missing") is None
    finally:
        gcs.kill()


def _clone(tmp_path):
    clone = tmp_path / "project"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    for key, value in (("user.email", "room@chatterfix.example"), ("user.name", "Room Test")):
        subprocess.run(["git", "config", key, value], cwd=clone, check=True)
    return clone


def _tags(clone) -> list[str]:
    out = subprocess.run(["git", "tag", "--list", "*data-room*"], cwd=clone, capture_output=True, text=True)
    return sorted(out.stdout.split())


def test_versions_become_git_tags_after_a_verified_upload_on_a_clean_tree(home, investor, tmp_path):
    key, public = investor
    clone = _clone(tmp_path)
    gcs = GcsEmulator().start()
    try:
        gcs.bucket("room")
        env = env_for(gcs, public)
        first = run_cfx("dataroom", "sync", "--allow-demo", "--tag", "--repo", str(clone), home=home, env=env)
        assert first.returncode == 0, first.stderr
        label1 = first.stdout.strip().splitlines()[-1]
        assert "tagged v0.1.0-data-room.1" in first.stdout and _tags(clone) == ["v0.1.0-data-room.1"]
        message = subprocess.run(
            ["git", "tag", "-n200", "v0.1.0-data-room.1"], cwd=clone, capture_output=True, text=True
        ).stdout
        assert (
            f"label: {label1}" in message and "signer: RW" in message and "02-reports/investor_metrics.pdf" in message
        )
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout
        tagged = subprocess.run(
            ["git", "rev-list", "-n1", "v0.1.0-data-room.1"], cwd=clone, capture_output=True, text=True
        ).stdout
        assert tagged == head
        # a second version: .2
        new_publication(home, "e")
        second = run_cfx("dataroom", "sync", "--allow-demo", "--tag", "--repo", str(clone), home=home, env=env)
        assert second.returncode == 0 and "tagged v0.1.0-data-room.2" in second.stdout, second.stdout + second.stderr
        label2 = second.stdout.strip().splitlines()[-1]
        listing = json.loads(run_cfx("dataroom", "list", "--json", "--repo", str(clone), home=home, env=env).stdout)
        assert {(r["label"], r["tag"], r["number"]) for r in listing} == {
            (label1, "v0.1.0-data-room.1", 1),
            (label2, "v0.1.0-data-room.2", 2),
        }
        # verify --version N checks the version against its tag's summary
        ok = run_cfx(
            "dataroom", "verify", "--version", "1", "--repo", str(clone), "--identity", str(key), home=home, env=env
        )
        assert ok.returncode == 0 and "matches its tag v0.1.0-data-room.1" in ok.stdout, ok.stderr
        body = subprocess.run(
            ["git", "for-each-ref", "refs/tags/v0.1.0-data-room.1", "--format=%(contents)"],
            cwd=clone, capture_output=True, text=True,
        ).stdout  # fmt: skip
        lines = body.splitlines()
        i = lines.index("objects:") + 1
        digest, name = lines[i].strip().split("  ", 1)
        lines[i] = f"  {'0' * 64}  {name}"
        subprocess.run(["git", "tag", "-d", "v0.1.0-data-room.1"], cwd=clone, check=True, capture_output=True)
        subprocess.run(["git", "tag", "-a", "v0.1.0-data-room.1", "-m", "\n".join(lines)], cwd=clone, check=True)
        bad = run_cfx("dataroom", "verify", "--version", "1", "--repo", str(clone), home=home, env=env)
        assert bad.returncode == 2 and name in bad.stderr and "differs from the summary in git tag" in bad.stderr
        assert digest != "0" * 64
        # a dirty tree: the sync works and says why no tag was made
        (clone / "scratch.txt").write_text("work in progress\n")
        new_publication(home, "d")
        dirty = run_cfx("dataroom", "sync", "--allow-demo", "--tag", "--repo", str(clone), home=home, env=env)
        assert dirty.returncode == 0, dirty.stderr
        assert "no git tag: the tree at" in dirty.stdout and "uncommitted changes" in dirty.stdout
        assert _tags(clone) == ["v0.1.0-data-room.1", "v0.1.0-data-room.2"]
        (clone / "scratch.txt").unlink()
        # a failed upload (the storage is gone) makes no tag
        gcs.kill()
        new_publication(home, "c")
        failed = run_cfx("dataroom", "sync", "--allow-demo", "--tag", "--repo", str(clone), home=home, env=env)
        assert failed.returncode == 2 and "cannot be reached" in failed.stderr
        assert _tags(clone) == ["v0.1.0-data-room.1", "v0.1.0-data-room.2"]
    finally:
        gcs.kill()
