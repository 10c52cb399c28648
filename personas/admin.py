"""Django admin for superusers and the privacy/support group. Staff roles work in the app."""

from __future__ import annotations

from django.contrib import admin

from .models import (
    AuditEvent,
    ConsentChange,
    OutboundMessage,
    Persona,
    PointsEntry,
    Purchase,
    SignupForm,
    Store,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by the services only; the admin shows it."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Persona)
class PersonaAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "status",
        "entry_source",
        "loyalty_enrolled",
        "points_balance",
        "created_at",
    )
    list_filter = ("status", "entry_source", "loyalty_enrolled", "text_consent", "email_consent")
    search_fields = ("=email", "=phone", "=customer_id", "last_key")
    show_full_result_count = False
    list_select_related = ("favorite_store",)
    readonly_fields = [f.name for f in Persona._meta.fields]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "persona_id", "action", "actor_kind", "actor_label", "created_at")
    list_filter = ("actor_kind", "action")
    search_fields = ("=persona__id",)
    show_full_result_count = False


@admin.register(ConsentChange)
class ConsentChangeAdmin(ReadOnlyAdmin):
    list_display = ("id", "persona_id", "channel", "before", "after", "hard", "actor_kind")
    list_filter = ("channel", "after", "hard", "actor_kind")
    show_full_result_count = False


@admin.register(PointsEntry)
class PointsEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "persona_id", "kind", "points", "reason", "created_at")
    list_filter = ("kind",)
    show_full_result_count = False


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = ("receipt_id", "persona_id", "store", "total", "points_earned", "purchased_at")
    list_filter = ("store",)
    search_fields = ("=receipt_id",)
    show_full_result_count = False


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "persona_id", "channel", "template", "status", "created_at", "sent_at")
    list_filter = ("channel", "status", "template")
    show_full_result_count = False


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "time_zone")
    search_fields = ("name", "code")


@admin.register(SignupForm)
class SignupFormAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "store", "enrolls_loyalty", "text_double_opt_in", "is_active")
    list_filter = ("is_active", "store")
    search_fields = ("name",)
