"""Settings › Team: the Owner adds team members, changes roles, deactivates and reactivates,
sends password links; every change is recorded; there is always an active Owner."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import Client
from django.urls import reverse

from personas.models import TeamChange
from personas.roles import PRIVACY_GROUP, ROLES, sync_role_groups
from personas.services import team as team_service
from tests.concurrency import raised, run_together
from tests.conftest import make_user

pytestmark = pytest.mark.django_db
User = get_user_model()
HTMX = {"HTTP_HX_REQUEST": "true"}
PASSWORD = "a-Strong-pass-123"  # the factory's password


def roles_of(user) -> list[str]:
    return sorted(g.name for g in User.objects.get(pk=user.pk).groups.all() if g.name in ROLES)


def team_urls(pk: int) -> list[str]:
    return [
        reverse("personas:team"),
        reverse("personas:team_member", args=[pk]),
        reverse("personas:team_role", args=[pk]) + "?role=Manager",
        reverse("personas:team_deactivate", args=[pk]),
        reverse("personas:team_reactivate", args=[pk]),
        reverse("personas:team_reset", args=[pk]),
    ]


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def follow_text(client, response) -> str:
    """The page a redirect leads to, with its messages."""
    assert response.status_code == 302, response.status_code
    return client.get(response["Location"]).content.decode()


def text_of(response) -> str:
    """The page's words, without markup."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def link_in(message) -> str:
    [link] = re.findall(r"https?://\S+", message.body)
    return link


# ---------------------------------------------------------------------------------------------
# Who may open the page


@pytest.mark.parametrize("role", [None, *ROLES])
def test_only_the_owner_reaches_the_team_pages(client, role):
    member = make_user("Staff", email="bo@example.com")
    client.force_login(make_user(role))
    for url in team_urls(member.pk):
        status = client.get(url).status_code
        if role == "Owner":  # reactivating an active member: sent back with a message
            assert status == (302 if "reactivate" in url else 200), (url, status)
        else:
            assert status == 403, (url, role, status)  # no role: the "ask an Owner" page
        if role != "Owner":
            assert client.post(url, {"role": "Owner"}).status_code == 403
    assert roles_of(member) == ["Staff"] and User.objects.get(pk=member.pk).is_active
    if role != "Owner":
        assert len(mail.outbox) == 0 and not TeamChange.objects.exists()


def test_anonymous_visitors_are_sent_to_sign_in(client):
    member = make_user("Staff")
    for url in team_urls(member.pk):
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_settings_shows_the_team_link_to_the_owner_only(client):
    client.force_login(make_user("Manager"))
    assert reverse("personas:team") not in client.get(reverse("personas:settings")).content.decode()
    client.force_login(make_user("Owner"))
    assert reverse("personas:team") in client.get(reverse("personas:settings")).content.decode()


def test_the_service_refuses_an_actor_who_is_not_an_owner():
    manager = make_user("Manager")
    staff = make_user("Staff")
    with pytest.raises(PermissionDenied):
        team_service.change_role(user=staff, role="Owner", actor=manager)
    with pytest.raises(PermissionDenied):
        team_service.change_role(user=manager, role="Owner", actor=manager)
    assert roles_of(manager) == ["Manager"] and roles_of(staff) == ["Staff"]


# ---------------------------------------------------------------------------------------------
# The list


def test_the_list_shows_members_roles_status_and_last_sign_in_in_words(owner_client):
    bo = make_user("Staff", username="bo", email="bo@example.com")
    bo.last_login = dt.datetime(2026, 11, 30, 20, 4, tzinfo=dt.UTC)  # 3:04 p.m. in New York
    bo.save()
    make_user("Manager", username="cy", is_active=False)
    make_user(None, username="dee")
    body = owner_client.get(reverse("personas:team")).content.decode()
    assert "4 team members" in body
    assert "Nov 30, 2026, 3:04 p.m." in body and "2026-11-30" not in body
    assert "bo@example.com" in body and "Deactivated" in body and "No role" in body
    assert "It's just you so far" not in body


def test_an_owner_alone_sees_what_to_do(owner_client):
    body = owner_client.get(reverse("personas:team")).content.decode()
    assert "1 team member" in body and "1 team members" not in body
    assert "It's just you so far" in body and "Add your colleagues" in body


