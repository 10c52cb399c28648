from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .roles import Cap, require_cap


@require_cap(Cap.MANAGE_PERSONAS)
def persona_list(request: HttpRequest) -> HttpResponse:
    return render(request, "personas/persona_list.html")


@require_cap(Cap.SETTINGS)
def settings_home(request: HttpRequest) -> HttpResponse:
    return render(request, "personas/settings_home.html")
