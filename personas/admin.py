"""Django admin for superusers and the privacy/support group. Staff roles work in the app."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.functional import cached_property

from .forms_privacy import RecoveryForm
from .models import (
    AuditEvent,
    BlocklistEntry,
    BlocklistRecovery,
    ConsentChange,
    ErasureRequest,
    OutboundMessage,
    Persona,
    PointsEntry,
    Purchase,
    SignupForm,
    Store,
)
from .models.persona import visible_q
from .roles import in_privacy_group
from .selectors import search_candidates
from .services import privacy
from .services.privacy import parse_identifier


class CappedCountPaginator(Paginator):
    """Pages a large table without counting it: the count stops at ``CAP`` + 1 rows (one
    ``COUNT`` over a ``LIMIT`` subquery), so a changelist costs the same at a million rows as
    at a thousand. Pages past the cap are not offered: search or filter instead."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP + 1].count()


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by the services only; the admin shows it. Its tables are large:
    lists page without counting them whole."""

    paginator = CappedCountPaginator
    show_full_result_count = False

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
    # Searched through the product's own search (normalised, indexed columns): an email or its
    # start, a phone in any format or its last digits, a customer id, a receipt, a name.
    search_fields = ("email",)
    search_help_text = (
        "An email or its beginning, a phone in any format or its last digits, a customer ID, "
        "a receipt number or a first and last name."
    )
    list_select_related = ("favorite_store",)
    readonly_fields = [f.name for f in Persona._meta.fields]

    def get_queryset(self, request):
        # Blocklisted personas: privacy/support only (the one visibility rule).
        return Persona.objects.restrict(request.user).select_related("favorite_store")

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        found = search_candidates(user=request.user, query=search_term, base=queryset)
        return queryset.filter(pk__in=found.ids or []), False


def _by_exact(queryset, term: str, field: str, *, digits: bool = False):
    """Rows whose ``field`` is exactly ``term`` (an index lookup, never ``UPPER(…)`` or
    ``LIKE``); all rows for an empty term, none for a term that cannot be such a value."""
    term = term.strip()
    if not term:
        return queryset
    if digits and not (term.isdigit() and len(term) < 19):
        return queryset.none()
    return queryset.filter(**{field: int(term) if digits else term})


class PersonaRowsAdmin(ReadOnlyAdmin):
    """Rows about a persona (history, messages, ledger): a blocklisted persona's rows are
    shown to the privacy/support group only, like the persona itself."""

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if in_privacy_group(request.user):
            return qs
        return qs.filter(Q(persona__isnull=True) | visible_q("persona__"))


@admin.register(AuditEvent)
class AuditEventAdmin(PersonaRowsAdmin):
    list_display = ("id", "persona_id", "action", "actor_kind", "actor_label", "created_at")
    list_filter = ("actor_kind", "action")
    search_fields = ("persona_id",)
    search_help_text = "A persona's number (#)."

    def get_search_results(self, request, queryset, search_term):
        return _by_exact(queryset, search_term, "persona_id", digits=True), False


@admin.register(ConsentChange)
class ConsentChangeAdmin(PersonaRowsAdmin):
    list_display = ("id", "persona_id", "channel", "before", "after", "hard", "actor_kind")
    list_filter = ("channel", "after", "hard", "actor_kind")


@admin.register(PointsEntry)
class PointsEntryAdmin(PersonaRowsAdmin):
    list_display = ("id", "persona_id", "kind", "points", "reason", "created_at")
    list_filter = ("kind",)


@admin.register(Purchase)
class PurchaseAdmin(PersonaRowsAdmin):
    list_display = ("receipt_id", "persona_id", "store", "total", "points_earned", "purchased_at")
    list_filter = ("store",)
    search_fields = ("receipt_id",)
    search_help_text = "A receipt number, exactly."

    def get_search_results(self, request, queryset, search_term):
        return _by_exact(queryset, search_term, "receipt_id"), False


@admin.register(OutboundMessage)
class OutboundMessageAdmin(PersonaRowsAdmin):
    list_display = ("id", "persona_id", "channel", "template", "status", "created_at", "sent_at")
    list_filter = ("channel", "status", "template")


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "time_zone")
    search_fields = ("name", "code")


@admin.register(SignupForm)
class SignupFormAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "store", "enrolls_loyalty", "email_double_opt_in", "is_active")
    list_filter = ("is_active", "store")
    search_fields = ("name",)


# ---------------------------------------------------------------------------------------------
# Privacy: only the privacy/support group sees the blocklist and blocklisted personas.


class PrivacyOnlyAdmin(ReadOnlyAdmin):
    def has_module_permission(self, request):
        return in_privacy_group(request.user)

    def has_view_permission(self, request, obj=None):
        return in_privacy_group(request.user) and super().has_view_permission(request, obj)


@admin.register(BlocklistEntry)
class BlocklistEntryAdmin(PrivacyOnlyAdmin):
    list_display = ("short_digest", "kind", "reason", "created_at")
    list_filter = ("kind", "reason")
    search_fields = ("digest",)
    search_help_text = "Type the phone number or email: it is hashed for the look-up."
    show_full_result_count = False

    @admin.display(description="Entry")
    def short_digest(self, obj):
        return str(obj)

    def get_search_results(self, request, queryset, search_term):
        if not search_term:
            return queryset, False
        try:
            digest = parse_identifier(search_term).digest
        except ValidationError:
            return queryset.none(), False
        return queryset.filter(digest=digest), False

    def get_urls(self):
        urls = [
            path(
                "recover/",
                self.admin_site.admin_view(self.recover_view),
                name="personas_blocklistentry_recover",
            )
        ]
        return urls + super().get_urls()

    def recover_view(self, request):
        if not in_privacy_group(request.user):
            raise PermissionDenied
        form = RecoveryForm(request.POST or None)
        entry = None
        if request.method == "POST" and form.is_valid():
            identifier = form.cleaned_data["identifier"]
            try:
                if "recover" in request.POST:
                    record = privacy.recover(
                        identifier, user=request.user, reason=form.cleaned_data["reason"]
                    )
                    messages.success(
                        request,
                        f"Removed from the blocklist (recovery #{record.pk}). "
                        f"{record.personas_unhidden} persona(s) visible to staff again; "
                        "an erased persona stays erased, but the customer can sign up again.",
                    )
                    return redirect("admin:personas_blocklistrecovery_changelist")
                entry = privacy.lookup_entry(identifier)
                if entry is None:
                    form.add_error("identifier", "That phone number or email is not blocklisted.")
            except ValidationError as exc:
                form.add_error(None, exc.messages[0])
        context = {
            **self.admin_site.each_context(request),
            "title": "Account recovery",
            "form": form,
            "entry": entry,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/personas/blocklist_recover.html", context)


@admin.register(BlocklistRecovery)
class BlocklistRecoveryAdmin(PrivacyOnlyAdmin):
    list_display = ("id", "kind", "removed_by", "reason", "personas_unhidden", "created_at")


@admin.register(ErasureRequest)
class ErasureRequestAdmin(PrivacyOnlyAdmin):
    list_display = ("id", "via", "requested_by", "matched", "points_removed", "created_at")
    list_filter = ("via",)
