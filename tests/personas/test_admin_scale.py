"""Django admin at a million personas (issue #24, example 11): lists page without counting a
whole table, and searches go through the product's own indexed search, never ``UPPER(…) =`` or
``LIKE '%…%'``. Plan-level: the SQL the admin sends is checked, not its timing."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from personas.models import AuditEvent, Persona
from tests.conftest import make_user
from tests.personas.factories import PersonaFactory

pytestmark = pytest.mark.django_db

LARGE_TABLES = [
    "admin:personas_persona_changelist",
    "admin:personas_auditevent_changelist",
    "admin:personas_consentchange_changelist",
    "admin:personas_pointsentry_changelist",
    "admin:personas_purchase_changelist",
    "admin:personas_outboundmessage_changelist",
]


@pytest.fixture
def admin_client(client):
    client.force_login(make_user(None, is_staff=True, is_superuser=True))
    return client


def _sql(client, url: str, **params) -> tuple[str, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    assert response.status_code == 200
    return response.content.decode(), [q["sql"] for q in captured.captured_queries]


def _counts(queries: list[str]) -> list[str]:
    return [q for q in queries if "COUNT(" in q.upper()]


@pytest.mark.parametrize("name", LARGE_TABLES)
def test_example_11_a_large_tables_list_never_counts_the_whole_table(admin_client, name):
    for n in range(3):
        PersonaFactory(phone=f"+120255503{n:02d}")
    _page, queries = _sql(admin_client, reverse(name))
    for sql in _counts(queries):
        assert "LIMIT" in sql.upper(), sql  # a capped count over a LIMIT subquery


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("dana.kim@example.com", "dana.kim@example.com"),
        ("DANA.KIM@example.com", "dana.kim@example.com"),
        ("dana.kim@", "dana.kim@example.com"),  # the beginning of an email
        ("(202) 555-0341", "dana.kim@example.com"),  # a phone as typed
        ("0341", "dana.kim@example.com"),  # its last digits
        ("Dana Kim", "dana.kim@example.com"),
    ],
)
def test_example_11_persona_search_uses_the_products_indexed_search(admin_client, term, expected):
    PersonaFactory(
        first_name="Dana", last_name="Kim", email="dana.kim@example.com", phone="+12025550341"
    )
    PersonaFactory(first_name="Other", last_name="Person", email="o@example.org")
    page, queries = _sql(admin_client, reverse("admin:personas_persona_changelist"), q=term)
    assert expected in page and "o@example.org" not in page
    for sql in queries:
        if "personas_persona" not in sql:
            continue
        assert not re.search(r"UPPER\(\"?[\w\"\.]*email", sql), sql
        assert "LIKE '%" not in sql and "LIKE %s" not in sql.replace("'", ""), sql


def test_example_11_admin_search_keeps_blocklisted_personas_to_the_privacy_group(admin_client):
    hidden = PersonaFactory(email="hidden@example.com", phone="+12025550342")
    Persona.objects.filter(pk=hidden.pk).update(hidden=True)  # what the blocklist sets
    page, _ = _sql(
        admin_client, reverse("admin:personas_persona_changelist"), q="hidden@example.com"
    )
    assert "0 results" in page and 'class="field-email">hidden@' not in page


@pytest.mark.parametrize(("term", "hits"), [("", 2), ("{pk}", 1), ("abc", 0), ("9" * 40, 0)])
def test_history_searches_are_exact_index_lookups(admin_client, term, hits):
    a, b = PersonaFactory(), PersonaFactory()
    AuditEvent.objects.all().delete()
    for persona in (a, b):
        AuditEvent.objects.create(persona=persona, action="note", actor_kind="system")
    url = reverse("admin:personas_auditevent_changelist")
    page, queries = _sql(admin_client, url, q=term.format(pk=a.pk))
    rows = re.findall(r'<tr[^>]*>\s*<td class="action-checkbox">|<th class="field-id">', page)
    assert len(rows) == hits
    assert not any("UPPER(" in q for q in queries)
