"""Batched UPDATE by primary key with plain ``executemany``.

Django's ``bulk_update`` builds one CASE WHEN expression per field and row, which costs far
more than the database work at flow and import batch sizes; this writes the same values with
one prepared statement per batch, each value prepared by its model field.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.db.models import Model


def update_rows(objs: Sequence[Model], fields: Sequence[str]) -> None:
    if not objs or not fields:
        return
    meta = type(objs[0])._meta
    qn = connection.ops.quote_name
    model_fields = [meta.get_field(name) for name in fields]
    assignments = ", ".join(f"{qn(f.column)} = %s" for f in model_fields)
    # Identifiers come from the model's own metadata, quoted; values are parameters.
    sql = f"UPDATE {qn(meta.db_table)} SET {assignments} WHERE {qn(meta.pk.column)} = %s"  # noqa: S608
    params = [
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in model_fields] + [obj.pk]
        for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


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
    params = []
    for obj in objs:
        row = []
        for f in model_fields:
            value = f.pre_save(obj, add=True)
            row.append(f.get_db_prep_save(value, connection))
        params.append(row)
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
