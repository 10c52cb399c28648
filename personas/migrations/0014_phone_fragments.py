"""Search by any 4+ digits of a phone: one row per tail of each number's digits, replacing
the reversed-digits column (which found only the last digits)."""

import django.db.models.deletion
from django.db import migrations, models

from personas.normalize import phone_fragments

BATCH = 5000


def fill(apps, schema_editor):
    Persona = apps.get_model("personas", "Persona")
    PhoneFragment = apps.get_model("personas", "PhoneFragment")
    db = schema_editor.connection.alias
    last = 0
    while True:
        batch = list(
            Persona.objects.using(db)
            .filter(pk__gt=last, phone__isnull=False)
            .order_by("pk")
            .values_list("pk", "phone")[:BATCH]
        )
        if not batch:
            return
        PhoneFragment.objects.using(db).bulk_create(
            PhoneFragment(digits=digits, persona_id=pk)
            for pk, phone in batch
            for digits in phone_fragments(phone)
        )
        last = batch[-1][0]


class Migration(migrations.Migration):
    dependencies = [
        ("personas", "0013_team_change"),
    ]

    operations = [
        migrations.CreateModel(
            name="PhoneFragment",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "digits",
                        "persona",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("digits", models.CharField(max_length=20)),
                (
                    "persona",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="phone_fragments",
                        to="personas.persona",
                    ),
                ),
            ],
            options={
                "verbose_name": "phone fragment",
            },
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.RemoveIndex(
            model_name="persona",
            name="persona_phone_rev_idx",
        ),
        migrations.RemoveField(
            model_name="persona",
            name="phone_rev",
        ),
    ]
