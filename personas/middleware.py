"""Responses that carry personal data are never kept by a browser or a proxy.

Front-desk screens are shared: Back, the browser's cache or a proxy must not bring a
customer's profile, an export or a wallet back to the next person at the counter.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers

# Every page of these apps may show or take a customer's data, the customers app's pages (the
# wallet, the data controls, signup and email confirmation) without a staff login.
PRIVATE_APPS = frozenset({"personas", "customers", "imports", "flows"})


class NoStoreMiddleware:
    """``Cache-Control: no-store`` (with ``private, no-cache, max-age=0``) on every response
    to a signed-in user and on every page of the product's own apps, unless the response
    already says how it may be cached (static files, the health check, the admin's own)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not response.has_header("Cache-Control") and private(request):
            add_never_cache_headers(response)
        return response


def private(request: HttpRequest) -> bool:
    match = getattr(request, "resolver_match", None)
    if match is not None and PRIVATE_APPS.intersection(match.app_names):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)