def test_the_list_does_not_query_per_member(owner_client, django_assert_max_num_queries):
    sync_role_groups()
    privacy, _ = Group.objects.get_or_create(name=PRIVACY_GROUP)
    owner = owner_client.user
    for n in range(20):
        user = make_user(list(ROLES)[n % len(ROLES)], email=f"m{n}@example.com")
        if n % 5 == 0:
            user.groups.add(privacy)
        team_service.change_role(user=user, role="Staff", actor=owner)
    with django_assert_max_num_queries(10):  # 8 today: session, user, permissions, 3 lists
        response = owner_client.get(reverse("personas:team"))
    assert "21 team members" in response.content.decode()


# ---------------------------------------------------------------------------------------------
# Adding a team member


def test_adding_a_member_emails_a_link_that_sets_a_password_and_signs_in(owner_client):
    response = owner_client.post(
        reverse("personas:team"), {"email": " Bo@Example.com ", "role": "Staff"}
    )
    assert "Bo@example.com added as Staff" in follow_text(owner_client, response)
    bo = User.objects.get(email__iexact="bo@example.com")
    assert bo.username == "bo@example.com" and not bo.has_usable_password() and bo.is_active
    assert roles_of(bo) == ["Staff"]
    change = TeamChange.objects.get(target=bo)
    assert (change.kind, change.actor, change.after) == ("invited", owner_client.user, "Staff")

    [message] = mail.outbox
    assert message.to == ["Bo@example.com"] and "as Staff" in message.body
    visitor = Client()
    form_page = visitor.get(link_in(message), follow=True)
    assert form_page.status_code == 200 and b"Set your password" in form_page.content
    done = visitor.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "Orchid-lantern-42", "new_password2": "Orchid-lantern-42"},
    )
    assert done.status_code == 302 and done["Location"] == reverse("login")
    signed_in = visitor.post(
        reverse("login"), {"username": "bo@example.com", "password": "Orchid-lantern-42"}
    )
    assert signed_in.status_code == 302
    assert visitor.get(reverse("personas:list")).status_code == 200
    # The link works once.
    again = Client().get(link_in(message), follow=True)
    assert b"doesn't work any more" in again.content


@pytest.mark.parametrize("typed", ["bo@example.com", "BO@EXAMPLE.COM", "bo@example.com "])
def test_an_email_already_used_is_refused_with_a_message(owner_client, typed):
    make_user("Staff", username="bo", email="bo@example.com")
    response = owner_client.post(reverse("personas:team"), {"email": typed, "role": "Manager"})
    assert response.status_code == 200
    assert "bo@example.com is already on the team as bo" in response.content.decode()
    assert User.objects.filter(email__iexact="bo@example.com").count() == 1
    assert len(mail.outbox) == 0 and not TeamChange.objects.exists()


def test_an_email_used_as_a_username_or_by_a_deactivated_member_is_refused(owner_client):
    make_user("Staff", username="cy@example.com", is_active=False)
    response = owner_client.post(
        reverse("personas:team"), {"email": "cy@example.com", "role": "Staff"}
    )
    assert "deactivated. Reactivate them instead" in response.content.decode()
    assert User.objects.count() == 2 and len(mail.outbox) == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"email": "bo@example.com", "role": "Superuser"}, "That is not a role"),
        ({"email": "bo@example.com", "role": ""}, "Choose a role"),
        ({"email": "bo@example.com"}, "Choose a role"),
        ({"email": "not an email", "role": "Staff"}, "is not an email address"),
        ({"email": "", "role": "Staff"}, "This field is required"),
        ({"email": "x" * 200 + "@example.com", "role": "Staff"}, "too long"),
    ],
)
def test_bad_input_when_adding_is_refused_with_a_message(owner_client, body, says):
    response = owner_client.post(reverse("personas:team"), body)
    assert response.status_code == 200 and says in response.content.decode()
    assert User.objects.count() == 1 and len(mail.outbox) == 0


def test_the_service_refuses_a_role_that_is_not_in_the_table(owner_user):
    with pytest.raises(ValidationError) as exc:
        team_service.invite(email="bo@example.com", role="Superuser", actor=owner_user)
    assert "“Superuser” is not a role" in " ".join(exc.value.messages)
    assert not User.objects.filter(email="bo@example.com").exists()


# ---------------------------------------------------------------------------------------------
# Changing a role


