"""Where versions are kept: Google Cloud Storage (``gs://BUCKET/PREFIX``) or a local folder
(``file:///PATH``), behind one small interface with generation preconditions.

``if_generation_match=0`` creates an object only if it does not exist; a positive generation
replaces it only if nobody else changed it since. Both raise :class:`Conflict` otherwise, so two
syncs never overwrite each other. Objects stream to and from disk in chunks (bounded memory).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from cfxlib.core.errors import UserError

CHUNK = 8 * 1024 * 1024


class Conflict(Exception):
    """A generation precondition failed: someone else wrote the object."""


class Unreachable(UserError):
    """The storage cannot be reached; nothing was published (a re-run resumes)."""


class FileStore:
    """A local folder; generations are file modification times in nanoseconds."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = self.root.as_uri()

    def _path(self, name: str) -> Path:
        from cfxlib.dataroom.paths import inside

        if not name or name.startswith("/") or "\\" in name or ".." in name.split("/"):
            raise UserError(f"{self.url}: refuses object name {name[:120]!r} (outside the data room folder)")
        return inside(self.root, name, self.url)

    def generation(self, name: str) -> int | None:
        try:
            return self._path(name).stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def read(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None

    def sha256(self, name: str) -> str | None:
        try:
            with open(self._path(name), "rb") as fh:
                return hashlib.file_digest(fh, "sha256").hexdigest()
        except FileNotFoundError:
            return None

    def download(self, name: str, dst: Path) -> None:
        with open(self._path(name), "rb") as src, open(dst, "wb") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)

    def upload(self, src: Path | bytes, name: str, if_generation_match: int | None = None) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as out:
            if isinstance(src, bytes):
                out.write(src)
            else:
                with open(src, "rb") as fh:
                    while chunk := fh.read(CHUNK):
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        try:
            with open(self.root / ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                current = self.generation(name)
                if if_generation_match is not None and (current or 0) != if_generation_match:
                    raise Conflict(name)
                os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
        )


class GcsStore:
    """A bucket and prefix, through the official ``google-cloud-storage`` client.

    With ``STORAGE_EMULATOR_HOST`` set, the client talks to that emulator anonymously.
    """

    def __init__(self, bucket: str, prefix: str, timeout_s: float = 60.0):
        from google.api_core import exceptions
        from google.cloud import storage
        from google.cloud.storage.retry import DEFAULT_RETRY

        self._retry = DEFAULT_RETRY.with_timeout(timeout_s)  # the client's default retries for 120 s
        self._timeout = min(timeout_s, 60.0)

        self._exceptions = exceptions
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(project="test", credentials=AnonymousCredentials())
        else:
            try:
                client = storage.Client()
            except Exception as exc:  # google.auth's DefaultCredentialsError and friends
                raise UserError(f"cannot use Google Cloud Storage: {exc}") from None
        self.bucket = client.bucket(bucket)
        self.prefix = prefix.strip("/")
        self.url = f"gs://{bucket}/{self.prefix}".rstrip("/")

    def _name(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self._exceptions.PreconditionFailed:
            raise Conflict(args[-1] if args else "object") from None
        except self._exceptions.NotFound:
            return None
        except (self._exceptions.GoogleAPICallError, OSError) as exc:
            raise Unreachable(f"{self.url} cannot be reached: {type(exc).__name__}: {str(exc)[:200]}") from None
        except Exception as exc:  # requests' connection errors and retries giving up
            if "connect" in type(exc).__name__.lower() or "connection" in str(exc).lower():
                raise Unreachable(f"{self.url} cannot be reached: {type(exc).__name__}") from None
            raise

    def generation(self, name: str) -> int | None:
        blob = self._call(self.bucket.get_blob, self._name(name), retry=self._retry, timeout=self._timeout)
        return None if blob is None else int(blob.generation)

    def read(self, name: str) -> bytes | None:
        blob = self.bucket.blob(self._name(name))
        return self._call(blob.download_as_bytes, retry=self._retry, timeout=self._timeout)

    def sha256(self, name: str) -> str | None:
        blob = self.bucket.blob(self._name(name))

        def digest():
            h = hashlib.sha256()
            with blob.open("rb", chunk_size=CHUNK, retry=self._retry) as fh:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
            return h.hexdigest()

        return self._call(digest)

    def download(self, name: str, dst: Path) -> None:
        blob = self.bucket.blob(self._name(name))
        self._call(blob.download_to_filename, str(dst), retry=self._retry, timeout=self._timeout)

    def upload(self, src: Path | bytes, name: str, if_generation_match: int | None = None) -> None:
        blob = self.bucket.blob(self._name(name), chunk_size=CHUNK)
        kwargs = {"retry": self._retry, "timeout": self._timeout}
        if if_generation_match is not None:
            kwargs["if_generation_match"] = if_generation_match
        try:
            if isinstance(src, bytes):
                blob.upload_from_string(src, content_type="application/octet-stream", **kwargs)
            else:
                blob.upload_from_filename(str(src), content_type="application/octet-stream", **kwargs)
        except self._exceptions.PreconditionFailed:
            raise Conflict(name) from None
        except (self._exceptions.GoogleAPICallError, OSError) as exc:
            raise Unreachable(f"{self.url} cannot be reached: {type(exc).__name__}: {str(exc)[:200]}") from None
        except Exception as exc:
            if "connect" in type(exc).__name__.lower() or "connection" in str(exc).lower():
                raise Unreachable(f"{self.url} cannot be reached: {type(exc).__name__}") from None
            raise

    def list(self, prefix: str) -> list[str]:
        start = len(self.prefix) + 1 if self.prefix else 0
        blobs = self._call(lambda: list(self.bucket.list_blobs(prefix=self._name(prefix), retry=self._retry)))
        return sorted(b.name[start:] for b in blobs or [])


def open_target(url: str, timeout_s: float = 60.0):
    """A store for ``gs://BUCKET/PREFIX`` or ``file:///PATH`` (``timeout_s``: how long to keep
    retrying a Google Cloud Storage call before the storage counts as unreachable)."""
    parsed = urlparse(url)
    if parsed.scheme == "gs" and parsed.netloc:
        return GcsStore(parsed.netloc, parsed.path, timeout_s)
    if parsed.scheme == "file" and parsed.path:
        return FileStore(Path(unquote(parsed.path)))
    raise UserError(f"data room target {url!r} must be gs://BUCKET/PREFIX or file:///PATH")
