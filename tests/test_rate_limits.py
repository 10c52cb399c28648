"""Rate limits that hold in production (issue example 7).

7a: the client address is the rightmost hop our own proxies wrote, never an entry the client
    sent (``personas.client.client_address``), for the one-time codes, the signup forms and the
    sign-in lock-out alike.
7b: production refuses to start with a per-process cache (personas.E002).
And one password tried across many usernames from one address locks that address out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from personas.checks import check_production_cache_is_shared
from personas.client import axes_client_ip, client_address
from tests.conftest import make_user

ROOT = Path(__file__).resolve().parent.parent
PROXY = "10.0.0.2"
REAL_CLIENT = "203.0.113.9"


# ---------------------------------------------------------------------------------------------
# 7a: the client address


@pytest.mark.django_db
def test_example_7_spoofed_first_x_forwarded_for_does_not_reset_the_code_limit(settings):
    """One proxy in front (REMOTE_ADDR is the proxy, which appends the real client). The
    attacker writes a new first X-Forwarded-For entry on every request and asks for codes for
    a new email each time (so only the per-client limit can stop them)."""
    settings.PERSONAS_TRUSTED_PROXY_COUNT = 1
    settings.PERSONAS_TRUST_X_FORWARDED_FOR = True  # the switch the old code read
    limit, _ = settings.PERSONAS_CODE_RATE_PER_CLIENT
    url = reverse("customers:data_controls")
    attacker = Client(REMOTE_ADDR=PROXY)
    responses = [
        attacker.post(
            url,
            {"email": f"someone{n}@example.com"},
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, {REAL_CLIENT}",
        )
        for n in range(limit + 2)
    ]
    assert [r.status_code for r in responses[:limit]] == [302] * limit
    for response in responses[limit:]:
        assert response.status_code == 429
        assert "Too many" in response.content.decode()
    # Another customer behind the same proxy is not limited by the attacker's requests.
    other = Client(REMOTE_ADDR=PROXY).post(
        url, {"email": "neighbour@example.com"}, HTTP_X_FORWARDED_FOR="198.51.100.77"
    )
    assert other.status_code == 302


CASES = [
    # (X-Forwarded-For, REMOTE_ADDR, trusted proxies, client)
    (None, "192.0.2.1", 0, "192.0.2.1"),
    ("1.1.1.1", "192.0.2.1", 0, "192.0.2.1"),  # no proxy: the header is ignored
    (None, "", 0, ""),
    (f"spoofed, {REAL_CLIENT}", PROXY, 1, REAL_CLIENT),
    (REAL_CLIENT, PROXY, 1, REAL_CLIENT),
    (f"a, b, c, {REAL_CLIENT}", PROXY, 1, REAL_CLIENT),
    (f"spoofed, {REAL_CLIENT}, 10.0.0.1", PROXY, 2, REAL_CLIENT),
    (f"{REAL_CLIENT}, 10.0.0.1", PROXY, 2, REAL_CLIENT),
    (f"x, y, {REAL_CLIENT}, 10.0.0.1, 10.0.0.3", PROXY, 3, REAL_CLIENT),
    # fewer entries than trusted hops: the leftmost available, never further left
    (None, PROXY, 1, PROXY),
    ("", PROXY, 1, PROXY),
    ("10.0.0.1", PROXY, 3, "10.0.0.1"),
    (None, PROXY, 2, PROXY),
    # spacing, empty entries, ports, IPv6
    (f"  spoofed ,, {REAL_CLIENT} ,", PROXY, 1, REAL_CLIENT),
    (f"spoofed, {REAL_CLIENT}:51234", PROXY, 1, REAL_CLIENT),
    ("spoofed, [2001:db8::7]:443", PROXY, 1, "2001:db8::7"),
    ("spoofed, 2001:db8::7", "2001:db8::1", 1, "2001:db8::7"),
    ("2001:db8::7", "2001:db8::1", 0, "2001:db8::1"),
]


@pytest.mark.parametrize(("forwarded", "remote", "proxies", "expected"), CASES)
def test_client_address_is_the_rightmost_hop_our_proxies_did_not_write(
    forwarded, remote, proxies, expected
):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_address(meta, trusted_proxies=proxies) == expected


@given(
    prefix=st.lists(st.text(alphabet="0123456789abcdef.:[] ", min_size=0, max_size=15), max_size=6),
    proxies=st.integers(min_value=0, max_value=3),
)
def test_entries_a_client_prepends_never_change_its_address(prefix, proxies):
    """Whatever the client writes to the left of what our proxies appended is never read."""
    appended = [REAL_CLIENT, "10.0.0.1", "10.0.0.3"][: max(proxies, 0)]
    honest = {"HTTP_X_FORWARDED_FOR": ", ".join(appended), "REMOTE_ADDR": PROXY}
    spoofed = {"HTTP_X_FORWARDED_FOR": ", ".join([*prefix, *appended]), "REMOTE_ADDR": PROXY}
    expected = REAL_CLIENT if proxies else PROXY
    assert client_address(honest, trusted_proxies=proxies) == expected
    assert client_address(spoofed, trusted_proxies=proxies) == expected


def test_a_negative_proxy_count_is_refused():
    with pytest.raises(ValueError, match="0 or more"):
        client_address({"REMOTE_ADDR": PROXY}, trusted_proxies=-1)


def test_sign_in_lock_out_uses_the_same_client_address(settings):
    """django-axes asks personas.client for the address (AXES_CLIENT_IP_CALLABLE)."""
    from axes.helpers import get_client_ip_address

    settings.PERSONAS_TRUSTED_PROXY_COUNT = 1
    request = RequestFactory().post(
        "/accounts/login/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"1.2.3.4, {REAL_CLIENT}"
    )
    assert get_client_ip_address(request) == REAL_CLIENT
    settings.PERSONAS_TRUSTED_PROXY_COUNT = 0
    assert get_client_ip_address(request) == PROXY
    # Not an address at all (only possible when the proxies are bypassed): nothing for axes.
    settings.PERSONAS_TRUSTED_PROXY_COUNT = 1
    bogus = RequestFactory().post("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="not-an-ip")
    assert axes_client_ip(bogus) is None


def _settings_value(name: str, **env: str) -> str:
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DJANGO_ENV",
            "PERSONAS_TRUSTED_PROXY_COUNT",
            "PERSONAS_TRUST_X_FORWARDED_FOR",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        }
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from django.conf import settings; print(settings.{name})",
        ],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "0"),
        ({"PERSONAS_TRUST_X_FORWARDED_FOR": "1"}, "1"),
        ({"PERSONAS_TRUST_X_FORWARDED_FOR": "off"}, "0"),
        ({"PERSONAS_TRUSTED_PROXY_COUNT": "2"}, "2"),
        ({"PERSONAS_TRUSTED_PROXY_COUNT": "0", "PERSONAS_TRUST_X_FORWARDED_FOR": "1"}, "0"),
        ({"PERSONAS_TRUSTED_PROXY_COUNT": "2", "PERSONAS_TRUST_X_FORWARDED_FOR": "1"}, "2"),
    ],
)
def test_the_old_trust_x_forwarded_for_switch_still_means_one_proxy(env, expected):
    assert _settings_value("PERSONAS_TRUSTED_PROXY_COUNT", **env) == expected


# ---------------------------------------------------------------------------------------------
# 7b: a shared cache in production


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE", "REDIS_URL", "DJANGO_ENV"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_example_7_production_without_a_shared_cache_fails_the_system_check(tmp_path):
    """Two gunicorn workers with LocMemCache would each count their own codes: production
    refuses to start. ``check`` (no --deploy needed) and ``migrate`` (the Procfile's release
    step, before any web process starts) both fail on personas.E002; with REDIS_URL they pass
    (checks never connect to Redis)."""
    production = {
        "DJANGO_ENV": "production",
        "SECRET_KEY": "x" * 20 + "-production-secret-for-the-check-only-0123456789",
        "ALLOWED_HOSTS": "personas.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'release.sqlite3'}",
    }
    for args in (("check",), ("check", "--deploy"), ("migrate", "--plan")):
        proc = _manage(*args, **production)
        assert proc.returncode != 0, args
        assert "personas.E002" in proc.stderr, args
        assert "REDIS_URL" in proc.stderr, args
    proc = _manage("check", **production, REDIS_URL="redis://redis.example.internal:6379/0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "personas.E002" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("production", "backend", "fires"),
    [
        (True, "django.core.cache.backends.locmem.LocMemCache", True),
        (True, "django.core.cache.backends.dummy.DummyCache", True),
        (True, "django.core.cache.backends.redis.RedisCache", False),
        (True, "django.core.cache.backends.db.DatabaseCache", False),
        (False, "django.core.cache.backends.locmem.LocMemCache", False),
    ],
)
def test_the_shared_cache_check_fires_only_for_a_per_process_cache_in_production(
    settings, production, backend, fires
):
    from django.core.checks import run_checks

    settings.PRODUCTION = production
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": "redis://127.0.0.1:6399/0"}}
    ids = [m.id for m in check_production_cache_is_shared()]
    assert ids == (["personas.E002"] if fires else [])
    # Registered as an ordinary check, not only a --deploy one.
    ids = {m.id for m in run_checks(include_deployment_checks=False)}
    assert ("personas.E002" in ids) is fires


# ---------------------------------------------------------------------------------------------
# Password spraying


@pytest.mark.django_db
@pytest.mark.parametrize("behind_proxy", [False, True], ids=["direct", "behind-one-proxy"])
def test_one_password_tried_across_many_usernames_locks_the_address_out(settings, behind_proxy):
    """30 failed sign-ins from one address, each with a different username and the same
    password, lock that address out for the cool-off time: the next attempt is refused even
    with a real user's correct password. Another address still signs in. Behind a proxy, a new
    spoofed first X-Forwarded-For entry on every attempt changes nothing."""
    settings.AXES_ENABLED = True
    assert settings.PERSONAS_SIGNIN_FAILURES_PER_ADDRESS == 30
    assert settings.AXES_FAILURE_LIMIT > 1  # so no single username is locked on its own
    user = make_user("Staff")
    url = reverse("login")
    if behind_proxy:
        settings.PERSONAS_TRUSTED_PROXY_COUNT = 1
        sprayer = Client(REMOTE_ADDR=PROXY)

        def headers(n: int) -> dict[str, str]:
            return {"HTTP_X_FORWARDED_FOR": f"198.51.100.{n}, {REAL_CLIENT}"}

        neighbour = Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="192.0.2.55")
    else:
        sprayer = Client(REMOTE_ADDR=REAL_CLIENT)

        def headers(n: int) -> dict[str, str]:
            return {}

        neighbour = Client(REMOTE_ADDR="192.0.2.55")

    statuses = [
        sprayer.post(
            url, {"username": f"victim{n}", "password": "Spring2024!"}, **headers(n)
        ).status_code
        for n in range(31)
    ]
    assert statuses[:29] == [200] * 29  # "wrong username or password", nothing more
    assert statuses[29:] == [429, 429]  # the 30th failure locks the address
    response = sprayer.post(
        url, {"username": user.username, "password": "a-Strong-pass-123"}, **headers(99)
    )
    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in sprayer.session

    response = neighbour.post(url, {"username": user.username, "password": "a-Strong-pass-123"})
    assert response.status_code == 302
    assert neighbour.session["_auth_user_id"] == str(user.pk)
