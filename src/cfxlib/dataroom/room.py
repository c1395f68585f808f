"""Build, sync, verify, open and list data room versions.

Layout at the target (``gs://BUCKET/PREFIX`` or ``file:///PATH``)::

    dataroom-sign.pub                          the minisign public key (plaintext: a public key)
    latest                                     the current version's label, written last
    versions/<label>/files/<id>.age            each file, age-encrypted for the recipients
    versions/<label>/manifest.json.age         the manifest, encrypted (names, sections, hashes)
    versions/<label>/manifest.json.minisig     signature over the plaintext manifest
    versions/<label>/SHA256SUMS                SHA-256 of every ciphertext object of the version
    versions/<label>/SHA256SUMS.minisig        signature over SHA256SUMS (trusted comment: label)

Only public keys, checksums of ciphertext, signatures and the ``latest`` label are not encrypted.
A version lists the objects it needs; an unchanged file (same plaintext SHA-256 as in the
previous manifest, same recipients) points at the object an earlier version uploaded, so it is not
uploaded again and old versions stay readable. Without an identity, ``verify`` checks the
signature and every object's hash; with one, it also decrypts and checks every file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cfxlib import __version__
from cfxlib.core.errors import UserError
from cfxlib.core.home import Home
from cfxlib.core.outputs import write_atomic
from cfxlib.core.repo import REPO
from cfxlib.core.settings import Settings
from cfxlib.dataroom import bundle, crypto, gittags, paths, spec
from cfxlib.dataroom.crypto import DataRoomError
from cfxlib.dataroom.storage import Conflict, open_target
from cfxlib.notify.deliver import notify, outbox_for
from cfxlib.notify.outbox import EmailContent
from cfxlib.publish.snapshot import published as published_snapshot

OWNER_KEY = "dataroom-owner.key"
"""The company's own age identity, always a recipient, so it can read back and diff its versions."""


def folder(home: Home) -> Path:
    return home.dataroom


