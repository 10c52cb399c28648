from __future__ import annotations

from django.db import models


class Store(models.Model):
    name = models.CharField(max_length=120, unique=True)
    code = models.SlugField(max_length=40, unique=True)
    time_zone = models.CharField(max_length=64, default="America/New_York")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SignupForm(models.Model):
    """A customer-facing signup form; personas created from it carry it as their source."""

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    store = models.ForeignKey(Store, null=True, blank=True, on_delete=models.SET_NULL)
    enrolls_loyalty = models.BooleanField(default=True)
    text_double_opt_in = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
