"""The role table: groups hold exactly their capabilities; views enforce them on the server."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from personas.roles import PRIVACY_GROUP, ROLES, Cap, capabilities, sync_role_groups
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

# The matrix from DESIGN.md, written out independently of personas.roles.
EXPECTED = {
    "Staff": {"manage_persona"},
    "Analyst": {"manage_persona", "export_persona", "view_flows"},
    "Marketing Analyst": {"manage_persona", "export_persona", "view_flows", "edit_flows"},
    "Marketing": {"manage_persona", "export_persona", "run_import", "view_flows", "edit_flows"},
    "Operator": {
        "manage_persona",
        "merge_persona",
        "adjust_points",
        "run_import",
        "view_flows",
        "manage_settings",
    },
    "Manager": {c.value for c in Cap} - {"manage_team"},
    "Owner": {c.value for c in Cap},
}


def test_the_seven_roles_of_the_seed_exist():
    assert set(ROLES) == {
        "Staff",
        "Manager",
        "Analyst",
        "Marketing",
        "Marketing Analyst",
        "Operator",
        "Owner",
    }


@pytest.mark.parametrize("role", list(EXPECTED))
def test_each_group_holds_exactly_its_capabilities(role):
    sync_role_groups()
    group = Group.objects.get(name=role)
    assert set(group.permissions.values_list("codename", flat=True)) == EXPECTED[role]
    user = make_user(role)
    assert {c.value for c in capabilities(user)} == EXPECTED[role]


def test_sync_is_idempotent():
    sync_role_groups()
    sync_role_groups()
    assert Group.objects.filter(name__in=list(ROLES) + [PRIVACY_GROUP]).count() == 8


PAGES = [
    ("personas:list", "manage_persona"),
    ("imports:history", "run_import"),
    ("flows:list", "view_flows"),
    ("personas:settings", "manage_settings"),
]


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize(("url_name", "cap"), PAGES)
def test_each_role_reaches_exactly_what_its_row_allows(client, role, url_name, cap):
    client.force_login(make_user(role))
    response = client.get(reverse(url_name))
    assert response.status_code == (200 if cap in EXPECTED[role] else 403)


def test_a_user_without_a_role_sees_the_no_role_page_and_no_data(client):
    client.force_login(make_user(None))
    response = client.get(reverse("personas:list"))
    assert response.status_code == 403
    assert b"ask an Owner" in response.content.replace(b"Ask", b"ask")


def test_anonymous_users_are_sent_to_sign_in(client):
    response = client.get(reverse("personas:list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_staff_roles_cannot_reach_django_admin(client):
    client.force_login(make_user("Owner"))
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_superuser_sees_personas_in_admin(admin_client):
    from tests.personas.factories import PersonaFactory

    PersonaFactory(first_name="Adminvisible")
    response = admin_client.get("/admin/personas/persona/")
    assert response.status_code == 200 and b"Adminvisible" in response.content
