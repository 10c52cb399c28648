from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PersonasConfig(AppConfig):
    name = "personas"
    verbose_name = "Personas"

    def ready(self) -> None:
        # Imported once the app registry is ready (both read models).
        from . import checks  # noqa: F401  (registers the deploy checks)
        from .roles import sync_role_groups

        post_migrate.connect(sync_role_groups, dispatch_uid="personas.sync_role_groups")
