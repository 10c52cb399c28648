from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from personas.models import (
    ADDRESS_CHANNELS,
    AuditEvent,
    ConsentChange,
    ContactConsent,
    OutboundMessage,
    Persona,
    PointsEntry,
    Purchase,
    SignupForm,
    Store,
)
from personas.normalize import name_key
from personas.services.consent import address_digest, address_of
from personas.services.phone_index import index_phones


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "a-Strong-pass-123")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store

    name = factory.Sequence(lambda n: f"Store {n}")
    code = factory.Sequence(lambda n: f"store-{n}")


class SignupFormFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SignupForm

    name = factory.Sequence(lambda n: f"Signup form {n}")
    slug = factory.Sequence(lambda n: f"form-{n}")
    store = factory.SubFactory(StoreFactory)


class PersonaFactory(factory.django.DjangoModelFactory):
    """A persona written directly (fixture data); real changes go through the service."""

    class Meta:
        model = Persona
        skip_postgeneration_save = True

    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    phone = factory.Sequence(lambda n: f"+1202555{n % 10000:04d}")
    first_key = factory.LazyAttribute(lambda o: name_key(o.first_name))
    last_key = factory.LazyAttribute(lambda o: name_key(o.last_name))

    @factory.post_generation
    def phone_index(obj, create, extracted, **kwargs):
        """Fixture phones are searchable by their digits, as the service keeps them."""
        if create:
            index_phones([(obj.pk, obj.phone)], replace=True)

    @factory.post_generation
    def address_records(obj, create, extracted, **kwargs):
        """Fixture consent is the consent of the persona's addresses (as the service keeps it):
        each stated text/voice/email consent is also its phone's or email's record."""
        if not create:
            return
        for channel in ADDRESS_CHANNELS:
            address = address_of(channel, phone=obj.phone, email=obj.email)
            state = getattr(obj, f"{channel}_consent")
            if address and state != "never":
                ContactConsent.objects.update_or_create(
                    channel=channel,
                    digest=address_digest(channel, address),
                    defaults={"state": state, "updated_at": timezone.now()},
                )


class PurchaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Purchase

    persona = factory.SubFactory(PersonaFactory)
    store = factory.SubFactory(StoreFactory)
    receipt_id = factory.Sequence(lambda n: f"RCPT-{n:06d}")
    total = Decimal("42.50")
    purchased_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=3))
    points_earned = 42


class PointsEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PointsEntry

    persona = factory.SubFactory(PersonaFactory)
    kind = PointsEntry.Kind.EARN
    points = 10


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    persona = factory.SubFactory(PersonaFactory)
    action = "update"
    actor_kind = "system"


class ConsentChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConsentChange

    persona = factory.SubFactory(PersonaFactory)
    channel = "email"
    before = "never"
    after = "opted_in"
    actor_kind = "system"


class OutboundMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OutboundMessage

    persona = factory.SubFactory(PersonaFactory)
    channel = "text"
    template = "double_opt_in"
    to = "+12025550100"
    body = "hello"
