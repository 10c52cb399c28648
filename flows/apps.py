from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.http import HttpRequest

from personas.roles import Cap, has_cap


def persona_flows_tab(request: HttpRequest, persona: Any) -> dict[str, Any]:
    """The Flows tab of a persona's profile: its runs, and (for flow editors) the flows it can
    be enrolled in. Registered into personas in ``ready()``."""
    from .models import Flow  # here: this module loads before the app registry is ready

    context: dict[str, Any] = {
        "flow_runs": list(
            persona.flow_runs.filter(dry_run=False).select_related("flow", "version")[:100]
        )
    }
    if has_cap(request.user, Cap.EDIT_FLOWS):
        context["enrollable_flows"] = list(Flow.objects.filter(status="active"))
    return context


class FlowsConfig(AppConfig):
    name = "flows"

    def ready(self) -> None:
        # Imported once the app registry is ready: every one of these modules imports models.
        from personas.services.changes import register_change_hook
        from personas.services.inbound import register_text_hook
        from personas.services.privacy import register_erasure_hook
        from personas.tabs import register_tab

        from . import enrolment
        from .engine import on_inbound_text, on_persona_changes
        from .services import scrub_erased

        register_change_hook(on_persona_changes)
        register_erasure_hook(scrub_erased)
        register_erasure_hook(enrolment.scrub_erased)
        register_text_hook(on_inbound_text)
        register_tab("flows", "Flows", persona_flows_tab)
