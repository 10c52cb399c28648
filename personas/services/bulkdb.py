"""Batched UPDATE by primary key with plain ``executemany``.

Django's ``bulk_update`` builds one CASE WHEN expression per field and row, which costs far
more than the database work at flow and import batch sizes; this writes the same values with
one prepared statement per batch, each value prepared by its model field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import orjson
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, JSONField, Model


def json_text(value: Any) -> str:
    """JSON text for a JSON column, as ``json.dumps`` would give it for reading back (orjson:
    several times faster on the bulk paths; it writes non-ASCII as UTF-8 rather than
    escapes). Values orjson refuses (integers beyond 64 bits) take ``json.dumps``."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def _preparers(model_fields: Sequence[Field]) -> list[Any]:
    """One ``value → database value`` callable per field: ``get_db_prep_save`` bound to the
    real connection (the ``connection`` proxy costs a context-local lookup per use), and on
    SQLite ``json_text`` for JSON fields without a custom encoder (PostgreSQL keeps its
    typed ``Jsonb`` adapter)."""
    db = connections[DEFAULT_DB_ALIAS]
    out = []
    for f in model_fields:
        if db.vendor == "sqlite" and isinstance(f, JSONField) and f.encoder is None:
            out.append(lambda v: None if v is None else json_text(v))
        else:
            out.append(lambda v, f=f: f.get_db_prep_save(v, db))
    return out


def select_in(
    table: str,
    columns: Sequence[str],
    key: str,
    values: Sequence[Any],
    *,
    where: str = "",
    params: Sequence[Any] = (),
) -> list[tuple]:
    """Rows of ``table`` whose ``key`` is one of ``values``: ``key = ANY(%s)`` with one array
    parameter on PostgreSQL (an IN list of a thousand placeholders costs psycopg more to
    prepare than the server to run), ``IN (…)`` in chunks on SQLite. Table and column names
    come from model metadata, never from input; ``where`` is a fixed extra condition."""
    if not values:
        return []
    qn = connection.ops.quote_name
    head = f"SELECT {', '.join(qn(c) for c in columns)} FROM {qn(table)} WHERE "  # noqa: S608
    tail = f" AND ({where})" if where else ""
    rows: list[tuple] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"{head}{qn(key)} = ANY(%s){tail}", [list(values), *params])
            return cursor.fetchall()
        for start in range(0, len(values), _IN_CHUNK):
            chunk = list(values[start : start + _IN_CHUNK])
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"{head}{qn(key)} IN ({marks}){tail}", [*chunk, *params])
            rows.extend(cursor.fetchall())
    return rows


_IN_CHUNK = 5000  # well under SQLite's 32,766 bound parameters


def _update_params(objs: Sequence[Model], model_fields: Sequence[Field]) -> list[list[Any]]:
    """One ``[value, …, pk]`` row per object for an UPDATE by primary key, each value
    prepared for the database by its field."""
    names = [f.attname for f in model_fields]
    prep = _preparers(model_fields)
    return [
        [p(getattr(obj, n)) for p, n in zip(prep, names, strict=True)] + [obj.pk] for obj in objs
    ]


def update_rows(objs: Sequence[Model], fields: Sequence[str]) -> None:
    if not objs or not fields:
        return
    meta = type(objs[0])._meta
    qn = connection.ops.quote_name
    model_fields = [meta.get_field(name) for name in fields]
    assignments = ", ".join(f"{qn(f.column)} = %s" for f in model_fields)
    # Identifiers come from the model's own metadata, quoted; values are parameters.
    sql = f"UPDATE {qn(meta.db_table)} SET {assignments} WHERE {qn(meta.pk.column)} = %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.executemany(sql, _update_params(objs, model_fields))


