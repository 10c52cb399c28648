"""The phone-fragment index: one ``PhoneFragment`` row per tail of a persona's phone digits.

The personas service calls ``index_phones`` wherever it writes a phone (single and bulk
changes, bulk creation); fixtures and the demo seed call it for the rows they write directly.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..models import PhoneFragment
from ..normalize import phone_fragments
from .bulkdb import insert_tuples


def index_phones(phones: Iterable[tuple[int, str | None]], *, replace: bool) -> None:
    """Write the fragments of each ``(persona_id, e164 phone or None)``.

    ``replace``: the personas may already have fragments (an edit, not a creation); theirs
    are deleted first, so a changed or removed number is no longer found by its old digits.
    """
    pairs = list(phones)
    if not pairs:
        return
    if replace:
        ids = [pid for pid, _ in pairs]
        for start in range(0, len(ids), 1000):
            PhoneFragment.objects.filter(persona_id__in=ids[start : start + 1000]).delete()
    rows = [(digits, pid) for pid, phone in pairs for digits in phone_fragments(phone)]
    insert_tuples(PhoneFragment._meta.db_table, ["digits", "persona_id"], rows)
