from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from personas.roles import Cap, require_cap


@require_cap(Cap.RUN_IMPORTS)
def import_history(request: HttpRequest) -> HttpResponse:
    return render(request, "imports/import_history.html")
