"""Who the client is, and how many sign-ins one client address may get wrong.

One rule for every rate limit and lock-out (one-time codes, signup forms, django-axes): with N
trusted proxies in front of the app (``PERSONAS_TRUSTED_PROXY_COUNT``), the client is the N-th
address from the right of ``X-Forwarded-For`` entries followed by ``REMOTE_ADDR``. Each trusted
proxy appends the address it was reached from, so the entries on the right are facts written by
our own proxies and anything to their left is whatever the client chose to send: entries a
client prepends never matter.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def _strip_port(entry: str) -> str:
    """``1.2.3.4:5678`` → ``1.2.3.4`` and ``[2001:db8::1]:443`` → ``2001:db8::1``; anything
    else is returned as it is."""
    if entry.startswith("[") and "]" in entry:
        return entry[1 : entry.index("]")]
    host, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and host.count(":") == 0 and host:
        return host
    return entry


def client_address(meta: Mapping[str, str], *, trusted_proxies: int) -> str:
    """The client's address from a request's META, trusting ``trusted_proxies`` hops.

    The hops are the ``X-Forwarded-For`` entries (left to right) followed by ``REMOTE_ADDR``;
    the client is the ``trusted_proxies``-th from the right (0: ``REMOTE_ADDR`` itself). When
    there are fewer entries than that, the leftmost is used: never a hop further left than the
    configured number of proxies.
    """
    if trusted_proxies < 0:
        raise ValueError("trusted_proxies must be 0 or more")
    remote = str(meta.get("REMOTE_ADDR") or "").strip()
    if trusted_proxies == 0:
        return remote
    forwarded = str(meta.get("HTTP_X_FORWARDED_FOR") or "")
    hops = [entry.strip() for entry in forwarded.split(",")]
    hops = [_strip_port(entry) for entry in hops if entry]
    hops.append(remote)
    return hops[max(0, len(hops) - 1 - trusted_proxies)]


def request_client_address(request: HttpRequest) -> str:
    """The client address of a request under the configured number of trusted proxies."""
    return client_address(request.META, trusted_proxies=settings.PERSONAS_TRUSTED_PROXY_COUNT)


def axes_client_ip(request: HttpRequest) -> str | None:
    """``AXES_CLIENT_IP_CALLABLE``: the same address, or None when it is not an IP address
    (axes stores it in a GenericIPAddressField)."""
    address = request_client_address(request)
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


class SigninThrottleHandler(AxesDatabaseHandler):
    """django-axes' database handler (lock-out per username and address, ``AXES_FAILURE_LIMIT``)
    plus a limit per address alone, whatever the usernames: ``PERSONAS_SIGNIN_FAILURES_PER_ADDRESS``
    failed sign-ins from one address within ``AXES_COOLOFF_TIME`` lock that address out (one
    password tried across many usernames). axes itself compares every lock-out combination with
    one failure limit, hence this handler. The counts are axes' own database rows, shared by
    every process and server."""

    @staticmethod
    def address_failures(request: HttpRequest) -> int:
        address = getattr(request, "axes_ip_address", None)
        if not address:
            return 0
        attempts = AccessAttempt.objects.filter(ip_address=address)
        if settings.AXES_COOLOFF_TIME is not None:
            attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
        return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0

    @classmethod
    def address_locked(cls, request: HttpRequest) -> bool:
        limit = settings.PERSONAS_SIGNIN_FAILURES_PER_ADDRESS
        return bool(limit) and cls.address_failures(request) >= limit

    def is_locked(self, request: Any, credentials: dict | None = None) -> bool:
        if super().is_locked(request, credentials):
            return True
        return bool(settings.AXES_LOCK_OUT_AT_FAILURE) and self.address_locked(request)

    def user_login_failed(
        self, sender: Any, credentials: dict, request: Any = None, **kwargs: Any
    ) -> None:
        super().user_login_failed(sender, credentials, request=request, **kwargs)
        if (
            request is not None
            and settings.AXES_LOCK_OUT_AT_FAILURE
            and not getattr(request, "axes_locked_out", False)
            and self.address_locked(request)
        ):
            request.axes_locked_out = True
            request.axes_credentials = credentials
