"""Import benchmark: a generated CSV into an empty database, then again with every row
changed (all updates), then once more unchanged.

Prints rows per second beside the raw limit measured in the same run on the same parsed rows:
plain ``executemany`` (SQLite) or ``COPY`` (PostgreSQL) into a copy of the persona table.

    .venv/bin/python bench/imports.py --rows 1000000                      # SQLite
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/personas_bench_import \\
        .venv/bin/python bench/imports.py --rows 1000000                  # PostgreSQL

The database named by DATABASE_URL (or var/bench_import.sqlite3) is wiped first.
Also: ``--messy FILE --rows 10000`` only writes a messy demo CSV (typos, duplicates, bad
phones, formula cells) for trying the import in the UI.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEADER = [
    "First Name",
    "Last Name",
    "Mobile",
    "E-mail",
    "DOB",
    "Loyalty",
    "Email Opt In",
    "Customer ID",
    "Points",
    "Shoe Size",
]
FIRST = ["Ana", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lu", "Zoë"]
LAST = ["Lopez", "Kim", "Ng", "Okafor", "Smith", "Berg", "Rossi", "Dubois", "Sato", "Novak"]


AREAS = ("202", "212", "312", "415", "617", "713", "206", "303", "404", "305", "201", "213")


def clean_rows(n: int):
    rng = random.Random(7)
    for i in range(n):
        yield [
            rng.choice(FIRST),
            rng.choice(LAST),
            # Real numbers (the import refuses unassigned area codes): unique below 96M rows.
            f"({AREAS[i // 8_000_000 % len(AREAS)]}) {200 + i // 10_000 % 800}-{i % 10_000:04d}",
            f"customer{i}@example.com",
            f"{1950 + i % 50}-{1 + i % 12:02d}-{1 + i % 28:02d}",
            rng.choice(["yes", "no"]),
            rng.choice(["Y", "N", ""]),
            f"POS-{i}",
            str(i % 500),
            str(5 + i % 8),
        ]


def messy_rows(n: int):
    rng = random.Random(11)
    base = list(clean_rows(n))
    for i, row in enumerate(base):
        r = list(row)
        roll = rng.random()
        if roll < 0.03:
            r[2] = rng.choice(["12", "call me", "555-01"])  # bad phone
        elif roll < 0.05:
            r[3] = rng.choice(["bob@@example", "no-at-sign", "x@"])  # bad email
        elif roll < 0.07:
            r[4] = rng.choice(["31/31/1990", "someday", "2099-01-01"])  # bad date
        elif roll < 0.08:
            r[0] = rng.choice(['=HYPERLINK("http://x")', "+SUM(1)", "@cmd"])  # formula cell
        elif roll < 0.10 and i > 10:
            r[2], r[3] = base[i - 7][2], base[i - 7][3].upper()  # duplicate of an earlier row
        elif roll < 0.11:
            r[8] = "12.5"
        elif roll < 0.12:
            r = [""] * len(r)
        if rng.random() < 0.3:
            r[2] = r[2].replace("(", "").replace(")", "").replace(" ", ".")
        if rng.random() < 0.2:
            r.append("")  # ragged rows
        yield r


def write_csv(path: Path, rows, *, sms_column: bool = False) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER + (["SMS Opt In"] if sms_column else []))
        for i, row in enumerate(rows):
            writer.writerow(row + (["yes" if i % 5 == 0 else "no"] if sms_column else []))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup_django(url: str | None) -> None:
    if url:
        os.environ["DATABASE_URL"] = url
    else:
        db = ROOT / "var" / "bench_import.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{db}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["TASK_BACKEND"] = "dummy"
    # Measure as deployed: with DEBUG on, Django keeps the text of the last 9,000 queries
    # (memory) and formats every query for it (time).
    os.environ["DEBUG"] = "0"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    call_command("migrate", verbosity=0)


def _empty_copy(cursor, table: str) -> str:
    """Create ``bench_<table>``: an empty copy of ``table`` with the same columns,
    constraints and indexes (foreign keys dropped on PostgreSQL by ``LIKE``)."""
    from django.db import connection

    qn = connection.ops.quote_name
    copy = f"bench_{table}"
    cursor.execute(f"DROP TABLE IF EXISTS {qn(copy)}")
    if connection.vendor == "sqlite":
        cursor.execute(
            "SELECT type, sql FROM sqlite_master WHERE tbl_name = %s AND sql IS NOT NULL "
            "ORDER BY type DESC",
            [table],
        )
        for kind, sql in cursor.fetchall():
            sql = sql.replace(f'"{table}"', f'"{copy}"')
            if kind == "index":
                sql = sql.replace('INDEX "', f'INDEX "{copy}_', 1)
            cursor.execute(sql)
    else:
        cursor.execute(f"CREATE TABLE {qn(copy)} (LIKE {qn(table)} INCLUDING ALL)")
    return copy


def plain_insert_rate(tables: dict[str, int | None]) -> float:
    """Personas/s of a plain insert of rows already stored (every column, already parsed and
    normalised), read back and inserted with ``executemany`` (SQLite) or ``COPY``
    (PostgreSQL) into empty copies of their tables with the same columns, constraints and
    indexes, all in one transaction: what storing them costs with no application code at
    all. ``tables`` maps each table to the highest id to copy (None: every row); the rate
    counts the rows of the first table (the personas)."""
    from django.db import connection, transaction

    qn = connection.ops.quote_name
    loaded = []
    with connection.cursor() as cursor:
        for table, top in tables.items():
            copy = _empty_copy(cursor, table)
            where = "" if top is None else f" WHERE id <= {int(top)}"
            cursor.execute(f"SELECT * FROM {qn(table)}{where} ORDER BY id")  # noqa: S608
            columns = [c[0] for c in cursor.description]
            loaded.append((copy, columns, cursor.fetchall()))
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for copy, columns, rows in loaded:
            names = ", ".join(qn(c) for c in columns)
            if connection.vendor == "sqlite":
                marks = ", ".join(["%s"] * len(columns))
                cursor.executemany(f"INSERT INTO {qn(copy)} ({names}) VALUES ({marks})", rows)  # noqa: S608
            else:
                with cursor.cursor.copy(f"COPY {qn(copy)} ({names}) FROM STDIN") as out:
                    for row in rows:
                        out.write_row(row)
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        for copy, _, _ in loaded:
            cursor.execute(f"DROP TABLE {qn(copy)}")
    return len(loaded[0][2]) / elapsed


def raw_limit() -> float:
    """The issue's raw limit: the persona rows the imports stored, inserted plainly."""
    from personas.models import Persona

    return plain_insert_rate({Persona._meta.db_table: None})


