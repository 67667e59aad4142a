"""Line-level parsing shared by every dataset reader (no ORM).

The ML core's readers (cf_datasets, seq_datasets) and the catalog importers (ingest.importers)
read the same kinds of files: tab-separated dumps (HetRec, Last.fm 1K), CSV event logs,
whitespace-separated id lists (LightGCN / pre-split releases) and JSON documents (MPD). This
module holds what they have in common, so a malformed file fails the same way everywhere:

- `DataFormatError`: a ValueError whose message is `path:line: reason` (`path: reason` when no
  line applies); `path`, `line` and `reason` stay available as attributes.
- `read_delimited_rows(path, *, delimiter, ...)`: yields `(line_number, fields)` for every
  non-blank line, after checking the header and the number of fields.
- `parse_int_fields(fields, *, path, line_number, columns)`: integer id columns.
- `parse_timestamp(text)` / `parse_datetime(text)`: Unix seconds or ISO 8601 (naive = UTC).
- `parse_json(text, *, path)`: a JSON document, its syntax errors with their line.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

WHITESPACE = None  # `delimiter` value: fields are separated by runs of spaces / tabs


class DataFormatError(ValueError):
    """A malformed dataset file: `path:line: reason`, or `path: reason` without a line."""

    def __init__(self, path: str | Path, line: int | None, reason: str):
        self.path, self.line, self.reason = Path(path), line, reason
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


def read_delimited_rows(
    path: str | Path,
    *,
    delimiter: str | None,
    n_columns: int | Sequence[int] | None = None,
    min_columns: int | None = None,
    layout: str | None = None,
    header: bool | Sequence[str] = False,
    header_optional: bool = False,
    encoding: str = "utf-8",
    progress: str | None = None,
) -> Iterator[tuple[int, list[str]]]:
    """Yield `(line_number, fields)` for each non-blank line of a delimited text file.

    - `delimiter`: "\\t" (fields split on tabs, kept as they are), "," (the csv module's
      quoting rules) or `WHITESPACE` (None: split on runs of whitespace).
    - `n_columns`: the allowed number(s) of fields; `min_columns`: a lower bound instead, the
      extra fields are yielded too. A line that breaks either raises
      `DataFormatError(path, line, "expected <layout>, got <n>")`; `layout` defaults to
      "<n> tab-separated fields" / "<n> fields".
    - `header`: False (no header line), True (line 1 is a header, skipped unread) or the
      expected column names (compared stripped and case-insensitively; a mismatch raises,
      unless `header_optional`, when line 1 is then read as data).
    - `progress`: a tqdm description to show a progress bar over the lines (None: no bar).

    Blank lines (and CSV rows of empty cells) are skipped. A missing file raises
    `DataFormatError(path, None, "file not found")`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "file not found")
    allowed = (n_columns,) if isinstance(n_columns, int) else n_columns
    if layout is None:
        counts = " or ".join(str(n) for n in allowed) if allowed else f"at least {min_columns}"
        layout = f"{counts} tab-separated fields" if delimiter == "\t" else f"{counts} fields"
    with path.open(encoding=encoding, newline="") as handle:
        lines = tqdm(handle, desc=progress, unit=" lines", leave=False, disable=progress is None)
        header_required = bool(header) and header is not True and not header_optional
        empty_file = True
        for line_number, fields in _split_lines(lines, delimiter):
            empty_file = False
            if line_number == 1 and header is True:
                continue
            if line_number == 1 and header:
                names = [name.lower() for name in header]
                if [field.strip().lower() for field in fields] == names:
                    continue
                if header_required:
                    raise _missing_header(path, header, delimiter, fields)
            if not any(field.strip() for field in fields):
                continue
            too_few = min_columns is not None and len(fields) < min_columns
            if too_few or (allowed and len(fields) not in allowed):
                raise DataFormatError(path, line_number, f"expected {layout}, got {len(fields)}")
            yield line_number, fields
        if header_required and empty_file:
            raise _missing_header(path, header, delimiter, [])


def _missing_header(path: Path, header, delimiter: str | None, fields: list[str]):
    expected = (delimiter or " ").join(header)
    return DataFormatError(path, 1, f"expected the header {expected}, got {fields}")


def _split_lines(lines, delimiter: str | None) -> Iterator[tuple[int, list[str]]]:
    if delimiter == ",":
        reader = csv.reader(lines)
        for row in reader:
            yield reader.line_num, row
        return
    for line_number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        yield line_number, line.split() if delimiter is None else line.split(delimiter)


def parse_int_fields(
    fields: Sequence[str],
    *,
    path: str | Path,
    line_number: int,
    columns: Sequence[int] | None = None,
    non_negative: bool = True,
) -> list[int]:
    """The integers in `columns` of a row (default: every field), in that order.

    Raises `DataFormatError` naming the (1-based) column of the first non-integer, or the row
    when `non_negative` and a value is negative.
    """
    columns = range(len(fields)) if columns is None else columns
    values = []
    for column in columns:
        try:
            values.append(int(fields[column]))
        except ValueError:
            raise DataFormatError(
                path, line_number, f"column {column + 1} is not an integer: {fields[column]!r}"
            ) from None
    if non_negative and any(value < 0 for value in values):
        raise DataFormatError(path, line_number, f"negative value in {list(fields)!r}")
    return values


def parse_timestamp(text: str) -> float:
    """Seconds since the Unix epoch from Unix seconds (int or float) or ISO 8601 (naive = UTC).

    Raises ValueError on an empty, unparseable or non-finite value.
    """
    seconds = _unix_seconds(text)
    return _iso_datetime(text).timestamp() if seconds is None else seconds


def parse_datetime(text: str) -> dt.datetime:
    """An aware datetime from Unix seconds (as UTC) or ISO 8601 (naive = UTC, offsets kept).

    Raises ValueError on an empty, unparseable, non-finite or out-of-range value.
    """
    seconds = _unix_seconds(text)
    if seconds is None:
        return _iso_datetime(text)
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError) as error:
        raise ValueError(f"timestamp {text!r} is out of range") from error


def _unix_seconds(text: str) -> float | None:
    """The number in `text`, None when it is not a number (but perhaps a date)."""
    text = text.strip()
    if not text:
        raise ValueError("empty timestamp")
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        raise ValueError(f"timestamp {text!r} is not finite")
    return value


def _iso_datetime(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def parse_json(text: str, *, path: str | Path) -> object:
    """The JSON document in `text` (read from `path`); a syntax error names its line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, f"invalid JSON: {error.msg}") from None
