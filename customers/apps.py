from django.apps import AppConfig


class CustomersConfig(AppConfig):
    """What customers see without a staff login. Depends on ``personas``; never the reverse."""

    name = "customers"
    verbose_name = "Customers"
