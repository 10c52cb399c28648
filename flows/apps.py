from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"

    def ready(self) -> None:
        from personas.services.changes import register_change_hook
        from personas.services.privacy import register_erasure_hook

        from .engine import on_persona_changes
        from .services import scrub_erased

        register_change_hook(on_persona_changes)
        register_erasure_hook(scrub_erased)