def storage_floor(tops: dict[str, int | None]) -> float:
    """Not the target, for scale: the first import's personas together with the audit
    event, consent change and ledger rows it had to write for them, inserted plainly."""
    return plain_insert_rate(tops)


def last_ids() -> dict[str, int | None]:
    """Highest id of the persona table and of each related table an import writes to."""
    from django.db.models import Max

    from personas.models import AuditEvent, ConsentChange, Persona, PointsEntry

    return {
        model._meta.db_table: model.objects.aggregate(top=Max("id"))["top"]
        for model in (Persona, AuditEvent, ConsentChange, PointsEntry)
    }


def changed_rows(n: int):
    """The same customers with a new points balance and shoe size: every row an update."""
    for row in clean_rows(n):
        row[8] = str(int(row[8]) + 7)
        row[9] = str(int(row[9]) + 1)
        yield row


def run_import(path: Path, *, overwrite: bool = False) -> tuple[float, dict]:
    from imports import pipeline, services
    from imports.models import ImportJob

    with path.open("rb") as fh:
        job = services.upload(fh, name=path.name, user=None)
    if overwrite:
        job.existing = ImportJob.Existing.OVERWRITE
    job.status = ImportJob.Status.PREVIEWED
    job.double_opt_in = ImportJob.DoubleOptIn.LATER
    job.save()
    started = time.perf_counter()
    job = pipeline.run(job.pk)
    elapsed = time.perf_counter() - started
    counts = {
        "created": job.created,
        "updated": job.updated,
        "unchanged": job.unchanged,
        "skipped": job.skipped,
        "errors": job.errors,
    }
    return job.counted / elapsed, counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--messy", help="Only write a messy demo CSV to this path.")
    args = parser.parse_args()
    if args.messy:
        write_csv(Path(args.messy), messy_rows(args.rows), sms_column=True)
        print(f"Wrote {args.rows} messy rows to {args.messy}")
        return
    setup_django(os.environ.get("DATABASE_URL"))
    from django.db import connection

    from personas.models import AuditEvent, Persona

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bench-{args.rows}.csv"
        write_csv(path, clean_rows(args.rows))
        changed = Path(tmp) / f"bench-{args.rows}-changed.csv"
        write_csv(changed, changed_rows(args.rows))
        size_mb = path.stat().st_size / 1e6
        print(f"{connection.vendor}: {args.rows:,} rows, {size_mb:.0f} MB CSV", flush=True)
        rss_before = rss_mb()
        runs = [("import into an empty database", *run_import(path))]
        rss_after_first = rss_mb()
        first_import = last_ids()
        runs.append(("again, every row changed (updates)", *run_import(changed, overwrite=True)))
        runs.append(("again, the same rows (unchanged)", *run_import(changed, overwrite=True)))
        rss_after = rss_mb()
        raw_rate = raw_limit()
        floor_rate = storage_floor(first_import)
        personas = Persona.objects.count()
        created = AuditEvent.objects.filter(actor_kind="import", action="created").count()
        updated = AuditEvent.objects.filter(actor_kind="import").exclude(action="created").count()
    half = raw_rate / 2
    print(
        f"  raw insert limit ({'executemany' if connection.vendor == 'sqlite' else 'COPY'} of "
        f"the same persona rows into a copy of the persona table): {raw_rate:,.0f} rows/s   "
        f"target ≥ {half:,.0f} rows/s"
    )
    print(
        f"  for scale, not the target: the same personas with the audit event, consent change "
        f"and ledger rows the first import wrote for them, inserted the same way: "
        f"{floor_rate:,.0f} rows/s ({floor_rate / raw_rate:.0%} of raw)"
    )
    for label, rate, counts in runs:
        verdict = "MEETS" if rate >= half else "BELOW"
        print(f"  {label}: {rate:,.0f} rows/s ({rate / raw_rate:.0%} of raw, {verdict})  {counts}")
    print(
        f"  personas: {personas:,}; audit events from imports: {created:,} created, "
        f"{updated:,} updated"
    )
    print(
        f"  peak RSS: {rss_before:.0f} MB before, {rss_after_first:.0f} MB after the first "
        f"import, {rss_after:.0f} MB after all three (the raw measure then loads every row)"
    )


if __name__ == "__main__":
    main()
