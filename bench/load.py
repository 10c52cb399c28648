"""Load test: gunicorn on 127.0.0.1 serving the mixed staff workload, signed in.

    DATABASE_URL=postgres://postgres@127.0.0.1/personas_bench .venv/bin/python bench/load.py

Starts gunicorn (WhiteNoise static files, production-like settings) against DATABASE_URL (seed
it first, e.g. with bench/search.py --personas 1000000), signs in one session per client thread
through the real login form, then for --seconds runs a mix of: the list page, a search by each
identifier kind, a persona's detail and Activity, a traits edit (form GET + POST) and an opt-in
toggle (POST). Prints requests/s, p50/p95/p99 latency per kind and overall, and the error count.
Beside it, the raw limit of the same server: requests/s of the health endpoint.
"""

from __future__ import annotations

import argparse
import html
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "personas-demo-2026"


def pct(values, p):
    values = sorted(values)
    return values[max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))]


def start_server(port: int, workers: int) -> subprocess.Popen:
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_ENV="production",
        SECRET_KEY="load-test-only-" + "k" * 40,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        SECURE_COOKIES="0",  # plain http on loopback
        AXES_ENABLED="0",
        TASK_BACKEND="dummy",
        LOG_LEVEL="WARNING",
        CONN_MAX_AGE="60",
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(100):
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not start")


class Session:
    """One signed-in staff session (cookies and the CSRF token, as a browser keeps them)."""

    def __init__(self, base: str, username: str) -> None:
        self.base = base
        self.s = requests.Session()
        page = self.s.get(f"{base}/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        r = self.s.post(
            f"{base}/accounts/login/",
            data={"csrfmiddlewaretoken": token, "username": username, "password": PASSWORD},
            headers={"Referer": f"{base}/accounts/login/"},
            allow_redirects=False,
        )
        if r.status_code != 302:
            raise SystemExit(f"sign-in failed for {username}: {r.status_code}")
        self.csrf = self.s.cookies.get("csrftoken")

    def get(self, path, **kw):
        return self.s.get(self.base + path, allow_redirects=False, **kw)

    def post(self, path, data, **kw):
        headers = {"X-CSRFToken": self.csrf, "Referer": self.base + path, **kw.pop("headers", {})}
        return self.s.post(
            self.base + path, data=data, headers=headers, allow_redirects=False, **kw
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if "DATABASE_URL" not in os.environ:
        os.environ["DATABASE_URL"] = f"sqlite:///{ROOT / 'var' / 'bench.sqlite3'}"

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from personas.models import Persona, Purchase

    total = Persona.objects.count()
    sample = list(
        Persona.objects.filter(status="active", email__isnull=False, phone__isnull=False)
        .filter(id__gte=random.randint(1, max(1, total - 5000)))
        .order_by("id")
        .values("id", "email", "phone", "first_name", "last_name", "customer_id")[:3000]
    )
    receipts = list(Purchase.objects.order_by("id").values_list("receipt_id", flat=True)[:3000])
    from django.db import connections

    connections.close_all()

    server = start_server(args.port, args.workers)
    base = f"http://127.0.0.1:{args.port}"
    try:
        # Raw limit: the cheapest request this server answers (no session, no template).
        raw_n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 3:
            requests.get(f"{base}/healthz")
            raw_n += 1
        raw_rps = raw_n / (time.perf_counter() - t0)

        sessions = [Session(base, "staff") for _ in range(args.clients)]
        times: dict[str, list[float]] = defaultdict(list)
        errors: dict[str, int] = defaultdict(int)
        lock = threading.Lock()
        stop = time.perf_counter() + args.seconds

        def work(sess: Session, seed: int) -> None:
            rng = random.Random(seed)
            while time.perf_counter() < stop:
                p = rng.choice(sample)
                kind = rng.choices(
                    [
                        "list",
                        "search email",
                        "search phone",
                        "search last4",
                        "search customer id",
                        "search receipt",
                        "search name",
                        "detail",
                        "activity",
                        "traits edit",
                        "opt-in toggle",
                    ],
                    weights=[3, 2, 2, 1, 1, 1, 2, 3, 1, 1, 1],
                )[0]
                t = time.perf_counter()
                try:
                    ok = request(sess, rng, p, kind)
                except Exception:  # a failed request is an error, never a silent stop
                    ok = False
                elapsed = (time.perf_counter() - t) * 1000
                with lock:
                    times[kind].append(elapsed)
                    if not ok:
                        errors[kind] += 1

        def request(sess: Session, rng: random.Random, p: dict, kind: str) -> bool:
            ok = True
            if kind == "list":
                r = sess.get("/personas/")
                ok = r.status_code == 200
            elif kind.startswith("search"):
                q = {
                    "search email": p["email"],
                    "search phone": p["phone"],
                    "search last4": p["phone"][-4:],
                    "search customer id": p["customer_id"] or p["email"],
                    "search receipt": rng.choice(receipts) if receipts else p["email"],
                    "search name": f"{p['first_name']} {p['last_name']}",
                }[kind]
                r = sess.get("/personas/", params={"q": q}, headers={"HX-Request": "true"})
                ok = r.status_code == 200
            elif kind == "detail":
                ok = sess.get(f"/personas/{p['id']}/").status_code == 200
            elif kind == "activity":
                ok = sess.get(f"/personas/{p['id']}/activity/").status_code == 200
            elif kind == "traits edit":
                form = sess.get(f"/personas/{p['id']}/edit/traits/")
                seen = re.search(r'name="seen" value="([^"]*)"', form.text)
                r = sess.post(
                    f"/personas/{p['id']}/edit/traits/",
                    {
                        "first_name": p["first_name"],
                        "last_name": p["last_name"],
                        "phone": p["phone"],
                        "email": p["email"],
                        "seen": html.unescape(seen.group(1)) if seen else "",
                        "attr_key": ["load_test"],
                        "attr_type": ["number"],
                        "attr_value": [str(rng.randint(1, 10**6))],
                    },
                )
                ok = form.status_code == 200 and r.status_code == 302
            else:
                r = sess.post(
                    f"/personas/{p['id']}/consent/email/",
                    {"value": rng.choice(["on", "off"])},
                    headers={"HX-Request": "true"},
                )
                ok = r.status_code == 200
            return ok

        threads = [threading.Thread(target=work, args=(s, i)) for i, s in enumerate(sessions)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        duration = time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)

    all_times = [x for v in times.values() for x in v]
    n_err = sum(errors.values())
    print(
        f"\n{total:,} personas · {args.clients} clients · gunicorn {args.workers} workers · "
        f"{duration:.0f}s"
    )
    print(f"{'kind':<20}{'n':>7}{'p50':>8}{'p95':>8}{'p99':>8}{'errors':>8}")
    for kind in sorted(times):
        v = times[kind]
        print(
            f"{kind:<20}{len(v):7d}{statistics.median(v):8.1f}{pct(v, 95):8.1f}"
            f"{pct(v, 99):8.1f}{errors[kind]:8d}"
        )
    print(
        f"{'ALL':<20}{len(all_times):7d}{statistics.median(all_times):8.1f}"
        f"{pct(all_times, 95):8.1f}{pct(all_times, 99):8.1f}{n_err:8d}"
    )
    print(
        f"\n{len(all_times) / duration:.1f} requests/s mixed, signed in "
        f"(raw limit, /healthz on the same server: {raw_rps:.0f} requests/s, one client)"
    )
    print("errors: 0" if n_err == 0 else f"ERRORS: {n_err}")
    sys.exit(1 if n_err else 0)


if __name__ == "__main__":
    main()
