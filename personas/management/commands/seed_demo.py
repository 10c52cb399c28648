"""Demo data: stores, signup forms, one user per role, and N personas with real-looking history.

Idempotent: users and stores are created once; with ``--if-empty`` personas are only generated
when there are none. Large N (a million, for the benchmarks) is written in batches straight
from tuples; each generated persona gets a "created" audit event naming the demo-data actor.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from decimal import Decimal
from pathlib import Path

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils import timezone

from personas.models import (
    ADDRESS_CHANNELS,
    AuditEvent,
    ConsentChange,
    ConsentState,
    ContactConsent,
    EntrySource,
    FavoriteStoreSource,
    Persona,
    PersonaStatus,
    PointsEntry,
    Purchase,
    SignupForm,
    Store,
)
from personas.normalize import name_key
from personas.roles import PRIVACY_GROUP, ROLES, sync_role_groups
from personas.services.changes import Actor, Changeset, create
from personas.services.consent import address_digest, address_of
from personas.services.phone_index import index_phones

DEMO_PASSWORD = "personas-demo-2026"  # noqa: S105 - documented demo password, dev only
DEMO_USERS = {
    "staff": "Staff",
    "analyst": "Analyst",
    "marketing_analyst": "Marketing Analyst",
    "marketing": "Marketing",
    "operator": "Operator",
    "manager": "Manager",
    "owner": "Owner",
}
STORES = [
    ("Downtown", "downtown"),
    ("Riverside Mall", "riverside"),
    ("Airport Kiosk", "airport"),
    ("Northgate", "northgate"),
]
FIRST = (
    "Avery Blake Casey Dana Elliot Finley Gray Harper Indigo Jordan Kai Logan Morgan Noel "
    "Oakley Parker Quinn Reese Sage Taylor Umber Vale Wren Xen Yael Zion Amélie Chloé José "
    "Zoë Renée Björn Søren Inès Mateo Lucía Noah Emma Liam Olivia Maya Leo Nora Ezra Iris"
).split()
LAST = (
    "Abbott Bishop Carver Dalton Ellison Fairbanks Garner Holloway Ingram Jessup Keller "
    "Lindqvist Marlowe Nakamura Okafor Pemberton Quimby Rosales Sorensen Thorne Underhill "
    "Vasquez Whitaker Yarrow Zeller Müller Núñez Ødegaard Brontë Castillo Dubois Eriksen"
).split()
ATTRS = [
    ("vip_status", [True, False]),
    ("tier", ["bronze", "silver", "gold"]),
    ("preferred_category", ["flower", "edibles", "accessories", "apparel"]),
    ("acquisition_source", ["in store", "online", "referral"]),
]


class Command(BaseCommand):
    help = "Create demo stores, signup forms, one user per role and N personas."

    def add_arguments(self, parser):
        parser.add_argument("--personas", type=int, default=500, help="How many personas.")
        parser.add_argument(
            "--if-empty", action="store_true", help="Only add personas when there are none."
        )
        parser.add_argument("--seed", type=int, default=2026, help="Random seed.")
        parser.add_argument("--quiet-users", action="store_true", help="Do not print users.")

    def handle(self, *args, **opts):
        sync_role_groups()
        self._users(quiet=opts["quiet_users"])
        stores = self._stores()
        forms = self._forms(stores)
        self._demo_flow()
        if opts["if_empty"] and Persona.objects.exists():
            self.stdout.write("Demo personas already present; leaving them as they are.")
            return
        started = time.monotonic()
        created = self._personas(opts["personas"], stores, forms, random.Random(opts["seed"]))
        created += self._duplicates()
        # Fresh planner statistics, so search uses the identifier indexes at once.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        self.stdout.write(
            self.style.SUCCESS(f"Created {created} personas in {time.monotonic() - started:.1f}s.")
        )

    def _duplicates(self) -> int:
        """A few likely duplicates for the "Possible duplicates" page, made through the service."""
        actor = Actor.system("Demo data")
        made = 0
        for first, last, phone_a, phone_b, email_b in (
            ("Robin", "Vasquez-Demo", "+12025559901", "+12025559902", "robin.v@example.net"),
            ("Kai", "Lindqvist-Demo", "+12025559903", "+12025559904", "kai.l@example.net"),
        ):
            birthday = "1988-03-14"
            for phone, email in ((phone_a, None), (phone_b, email_b)):
                if Persona.objects.filter(phone=phone).exists():
                    continue
                create(
                    Changeset(
                        fields={
                            "first_name": first,
                            "last_name": last,
                            "phone": phone,
                            "email": email,
                            "birthday": birthday,
                        }
                    ),
                    actor,
                )
                made += 1
        return made

    def _demo_flow(self) -> None:
        """A draft flow to look at: the design's example, from the file the flow tests run
        (flows/examples/design_example.json). Personas does not import flows."""

        if not apps.is_installed("flows"):
            return
        Flow = apps.get_model("flows", "Flow")
        if Flow.objects.filter(name="VIP tagging (example)").exists():
            return
        example = Path(apps.get_app_config("flows").path) / "examples" / "design_example.json"
        Flow.objects.create(
            name="VIP tagging (example)",
            trigger={"type": "manual"},
            definition=json.loads(example.read_text()),
        )

    def _users(self, *, quiet: bool) -> None:
        User = get_user_model()
        for username, role in DEMO_USERS.items():
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            user.groups.set([Group.objects.get(name=role)])
        privacy, created = User.objects.get_or_create(
            username="privacy", defaults={"is_staff": True}
        )
        if created:
            privacy.set_password(DEMO_PASSWORD)
            privacy.save()
        privacy.groups.set([Group.objects.get(name=PRIVACY_GROUP)])
        admin, created = User.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            admin.set_password(DEMO_PASSWORD)
            admin.save()
        if not quiet:
            self.stdout.write(f"Demo users (password: {DEMO_PASSWORD}):")
            for username, role in DEMO_USERS.items():
                self.stdout.write(f"  {username:<18} {role}")
            self.stdout.write(f"  {'privacy':<18} {PRIVACY_GROUP} (Django admin)")
            self.stdout.write(f"  {'admin':<18} Superuser (Django admin)")
        assert set(DEMO_USERS.values()) == set(ROLES)

    def _stores(self) -> list[Store]:
        return [
            Store.objects.get_or_create(code=code, defaults={"name": name})[0]
            for name, code in STORES
        ]

    def _forms(self, stores: list[Store]) -> list[SignupForm]:
        specs = [
            ("In-store tablet", "in-store-tablet", stores[0]),
            ("Website footer", "website", None),
        ]
        return [
            SignupForm.objects.get_or_create(slug=slug, defaults={"name": name, "store": store})[0]
            for name, slug, store in specs
        ]

    def _personas(self, n: int, stores, forms, rng: random.Random) -> int:
        now = timezone.now()
        start_id = (Persona.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
        batch = 5000
        created = 0
        consent_states = [ConsentState.OPTED_IN] * 5 + [
            ConsentState.OPTED_OUT,
            ConsentState.NEVER,
            ConsentState.NEVER,
            ConsentState.PENDING,
        ]
        sources = [EntrySource.MANUAL, EntrySource.SIGNUP_FORM, EntrySource.IMPORT, EntrySource.POS]
        for offset in range(0, n, batch):
            personas, purchases_spec = [], []
            for i in range(offset, min(n, offset + batch)):
                seq = start_id + i
                first, last = rng.choice(FIRST), rng.choice(LAST)
                has_phone = rng.random() < 0.9
                phone = f"+1{2012000000 + seq}" if has_phone else None
                email = f"{name_key(first).replace(' ', '')}.{name_key(last)}{seq}@example.com"
                email = email.encode("ascii", "ignore").decode() if rng.random() < 0.85 else None
                source = rng.choice(sources)
                attrs = {}
                for key, values in ATTRS:
                    if rng.random() < 0.35:
                        attrs[key] = rng.choice(values)
                archived = rng.random() < 0.03
                store = rng.choice(stores)
                personas.append(
                    Persona(
                        first_name=first,
                        last_name=last,
                        first_key=name_key(first),
                        last_key=name_key(last),
                        email=email,
                        phone=phone,
                        birthday=dt.date(
                            rng.randint(1950, 2004), rng.randint(1, 12), rng.randint(1, 28)
                        )
                        if rng.random() < 0.6
                        else None,
                        customer_id=f"POS-{seq:07d}" if rng.random() < 0.5 else None,
                        loyalty_enrolled=rng.random() < 0.7,
                        entry_source=source,
                        signup_form=rng.choice(forms)
                        if source == EntrySource.SIGNUP_FORM
                        else None,
                        favorite_store=store if rng.random() < 0.8 else None,
                        favorite_store_source=FavoriteStoreSource.PURCHASE,
                        attributes=attrs,
                        text_consent=rng.choice(consent_states) if phone else ConsentState.NEVER,
                        email_consent=rng.choice(consent_states) if email else ConsentState.NEVER,
                        voice_consent=ConsentState.NEVER,
                        push_consent=ConsentState.OPTED_IN
                        if rng.random() < 0.2
                        else ConsentState.NEVER,
                        browser_consent=ConsentState.NEVER,
                        status=PersonaStatus.ARCHIVED if archived else PersonaStatus.ACTIVE,
                        archived_reason="Duplicate profile (demo)" if archived else "",
                        archived_at=now if archived else None,
                    )
                )
                if not personas[-1].favorite_store:
                    personas[-1].favorite_store_source = ""
                purchases_spec.append(rng.randint(0, 3) if n <= 20000 or rng.random() < 0.1 else 0)
            with transaction.atomic():
                Persona.objects.bulk_create(personas, batch_size=1000)
                if personas[0].pk is None:  # backends without RETURNING: read the ids back
                    ids = list(
                        Persona.objects.filter(pk__gte=start_id + offset)
                        .order_by("pk")
                        .values_list("pk", flat=True)[: len(personas)]
                    )
                    for persona, pk in zip(personas, ids, strict=True):
                        persona.pk = pk
                index_phones(((p.pk, p.phone) for p in personas), replace=False)
                self._history(personas, purchases_spec, stores, rng, now)
                self._address_records(personas, now)
            created += len(personas)
            if n > batch:
                self.stdout.write(f"  {created}/{n}")
        return created

    def _address_records(self, personas, now) -> None:
        """Consent belongs to the address: each demo consent is its phone's or email's record
        (the personas written directly above mirror them, as the service keeps them)."""
        rows = []
        for persona in personas:
            for channel in ADDRESS_CHANNELS:
                address = address_of(channel, phone=persona.phone, email=persona.email)
                state = persona.consent(channel)
                if address and state != ConsentState.NEVER:
                    rows.append(
                        ContactConsent(
                            channel=channel,
                            digest=address_digest(channel, address),
                            state=state,
                            updated_at=now,
                        )
                    )
        ContactConsent.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)

    def _history(self, personas, purchases_spec, stores, rng, now) -> None:
        events, purchases, entries, consent_rows = [], [], [], []
        for persona, count in zip(personas, purchases_spec, strict=True):
            created = {"entry_source": {"before": None, "after": persona.entry_source}}
            # Each stated consent is in the history too, as the service records it: a line of
            # the "created" event and a consent row naming the address it belongs to.
            for channel, state in persona.consents:
                if state == ConsentState.NEVER:
                    continue
                created[f"consent:{channel}"] = {"before": ConsentState.NEVER, "after": state}
                address = address_of(channel, phone=persona.phone, email=persona.email)
                consent_rows.append(
                    ConsentChange(
                        persona=persona,
                        channel=channel,
                        before=ConsentState.NEVER,
                        after=state,
                        actor_kind="system",
                        actor_label="Demo data",
                        address=address_digest(channel, address) if address else "",
                        evidence="Demo data",
                    )
                )
            events.append(
                AuditEvent(
                    persona=persona,
                    action="created",
                    actor_kind="system",
                    actor_label="Demo data",
                    changes=created,
                )
            )
            for k in range(count):
                total = Decimal(rng.randint(800, 25000)) / 100
                earned = int(total) if persona.loyalty_enrolled else 0
                purchases.append(
                    (
                        persona,
                        Purchase(
                            persona=persona,
                            store=rng.choice(stores),
                            receipt_id=f"R{persona.pk:07d}{k}",
                            total=total,
                            purchased_at=now - dt.timedelta(days=rng.randint(1, 400)),
                            points_earned=earned,
                        ),
                    )
                )
        AuditEvent.objects.bulk_create(events, batch_size=1000)
        ConsentChange.objects.bulk_create(consent_rows, batch_size=1000)
        if purchases:
            Purchase.objects.bulk_create([p for _, p in purchases], batch_size=1000)
            balances: dict[int, int] = {}
            for persona, purchase in purchases:
                if purchase.points_earned:
                    entries.append(
                        PointsEntry(
                            persona=persona,
                            kind=PointsEntry.Kind.EARN,
                            points=purchase.points_earned,
                            reason=f"Receipt {purchase.receipt_id}",
                            purchase=purchase if purchase.pk else None,
                            actor_label="Demo data",
                        )
                    )
                    balances[persona.pk] = balances.get(persona.pk, 0) + purchase.points_earned
            PointsEntry.objects.bulk_create(entries, batch_size=1000)
            earned_events = []
            for persona in personas:
                if persona.pk in balances:
                    persona.points_balance = balances[persona.pk]
                    earned_events.append(
                        AuditEvent(
                            persona=persona,
                            action="update",
                            actor_kind="system",
                            actor_label="Demo data",
                            changes={
                                "points_balance": {"before": 0, "after": balances[persona.pk]}
                            },
                            note="Points earned on the demo purchases",
                        )
                    )
            AuditEvent.objects.bulk_create(earned_events, batch_size=1000)
            Persona.objects.bulk_update(
                [p for p in personas if p.pk in balances], ["points_balance"], batch_size=1000
            )
