"""Staff pages: personas (list, profile, slide-outs), merge, erase, exports, settings.

Views parse the request, call one service or selector, and render; htmx responses come from
``personas.htmx``.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def back_to(request: HttpRequest, fallback: str) -> str:
    """Where a form's ``next`` field asks to go after a POST: a path on this site, else
    ``fallback`` (never another site, never a view name to reverse)."""
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback
