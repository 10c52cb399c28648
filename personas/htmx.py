"""The htmx responses every app's views share: which rendering a request wants, the slide-out,
and a redirect of the whole page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import HttpResponseClientRedirect


def is_partial(request: HttpRequest) -> bool:
    """An htmx request that swaps a fragment. Not a boosted link, and not Back or Forward to
    an address htmx pushed: the history cache is off (no personal data in localStorage), so
    htmx then asks for the page itself and must get all of it, not the fragment."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def drawer(
    request: HttpRequest, *, title: str, body: str, context: dict[str, Any], close_url: str
) -> HttpResponse:
    """A slide-out: the drawer fragment for htmx, else the same form as a page of its own, so
    every action also works with a plain link and form."""
    ctx = {**context, "title": title, "body_template": body, "close_url": close_url}
    if is_partial(request):
        return render(request, "components/drawer_response.html", ctx)
    return render(request, "components/drawer_page.html", ctx)


def client_redirect(url: str) -> HttpResponse:
    """Send the whole page to ``url`` from an htmx request (a plain redirect would be followed
    by htmx and swapped into the fragment's target)."""
    return HttpResponseClientRedirect(url)
