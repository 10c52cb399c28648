from django.urls import path, re_path

from .tabs import registered_tabs
from .views import erase, exports, merge, personas, settings

# The profile tabs with an address of their own: the profile's (but General, the profile's own
# address), then those other apps registered (personas.tabs).
TAB_NAMES = "|".join([*list(personas.OWN_TABS)[1:], *registered_tabs()])

app_name = "personas"
urlpatterns = [
    path("personas/", personas.persona_list, name="list"),
    path("personas/new/", personas.persona_create, name="create"),
    path("personas/archived/", personas.archived_list, name="archived"),
    path("personas/archived/count/", personas.archived_count, name="archived_count"),
    path("personas/count/", personas.persona_count, name="count"),
    path("replies/", personas.replies, name="replies"),
    path("personas/<int:pk>/", personas.persona_detail, name="detail"),
    re_path(
        rf"^personas/(?P<pk>[0-9]+)/(?P<tab>{TAB_NAMES})/$",
        personas.persona_detail,
        name="detail_tab",
    ),
    path("personas/<int:pk>/edit/traits/", personas.persona_traits, name="traits"),
    path(
        "personas/<int:pk>/consent/<str:channel>/",
        personas.persona_consent,
        name="consent",
    ),
    path("personas/<int:pk>/do/archive/", personas.persona_archive, name="archive"),
    path("personas/<int:pk>/do/unarchive/", personas.persona_unarchive, name="unarchive"),
    path("personas/<int:pk>/do/adjust-points/", personas.points_adjust, name="points_adjust"),
    path("personas/<int:pk>/do/merge/", merge.persona_merge, name="merge"),
    path("merges/<int:pk>/unmerge/", merge.merge_undo, name="unmerge"),
    path("personas/duplicates/", merge.duplicates, name="duplicates"),
    path("personas/duplicates/dismiss/", merge.not_duplicate, name="not_duplicate"),
    path("personas/<int:pk>/do/erase/", erase.persona_erase, name="erase"),
    path("personas/export.csv", exports.personas_export, name="export"),
    path(
        "personas/<int:pk>/consent-history.csv",
        exports.consent_history_export,
        name="consent_export",
    ),
    path("settings/", settings.settings_home, name="settings"),
    path("settings/privacy/", erase.privacy_settings, name="privacy_settings"),
    path("settings/signup-forms/", settings.signup_forms, name="signup_forms"),
    path("settings/signup-forms/new/", settings.signup_form_edit, name="signup_form_new"),
    path("settings/signup-forms/<int:pk>/", settings.signup_form_edit, name="signup_form_edit"),
    # Settings › Team (Owner only), and the page a set-password link opens.
    path("settings/team/", settings.team, name="team"),
    path("settings/team/<int:pk>/", settings.member, name="team_member"),
    path("settings/team/<int:pk>/role/", settings.member_role, name="team_role"),
    path("settings/team/<int:pk>/deactivate/", settings.member_deactivate, name="team_deactivate"),
    path("settings/team/<int:pk>/reactivate/", settings.member_reactivate, name="team_reactivate"),
    path("settings/team/<int:pk>/password-link/", settings.member_send_reset, name="team_reset"),
    path("accounts/reset/<uidb64>/<token>/", settings.set_password, name="password_reset_confirm"),
]
