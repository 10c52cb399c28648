from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"

    def ready(self) -> None:
        # Imported once the app registry is ready: both modules import models.
        from personas.services.privacy import register_erasure_hook

        from .services import scrub_erased

        register_erasure_hook(scrub_erased)
