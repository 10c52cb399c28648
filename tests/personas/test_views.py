"""Personas staff pages: every endpoint, plain and htmx, and what each role may do."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from personas.models import AuditEvent, Persona
from tests.personas.factories import (
    PersonaFactory,
    PointsEntryFactory,
    PurchaseFactory,
    SignupFormFactory,
    StoreFactory,
)

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_list_shows_key_details(staff_client):
    PersonaFactory(first_name="Avery", last_name="Stone", phone="+14155550147", points_balance=120)
    response = staff_client.get(reverse("personas:list"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Avery Stone" in body and "(415) 555-0147" in body and "120" in body


def test_list_query_count_does_not_grow_with_rows(staff_client, django_assert_max_num_queries):
    PersonaFactory.create_batch(30, favorite_store=StoreFactory())
    with django_assert_max_num_queries(12):
        staff_client.get(reverse("personas:list"))


def test_htmx_list_request_renders_only_the_results_fragment(staff_client):
    PersonaFactory(first_name="Blake")
    response = staff_client.get(reverse("personas:list"), {"q": "bla"}, **HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="results"')
    assert "<html" not in body and "Blake" in body


def test_exact_identifier_hit_goes_straight_to_the_persona(staff_client):
    persona = PersonaFactory(email="one@example.com")
    response = staff_client.get(reverse("personas:list"), {"q": "ONE@example.com"})
    assert response.status_code == 302
    assert response["Location"] == persona.get_absolute_url()


def test_search_text_never_rides_in_a_url(client_for, settings):
    """Searches post; every address the product hands back (redirect, htmx push, paging and
    export links) carries a session token instead of the phone, name or email typed."""
    settings.PERSONAS_PAGE_SIZE = 2
    for i in range(3):
        PersonaFactory(first_name="Marlowe", last_name=f"Quist{i}", phone=f"+1202555017{i}")
    client = client_for("Owner")
    url = reverse("personas:list")
    response = client.post(url, {"q": "marlowe quist", "sort": "name"})
    assert response.status_code == 302
    address = response["Location"]
    assert "s=" in address and "marlowe" not in address.lower() and "quist" not in address.lower()
    page = client.get(address)
    body = page.content.decode()
    assert 'value="marlowe quist"' in body and "Marlowe Quist0" in body
    next_query = page.context["next_query"]
    assert "s=" in next_query and "quist" not in next_query.lower()
    assert re.search(r"cursor=\d+(&|$)", next_query)  # a page cursor is an id, not a name
    page_two = client.get(f"{url}?{next_query}")
    assert [p.last_name for p in page_two.context["page"].personas] == ["Quist2"]
    assert (
        f"export.csv?{page.context['base_query']}".replace("&", "&amp;") in body
    )  # export keeps the search too
    export = client.get(f"{reverse('personas:export')}?{page.context['base_query']}")
    assert b"".join(export.streaming_content).count(b"Marlowe") == 3
    htmx = client.post(url, {"q": "(202) 555-0171"}, **HTMX)
    assert "s=" in htmx["HX-Replace-Url"] and "555" not in htmx["HX-Replace-Url"]
    # After a search as you type, the export link follows the search (swapped out of band).
    token = htmx["HX-Replace-Url"].split("s=")[1]
    assert f'id="export-link" href="/personas/export.csv?s={token}"' in htmx.content.decode()
    # A token from another session, or one long dropped, is a clear message, not someone
    # else's search.
    stranger = client_for("Staff")
    expired = stranger.get(address, follow=True).content.decode()
    assert "That search has expired" in expired and "Marlowe" not in expired.split("<table")[0]


def test_a_phone_typed_opens_the_profile_but_back_returns_to_the_list(staff_client):
    persona = PersonaFactory(phone="+12025550199")
    url = reverse("personas:list")
    submitted = staff_client.post(url, {"q": "(202) 555-0199"})
    assert submitted["Location"] == persona.get_absolute_url()
    # The address the list had for that search (Back, reload) shows the list: no bounce.
    pushed = staff_client.post(url, {"q": "(202) 555-0199"}, **HTMX)["HX-Replace-Url"]
    again = staff_client.get(pushed)
    assert again.status_code == 200 and [p.pk for p in again.context["page"].personas] == [
        persona.pk
    ]


def test_the_profiles_way_back_returns_to_the_same_search_and_page(client_for, settings):
    settings.PERSONAS_PAGE_SIZE = 1
    personas = PersonaFactory.create_batch(3, first_name="Marlowe")
    client = client_for("Staff")
    url = reverse("personas:list")
    detail = reverse("personas:detail", args=[personas[0].pk])
    assert f'<a href="{url}">← Personas</a>' in client.get(detail).content.decode()
    listed = client.get(client.post(url, {"q": "marlowe", "sort": "name"})["Location"])
    page_two = f"{url}?{listed.context['next_query']}"
    client.get(page_two, **HTMX)  # paging as htmx does it
    back = client.get(detail).content.decode()
    assert f'<a href="{page_two.replace("&", "&amp;")}">← Personas</a>' in back
    assert "s=" in page_two and "marlowe" not in page_two.lower()  # a token, never the text


def test_back_to_an_address_htmx_pushed_gets_the_whole_page(client_for, settings):
    """htmx keeps no history cache (no personal data in localStorage), so Back or Forward to
    a page of results asks the server with HX-History-Restore-Request: that must be the whole
    page (header, search box, results), never the results fragment alone."""
    settings.PERSONAS_PAGE_SIZE = 1
    PersonaFactory.create_batch(2, first_name="Marlowe")
    PersonaFactory(first_name="Tamsin", status="archived")
    client = client_for("Owner")
    restore = {**HTMX, "HTTP_HX_HISTORY_RESTORE_REQUEST": "true"}
    url = reverse("personas:list")
    next_query = client.get(url, {"sort": "name"}).context["next_query"]
    paging = client.get(f"{url}?{next_query}", **HTMX)
    assert paging["HX-Push-Url"].endswith(next_query)  # a page of results: a step for Back
    pages = {
        url: "Marlowe",
        f"{url}?{next_query}": "Marlowe",
        reverse("personas:archived"): "Tamsin",
    }
    for address, name in pages.items():
        body = client.get(address, **restore).content.decode()
        assert "<html" in body and 'name="q"' in body and name in body, address
        assert body.count('id="export-link"') <= 1


def test_archived_merge_and_flow_test_searches_post_too(client_for):
    from flows.models import Flow

    client = client_for("Owner")
    archived = PersonaFactory(first_name="Tamsin", phone="+12025550190", status="archived")
    response = client.post(reverse("personas:archived"), {"q": "tamsin"})
    assert response.status_code == 302 and "tamsin" not in response["Location"].lower()
    assert "Tamsin" in client.get(response["Location"]).content.decode()
    pushed = client.post(reverse("personas:archived"), {"q": "tamsin"}, **HTMX)["HX-Replace-Url"]
    assert "s=" in pushed and "tamsin" not in pushed.lower()
    active = PersonaFactory(first_name="Tamsin", phone="+12025550191")
    other = PersonaFactory(first_name="Tamsin", phone="+12025550192")
    drawer = client.post(reverse("personas:merge", args=[active.pk]), {"q": "tamsin"})
    assert f"?other={other.pk}" in drawer.content.decode()
    flow = Flow.objects.create(name="T", definition={}, trigger={"type": "manual"})
    test_url = reverse("flows:test", args=[flow.pk])
    test_drawer = client.post(test_url, {"q": "tamsin"})
    assert f"?persona={active.pk}" in test_drawer.content.decode()
    merge_url = reverse("personas:merge", args=[active.pk])
    for url in (merge_url, test_url):  # both drawers' search forms post
        assert (
            f'<form method="post" action="{url}" hx-post="{url}"'
            in client.get(url).content.decode()
        )
    assert archived.pk  # archived personas stay out of the merge and test searches


def test_keyset_pagination_walks_every_persona_once(staff_client, settings):
    settings.PERSONAS_PAGE_SIZE = 4
    ids = {p.pk for p in PersonaFactory.create_batch(10)}
    seen, query = [], {}
    for _ in range(5):
        response = staff_client.get(reverse("personas:list"), query)
        seen += [p.pk for p in response.context["page"].personas]
        cursor = response.context["page"].next_cursor
        if not cursor:
            break
        query = {"cursor": cursor}
    assert sorted(seen) == sorted(ids)


@pytest.mark.parametrize("sort", ["-created", "created", "name", "-points"])
def test_every_sort_paginates_without_gaps(staff_client, settings, sort):
    settings.PERSONAS_PAGE_SIZE = 3
    for i in range(8):
        PersonaFactory(last_name=["Ames", "Baker"][i % 2], points_balance=i % 3)
    seen, query = [], {"sort": sort}
    for _ in range(6):
        page = staff_client.get(reverse("personas:list"), query).context["page"]
        seen += [p.pk for p in page.personas]
        if not page.next_cursor:
            break
        query = {"sort": sort, "cursor": page.next_cursor}
    assert len(seen) == len(set(seen)) == 8


def test_filters_combine_with_search(staff_client):
    store = StoreFactory()
    match = PersonaFactory(
        first_name="Casey",
        loyalty_enrolled=True,
        email_consent="opted_in",
        favorite_store=store,
        attributes={"tier": "gold"},
        entry_source="import",
    )
    PersonaFactory(first_name="Casey", loyalty_enrolled=False)
    PersonaFactory(first_name="Casey", loyalty_enrolled=True, attributes={"tier": "silver"})
    response = staff_client.get(
        reverse("personas:list"),
        {
            "q": "casey",
            "loyalty": "yes",
            "channel": "email",
            "consent": "opted_in",
            "store": store.pk,
            "attr_key": "tier",
            "attr_value": "gold",
            "entry_source": "import",
        },
    )
    assert [p.pk for p in response.context["page"].personas] == [match.pk]


def test_bad_filter_values_never_500(staff_client):
    response = staff_client.get(
        reverse("personas:list"),
        {"store": "x", "created_from": "yesterday", "cursor": "%%%", "sort": "drop table"},
    )
    assert response.status_code == 200


def test_create_through_the_drawer_creates_and_audits(
    staff_client, django_capture_on_commit_callbacks
):
    form = SignupFormFactory()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("personas:create"),
            {
                "first_name": "Dana",
                "last_name": "Reyes",
                "phone": "(415) 555-0176",
                "email": "Dana@Example.com",
                "signup_form": form.pk,
                "loyalty": "on",
                "send_double_opt_in": "on",
            },
            **HTMX,
        )
    assert response.status_code == 200
    persona = Persona.objects.get(email="dana@example.com")
    assert response["HX-Redirect"] == persona.get_absolute_url()  # lands on the new profile
    assert persona.phone == "+14155550176"
    assert persona.entry_source == "signup_form" and persona.signup_form == form
    assert persona.loyalty_enrolled and persona.text_consent == "pending"
    event = AuditEvent.objects.get(persona=persona)
    assert event.action == "created" and event.actor_user == staff_client.user
    assert persona.messages.get().status == "sent"


def test_create_with_invalid_data_shows_errors_in_the_drawer(staff_client):
    response = staff_client.post(
        reverse("personas:create"), {"first_name": "E", "phone": "12", "email": "nope"}, **HTMX
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert 'role="dialog"' in body
    assert "too short: add the area code" in body and "Enter a valid email address." in body
    assert not Persona.objects.exists()


def test_create_duplicate_links_to_the_existing_persona(staff_client):
    existing = PersonaFactory(phone="+14155550122")
    response = staff_client.post(
        reverse("personas:create"), {"first_name": "F", "phone": "415-555-0122"}, **HTMX
    )
    body = response.content.decode()
    assert existing.get_absolute_url() in body
    assert Persona.objects.count() == 1


def test_create_page_works_without_javascript(staff_client):
    response = staff_client.get(reverse("personas:create"))
    assert response.status_code == 200
    assert "<html" in response.content.decode()
    response = staff_client.post(reverse("personas:create"), {"first_name": "Gray"})
    persona = Persona.objects.get(first_name="Gray")
    assert response.status_code == 302 and response["Location"] == persona.get_absolute_url()


@pytest.mark.parametrize("tab", ["general", "points", "purchases", "activity"])
def test_detail_tabs_render(staff_client, tab):
    persona = PersonaFactory(attributes={"vip": True})
    PurchaseFactory(persona=persona, receipt_id="R-77")
    PointsEntryFactory(persona=persona, points=42)
    url = (
        reverse("personas:detail", args=[persona.pk])
        if tab == "general"
        else reverse("personas:detail_tab", args=[persona.pk, tab])
    )
    response = staff_client.get(url)
    assert response.status_code == 200


def test_push_toggle_is_read_only_with_the_reason(staff_client):
    persona = PersonaFactory()
    body = staff_client.get(persona.get_absolute_url()).content.decode()
    assert "Only the customer can opt in to push, from their app." in body
    response = staff_client.post(
        reverse("personas:consent", args=[persona.pk, "push"]), {"value": "on"}
    )
    assert response.status_code == 302
    persona.refresh_from_db()
    assert persona.push_consent == "never"


def test_edit_traits_adds_changes_and_deletes_attributes(staff_client):
    persona = PersonaFactory(first_name="Hal", attributes={"tier": "silver", "temp": 1})
    page = staff_client.get(reverse("personas:traits", args=[persona.pk]))
    seen = page.context["form"]["seen"].value()
    response = staff_client.post(
        reverse("personas:traits", args=[persona.pk]),
        {
            "first_name": "Hal",
            "last_name": persona.last_name,
            "phone": persona.phone,
            "email": persona.email,
            "seen": seen,
            "attr_key": ["tier", "vip", "since"],
            "attr_type": ["text", "boolean", "date"],
            "attr_value": ["gold", "true", "2024-05-01"],
        },
        **HTMX,
    )
    assert response.status_code == 200 and response.headers.get("HX-Refresh") == "true"
    persona.refresh_from_db()
    assert persona.attributes == {"tier": "gold", "vip": True, "since": "2024-05-01"}
    event = AuditEvent.objects.get(persona=persona)
    assert set(event.changes) == {"attr:tier", "attr:vip", "attr:since", "attr:temp"}


def test_edit_traits_refuses_bad_typed_values_and_changes_nothing(staff_client):
    persona = PersonaFactory(attributes={})
    response = staff_client.post(
        reverse("personas:traits", args=[persona.pk]),
        {"attr_key": ["n"], "attr_type": ["number"], "attr_value": ["many"]},
        **HTMX,
    )
    assert "enter a number" in response.content.decode()
    persona.refresh_from_db()
    assert persona.attributes == {}


def test_archive_and_unarchive(staff_client):
    persona = PersonaFactory(phone="+14155550144")
    staff_client.post(reverse("personas:archive", args=[persona.pk]), {"reason": "Duplicate"})
    persona.refresh_from_db()
    assert persona.status == "archived" and persona.archived_reason == "Duplicate"
    listed = staff_client.get(reverse("personas:archived")).content.decode()
    assert "(415) 555-0144" in listed
    search = staff_client.get(reverse("personas:list"), {"q": "4155550144"}, **HTMX)
    assert "No active persona matches" in search.content.decode()
    staff_client.post(reverse("personas:unarchive", args=[persona.pk]))
    persona.refresh_from_db()
    assert persona.status == "active"
    assert list(AuditEvent.objects.filter(persona=persona).values_list("action", flat=True)) == [
        "unarchived",
        "archived",
    ]


def test_archived_view_shows_email_when_there_is_no_phone(staff_client):
    PersonaFactory(phone=None, email="only@example.com", status="archived")
    assert "only@example.com" in staff_client.get(reverse("personas:archived")).content.decode()


def test_unarchive_conflict_points_to_merge(staff_client):
    archived = PersonaFactory(phone="+14155550199", status="archived")
    PersonaFactory(phone="+14155550199")
    response = staff_client.post(reverse("personas:unarchive", args=[archived.pk]), follow=True)
    assert "merge" in response.content.decode()
    archived.refresh_from_db()
    assert archived.status == "archived"


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "personas:list", "\x00", "-1"]
)
def test_a_posted_next_only_ever_leads_back_into_this_site(client_for, target):
    """The ``next`` of the unarchive and "not a duplicate" forms is not an open redirect, and
    a value that is no path at all (Django's redirect() would try it as a view name) lands on
    the page the form came from instead of a 500."""
    client = client_for("Manager")
    archived = PersonaFactory(phone="+14155550198", status="archived")
    PersonaFactory(phone="+14155550198")
    a, b = PersonaFactory(), PersonaFactory()
    posts = [
        (reverse("personas:unarchive", args=[archived.pk]), {}, "personas:archived"),
        (reverse("personas:not_duplicate"), {"a": a.pk, "b": b.pk}, "personas:duplicates"),
    ]
    for url, data, fallback in posts:
        response = client.post(url, {**data, "next": target})
        assert response.status_code == 302
        assert response["Location"] == reverse(fallback)
        page = client.post(url, {**data, "next": "/personas/?q=x"})
        assert page["Location"] == "/personas/?q=x"  # a path on this site is kept


def test_erased_and_hidden_personas_answer_404(staff_client):
    for persona in (PersonaFactory(status="erased"), PersonaFactory(hidden=True)):
        assert staff_client.get(persona.get_absolute_url()).status_code == 404


def test_adjust_points_needs_the_role(client_for):
    persona = PersonaFactory()
    staff = client_for("Staff")
    url = reverse("personas:points_adjust", args=[persona.pk])
    assert staff.post(url, {"points": 10, "reason": "x"}).status_code == 403
    operator = client_for("Operator")
    operator.post(url, {"points": 10, "reason": "goodwill"})
    persona.refresh_from_db()
    assert persona.points_balance == 10


def test_points_tab_explains_the_balance_only_when_there_is_one_to_explain(client_for):
    persona = PersonaFactory()
    owner = client_for("Owner")
    url = reverse("personas:detail_tab", args=[persona.pk, "points"])
    body = owner.get(url).content.decode()
    assert "No points yet" in body and "Why points don" not in body
    owner.post(reverse("personas:points_adjust", args=[persona.pk]), {"points": 1, "reason": "x"})
    body = owner.get(url).content.decode()
    assert "Why points don" in body and "The balance is 1." in body


def test_erase_confirmation_counts_the_points_it_removes(client_for):
    persona = PersonaFactory()
    manager = client_for("Manager")
    url = reverse("personas:erase", args=[persona.pk])
    assert "Removes all" not in manager.get(url).content.decode()  # nothing to remove
    manager.post(reverse("personas:points_adjust", args=[persona.pk]), {"points": 1, "reason": "x"})
    assert "Removes all 1 point." in manager.get(url).content.decode()


def test_adjust_points_button_is_hidden_from_staff(client_for):
    persona = PersonaFactory()
    body = client_for("Staff").get(persona.get_absolute_url()).content.decode()
    assert reverse("personas:points_adjust", args=[persona.pk]) not in body


ALL_ROLES = ["Staff", "Analyst", "Marketing Analyst", "Marketing", "Operator", "Manager", "Owner"]
POINT_ROLES = {"Operator", "Manager", "Owner"}


@pytest.mark.parametrize("role", ALL_ROLES)
def test_every_role_may_view_create_and_manage_personas(client_for, role):
    client = client_for(role)
    persona = PersonaFactory()
    for url in [
        reverse("personas:list"),
        reverse("personas:create"),
        reverse("personas:archived"),
        persona.get_absolute_url(),
        reverse("personas:detail_tab", args=[persona.pk, "activity"]),
        reverse("personas:traits", args=[persona.pk]),
        reverse("personas:archive", args=[persona.pk]),
    ]:
        assert client.get(url).status_code == 200, url
    response = client.post(reverse("personas:consent", args=[persona.pk, "email"]), {"value": "on"})
    assert response.status_code == 302
    persona.refresh_from_db()
    assert persona.email_consent == "opted_in"
    expected = 200 if role in POINT_ROLES else 403
    assert client.get(reverse("personas:points_adjust", args=[persona.pk])).status_code == expected


@pytest.mark.parametrize("method", ["get", "post"])
def test_personas_endpoints_need_a_role(client_for, method):
    client = client_for(None)
    persona = PersonaFactory()
    for url in [
        reverse("personas:list"),
        reverse("personas:create"),
        persona.get_absolute_url(),
        reverse("personas:traits", args=[persona.pk]),
        reverse("personas:consent", args=[persona.pk, "email"]),
        reverse("personas:archive", args=[persona.pk]),
        reverse("personas:unarchive", args=[persona.pk]),
    ]:
        assert getattr(client, method)(url).status_code == 403, url
    persona.refresh_from_db()
    assert persona.status == "active" and persona.email_consent == "never"
