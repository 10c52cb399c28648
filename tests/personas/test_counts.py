"""Counts on every list (issue #24, examples 2 and 3): "N personas" with the list's own
filters, exact when counting is cheap, estimated ("About N", "More than N") when it is not,
loaded after the page; and a hint when only archived personas match a search."""

from __future__ import annotations

import pytest
from django.urls import reverse

from personas import selectors
from personas.models import Persona
from personas.selectors import Count, ListQuery
from tests.conftest import make_user
from tests.personas.factories import PersonaFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = make_user("Staff")
    client.force_login(user)
    return user


def _count_after_list(client, data: dict) -> str:
    page = client.post(reverse("personas:list"), data, follow=True).content.decode()
    assert "Counting personas" in page  # loaded after the page, never holding it up
    return client.get(_count_address(page)).content.decode()


def _count_address(page: str) -> str:
    import re

    found = re.search(r'id="result-count"[^>]*hx-get="([^"]+)"', page)
    assert found, "no count on the page"
    return found.group(1).replace("&amp;", "&")


def test_example_2_the_whole_list_a_search_and_a_filter_say_how_many(client, staff):
    for n in range(3):
        PersonaFactory(last_name="Kim", phone=f"+120255504{n:02d}", loyalty_enrolled=n == 0)
    PersonaFactory(last_name="Lee", phone="+12025550499")
    assert "4 personas" in _count_after_list(client, {})
    assert "3 personas" in _count_after_list(client, {"q": "Kim"})
    assert "1 persona<" in _count_after_list(client, {"loyalty": "yes"})


def test_example_2_the_personas_an_import_created_are_counted(client, staff):
    from imports.models import ImportJob

    job = ImportJob.objects.create(original_name="x.csv")
    for n in range(2):
        PersonaFactory(import_job_id=job.pk, phone=f"+120255505{n:02d}")
    PersonaFactory(phone="+12025550599")
    assert "2 personas" in _count_after_list(client, {"import_job": job.pk})


def test_the_count_never_counts_a_large_table_whole(settings, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for n in range(5):
        PersonaFactory(phone=f"+120255506{n:02d}")
    user = make_user("Staff")
    original = selectors.COUNT_CAP
    selectors.COUNT_CAP = 3
    try:
        with CaptureQueriesContext(connection) as captured:
            count = selectors.count_personas(user=user, lq=ListQuery())
    finally:
        selectors.COUNT_CAP = original
    assert not count.exact and count.n >= 3
    label = count.label()
    assert label.startswith(("About ", "More than 3 "))
    counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in q.upper() for q in counts)


@pytest.mark.parametrize(
    ("count", "label"),
    [
        (Count(0), "0 personas"),
        (Count(1), "1 persona"),
        (Count(2920), "2,920 personas"),
        (Count(1_000_000, exact=False), "About 1,000,000 personas"),
        (Count(10_000, exact=False, floor=True), "More than 10,000 personas"),
    ],
)
def test_count_labels(count, label):
    assert count.label() == label


def test_example_3_only_archived_matches_say_so_with_a_way_there(client, staff):
    archived = PersonaFactory(phone="+12025550611", last_name="Moss")
    Persona.objects.filter(pk=archived.pk).update(status="archived")
    page = client.post(reverse("personas:list"), {"q": "(202) 555-0611"}, follow=True)
    text = page.content.decode()
    assert "No active persona matches" in text
    assert "1 archived persona matches." in text
    assert 'action="/personas/archived/"' in text and "555-0611" not in page.request["PATH_INFO"]


def test_example_3_the_search_box_says_what_it_finds_merge_included(client, staff):
    text = client.get(reverse("personas:list")).content.decode()
    assert 'id="search-help"' in text and "merge:" in text and "its last digits" in text


def test_the_archived_list_says_how_many(client):
    client.force_login(make_user("Owner"))
    for n in range(2):
        p = PersonaFactory(phone=f"+120255507{n:02d}")
        Persona.objects.filter(pk=p.pk).update(status="archived")
    page = client.get(reverse("personas:archived")).content.decode()
    assert "2 archived personas" in client.get(_count_address(page)).content.decode()
