from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from .roles import Cap, capabilities, role_names


def roles(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    caps = capabilities(user)
    return {
        "caps": {cap.name: cap in caps for cap in Cap},
        "role_names": role_names(user) if caps else [],
        "brand_name": settings.PERSONAS_BRAND_NAME,
    }
