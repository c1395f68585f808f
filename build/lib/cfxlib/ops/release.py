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

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cfxlib.core.errors import UserError

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
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


def run_checks(repo: Path, commands: tuple[str, ...]) -> list[CheckRun]:
    runs = []
    for command in commands:
        result = subprocess.run(shlex.split(command), cwd=repo, capture_output=True, text=True, timeout=3600)
        lines = [line for line in (result.stdout + result.stderr).strip().splitlines() if line.strip()]
        runs.append(CheckRun(command, result.returncode == 0, lines[-1] if lines else f"exit {result.returncode}"))
        if result.returncode != 0:
            break
    return runs


def collected_tests(repo: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )
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
) -> str:
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        f"# cfx v{version}: completion summary",
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


def release(version: str, repo: Path, health: list, checks: tuple[str, ...] = DEFAULT_CHECKS) -> tuple[Path, str]:
    """Make the release; returns (summary file, tag). Raises :class:`ReleaseError` when refused."""
    repo = Path(repo).resolve()
    if not SEMVER.match(version):
        raise ReleaseError(f"{version!r} is not a semantic version like 1.2.0")
    if not (repo / ".git").exists():
        raise ReleaseError(f"{repo} is not a git repository")
    dirty = _git(repo, "status", "--porcelain")
    if dirty.strip():
        raise ReleaseError("the working tree is not clean; commit or stash first:\n" + dirty.rstrip()[:1500])
    tag = f"v{version}"
    if _git(repo, "tag", "--list", tag).strip():
        raise ReleaseError(f"tag {tag} already exists")
    changelog_path = repo / "CHANGELOG.md"
    changelog = changelog_path.read_text(encoding="utf-8") if changelog_path.exists() else ""
    changes = unreleased(changelog)
    if not changes:
        raise ReleaseError("CHANGELOG.md has no entries under '## [Unreleased]'; say what the release contains")
    runs = run_checks(repo, checks)
    failed = [r for r in runs if not r.ok]
    if failed:
        raise ReleaseError(f"check failed: {failed[0].command}: {failed[0].summary}")
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
    message = "\n".join([f"cfx {tag}", "", *[f"- {h}" for h in headline], "", f"Summary: {out.relative_to(repo)}"])
    _git(repo, "tag", "-a", tag, "-m", message)
    return out, tag