def target_url(settings: Settings, home: Home, target: str | None = None) -> str:
    return target or settings.dataroom.target or (folder(home) / "store").as_uri()


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def release_tag(commit: str, repo: Path = REPO) -> str | None:
    """The release tag (``v*``) pointing at ``commit``, if any."""
    try:
        out = subprocess.run(
            ["git", "tag", "--points-at", commit, "--list", "v*"], cwd=repo, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    tags = sorted(t for t in out.stdout.split() if t and "-data-room." not in t)  # data room tags are not releases
    return tags[-1] if out.returncode == 0 and tags else None


def version_label(commit: str, data_hash: str, repo: Path = REPO) -> str:
    """``v<cfx version>-data-room+<commit>.<data>``, or ``<release tag>+<commit>.<data>``."""
    short = commit[:7] if commit and commit != "unknown" else "nocommit"
    base = release_tag(commit, repo) or f"v{__version__}-data-room"
    return f"{base}+{short}.{data_hash[:8]}"


def owner_identity(home: Home):
    path = home.keys / OWNER_KEY
    if not path.exists():
        secret, public = crypto.new_identity()
        crypto.write_private(path, f"# the data room owner's key (cfx)\n# public key: {public}\n{secret}\n")
    return crypto.identity(path)


def _recipient_keys(settings: Settings, home: Home) -> list[str]:
    own = str(owner_identity(home).to_public())
    return sorted(set(settings.dataroom.recipients) | {own})


@dataclass
class SyncResult:
    label: str
    target: str
    uploaded: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    changes: dict = field(default_factory=dict)
    already: bool = False
    number: int | None = None
    tag: str | None = None
    tag_note: str = ""


def previous_manifest(store, home: Home, label: str | None) -> dict | None:
    if not label:
        return None
    local = folder(home) / "versions" / label / "manifest.json"
    if local.exists():
        return json.loads(local.read_text(encoding="utf-8"))
    data = store.read(f"versions/{label}/manifest.json.age")
    if data is None:
        return None
    try:
        return json.loads(crypto.decrypt_bytes(data, owner_identity(home), f"versions/{label}/manifest.json.age"))
    except DataRoomError:
        return None  # made by another owner key: every file is uploaded again


def _changes(files: list[dict], previous: dict | None) -> dict:
    before = {f["path"]: f["sha256"] for f in (previous or {}).get("files", [])}
    now = {f["path"]: f["sha256"] for f in files}
    return {
        "previous": (previous or {}).get("label"),
        "added": sorted(p for p in now if p not in before),
        "changed": sorted(p for p in now if p in before and before[p] != now[p]),
        "removed": sorted(p for p in before if p not in now),
        "unchanged": sorted(p for p in now if before.get(p) == now[p]),
    }


def build(home: Home, settings: Settings, store, label: str, snap: dict, previous: dict | None) -> Path:
    """Stage a version under ``$CFX_HOME/dataroom/staging/<label>``: plaintext, ciphertext, manifest.

    A staged version is reused as it is when a sync is resumed (same ciphertext, same objects).
    """
    stage = folder(home) / "staging" / label
    manifest_path = stage / "manifest.json"
    if manifest_path.exists():
        return stage
    shutil.rmtree(stage, ignore_errors=True)
    plain, cipher, work = stage / "plain", stage / "cipher", stage / "work"
    for d in (plain, cipher, work):
        d.mkdir(parents=True)
    keys = _recipient_keys(settings, home)
    to = crypto.recipients(keys)
    fingerprint = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    spec_path = Path(settings.dataroom.spec or spec.SPEC)
    room = spec.load(spec_path)
    entries = bundle.assemble(room, home.published, plain, work, home, spec_path.parent)
    reusable = {}
    if previous and previous.get("recipients") == fingerprint:
        reusable = {f["sha256"]: f for f in previous["files"]}
    files = []
    for entry in entries:
        path = plain / entry["path"]
        digest = _sha256_file(path)
        old = reusable.get(digest)
        if old:
            obj = {k: old[k] for k in ("object", "object_sha256", "object_size")}
        else:
            object_id = hashlib.sha256(f"{label}/{entry['path']}".encode()).hexdigest()[:24]
            local = cipher / f"{object_id}.age"
            crypto.encrypt_file(path, local, to)
            obj = {
                "object": f"versions/{label}/files/{object_id}.age",
                "object_sha256": _sha256_file(local),
                "object_size": local.stat().st_size,
            }
        files.append({**entry, "size": path.stat().st_size, "sha256": digest, **obj})
    number = 1 if previous is None else int(previous.get("number") or len(_labels(store))) + 1
    manifest = {
        "schema_version": 1,
        "title": room.title,
        "label": label,
        "number": number,
        "run_id": snap["run_id"],
        "as_of": snap["as_of"],
        "data_hash": snap["data_hash"],
        "code_commit": snap["code_commit"],
        "cfx_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "recipients": fingerprint,
        "recipient_keys": keys,
        "changes": _changes(files, previous),
        "files": files,
    }
    text = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    (cipher / "manifest.json.age").write_bytes(crypto.encrypt_bytes(text, to))
    signer = crypto.signing_key(home.keys)
    comment = f"cfx data room {label} run {snap['run_id']} data {snap['data_hash'][:16]}"
    (cipher / "manifest.json.minisig").write_bytes(crypto.sign(signer, text, comment))
    sums = [f"{f['object_sha256']}  {f['object']}" for f in files]
    sums.append(f"{_sha256_file(cipher / 'manifest.json.age')}  versions/{label}/manifest.json.age")
    sums_text = ("\n".join(sums) + "\n").encode("utf-8")
    (cipher / "SHA256SUMS").write_bytes(sums_text)
    (cipher / "SHA256SUMS.minisig").write_bytes(crypto.sign(signer, sums_text, f"cfx data room {label} SHA256SUMS"))
    write_atomic(manifest_path, text)  # last: a staged version is complete once this exists
    shutil.rmtree(work, ignore_errors=True)
    return stage


def _put(store, local: Path | bytes, name: str, expected_sha: str) -> bool:
    """Upload ``name`` unless an identical object is there; read it back. True when uploaded."""
    current = store.sha256(name)
    if current == expected_sha:
        return False
    generation = 0 if current is None else store.generation(name)  # an unpublished leftover: replace it
    try:
        store.upload(local, name, if_generation_match=generation)
    except Conflict:
        if store.sha256(name) != expected_sha:
            raise UserError(f"{name} was written by another sync meanwhile; re-run `cfx dataroom sync`") from None
        return False
    back = store.sha256(name)
    if back != expected_sha:
        raise DataRoomError(f"{name}: read back SHA-256 {back} instead of {expected_sha}; the upload is corrupt")
    return True


@dataclass
class Next:
    """The version the latest publication makes, and what the target holds now."""

    store: object
    url: str
    snap: dict
    label: str
    latest: str | None
    latest_generation: int | None


def next_version(home: Home, settings: Settings, target: str | None = None) -> Next:
    snap = published_snapshot(home)
    url = target_url(settings, home, target)
    store = open_target(url, settings.dataroom.timeout_s)
    generation = store.generation("latest")  # read before latest: a change in between fails the final write
    latest = (store.read("latest") or b"").decode("utf-8", "replace").strip() or None
    if latest is not None:
        paths.label(latest, f"{url}/latest")
    return Next(store, url, snap, version_label(snap["code_commit"], snap["data_hash"]), latest, generation)


def stage_next(home: Home, settings: Settings, nxt: Next) -> Path:
    """Stage ``nxt`` locally (``cfx dataroom build``, and the first half of a sync)."""
    return build(home, settings, nxt.store, nxt.label, nxt.snap, previous_manifest(nxt.store, home, nxt.latest))


def _labels(store) -> list[str]:
    return sorted(
        {
            name.split("/")[1]
            for name in store.list("versions/")
            if name.endswith("/SHA256SUMS") and paths.LABEL.match(name.split("/")[1])
        }
    )


def sync(
    home: Home, settings: Settings, target: str | None = None, repo: Path | None = None, tag: bool | None = None
) -> SyncResult:
    """Build the data room from the latest publication and publish it as a new version; then,
    when ``tag`` (default: ``dataroom.git_tag``, else whenever ``repo`` is a clean git tree),
    tag the version in ``repo`` (see :mod:`cfxlib.dataroom.gittags`)."""
    nxt = next_version(home, settings, target)
    store, url, label, latest, latest_generation = nxt.store, nxt.url, nxt.label, nxt.latest, nxt.latest_generation
    if latest == label:
        verify(home, url, None, label, timeout_s=settings.dataroom.timeout_s)
        _record_sync(home, label, url, 0)
        return SyncResult(label, url, already=True)
    stage = stage_next(home, settings, nxt)
    manifest = json.loads((stage / "manifest.json").read_text(encoding="utf-8"))
    result = SyncResult(label, url, changes=manifest["changes"])
    public = crypto.public_key_bytes(home.keys)
    remote_key = store.read(crypto.SIGN_PUB)
    if remote_key is None:
        store.upload(public, crypto.SIGN_PUB, if_generation_match=0)
    elif remote_key.strip() != public.strip():
        raise UserError(
            f"{url} is signed with another key ({crypto.SIGN_PUB} differs from $CFX_HOME/keys/{crypto.SIGN_PUB}); "
            "use the home that owns this data room or another target"
        )
    cipher = stage / "cipher"
    for f in manifest["files"]:
        local = cipher / Path(f["object"]).name
        if not f["object"].startswith(f"versions/{label}/"):
            result.reused.append(f["path"])
            if store.sha256(f["object"]) != f["object_sha256"]:
                raise DataRoomError(f"{f['object']} (reused for {f['path']}) is missing or changed at {url}")
            continue
        if _put(store, local, f["object"], f["object_sha256"]):
            result.uploaded.append(f["path"])
    for name in ("manifest.json.age", "manifest.json.minisig", "SHA256SUMS", "SHA256SUMS.minisig"):
        _put(store, cipher / name, f"versions/{label}/{name}", _sha256_file(cipher / name))
    try:
        store.upload(f"{label}\n".encode(), "latest", if_generation_match=latest_generation or 0)
    except Conflict:
        now = (store.read("latest") or b"").decode().strip()
        raise UserError(f"another sync published {now} at {url} meanwhile; re-run `cfx dataroom sync`") from None
    record = folder(home) / "versions" / label
    record.mkdir(parents=True, exist_ok=True)
    shutil.copy2(stage / "manifest.json", record / "manifest.json")
    sums = (cipher / "SHA256SUMS").read_text(encoding="utf-8")
    shutil.rmtree(stage, ignore_errors=True)
    verify(home, url, None, label, timeout_s=settings.dataroom.timeout_s)  # read back before any tag
    _record_sync(home, label, url, len(result.uploaded))
    result.number = manifest["number"]
    wanted = settings.dataroom.git_tag if tag is None else tag
    if wanted is False:
        result.tag_note = "no git tag (--no-tag)"
    else:
        made = gittags.create(Path(repo or "."), manifest, sums, signer_id(home))
        result.tag, result.tag_note = made.tag, made.note
    _announce(home, settings, manifest, url)
    return result


LAST_SYNC = "last_sync.json"
"""``$CFX_HOME/dataroom/last_sync.json``: the last sync that completed (every object read back)."""


def _record_sync(home: Home, label: str, url: str, uploaded: int) -> None:
    data = {
        "label": label,
        "target": url,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "uploaded": uploaded,
        "verified": True,
    }
    write_atomic(folder(home) / LAST_SYNC, (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def _announce(home: Home, settings: Settings, manifest: dict, url: str) -> None:
    ch = manifest["changes"]
    summary = (
        f"{len(ch['added'])} added, {len(ch['changed'])} changed, {len(ch['removed'])} removed, "
        f"{len(ch['unchanged'])} unchanged since {ch['previous'] or 'the first version'}"
    )
    lines = [
        f"A new version of the ChatterFix data room is published: {manifest['label']}.",
        "",
        f"Figures as of {manifest['as_of']} (run {manifest['run_id']}); {summary}.",
    ]
    for kind in ("added", "changed", "removed"):
        lines += [f"  {kind}: {p}" for p in ch[kind]]
    lines += [
        "",
        f"Signer key id: {signer_id(home)}",
        "",
        "Open it with your age identity and that key id:",
        f"  cfx dataroom open --identity KEY --out DIR --key-id {signer_id(home)}",
        f"or verify it without cfx: minisign -Vm SHA256SUMS -P {signer_id(home)}, then sha256sum -c.",
        "Check the key id against the one you were given when you were invited; never trust a key read",
        "from the bucket alone.",
    ]
    notify(
        outbox_for(home),
        f"dataroom/{manifest['label']}",
        "dataroom.published",
        {
            "label": manifest["label"],
            "as_of": manifest["as_of"],
            "run_id": manifest["run_id"],
            "changes": ch,
            "target": url,
            "signer_key_id": signer_id(home),
        },
        EmailContent(
            subject=f"[ChatterFix] data room {manifest['label']} published ({summary})", text="\n".join(lines) + "\n"
        ),
        list(settings.investor.recipients),
        settings.webhooks.urls,
    )


@dataclass
class VerifyResult:
    label: str
    objects: int
    files: int = 0
    key_source: str = ""


SIGNER_HELP = (
    "give the signer key id the data room owner sent you (`--key-id RW...`, printed by `cfx dataroom sync` and "
    "in the data room email), or set CFX_DATAROOM__SIGNER, or pin the key as $CFX_HOME/keys/" + crypto.SIGN_PUB
)


def _public_key(home: Home, store, signer: str | None = None) -> tuple[bytes, str]:
    """The key signatures must verify against, and where it came from.

    A key read from the target is not a trust anchor (whoever can write the bucket can replace it
    and sign with their own key): it is used only when it equals the key id the reader was given
    out of band, or the key pinned in ``$CFX_HOME/keys``."""
    local = home.keys / crypto.SIGN_PUB
    if signer:
        given = crypto.public_key_from_id(signer, "--key-id / CFX_DATAROOM__SIGNER")
        return given, f"signer key id {crypto.key_id(given)[:16]}... (given)"
    if local.exists():
        return local.read_bytes(), f"pinned key $CFX_HOME/keys/{crypto.SIGN_PUB}"
    remote = store.read(crypto.SIGN_PUB)
    found = f" (the target's {crypto.SIGN_PUB} has id {crypto.key_id(remote)})" if remote else ""
    raise DataRoomError(f"no trusted signer key: the target's own key is not trusted by itself{found}; " + SIGNER_HELP)


def tagged_version(repo: Path, number: int) -> gittags.Tagged:
    """The version tagged ``v*-data-room.<number>`` in ``repo``."""
    found = gittags.find(Path(repo), number)
    if found is None:
        raise DataRoomError(f"no git tag v*-data-room.{number} in {repo} (`cfx dataroom list` shows the tags)")
    if not found.label:
        raise DataRoomError(f"git tag {found.tag} holds no data room summary (label: missing)")
    return found


def signer_id(home: Home) -> str | None:
    """This home's data room signer key id (``RW...``), when it has a signing key."""
    path = home.keys / crypto.SIGN_PUB
    return crypto.key_id(path.read_bytes()) if path.exists() else None


def _resolve(store, version: str | None) -> str:
    if version:
        return paths.label(version, "--version")
    latest = store.read("latest")
    if latest is None:
        raise DataRoomError("latest: missing; nothing was published at this target yet")
    return paths.label(latest.decode("utf-8", "replace").strip(), "latest")


def verify(
    home: Home,
    url: str,
    identity_file: Path | None = None,
    version: str | None = None,
    out: Path | None = None,
    timeout_s: float = 60.0,
    signer: str | None = None,
    tagged: gittags.Tagged | None = None,
) -> VerifyResult:
    """Check a version: signatures, every object's SHA-256, and with an identity every file.

    With ``out``, the verified files are written there (``open``), all or nothing. Signatures must
    verify against ``signer`` (a key id given out of band) or the key pinned in ``$CFX_HOME/keys``;
    every name read from the target is checked before it is used (:mod:`cfxlib.dataroom.paths`).
    """
    store = open_target(url, timeout_s)
    label = _resolve(store, version)
    public, source = _public_key(home, store, signer)
    base = f"versions/{label}"
    sums = store.read(f"{base}/SHA256SUMS")
    sig = store.read(f"{base}/SHA256SUMS.minisig")
    if sums is None or sig is None:
        raise DataRoomError(f"{base}/SHA256SUMS: missing (no such version, or an unfinished sync)")
    comment = crypto.verify(public, sums, sig, f"{base}/SHA256SUMS")
    if f"cfx data room {label} " not in comment + " ":
        raise DataRoomError(f"{base}/SHA256SUMS: signed for another version ({comment})")
    expected = {}
    for n, line in enumerate(sums.decode("utf-8", "replace").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise DataRoomError(f"{base}/SHA256SUMS line {n}: not '<sha256>  <object>'")
        expected[paths.object_name(name, f"{base}/SHA256SUMS line {n}")] = digest
    if tagged is not None:
        for name in sorted(set(expected) | set(tagged.objects)):
            if expected.get(name) != tagged.objects.get(name):
                raise DataRoomError(
                    f"{name}: differs from the summary in git tag {tagged.tag} "
                    f"({'not in the version' if name not in expected else 'not in the tag' if name not in tagged.objects else 'another SHA-256'})"
                )
    for name, digest in expected.items():
        actual = store.sha256(name)
        if actual is None:
            raise DataRoomError(f"{name}: missing")
        if actual != digest:
            raise DataRoomError(f"{name}: SHA-256 does not match SHA256SUMS (changed, corrupted or swapped)")
    result = VerifyResult(label, len(expected), key_source=source)
    if identity_file is None:
        return result
    ident = crypto.identity(identity_file)
    manifest_bytes = crypto.decrypt_bytes(store.read(f"{base}/manifest.json.age"), ident, f"{base}/manifest.json.age")
    msig = store.read(f"{base}/manifest.json.minisig")
    if msig is None:
        raise DataRoomError(f"{base}/manifest.json.minisig: missing")
    crypto.verify(public, manifest_bytes, msig, f"{base}/manifest.json")
    manifest = json.loads(manifest_bytes)
    if manifest.get("label") != label:
        raise DataRoomError(f"{base}/manifest.json: describes {manifest.get('label')}, not {label}")
    if tagged is not None:
        for f in manifest.get("files", []):
            if tagged.files.get(f.get("path")) != f.get("sha256"):
                raise DataRoomError(f"{base}/manifest.json ({f.get('path')}): differs from git tag {tagged.tag}")
    names = [(f, paths.relative_file(f.get("path"), f"{base}/manifest.json")) for f in manifest.get("files", [])]
    for f, rel in names:
        paths.object_name(f.get("object", ""), f"{base}/manifest.json ({rel})")
        if str(rel) == "manifest.json":
            raise DataRoomError(f"{base}/manifest.json: a file may not be named manifest.json")
    with tempfile.TemporaryDirectory(prefix="cfx-dataroom-") as tmp:
        work = Path(tmp)
        (work / "files").mkdir()
        for f, rel in names:
            if expected.get(f["object"]) != f["object_sha256"]:
                raise DataRoomError(f"{f['object']}: not listed in SHA256SUMS as the manifest says")
            enc = work / "object.age"
            store.download(f["object"], enc)
            if _sha256_file(enc) != f["object_sha256"]:
                raise DataRoomError(f"{f['object']}: changed while reading")
            dst = paths.inside(work / "files", rel, f"{f['object']} ({rel})")
            crypto.decrypt_file(enc, dst, ident, f"{f['object']} ({f['path']})")
            if dst.stat().st_size != f["size"] or _sha256_file(dst) != f["sha256"]:
                raise DataRoomError(f"{f['object']} ({f['path']}): decrypted content does not match the manifest")
            result.files += 1
        if out is not None:
            out = Path(out)
            out.mkdir(parents=True, exist_ok=True)
            (work / "files" / "manifest.json").write_bytes(manifest_bytes)
            for src in sorted((work / "files").rglob("*")):
                if src.is_file():
                    rel = src.relative_to(work / "files")
                    dst = paths.inside(out, rel.as_posix(), f"{base}/manifest.json ({rel})")
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(src), dst)
    return result


def versions(home: Home, url: str, timeout_s: float = 60.0, repo: Path | None = None) -> list[dict]:
    store = open_target(url, timeout_s)
    labels = _labels(store)
    latest = (store.read("latest") or b"").decode("utf-8", "replace").strip()
    tags = {t.label: t.tag for t in gittags.read_all(Path(repo or "."))}
    rows = []
    for label in labels:
        local = folder(home) / "versions" / label / "manifest.json"
        manifest = json.loads(local.read_text(encoding="utf-8")) if local.exists() else {}
        rows.append(
            {
                "label": label,
                "number": manifest.get("number"),
                "tag": tags.get(label),
                "latest": label == latest,
                "as_of": manifest.get("as_of"),
                "created_at": manifest.get("created_at"),
                "changes": manifest.get("changes"),
            }
        )
    return rows
