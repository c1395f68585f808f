"""Data room versions as git tags: ``v<package version>-data-room.<n>``, annotated, on the commit
that built the version (HEAD of the project directory), made only after the upload and its
verification succeeded, never moved.

The tag's message is the version's manifest summary, so the repository keeps what each version
held: its label, figures' month and run, data hash, signer key id, what changed since the
previous version, every file (SHA-256, size, path) and every object (SHA-256, name) as in its
signed ``SHA256SUMS``. ``cfx dataroom verify --version N`` checks a version against it.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cfxlib import __version__

TAG = re.compile(r"^v[0-9][0-9A-Za-z.+-]*-data-room\.(\d+)$")


@dataclass
class TagResult:
    tag: str | None
    note: str


def _git(repo: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(args, 127, "", str(exc))
    return result


def tag_name(number: int) -> str:
    return f"v{__version__}-data-room.{number}"


def why_not(repo: Path) -> str | None:
    """Why no tag can be made in ``repo`` (None: it can)."""
    inside = _git(repo, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return f"{repo} is not a git repository"
    dirty = _git(repo, "status", "--porcelain")
    if dirty.returncode != 0:
        return f"git status failed in {repo}: {dirty.stderr.strip()}"
    if dirty.stdout.strip():
        first = dirty.stdout.strip().splitlines()[0]
        return f"the tree at {repo} has uncommitted changes ({first.strip()}, ...): commit them to tag a version"
    return None


def message(manifest: dict, sums: str, signer: str | None) -> str:
    ch = manifest.get("changes") or {}
    lines = [
        f"cfx data room version {manifest['number']}: {manifest['label']}",
        "",
        f"label: {manifest['label']}",
        f"as_of: {manifest.get('as_of')}",
        f"run: {manifest.get('run_id')}",
        f"code_commit: {manifest.get('code_commit')}",
        f"data_hash: {manifest.get('data_hash')}",
        f"signer: {signer}",
        f"changes since {ch.get('previous') or 'nothing'}: {len(ch.get('added', []))} added, "
        f"{len(ch.get('changed', []))} changed, {len(ch.get('removed', []))} removed, "
        f"{len(ch.get('unchanged', []))} unchanged",
    ]
    for kind in ("added", "changed", "removed"):
        lines += [f"  {kind}: {p}" for p in ch.get(kind, [])]
    lines += ["files:"]
    lines += [f"  {f['sha256']} {f['size']} {f['path']}" for f in manifest["files"]]
    lines += ["objects:"]
    lines += [f"  {line}" for line in sums.strip().splitlines()]
    return "\n".join(lines) + "\n"


def create(repo: Path, manifest: dict, sums: str, signer: str | None) -> TagResult:
    """Tag HEAD with the version's summary, unless the tree is dirty or the tag exists."""
    reason = why_not(repo)
    if reason:
        return TagResult(None, f"no git tag: {reason}")
    tag = tag_name(manifest["number"])
    if _git(repo, "rev-parse", "-q", "--verify", f"refs/tags/{tag}").returncode == 0:
        return TagResult(None, f"no git tag: {tag} already exists (a tag is never moved)")
    made = _git(repo, "tag", "-a", tag, "-m", message(manifest, sums, signer))
    if made.returncode != 0:
        return TagResult(None, f"no git tag: git tag {tag} failed: {made.stderr.strip()}")
    return TagResult(tag, f"tagged {tag}")


@dataclass
class Tagged:
    tag: str
    number: int
    label: str
    files: dict[str, str]
    objects: dict[str, str]


def read_all(repo: Path) -> list[Tagged]:
    """Every data room tag in ``repo`` with what its message records."""
    listed = _git(repo, "for-each-ref", "refs/tags", "--format=%(refname:short)%00%(contents)%00%00")
    if listed.returncode != 0:
        return []
    out = []
    for block in listed.stdout.split("\0\0"):
        name, _, body = block.strip("\n").partition("\0")
        m = TAG.match(name.strip())
        if not m:
            continue
        out.append(parse(name.strip(), int(m.group(1)), body))
    return sorted(out, key=lambda t: t.number)


def parse(tag: str, number: int, body: str) -> Tagged:
    label, files, objects, part = "", {}, {}, None
    for line in body.splitlines():
        if line.startswith("label: "):
            label = line[7:].strip()
        elif line in ("files:", "objects:"):
            part = line
        elif line.startswith("  ") and part == "files:":
            digest, _size, path = line.strip().split(" ", 2)
            files[path] = digest
        elif line.startswith("  ") and part == "objects:":
            digest, name = line.strip().split("  ", 1)
            objects[name] = digest
    return Tagged(tag, number, label, files, objects)


def find(repo: Path, number: int) -> Tagged | None:
    return next((t for t in read_all(repo) if t.number == number), None)