def insert_rows(objs: Sequence[Model]) -> None:
    """INSERT many rows (no primary keys read back) with one prepared statement."""
    if not objs:
        return
    meta = type(objs[0])._meta
    qn = connection.ops.quote_name
    model_fields = [f for f in meta.concrete_fields if not f.primary_key]
    columns = ", ".join(qn(f.column) for f in model_fields)
    marks = ", ".join(["%s"] * len(model_fields))
    sql = f"INSERT INTO {qn(meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608
    prep = _preparers(model_fields)
    params = [
        [p(f.pre_save(obj, add=True)) for f, p in zip(model_fields, prep, strict=True)]
        for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def reserve_ids(table: str, count: int) -> list[int]:
    """``count`` new primary keys for ``table``, taken before the rows are inserted.

    PostgreSQL draws them from the column's sequence (identity) in one round trip. On SQLite
    the caller is inside a write transaction (``transaction_mode=IMMEDIATE``), so nobody else
    can insert between this read and the insert; the AUTOINCREMENT sequence is respected so a
    deleted row's id is never reused.
    """
    if count <= 0:
        return []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, count],
            )
            return [row[0] for row in cursor.fetchall()]
        qn = connection.ops.quote_name
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {qn(table)}")  # noqa: S608
        top = cursor.fetchone()[0]
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        row = cursor.fetchone()
        top = max(top, row[0] if row else 0)
        return list(range(top + 1, top + 1 + count))


def insert_tuples(table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
    """INSERT plain tuples (values already in database form): ``executemany`` on SQLite,
    ``COPY`` on PostgreSQL. Columns come from model metadata, never from input."""
    if not rows:
        return
    qn = connection.ops.quote_name
    cols = ", ".join(qn(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The raw psycopg cursor: wrap its errors so a conflict is Django's IntegrityError.
            with connection.wrap_database_errors:
                with cursor.cursor.copy(f"COPY {qn(table)} ({cols}) FROM STDIN") as copy:  # noqa: S608
                    write = copy.write_row
                    for row in rows:
                        write(row)
            return
        marks = ", ".join(["%s"] * len(columns))
        cursor.executemany(f"INSERT INTO {qn(table)} ({cols}) VALUES ({marks})", rows)  # noqa: S608


def update_tuples(table: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence]) -> None:
    """UPDATE by primary key ``id`` from plain tuples ``(value, …, id)``, values already in
    database form. ``columns`` are ``(column, type)`` pairs from model metadata, never from
    input. PostgreSQL: the rows are copied (``COPY``) into a session-private staging table
    and applied with one ``UPDATE … FROM`` (executemany pays statement work per row, and
    array parameters are quoted in Python); SQLite: executemany."""
    if not rows:
        return
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            assignments = ", ".join(f"{qn(c)} = %s" for c, _ in columns)
            sql = f"UPDATE {qn(table)} SET {assignments} WHERE id = %s"  # noqa: S608
            cursor.executemany(sql, rows)
            return
        names = [qn(c) for c, _ in columns]
        digest = hashlib.sha256(repr((table, tuple(columns))).encode()).hexdigest()[:10]
        stage = qn(f"_bulk_{table[:40]}_{digest}")
        definition = ", ".join(f"{n} {t}" for n, (_, t) in zip(names, columns, strict=True))
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ({definition}, id bigint) "
            "ON COMMIT DELETE ROWS"
        )
        with connection.wrap_database_errors:
            with cursor.cursor.copy(f"COPY {stage} ({', '.join(names)}, id) FROM STDIN") as copy:
                write = copy.write_row
                for row in rows:
                    write(row)
        assignments = ", ".join(f"{n} = s.{n}" for n in names)
        # The id list lets the planner find the rows by primary key: it has no statistics
        # for the staging table and would otherwise hash-join it with a scan of the table.
        ids = "{" + ",".join(str(int(row[-1])) for row in rows) + "}"
        cursor.execute(
            f"UPDATE {qn(table)} AS t SET {assignments} FROM {stage} AS s "  # noqa: S608
            "WHERE t.id = s.id AND t.id = ANY(%s::bigint[])",
            [ids],
        )
        cursor.execute(f"DELETE FROM {stage}")  # noqa: S608 - a later batch reuses it


def update_objects(objs: Sequence[Model], fields: Sequence[str]) -> None:
    """``update_rows`` with one statement per batch on PostgreSQL (``update_tuples``)."""
    if not objs or not fields:
        return
    if connection.vendor != "postgresql":
        update_rows(objs, fields)
        return
    meta = type(objs[0])._meta
    if meta.pk.column != "id":
        update_rows(objs, fields)
        return
    model_fields = [meta.get_field(name) for name in fields]
    columns = [(f.column, f.cast_db_type(connection)) for f in model_fields]
    update_tuples(meta.db_table, columns, _update_params(objs, model_fields))
