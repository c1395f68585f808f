"""``cfx release VERSION``: check, summarise, commit and tag a release.

Refuses a dirty tree, an invalid or existing version, an empty Unreleased section in
CHANGELOG.md, or a failing check (lint and the unit tests by default). Otherwise it writes
``docs/maintenance/RELEASE_v<VERSION>.md`` — what the release contains by capability (the
changelog's Unreleased section), the health checks of this home, test counts, the latest
benchmark figures from docs/benchmarks.md, known limitations — moves the changelog's Unreleased
section under the version, commits both, and creates the annotated tag ``v<VERSION>`` whose
message summarises the release.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cfxlib.core.errors import UserError

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
MILESTONE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
RELEASE_TAG = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
DATA_ROOM_TAG = re.compile(r"-data-room\.\d+$")


def latest_release(repo: Path) -> tuple[tuple[int, int, int], str] | None:
    """The highest release tag (``vX.Y.Z`` or ``vX.Y.Z-milestone``; data room tags are not
    releases) as ((X, Y, Z), tag)."""
    found = []
    for tag in _git(repo, "tag", "--list", "v*").split():
        m = RELEASE_TAG.match(tag)
        if m and not DATA_ROOM_TAG.search(tag):
            found.append(((int(m.group(1)), int(m.group(2)), int(m.group(3))), tag))
    return max(found) if found else None


DEFAULT_CHECKS = (
    f"{shlex.quote(str(Path(sys.executable).with_name('ruff')))} check src tests",
    f"{shlex.quote(sys.executable)} -m pytest tests/unit -q -p no:cacheprovider",
)


class ReleaseError(UserError):
    """The release was refused; nothing was committed or tagged."""


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed in {repo}: {result.stderr.strip()}")
    return result.stdout


@dataclass
class CheckRun:
    command: str
    ok: bool
    summary: str


def clean_environment(home: Path) -> dict[str, str]:
    """The caller's environment without cfx's own settings (``CFX_*``) and with a throwaway
    ``CFX_HOME``: the release checks judge the code, not the operator's shell or state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CFX_")}
    env["CFX_HOME"] = str(home)
    return env


def run_checks(repo: Path, commands: tuple[str, ...]) -> list[CheckRun]:
    runs = []
    scratch = tempfile.mkdtemp(prefix="cfx-release-home-")
    env = clean_environment(Path(scratch))
    for command in commands:
        result = subprocess.run(shlex.split(command), cwd=repo, capture_output=True, text=True, timeout=3600, env=env)
        lines = [line for line in (result.stdout + result.stderr).strip().splitlines() if line.strip()]
        runs.append(CheckRun(command, result.returncode == 0, lines[-1] if lines else f"exit {result.returncode}"))
        if result.returncode != 0:
            break
    shutil.rmtree(scratch, ignore_errors=True)
    return runs


def collected_tests(repo: Path) -> str:
    scratch = tempfile.mkdtemp(prefix="cfx-release-home-")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_environment(Path(scratch)),
    )
    shutil.rmtree(scratch, ignore_errors=True)
    found = re.search(r"(\d+) tests? collected", result.stdout)
    return f"{found.group(1)} tests in the whole suite" if found else "test collection failed"


def unreleased(changelog: str) -> str:
    match = re.search(r"^## \[Unreleased\]\s*\n(.*?)(?=^## \[|\Z)", changelog, re.S | re.M)
    return match.group(1).strip() if match else ""


def benchmark_figures(text: str) -> list[str]:
    """The headline of each benchmark section: its title and first bold sentence."""
    out = []
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        bold = re.search(r"\*\*(.+?)\*\*[^\n]*", section)
        line = (
            bold.group(0).strip()
            if bold
            else next(
                (ln for ln in section.splitlines()[1:] if ln.startswith("|") and "---" not in ln and ln.count("|") > 2),
                "",
            )
        )
        out.append(f"- **{title}**: {line}" if line else f"- **{title}**")
    return out


def summary(
    version: str,
    commit: str,
    changes: str,
    checks: list[CheckRun],
    tests: str,
    health: list,
    benchmarks: list[str],
    limitations: str,
    restarts: list | None = None,
    tag: str | None = None,
) -> str:
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    restarts = restarts or []
    lines = [
        f"# cfx {tag or 'v' + version}: completion summary",
        "",
        f"Released {today} from commit `{commit[:12]}`. Written by `cfx release {version}`.",
        "",
        "## What it contains",
        "",
        changes,
        "",
        "## How it was verified",
        "",
        *[f"- `{c.command}`: {'passed' if c.ok else 'FAILED'} ({c.summary})" for c in checks],
        f"- {tests} (`make test` runs them all).",
        "",
        "## Health checks at release time (this machine's `cfx health` local checks)",
        "",
        *[f"- {'ok' if c.ok else 'not ok'} **{c.name}**: {c.detail}" for c in health],
        "",
        "## Services restarted (`cfx up` components, each answering its health check afterwards)",
        "",
        *(
            [f"- {'ok' if c.ok else 'not ok'} **{c.name}**: {c.detail}" for c in restarts]
            if restarts
            else ["- cfx was not up for this home (`cfx up --detach`): no service to restart."]
        ),
        "",
        "## Latest benchmark figures (docs/benchmarks.md)",
        "",
        *benchmarks,
        "",
        "## Known limitations",
        "",
        limitations.split("\n", 2)[-1].strip() if limitations else "None recorded.",
        "",
    ]
    return "\n".join(lines)