def test_changing_a_role_moves_the_group_keeps_privacy_support_and_records_it(owner_client):
    owner = owner_client.user
    bo = make_user("Staff", username="bo")
    sync_role_groups()
    bo.groups.add(Group.objects.get(name=PRIVACY_GROUP))
    url = reverse("personas:team_role", args=[bo.pk])

    confirm = owner_client.get(url, {"role": "Manager"}).content.decode()
    assert "Change bo to Manager?" in confirm and "goes from <strong>Staff</strong>" in confirm
    assert "erase customer data" in confirm  # what the new role can also do
    assert roles_of(bo) == ["Staff"]  # the confirmation changes nothing

    response = owner_client.post(url, {"role": "Manager"})
    assert "bo is now Manager" in follow_text(owner_client, response)
    assert roles_of(bo) == ["Manager"]
    assert User.objects.get(pk=bo.pk).groups.filter(name=PRIVACY_GROUP).exists()
    change = TeamChange.objects.get()
    assert (change.kind, change.actor, change.target) == ("role", owner, bo)
    assert (change.before, change.after) == ("Staff", "Manager")

    TeamChange.objects.update(created_at=dt.datetime(2026, 11, 30, 20, 4, tzinfo=dt.UTC))
    body = text_of(owner_client.get(reverse("personas:team")))
    assert f"Owner {owner.username} changed bo from Staff to Manager · Nov 30, 3:04 p.m." in body


def test_a_member_with_two_roles_ends_with_exactly_one(owner_user):
    bo = make_user("Staff")
    bo.groups.add(Group.objects.get(name="Operator"))
    change = team_service.change_role(user=bo, role="Analyst", actor=owner_user)
    assert roles_of(bo) == ["Analyst"] and change.before == "Staff, Operator"


def test_the_same_role_again_changes_and_records_nothing(owner_client):
    bo = make_user("Staff")
    assert team_service.change_role(user=bo, role="Staff", actor=owner_client.user) is None
    response = owner_client.post(reverse("personas:team_role", args=[bo.pk]), {"role": "Staff"})
    assert response.status_code == 302 and not TeamChange.objects.exists()


@pytest.mark.parametrize("value", ["Admin", "superuser", "", "owner", "\x00", "x" * 5000])
def test_a_bad_role_value_is_refused_with_a_message(owner_client, value):
    bo = make_user("Staff")
    url = reverse("personas:team_role", args=[bo.pk])
    for method in (owner_client.get, owner_client.post):
        page = follow_text(owner_client, method(url, {"role": value}))
        assert "is not a role" in page or "Choose a role" in page
    assert roles_of(bo) == ["Staff"] and not TeamChange.objects.exists()


def test_superusers_are_left_to_django_admin(owner_client):
    root = make_user(None, username="root", is_superuser=True, is_staff=True)
    response = owner_client.post(reverse("personas:team_deactivate", args=[root.pk]))
    assert "managed in Django admin" in follow_text(owner_client, response)
    assert User.objects.get(pk=root.pk).is_active


def test_an_unknown_member_is_not_found(owner_client):
    assert owner_client.get(reverse("personas:team_member", args=[999999])).status_code == 404
    assert owner_client.post(reverse("personas:team_deactivate", args=[999999])).status_code == 404


# ---------------------------------------------------------------------------------------------
# Deactivating and reactivating


def test_deactivating_signs_the_member_out_now_and_until_reactivated(owner_client):
    bo = make_user("Staff", username="bo")
    theirs = Client()
    theirs.post(reverse("login"), {"username": "bo", "password": PASSWORD})
    assert theirs.get(reverse("personas:list")).status_code == 200
    other = make_user("Staff")
    others = Client()
    others.force_login(other)

    confirm = owner_client.get(reverse("personas:team_deactivate", args=[bo.pk]), **HTMX)
    assert "Deactivate bo?" in confirm.content.decode()
    assert "They are signed out now and can't sign in until reactivated." in (
        confirm.content.decode()
    )
    response = owner_client.post(reverse("personas:team_deactivate", args=[bo.pk]))
    assert "bo is deactivated" in follow_text(owner_client, response)

    after = theirs.get(reverse("personas:list"))
    assert after.status_code == 302 and after["Location"].startswith(reverse("login"))
    assert not [
        s for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(bo.pk)
    ]
    assert others.get(reverse("personas:list")).status_code == 200  # nobody else signed out
    again = Client()
    again.post(reverse("login"), {"username": "bo", "password": PASSWORD})
    assert again.get(reverse("personas:list")).status_code == 302
    assert roles_of(bo) == ["Staff"]
    assert TeamChange.objects.get().kind == "deactivated"

    response = owner_client.post(reverse("personas:team_reactivate", args=[bo.pk]))
    assert "bo is active again" in follow_text(owner_client, response)
    again.post(reverse("login"), {"username": "bo", "password": PASSWORD})
    assert again.get(reverse("personas:list")).status_code == 200
    assert list(TeamChange.objects.values_list("kind", flat=True)) == ["reactivated", "deactivated"]


