"""Search and list latency at scale: the whole signed-in request, in-process.

    python bench/search.py --personas 1000000          # SQLite (var/bench.sqlite3)
    DATABASE_URL=postgres://postgres@127.0.0.1/personas_bench python bench/search.py

Seeds the database with ``seed_demo`` up to N personas when it holds fewer, then times N
requests per kind through Django's test client (signed in as Staff): the unfiltered list with
its count (the count is its own request, loaded after the list), a search by each identifier
kind (an email prefix and a phone fragment among them), and the Django admin's persona list and
email search (signed in as the privacy group). Beside each figure it prints the raw limit measured in the same
run: the single indexed SQL lookup the search needs, run through a plain cursor.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'var' / 'bench.sqlite3'}")
os.environ.setdefault("TASK_BACKEND", "dummy")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("AXES_ENABLED", "0")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from personas.models import Persona, Purchase  # noqa: E402
from personas.normalize import format_phone  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def timed(fn, n: int) -> list[float]:
    fn()  # warm up
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--personas", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = ["testserver"]
    setup_test_environment()

    call_command("migrate", verbosity=0)
    have = Persona.objects.count()
    if have < args.personas:
        print(f"Seeding {args.personas - have} personas (have {have})…", flush=True)
        call_command("seed_demo", personas=args.personas - have, quiet_users=True, verbosity=0)
    total = Persona.objects.count()
    rng = random.Random(7)
    start = rng.randint(1, max(1, total - 5000))
    sample = list(
        Persona.objects.filter(
            status="active", phone__isnull=False, email__isnull=False, id__gte=start
        )
        .order_by("id")
        .values("id", "email", "phone", "first_name", "last_name", "customer_id")[:2000]
    )
    with_cid = [s for s in sample if s["customer_id"]] or sample
    receipts = list(Purchase.objects.order_by("id").values_list("receipt_id", flat=True)[:2000])

    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.get(username="staff"))
    admin_client = Client()
    admin_client.force_login(get_user_model().objects.get(username="privacy"))

    def req(params, path="/personas/", who=client):
        def go():
            response = who.get(path, params)
            assert response.status_code in (200, 302), response.status_code

        return go

    def list_with_count():
        req({})()
        req({}, "/personas/count/")()

    def email_prefix(s):  # "dana.smith12@" → every address starting with it
        return s["email"][: s["email"].index("@") + 1]

    def fragment(s):  # five digits from the middle of the number
        digits = s["phone"].lstrip("+")
        return f"{digits[4:7]}-{digits[7:9]}"

    def cycle(items, make):
        it = iter(items * 100)
        return lambda: make(next(it))()

    kinds = {
        "list + its count": (
            list_with_count,
            100,
            "SELECT id FROM personas_persona WHERE status='active' AND hidden=%s ORDER BY id DESC LIMIT 51",
            lambda: [False],
        ),
        "email": (
            cycle(sample, lambda s: req({"q": s["email"].upper()})),
            50,
            "SELECT id FROM personas_persona WHERE email=%s",
            lambda: [rng.choice(sample)["email"]],
        ),
        "phone (typed)": (
            cycle(sample, lambda s: req({"q": format_phone(s["phone"])})),
            50,
            "SELECT id FROM personas_persona WHERE phone=%s",
            lambda: [rng.choice(sample)["phone"]],
        ),
        "email prefix": (
            cycle(sample, lambda s: req({"q": email_prefix(s)})),
            50,
            "SELECT id FROM personas_persona WHERE email >= %s AND email < %s LIMIT 500",
            lambda: (lambda e: [e, e[:-1] + "A"])(email_prefix(rng.choice(sample))),
        ),
        "phone fragment": (
            cycle(sample, lambda s: req({"q": fragment(s)})),
            50,
            "SELECT f.persona_id FROM personas_phonefragment f JOIN personas_persona p"
            " ON p.id = f.persona_id WHERE f.digits >= %s AND f.digits < %s"
            " AND p.status = 'active' AND NOT p.hidden LIMIT 500",
            lambda: (lambda d: [d, d[:-1] + chr(ord(d[-1]) + 1)])(
                fragment(rng.choice(sample)).replace("-", "")
            ),
        ),
        "admin list": (
            req({}, "/admin/personas/persona/", admin_client),
            100,
            "SELECT * FROM personas_persona ORDER BY id DESC LIMIT 100",
            lambda: [],
        ),
        "admin email search": (
            cycle(
                sample, lambda s: req({"q": s["email"]}, "/admin/personas/persona/", admin_client)
            ),
            50,
            "SELECT id FROM personas_persona WHERE email=%s",
            lambda: [rng.choice(sample)["email"]],
        ),
        "phone (last 4)": (
            cycle(sample, lambda s: req({"q": s["phone"][-4:]})),
            50,
            "SELECT persona_id FROM personas_phonefragment WHERE digits >= %s AND digits < %s LIMIT 500",
            lambda: (lambda d: [d, d[:-1] + chr(ord(d[-1]) + 1)])(rng.choice(sample)["phone"][-4:]),
        ),
        "customer id": (
            cycle(with_cid, lambda s: req({"q": s["customer_id"]})),
            50,
            "SELECT id FROM personas_persona WHERE customer_id=%s",
            lambda: [rng.choice(with_cid)["customer_id"]],
        ),
        "receipt": (
            cycle(receipts or ["none"], lambda r: req({"q": r})),
            50,
            "SELECT persona_id FROM personas_purchase WHERE receipt_id=%s",
            lambda: [rng.choice(receipts or ["none"])],
        ),
        "first + last name": (
            cycle(sample, lambda s: req({"q": f"{s['first_name']} {s['last_name']}"})),
            100,
            "SELECT id FROM personas_persona WHERE first_key >= %s AND first_key < %s LIMIT 500",
            lambda: ["avery", "averz"],
        ),
    }
    vendor = connection.vendor
    print(f"\n{vendor}: {total:,} personas, {args.requests} requests per kind (ms)")
    print(f"{'kind':<20}{'p50':>8}{'p95':>8}{'target':>8}   raw SQL p50/p95")
    ok = True
    for name, (fn, target, sql, params) in kinds.items():
        times = timed(fn, args.requests)
        with connection.cursor() as cur:
            raw = timed(
                lambda sql=sql, params=params: (cur.execute(sql, params()), cur.fetchall()),
                args.requests,
            )
        p50, p95 = statistics.median(times), pct(times, 95)
        ok &= p95 <= target
        print(
            f"{name:<20}{p50:8.1f}{p95:8.1f}{'≤' + str(target):>8}   "
            f"{statistics.median(raw):.2f}/{pct(raw, 95):.2f}{'' if p95 <= target else '   ← over target'}"
        )
    print("all within target" if ok else "SOME FIGURES ARE OVER TARGET")


if __name__ == "__main__":
    main()
