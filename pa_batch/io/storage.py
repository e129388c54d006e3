"""Where files are: a local path, or a URL of an object store that pyarrow.fs reaches.

Every path a user gives (inputs, directories, glob patterns, ``--reference-dir``,
``--policy``, ``--out``, the reading commands' arguments) goes through ``locate``: a plain
path or a ``file://`` URL is a local ``Path``; ``s3://``, ``gs://`` and ``abfs://`` URLs
are ``StorePath``, which answers the few ``Path`` questions the readers ask (``exists``,
``is_dir``, ``iterdir``, ``open``, ``read_bytes``, ``/``) through the store's own
pyarrow filesystem. A prefix is a directory.

Credentials and endpoints come from each store's standard configuration (for S3:
``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
profiles), never from the command line: a URL carrying a password or a query string is
refused, so none ever reaches a log, a summary or a run's history.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow.fs as pafs

from pa_batch.errors import INPUT, TRANSIENT, RunError

STORE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "az")
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_GLOB_CHARACTERS = re.compile(r"[*?\[]")


@dataclass(frozen=True, order=True)
class StorePath:
    """A file or prefix in an object store: its URL as the user wrote it (the label every
    message and summary shows), and the store's filesystem and path there."""

    url: str
    path: str = field(compare=False)
    filesystem: pafs.FileSystem = field(compare=False, repr=False)

    def __str__(self) -> str:
        return self.url

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0] if "." in self.name[1:] else self.name

    def __truediv__(self, name: str) -> StorePath:
        return StorePath(f"{self.url}/{name}", f"{self.path}/{name}", self.filesystem)

    def _info(self) -> pafs.FileInfo:
        with store_errors(self.url):
            return self.filesystem.get_file_info(self.path)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_symlink(self) -> bool:
        return False  # stores have no links

    def stat(self) -> os.stat_result:
        info = self._info()
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(2, "No such file or directory", self.url)
        mtime_ns = info.mtime_ns or 0
        # (mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime)
        return os.stat_result((0, 0, 0, 0, 0, 0, info.size or 0, 0, mtime_ns // 10**9, 0))

    def iterdir(self) -> Iterator[StorePath]:
        """What lies directly under this prefix: objects and the next level of prefixes."""
        with store_errors(self.url):
            entries = self.filesystem.get_file_info(pafs.FileSelector(self.path))
        for entry in entries:
            yield self._below(entry.path)

    def _below(self, path: str) -> StorePath:
        return StorePath(self.url + path[len(self.path) :], path, self.filesystem)

    def open(self, mode: str = "rb") -> Any:
        """A pyarrow file: readable at any offset (``read_at``), or a stream written to the
        store (a multipart upload on S3) that appears whole when closed."""
        with store_errors(self.url):
            if mode == "rb":
                return self.filesystem.open_input_file(self.path)
            if mode == "wb":
                return self.filesystem.open_output_stream(self.path)
        raise ValueError(f"mode {mode!r}: a store file is opened 'rb' or 'wb'")

    def read_bytes(self) -> bytes:
        with self.open("rb") as stream:
            return stream.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, payload: bytes) -> None:
        with self.open("wb") as stream:
            stream.write(payload)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def matches(self) -> list[StorePath]:
        """The objects this URL matches as a glob pattern (``*``, ``?``, ``[...]``; ``*``
        does not cross ``/``): the store is listed from the pattern's fixed prefix."""
        first_wild = _GLOB_CHARACTERS.search(self.path)
        head = self.path[: first_wild.start() if first_wild else len(self.path)]
        if "/" not in head:
            raise RunError("a pattern must not be in the bucket's name", file=self.url)
        fixed = head.rsplit("/", 1)[0]
        cut = len(self.url) - len(self.path) + len(fixed)  # the URL of the fixed prefix
        base = StorePath(self.url[:cut], fixed, self.filesystem)
        depth = self.path.count("/")
        with store_errors(self.url):
            entries = self.filesystem.get_file_info(
                pafs.FileSelector(fixed, recursive=True, allow_not_found=True)
            )
        return [
            base._below(entry.path)
            for entry in entries
            if entry.type == pafs.FileType.File
            and entry.path.count("/") == depth
            and fnmatch.fnmatchcase(entry.path, self.path)
        ]


Location = Path | StorePath


def locate(text: str | os.PathLike[str] | StorePath) -> Location:
    """A local ``Path`` for a path or ``file://`` URL; a ``StorePath`` for a store's URL."""
    if isinstance(text, StorePath | Path):
        return text
    text = os.fspath(text)
    scheme = _URL.match(text)
    if scheme is None:
        return Path(text)
    parts = urlsplit(text)
    kind = scheme.group(1).lower()
    if kind == "file":
        return Path(unquote(parts.path))
    if kind not in STORE_SCHEMES:
        raise RunError(
            f"not a supported URL: expected a local path or {', '.join(STORE_SCHEMES)}://",
            file=_without_secrets(text),
        )
    if parts.password is not None or parts.query or parts.fragment:
        raise RunError(
            "a URL must not carry credentials or options: give them through the store's "
            "own configuration (for S3: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_PROFILE ...)",
            file=_without_secrets(text),
        )
    url = text.rstrip("/")
    # a glob pattern is no URL a parser takes ("[" is reserved): its fixed prefix is located,
    # the pattern kept as the rest of the path
    wild = _GLOB_CHARACTERS.search(url, len(scheme.group(0)))
    fixed, rest = url, ""
    if wild is not None:
        cut = url.rfind("/", 0, wild.start())
        fixed, rest = url[:cut], url[cut:]
    with store_errors(url):
        filesystem, path = pafs.FileSystem.from_uri(fixed)
    return StorePath(url, path.rstrip("/") + rest, filesystem)


def arrow_source(location: Location) -> Any:
    """What Arrow's readers open: a local path as itself, a store's object as a pyarrow file
    (ranged reads: a Parquet footer first, then only the column chunks asked for)."""
    return location.open("rb") if isinstance(location, StorePath) else location


def _without_secrets(text: str) -> str:
    """A URL fit to print: no user information, query or fragment."""
    parts = urlsplit(text)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{parts.path}"


# what a store's error says, in words that name no key, bucket or credential, and whether a
# retry may meet it again
_STORE_PROBLEMS = (
    (("NETWORK_CONNECTION", "curlCode", "Could not connect", "timed out", "Timeout"),
     "cannot reach the object store", TRANSIENT),
    (("SLOW_DOWN", "SERVICE_UNAVAILABLE", "INTERNAL_FAILURE", "THROTTLING", "503", "500"),
     "the object store is busy or failing", TRANSIENT),
    (("ACCESS_DENIED", "AccessDenied", "403", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH",
      "credentials", "Unauthorized", "401"),
     "access denied by the object store: check its credentials", INPUT),
    (("NO_SUCH_BUCKET", "NoSuchBucket"), "no such bucket", INPUT),
)  # fmt: skip
_STORE_SAYS = ("AWS Error", "GCS", "Azure", "google::cloud", "S3")


def store_problem(error: BaseException) -> tuple[str, str] | None:
    """(message, category) for an error an object store raised, or None if it is not one."""
    said = str(error)
    if not isinstance(error, OSError) or not any(mark in said for mark in _STORE_SAYS):
        return None
    for marks, message, category in _STORE_PROBLEMS:
        if any(mark in said for mark in marks):
            return message, category
    return "the object store refused the request", INPUT


@contextmanager
def store_errors(url: str) -> Iterator[None]:
    """An object store's failure as one RunError line naming the URL, never the store's own
    text (it can name keys and request ids)."""
    try:
        yield
    except (FileNotFoundError, RunError):
        raise
    except (OSError, ValueError) as error:
        found = store_problem(error)
        if found is None:
            if isinstance(error, ValueError):
                raise RunError("not a URL pyarrow can open", file=_without_secrets(url)) from None
            raise
        message, category = found
        raise RunError(message, file=url, category=category) from None


def remove_tree(location: Location) -> None:
    """A folder or prefix and everything under it, if it is there."""
    if isinstance(location, StorePath):
        with store_errors(location.url):
            if location.filesystem.get_file_info(location.path).type == pafs.FileType.Directory:
                location.filesystem.delete_dir(location.path)
        return
    shutil.rmtree(location, ignore_errors=True)
