"""Search uses prefix ranges on plain B-tree indexes; on PostgreSQL the searched columns use the
"C" collation so that a byte-wise range equals a prefix match and the index is used."""

from django.db import migrations

COLUMNS = [
    ("personas_persona", "email", 254),
    ("personas_persona", "phone_rev", 20),
    ("personas_persona", "customer_id", 64),
    ("personas_persona", "first_key", 150),
    ("personas_persona", "last_key", 150),
    ("personas_purchase", "receipt_id", 64),
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, column, length in COLUMNS:
        schema_editor.execute(
            f'ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar({length}) COLLATE "C"'
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, column, length in COLUMNS:
        schema_editor.execute(
            f'ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar({length}) COLLATE "default"'
        )


class Migration(migrations.Migration):
    dependencies = [("personas", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
