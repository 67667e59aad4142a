"""Small database helpers shared by bulk writers."""

from collections.abc import Iterable, Sequence

from django.db import connection


def copy_rows(*, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Stream rows into a table with PostgreSQL COPY (an order of magnitude faster than INSERT)."""
    column_list = ", ".join(columns)
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


# PostgreSQL's binary COPY format: a fixed header, then per row an int16 field count and, per
# field, an int32 length and the value (big-endian); a trailer of int16 -1.
_BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_WIDTHS = {"int8": 8, "int4": 4, "int2": 2, "float8": 8, "float4": 4}
_NUMPY_TYPES = {"int8": ">i8", "int4": ">i4", "int2": ">i2", "float8": ">f8", "float4": ">f4"}


def copy_out_arrays(*, query: str, columns: Sequence[tuple[str, str]], params=()) -> dict:
    """Run `query` (its columns NOT NULL, of the PostgreSQL types given in `columns` as
    (name, type) pairs, types among int8/int4/int2/float8/float4) through `COPY … TO STDOUT
    (FORMAT binary)` and return one native numpy array per column.

    Every row of such a result has the same byte layout, so the rows are read with one
    structured numpy view of the copied bytes: no Python object per row (9 million
    interactions in seconds).
    """
    import numpy as np

    fields = [("count", ">i2")]
    for name, pg_type in columns:
        fields += [(f"{name}__length", ">i4"), (name, _NUMPY_TYPES[pg_type])]
    row_dtype = np.dtype(fields)
    chunks = []
    with connection.cursor() as cursor:
        sql = cursor.mogrify(query, params) if params else query
        with cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)") as copy:
            for block in copy:
                chunks.append(bytes(block))
    data = b"".join(chunks)
    if not data.startswith(_BINARY_SIGNATURE):
        raise ValueError("not a binary COPY stream")
    extension = int.from_bytes(data[15:19], "big")
    body = data[19 + extension : len(data) - 2]  # header, then the int16 -1 trailer
    if len(body) % row_dtype.itemsize:
        raise ValueError("a NULL or a column of another type in the binary COPY stream")
    rows = np.frombuffer(body, dtype=row_dtype)
    if len(rows) and (rows["count"] != len(columns)).any():
        raise ValueError("unexpected field count in the binary COPY stream")
    return {name: rows[name].astype(_NUMPY_TYPES[pg_type][1:]) for name, pg_type in columns}
