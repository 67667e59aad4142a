"""Where an import reads from, and streaming readers over it.

A `Source` is one file on disk or one member of a zip archive (exports arrive as zips). The
readers never hold a whole file: JSON lines are read line by line, a JSON array is decoded one
element at a time from 1 MiB chunks. Each yields `(line_number, value)`, the line where the
value starts, so that a bad record is reported as `file:line: reason`; a progress bar counts
the bytes read. Errors are `mltasks.ml.data.parsing.DataFormatError`.
"""

from __future__ import annotations

import codecs
import json
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tqdm import tqdm

from mltasks.ml.data.parsing import DataFormatError

CHUNK_BYTES = 1 << 20
_WHITESPACE = re.compile(r"[ \t\n\r]*")


@dataclass(frozen=True)
class Source:
    """A file to read: `path` on disk, or `member` of the zip archive at `path`."""

    path: Path
    member: str | None = None

    @property
    def name(self) -> Path:
        """How messages name it: the file, or archive.zip/member."""
        return self.path / self.member if self.member else self.path

    def size(self) -> int:
        if self.member is None:
            return self.path.stat().st_size
        with zipfile.ZipFile(self.path) as archive:
            return archive.getinfo(self.member).file_size

    def open(self) -> IO[bytes]:
        if self.member is None:
            return self.path.open("rb")
        archive = zipfile.ZipFile(self.path)
        try:
            return _ClosingMember(archive, archive.open(self.member))
        except Exception:
            archive.close()
            raise


class _ClosingMember:
    """A zip member's stream that closes its archive with it."""

    def __init__(self, archive: zipfile.ZipFile, stream: IO[bytes]):
        self._archive, self._stream = archive, stream

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def __iter__(self):
        return iter(self._stream)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self._stream.close()
        self._archive.close()


def natural_key(name: str) -> list:
    """Sort key that orders "…_2.json" before "…_10.json" and "2021/9" before "2021/10"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def sources_at(path: Path, *, patterns: Sequence[re.Pattern[str]], expected: str) -> list[Source]:
    """The sources a command-line path names: the file itself; in a directory or a zip
    archive, the files whose path inside it matches the first of `patterns` that matches
    any, in natural order. `expected` names them in the error when none does."""
    if path.is_dir():
        names = [child.relative_to(path).as_posix() for child in path.rglob("*") if child.is_file()]
        in_archive = False
    elif path.is_file() and path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                names = [info.filename for info in archive.infolist() if not info.is_dir()]
        except zipfile.BadZipFile:
            raise DataFormatError(path, None, "not a zip archive") from None
        in_archive = True
    elif path.is_file():
        return [Source(path)]
    else:
        raise DataFormatError(path, None, "no such file")
    for pattern in patterns:
        matching = sorted((name for name in names if pattern.search(name)), key=natural_key)
        if matching:
            return [Source(path, name) if in_archive else Source(path / name) for name in matching]
    raise DataFormatError(path, None, f"no {expected} in it")


def file_source(path: Path) -> list[Source]:
    """A path that must be a plain file."""
    if not path.is_file():
        raise DataFormatError(path, None, "no such file")
    return [Source(path)]


def _progress(source: Source, description: str) -> tqdm:
    return tqdm(
        total=source.size(),
        desc=f"{description} {source.name.name}",
        unit="B",
        unit_scale=True,
        leave=False,
    )


def _not_utf8(source: Source, line: int) -> DataFormatError:
    return DataFormatError(source.name, line, "not UTF-8 text")


def json_lines(source: Source, *, description: str) -> Iterator[tuple[int, object]]:
    """`(line_number, value)` for each non-blank line of a JSON-lines file."""
    with source.open() as handle, _progress(source, description) as bar:
        for line_number, raw in enumerate(handle, start=1):
            bar.update(len(raw))
            try:
                text = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise _not_utf8(source, line_number) from None
            if not text.strip():
                continue
            try:
                yield line_number, json.loads(text)
            except json.JSONDecodeError as error:
                raise DataFormatError(
                    source.name, line_number, f"invalid JSON: {error.msg}"
                ) from None


def first_character(source: Source) -> str:
    """The first non-blank character of a text file ("" when it is blank)."""
    with source.open() as handle:
        head = handle.read(4096).decode("utf-8-sig", errors="replace").lstrip()
    return head[:1]


def json_array(source: Source, *, description: str) -> Iterator[tuple[int, object]]:
    """`(line_number, element)` for each element of a file holding one JSON array."""
    return _JsonArrayReader(source, description).elements()


class _JsonArrayReader:
    """Decodes one element at a time from a window over the file (a few MiB at most, unless
    a single element is larger), keeping the line number of the window's read position."""

    def __init__(self, source: Source, description: str):
        self.source, self.description = source, description
        self.buffer, self.position, self.line, self.at_end = "", 0, 1, False

    def elements(self) -> Iterator[tuple[int, object]]:
        decoder = json.JSONDecoder()
        with self.source.open() as handle, _progress(self.source, self.description) as bar:
            self.chunks = self._decoded_chunks(handle, bar)
            if self._next_character() != "[":
                raise self._error(self.line, "expected a JSON array of records")
            self.position += 1
            if self._next_character() == "]":
                self.position += 1
            else:
                while True:
                    self._next_character()
                    start_line = self.line
                    value, end = self._decode(decoder)
                    yield start_line, value
                    self._advance(end)
                    following = self._next_character()
                    self.position += 1
                    if following == "]":
                        break
                    if following != ",":
                        reason = (
                            "the array is not closed"
                            if not following
                            else f"expected ',' or ']' after a record, got {following!r}"
                        )
                        raise self._error(self.line, reason)
            if self._next_character():
                raise self._error(self.line, "unexpected data after the JSON array")

    def _decoded_chunks(self, handle: IO[bytes], bar: tqdm) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        lines_read = 1
        while chunk := handle.read(CHUNK_BYTES):
            bar.update(len(chunk))
            try:
                yield decoder.decode(chunk)
            except UnicodeDecodeError as error:
                line = lines_read + chunk.count(b"\n", 0, error.start)
                raise _not_utf8(self.source, line) from None
            lines_read += chunk.count(b"\n")
        yield decoder.decode(b"", final=True)

    def _fill(self) -> bool:
        """Append the next chunk (dropping what was read); False at the end of the file."""
        if self.at_end:
            return False
        chunk = next(self.chunks, None)
        if chunk is None:
            self.at_end = True
            return False
        self.buffer = self.buffer[self.position :] + chunk
        self.position = 0
        return True

    def _advance(self, end: int) -> None:
        self.line += self.buffer.count("\n", self.position, end)
        self.position = end

    def _next_character(self) -> str:
        """Skip whitespace; the character there, or "" at the end of the file."""
        while True:
            self._advance(_WHITESPACE.match(self.buffer, self.position).end())
            if self.position < len(self.buffer):
                return self.buffer[self.position]
            if not self._fill():
                return ""

    def _decode(self, decoder: json.JSONDecoder) -> tuple[object, int]:
        while True:
            try:
                value, end = decoder.raw_decode(self.buffer, self.position)
                # a value that ends with the window may continue in the next chunk (a number)
                if end < len(self.buffer) or self.at_end:
                    return value, end
            except json.JSONDecodeError as error:
                if self.at_end:
                    line = self.line + self.buffer.count("\n", self.position, error.pos)
                    raise self._error(line, f"invalid JSON: {error.msg}") from None
            self._fill()

    def _error(self, line: int, reason: str) -> DataFormatError:
        return DataFormatError(self.source.name, line, reason)
