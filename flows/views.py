from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from personas.roles import Cap, require_cap


@require_cap(Cap.VIEW_FLOWS)
def flow_list(request: HttpRequest) -> HttpResponse:
    return render(request, "flows/flow_list.html")
