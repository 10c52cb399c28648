"""The in-file dedupe store: earlier lines across and within batches, nothing left behind."""

from __future__ import annotations

import os

from imports.dedupe import SeenIdentifiers, fingerprint


def test_repeats_name_the_first_line_within_and_across_batches():
    seen = SeenIdentifiers()
    phone, email, other = (
        fingerprint("phone", "+14155550100"),
        fingerprint("email", "a@example.com"),
        fingerprint("email", "b@example.com"),
    )
    assert seen.first_lines([(2, [phone, email]), (3, [other]), (4, [email])]) == {4: 2}
    # A later batch: the same phone as line 2, the same email as line 3; a new customer.
    assert seen.first_lines([(10, [phone]), (11, [fingerprint("phone", "x"), other])]) == {
        10: 2,
        11: 3,
    }
    # A repeated row's own other identifiers were not recorded: line 12 is new.
    assert seen.first_lines([(12, [fingerprint("phone", "x")])]) == {}
    path = seen.path
    assert os.path.exists(path)
    seen.close()
    assert not os.path.exists(path)


def test_a_large_batch_is_split_under_the_variable_limit():
    seen = SeenIdentifiers()
    rows = [(line, [fingerprint("customer_id", str(line))]) for line in range(2, 40_002)]
    assert seen.first_lines(rows) == {}
    assert seen.first_lines([(50_000, [fingerprint("customer_id", "39999")])]) == {50_000: 39999}
    seen.close()
