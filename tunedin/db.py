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
