"""Names read back from a data room are untrusted: whoever can write to the bucket chooses them.

Every name that becomes a local path or an object name passes one of these checks first, so a
manifest, a ``SHA256SUMS`` line, the ``latest`` label or a ``file://`` store can never make cfx
read or write outside the folder it was given (``../../.bashrc``, ``/etc/passwd``, ``C:\\x``).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from cfxlib.dataroom.crypto import DataRoomError

LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
"""A version label: ``v0.1.0-data-room+abc1234.0123abcd`` (no slash, no leading dot)."""
OBJECT = re.compile(
    r"^versions/(?P<label>[A-Za-z0-9][A-Za-z0-9._+-]{0,199})/"
    r"(files/[0-9a-f]{24}\.age|manifest\.json\.age|manifest\.json\.minisig|SHA256SUMS(\.minisig)?)$"
)
"""The only object names a version may list: its files, its manifest and its checksums."""
_FILE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._ -]{0,199}$")


def label(value: str, where: str) -> str:
    """A version label from the target or the command line, or :class:`DataRoomError` naming ``where``."""
    if not LABEL.match(value or "") or ".." in value:
        raise DataRoomError(f"{where}: {value[:80]!r} is not a version label (letters, digits and ._+- only)")
    return value


def object_name(value: str, where: str) -> str:
    """An object name listed by a version (``versions/<label>/files/<id>.age`` and the like)."""
    m = OBJECT.match(value or "")
    if not m or ".." in m.group("label"):
        raise DataRoomError(f"{where}: refuses object name {value[:120]!r} (not a data room object of a version)")
    return value


def relative_file(value: str, where: str) -> PurePosixPath:
    """A file path from a manifest: relative, forward slashes, every part a plain name (no ``..``,
    no ``.``, no leading dot, no backslash or drive), at most 8 levels deep."""
    text = value if isinstance(value, str) else ""
    parts = text.split("/")
    if not text or len(parts) > 8 or not all(_FILE_PART.match(p) for p in parts):
        raise DataRoomError(
            f"{where}: refuses file path {text[:120]!r} (must be relative, inside the data room, plain names only)"
        )
    return PurePosixPath(*parts)


def inside(root: Path, rel: PurePosixPath | str, where: str) -> Path:
    """``root / rel`` after checking that it resolves inside ``root`` (symbolic links included)."""
    base = Path(root).resolve()
    target = (base / str(rel)).resolve()
    if target != base and base not in target.parents:
        raise DataRoomError(f"{where}: {str(rel)[:120]!r} resolves outside {root}; refused")
    return target