def test_deactivating_twice_or_reactivating_an_active_member_says_so(owner_client):
    bo = make_user("Staff", username="bo")
    response = owner_client.post(reverse("personas:team_reactivate", args=[bo.pk]))
    assert "bo is already active" in follow_text(owner_client, response)
    owner_client.post(reverse("personas:team_deactivate", args=[bo.pk]))
    response = owner_client.post(reverse("personas:team_deactivate", args=[bo.pk]))
    assert "bo is already deactivated" in follow_text(owner_client, response)
    assert TeamChange.objects.count() == 1


# ---------------------------------------------------------------------------------------------
# There is always an active Owner


def _owners(n_active: int, n_inactive: int = 0) -> list:
    return [make_user("Owner") for _ in range(n_active)] + [
        make_user("Owner", is_active=False) for _ in range(n_inactive)
    ]


@pytest.mark.parametrize(
    ("active", "inactive", "target", "action", "allowed"),
    [
        (1, 0, "self", "demote", False),
        (1, 0, "self", "deactivate", False),
        (1, 1, "self", "demote", False),  # a deactivated Owner does not count
        (1, 1, "self", "deactivate", False),
        (1, 1, "inactive owner", "demote", True),  # not the active one
        (2, 0, "other owner", "demote", True),
        (2, 0, "other owner", "deactivate", True),
        (2, 0, "self", "demote", True),
        (2, 0, "self", "deactivate", True),
        (1, 0, "self", "make owner", True),  # nothing is lost: no change at all
    ],
)
def test_there_is_always_an_active_owner(client, active, inactive, target, action, allowed):
    owners = _owners(active, inactive)
    me = owners[0]
    client.force_login(me)
    who = {
        "self": me,
        "other owner": owners[1] if active > 1 else None,
        "inactive owner": owners[-1],
    }[target]
    if action == "deactivate":
        response = client.post(reverse("personas:team_deactivate", args=[who.pk]))
    else:
        role = "Owner" if action == "make owner" else "Manager"
        response = client.post(reverse("personas:team_role", args=[who.pk]), {"role": role})
    assert response.status_code == 302
    remaining = User.objects.filter(is_active=True, groups__name="Owner").count()
    assert remaining >= 1
    if allowed:
        assert remaining == active - (
            action in ("demote", "deactivate") and target != "inactive owner"
        )
    else:
        page = client.get(response["Location"]).content.decode()
        assert "You are the only active Owner" in page
        assert remaining == active and not TeamChange.objects.exists()


def test_the_last_owner_is_protected_from_anyone_who_can_manage_the_team():
    owner = make_user("Owner", username="jane")
    root = make_user(None, username="root", is_superuser=True)
    for call in (
        lambda: team_service.change_role(user=owner, role="Staff", actor=root),
        lambda: team_service.deactivate(user=owner, actor=root),
    ):
        with pytest.raises(ValidationError) as exc:
            call()
        assert "jane is the only active Owner" in exc.value.messages[0]
    assert roles_of(owner) == ["Owner"] and User.objects.get(pk=owner.pk).is_active


def test_a_refusal_in_the_slide_out_reloads_the_member_page_with_the_reason(owner_client):
    me = owner_client.user
    response = owner_client.get(reverse("personas:team_deactivate", args=[me.pk]), **HTMX)
    assert response["HX-Redirect"] == reverse("personas:team_member", args=[me.pk])
    page = owner_client.get(response["HX-Redirect"]).content.decode()
    assert "You are the only active Owner" in page


