from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"

    def ready(self) -> None:
        from personas.services.changes import register_change_hook
        from personas.services.inbound import register_text_hook
        from personas.services.privacy import register_erasure_hook

        from . import enrolment
        from .engine import on_inbound_text, on_persona_changes
        from .services import scrub_erased

        register_change_hook(on_persona_changes)
        register_erasure_hook(scrub_erased)
        register_erasure_hook(enrolment.scrub_erased)
        register_text_hook(on_inbound_text)
