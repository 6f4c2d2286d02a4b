"""File-system operations through Hadoop's FileSystem API, as Spark itself sees the paths.

One code path for local files, HDFS, s3:// (EMRFS on EMR, Glue) and s3a:// (elsewhere): the
driver lists inputs, peeks at their first and last bytes, moves published partitions and
writes reports with the same credentials and endpoints as Spark's readers and writers.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

from retail_pipeline.ledger import canonical_uri

URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class FileInfo:
    path: str  # qualified path to hand to readers ("file:/data/my file.csv")
    uri: str  # the same, URI-encoded, as the curated source_file column spells it
    size: int
    modified: int  # ms since the epoch


class HadoopFileSystem:
    """A thin wrapper over org.apache.hadoop.fs.FileSystem for the paths of one job."""

    def __init__(self, spark: SparkSession) -> None:
        jvm: Any = spark._jvm  # noqa: SLF001 - py4j gateway, the documented way in
        self._jvm = jvm
        self._conf: Any = spark._jsc.hadoopConfiguration()  # noqa: SLF001
        self._default_scheme: str | None = None  # fs.defaultFS's, looked up once
        # The class looked up once: each step of jvm.org.apache... is a round trip to the JVM.
        self._hadoop_path: Any = jvm.org.apache.hadoop.fs.Path

    def _path(self, path: str) -> Any:
        return self._hadoop_path(path)

    def _fs(self, path: str) -> Any:
        return self._path(path).getFileSystem(self._conf)

    def qualify(self, path: str) -> str:
        """The URI Spark reports for `path` (file:///abs/path, s3://bucket/key)."""
        return str(self._fs(path).makeQualified(self._path(path)).toUri().toString())

    def exists(self, path: str) -> bool:
        return bool(self._fs(path).exists(self._path(path)))

    def is_dir(self, path: str) -> bool:
        fs = self._fs(path)
        target = self._path(path)
        return bool(fs.exists(target) and fs.getFileStatus(target).isDirectory())

    def glob_files(self, pattern: str) -> list[FileInfo]:
        """Files matching a path or glob; a folder stands for its visible files, recursively.
        Names starting with '_' or '.' are skipped, as Spark's readers skip them."""
        statuses = self._fs(pattern).globStatus(self._path(pattern)) or []
        files: list[FileInfo] = []
        for status in statuses:
            files.extend(self._files_under(status))
        return sorted(files, key=lambda f: f.path)

    def _files_under(self, status: Any) -> list[FileInfo]:
        name = str(status.getPath().getName())
        if name.startswith(("_", ".")):
            return []
        if not status.isDirectory():
            path = status.getPath()
            uri = canonical_uri(str(path.toUri().toString()))
            return [
                FileInfo(str(path.toString()), uri, int(status.getLen()), int(status.getModificationTime()))
            ]
        fs = status.getPath().getFileSystem(self._conf)
        found: list[FileInfo] = []
        for child in fs.listStatus(status.getPath()):
            found.extend(self._files_under(child))
        return found

    def list_dirs(self, path: str) -> list[str]:
        """Names of the sub-folders of `path` (empty when it does not exist)."""
        fs = self._fs(path)
        if not fs.exists(self._path(path)):
            return []
        return sorted(str(s.getPath().getName()) for s in fs.listStatus(self._path(path)) if s.isDirectory())

    def list_files(self, path: str) -> list[str]:
        fs = self._fs(path)
        if not fs.exists(self._path(path)):
            return []
        return sorted(str(s.getPath().getName()) for s in fs.listStatus(self._path(path)) if s.isFile())

    def read_bytes(self, path: str, *, start: int = 0, length: int | None = None) -> bytes:
        """`length` bytes from offset `start` (a negative start counts from the end)."""
        plain = self.local_file(path)
        if plain is not None:
            # A local file directly: through py4j each read copies the whole array.
            with open(plain, "rb") as stream:
                size = stream.seek(0, os.SEEK_END)
                offset = max(size + start, 0) if start < 0 else min(start, size)
                stream.seek(offset)
                return stream.read(size - offset if length is None else length)
        fs = self._fs(path)
        target = self._path(path)
        size = int(fs.getFileStatus(target).getLen())
        offset = max(size + start, 0) if start < 0 else min(start, size)
        count = size - offset if length is None else min(length, size - offset)
        if count <= 0:
            return b""
        stream = fs.open(target)
        try:
            stream.seek(offset)
            # py4j copies a returned byte[] into Python bytes (and would copy an argument the
            # other way), so the read must return the array, not fill one passed in.
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream, count))
        finally:
            stream.close()

    def checksum(self, path: str) -> str | None:
        """A digest of the file's content: SHA-256 of a local file; elsewhere what the file
        system keeps (HDFS's block checksums, S3A's ETag when fs.s3a.etag.checksum.enabled),
        or None when it keeps none (then size and modification time stand for the content)."""
        plain = self.local_file(path)
        if plain is not None:
            with open(plain, "rb") as stream:
                return "sha256:" + hashlib.file_digest(stream, "sha256").hexdigest()
        kept = self._fs(path).getFileChecksum(self._path(path))
        if kept is None:
            return None
        return f"{kept.getAlgorithmName()}:{bytes(kept.getBytes()).hex()}"

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def write_text(self, path: str, text: str) -> None:
        """Write (replace) a small text file: written beside, then renamed into place."""
        fs = self._fs(path)
        target = self._path(path)
        partial = self._path(f"{path}.partial")
        stream = fs.create(partial, True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()
        if fs.exists(target):
            fs.delete(target, False)
        if not fs.rename(partial, target):
            raise OSError(f"could not move {partial} to {path}")

    def write_chunks(self, path: str, chunks: Iterable[bytes]) -> None:
        """Write (replace) a file of any size from chunks of bytes, in bounded memory."""
        plain = self.local_file(path)
        if plain is not None:
            os.makedirs(os.path.dirname(plain), exist_ok=True)
            with open(plain, "wb") as stream:
                for chunk in chunks:
                    stream.write(chunk)
            return
        stream = self._fs(path).create(self._path(path), True)
        try:
            for chunk in chunks:
                stream.write(bytearray(chunk))
        finally:
            stream.close()

    def local_file(self, path: str) -> str | None:
        """The plain path of `path` when it is on this machine's file system, else None.
        Worked out without the JVM (it is asked for every input file)."""
        scheme = URI_SCHEME.match(path)
        if scheme is None:
            if self._default_scheme is None:
                self._default_scheme = str(
                    self._jvm.org.apache.hadoop.fs.FileSystem.getDefaultUri(self._conf).getScheme()
                )
            local = self._default_scheme == "file"
        else:
            local = scheme[1].lower() == "file"
        if not local:
            return None
        rest = path[len("file:") :] if scheme is not None else path
        if rest.startswith("//"):  # file://authority/path: only the local host's, as Hadoop reads it
            rest = "/" + rest[2:].partition("/")[2]
        return os.path.abspath(rest)

    def copy_from_local(self, local_path: str, target: str) -> None:
        """Copy a local file or folder (recursively) to `target`, replacing it."""
        # Removed first on every file system: Hadoop's copy onto an existing folder would
        # copy into it rather than replace it.
        self.delete(target)
        plain_target = self.local_file(target)
        if plain_target is not None:
            # Local to local, a plain copy: Hadoop's goes 4 KB at a time through the JVM.
            os.makedirs(os.path.dirname(plain_target), exist_ok=True)
            copy = shutil.copytree if os.path.isdir(local_path) else shutil.copyfile
            copy(local_path, plain_target)
            return
        local = self._hadoop_path(f"file://{local_path}")
        self._fs(target).copyFromLocalFile(False, True, local, self._path(target))

    def mkdirs(self, path: str) -> None:
        self._fs(path).mkdirs(self._path(path))

    def rename(self, source: str, target: str) -> None:
        """Move a file or folder; the target's parent is created. Raises if the move fails."""
        fs = self._fs(source)
        parent = self._path(target).getParent()
        if parent is not None:
            fs.mkdirs(parent)
        if not fs.rename(self._path(source), self._path(target)):
            raise OSError(f"could not move {source} to {target}")

    def delete_if_empty(self, path: str) -> None:
        fs = self._fs(path)
        target = self._path(path)
        if fs.exists(target) and not fs.listStatus(target):
            fs.delete(target, False)

    def delete(self, path: str) -> None:
        fs = self._fs(path)
        if fs.exists(self._path(path)):
            fs.delete(self._path(path), True)