def release(
    version: str,
    repo: Path,
    health: list,
    checks: tuple[str, ...] = DEFAULT_CHECKS,
    milestone: str | None = None,
    restart=None,
) -> tuple[Path, str]:
    """Make the release; returns (summary file, tag). Raises :class:`ReleaseError` when refused.

    ``milestone`` makes the tag ``v<version>-<milestone>`` (e.g. ``v3.1.0-analytics``);
    ``restart`` (a callable returning checks) restarts the running services after the checks
    passed, for the summary."""
    repo = Path(repo).resolve()
    if not SEMVER.match(version):
        raise ReleaseError(f"{version!r} is not a semantic version like 1.2.0")
    if milestone is not None and not MILESTONE.match(milestone):
        raise ReleaseError(f"--milestone {milestone!r}: lower-case letters, digits and '-' (e.g. analytics, final)")
    if not (repo / ".git").exists():
        raise ReleaseError(f"{repo} is not a git repository")
    dirty = _git(repo, "status", "--porcelain")
    if dirty.strip():
        raise ReleaseError("the working tree is not clean; commit or stash first:\n" + dirty.rstrip()[:1500])
    tag = f"v{version}" + (f"-{milestone}" if milestone else "")
    if _git(repo, "tag", "--list", tag).strip():
        raise ReleaseError(f"tag {tag} already exists")
    latest = latest_release(repo)
    wanted = tuple(int(x) for x in SEMVER.match(version).groups()[:3])
    if latest is not None and wanted <= latest[0]:
        raise ReleaseError(f"version {version} is not above the latest release {latest[1]}; choose a higher one")
    changelog_path = repo / "CHANGELOG.md"
    changelog = changelog_path.read_text(encoding="utf-8") if changelog_path.exists() else ""
    changes = unreleased(changelog)
    if not changes:
        raise ReleaseError("CHANGELOG.md has no entries under '## [Unreleased]'; say what the release contains")
    runs = run_checks(repo, checks)
    failed = [r for r in runs if not r.ok]
    if failed:
        raise ReleaseError(f"check failed: {failed[0].command}: {failed[0].summary}")
    restarts = restart() if restart is not None else []
    if any(not c.ok for c in restarts):
        bad = next(c for c in restarts if not c.ok)
        raise ReleaseError(f"{bad.name} did not come back healthy after its restart: {bad.detail}")
    commit = _git(repo, "rev-parse", "HEAD").strip()
    bench = repo / "docs" / "benchmarks.md"
    limits = repo / "docs" / "known-limitations.md"
    text = summary(
        version,
        commit,
        changes,
        runs,
        collected_tests(repo),
        health,
        benchmark_figures(bench.read_text(encoding="utf-8")) if bench.exists() else ["- none recorded"],
        limits.read_text(encoding="utf-8") if limits.exists() else "",
        restarts,
        tag,
    )
    out = repo / "docs" / "maintenance" / f"RELEASE_{tag}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    changelog_path.write_text(
        changelog.replace("## [Unreleased]", f"## [Unreleased]\n\n## [{version}] - {today}", 1), encoding="utf-8"
    )
    _git(repo, "add", str(out.relative_to(repo)), "CHANGELOG.md")
    _git(repo, "commit", "-q", "-m", f"Release {tag}: completion summary and changelog")
    headline = [line.lstrip("- ").strip() for line in changes.splitlines() if line.startswith("- ")][:8]
    health_line = f"Health checks: {sum(c.ok for c in health)} of {len(health)} ok"
    restart_line = (
        f"Services restarted cleanly: {', '.join(c.name for c in restarts)}" if restarts else "Services: cfx was not up"
    )
    message = "\n".join(
        [
            f"cfx {tag}",
            "",
            *[f"- {h}" for h in headline],
            "",
            health_line,
            restart_line,
            f"Summary: {out.relative_to(repo)}",
        ]
    )
    _git(repo, "tag", "-a", tag, "-m", message)
    return out, tag
