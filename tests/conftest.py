from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import Group
from hypothesis import settings as hypothesis_settings

from personas.roles import ROLES, sync_role_groups
from tests.personas.factories import UserFactory

ROLE_NAMES = list(ROLES)

# Property tests explore new random examples on every local run; CI (.ci/run sets
# HYPOTHESIS_PROFILE=ci) draws the same examples each time, so a landing never depends on the
# luck of the draw. A failure found locally prints the example to keep as a regular test.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _settings_for_tests(settings):
    settings.SMS_BACKEND = "personas.messaging.backends.LocmemBackend"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.AXES_ENABLED = False
    # No quiet hours unless a test sets them with its own clock: otherwise a marketing text
    # queued by a test run at night is deferred to the morning and the outcome depends on
    # the hour the suite runs.
    settings.PERSONAS_QUIET_HOURS = None
    from personas.messaging.backends import LocmemBackend

    LocmemBackend.outbox.clear()
    from django.core.cache import cache

    cache.clear()  # rate-limit counters never leak from one test into another


@pytest.fixture
def role_groups(db):
    sync_role_groups()
    return {name: Group.objects.get(name=name) for name in ROLE_NAMES}


def make_user(role: str | None, **kwargs):
    user = UserFactory(**kwargs)
    if role:
        sync_role_groups()
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def user_for_role(db):
    return make_user


@pytest.fixture
def client_for(client, db):
    """client_for("Owner") → a test client signed in with that role (None: no role)."""

    def _client(role: str | None):
        user = make_user(role)
        client.force_login(user)
        client.user = user
        return client

    return _client


@pytest.fixture
def staff_user(db):
    return make_user("Staff")


@pytest.fixture
def owner_user(db):
    return make_user("Owner")


@pytest.fixture
def staff_client(client_for):
    return client_for("Staff")


@pytest.fixture
def owner_client(client_for):
    return client_for("Owner")