def test_demoting_yourself_lands_on_a_page_you_can_still_open(client):
    me, _other = _owners(2)
    client.force_login(me)
    response = client.post(reverse("personas:team_role", args=[me.pk]), {"role": "Staff"})
    assert response["Location"] == reverse("personas:list")
    assert client.get(response["Location"]).status_code == 200
    assert client.get(reverse("personas:team")).status_code == 403


def test_deactivating_yourself_signs_you_out(client):
    me, _other = _owners(2)
    client.force_login(me)
    response = client.post(reverse("personas:team_deactivate", args=[me.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert client.get(reverse("personas:list")).status_code == 302


# ---------------------------------------------------------------------------------------------
# Password links


def test_sending_a_password_link_emails_a_link_that_sets_a_new_password(owner_client):
    bo = make_user("Staff", username="bo", email="bo@example.com")
    confirm = owner_client.get(reverse("personas:team_reset", args=[bo.pk])).content.decode()
    assert "Send bo a password link?" in confirm and "bo@example.com" in confirm
    response = owner_client.post(reverse("personas:team_reset", args=[bo.pk]))
    assert "We emailed bo a link" in follow_text(owner_client, response)
    [message] = mail.outbox
    assert message.to == ["bo@example.com"]
    visitor = Client()
    page = visitor.get(link_in(message), follow=True)
    visitor.post(
        page.redirect_chain[-1][0],
        {"new_password1": "Orchid-lantern-42", "new_password2": "Orchid-lantern-42"},
    )
    assert User.objects.get(pk=bo.pk).check_password("Orchid-lantern-42")
    assert TeamChange.objects.get().kind == "reset_sent"


def test_no_password_link_for_a_deactivated_member_or_one_without_email(owner_client):
    bo = make_user("Staff", username="bo", email="bo@example.com", is_active=False)
    cy = make_user("Staff", username="cy", email="")
    for who, says in ((bo, "bo is deactivated"), (cy, "cy has no email address")):
        response = owner_client.post(reverse("personas:team_reset", args=[who.pk]))
        assert says in follow_text(owner_client, response)
    assert len(mail.outbox) == 0 and not TeamChange.objects.exists()


def test_a_link_stops_working_when_the_member_is_deactivated(owner_client):
    owner_client.post(reverse("personas:team"), {"email": "bo@example.com", "role": "Staff"})
    bo = User.objects.get(email="bo@example.com")
    team_service.deactivate(user=bo, actor=owner_client.user)
    page = Client().get(link_in(mail.outbox[0]), follow=True)
    assert b"doesn't work any more" in page.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks need PostgreSQL (run with DATABASE_URL)"
)
@pytest.mark.parametrize("action", ["demote", "deactivate"])
def test_two_owners_removing_each_other_at_once_leave_one_owner(action):
    jane, bo = make_user("Owner", username="jane"), make_user("Owner", username="bo")

    def remove(target, actor):
        def go():
            if action == "demote":
                return team_service.change_role(user=target, role="Staff", actor=actor)
            return team_service.deactivate(user=target, actor=actor)

        return go

    outcomes = run_together(remove(bo, jane), remove(jane, bo))
    refused = raised(outcomes)
    assert len(refused) == 1 and isinstance(refused[0], ValidationError), outcomes
    assert User.objects.filter(is_active=True, groups__name="Owner").count() == 1
    assert TeamChange.objects.count() == 1


def test_a_member_who_never_set_a_password_gets_the_invitation_again(owner_client):
    owner_client.post(reverse("personas:team"), {"email": "bo@example.com", "role": "Analyst"})
    bo = User.objects.get(email="bo@example.com")
    confirm = owner_client.get(reverse("personas:team_reset", args=[bo.pk])).content.decode()
    assert "this sends their invitation again" in confirm
    owner_client.post(reverse("personas:team_reset", args=[bo.pk]))
    first, second = mail.outbox
    assert "as Analyst" in second.body and link_in(second) != ""
    page = Client().get(link_in(second), follow=True)
    assert b"Set your password" in page.content


def test_a_member_added_by_email_is_not_named_by_their_address_twice(owner_client):
    owner_client.post(reverse("personas:team"), {"email": "newhire@example.com", "role": "Staff"})
    again = owner_client.post(
        reverse("personas:team"), {"email": "NewHire@example.com", "role": "Staff"}
    ).content.decode()
    assert "newhire@example.com is already on the team. Change their role instead." in again
