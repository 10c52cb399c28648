from django.urls import path, re_path

from . import views, views_merge, views_privacy, views_public, views_signup

app_name = "personas"
urlpatterns = [
    path("personas/", views.persona_list, name="list"),
    path("personas/new/", views.persona_create, name="create"),
    path("personas/archived/", views.archived_list, name="archived"),
    path("personas/archived/count/", views.archived_count, name="archived_count"),
    path("personas/count/", views.persona_count, name="count"),
    path("replies/", views.replies, name="replies"),
    path("personas/<int:pk>/", views.persona_detail, name="detail"),
    re_path(
        r"^personas/(?P<pk>[0-9]+)/(?P<tab>points|purchases|activity|flows)/$",
        views.persona_detail,
        name="detail_tab",
    ),
    path("personas/<int:pk>/edit/traits/", views.persona_traits, name="traits"),
    path(
        "personas/<int:pk>/consent/<str:channel>/",
        views.persona_consent,
        name="consent",
    ),
    path("personas/<int:pk>/do/archive/", views.persona_archive, name="archive"),
    path("personas/<int:pk>/do/unarchive/", views.persona_unarchive, name="unarchive"),
    path("personas/<int:pk>/do/adjust-points/", views.points_adjust, name="points_adjust"),
    path("settings/", views.settings_home, name="settings"),
    path("personas/<int:pk>/do/merge/", views_merge.persona_merge, name="merge"),
    path("merges/<int:pk>/unmerge/", views_merge.merge_undo, name="unmerge"),
    path("personas/duplicates/", views_merge.duplicates, name="duplicates"),
    path("personas/duplicates/dismiss/", views_merge.not_duplicate, name="not_duplicate"),
    path("personas/<int:pk>/do/erase/", views_privacy.persona_erase, name="erase"),
    path("settings/privacy/", views_privacy.privacy_settings, name="privacy_settings"),
    path("settings/signup-forms/", views_signup.signup_forms, name="signup_forms"),
    path("settings/signup-forms/new/", views_signup.signup_form_edit, name="signup_form_new"),
    path("settings/signup-forms/<int:pk>/", views_signup.signup_form_edit, name="signup_form_edit"),
    path("personas/export.csv", views_signup.personas_export, name="export"),
    path(
        "personas/<int:pk>/consent-history.csv",
        views_signup.consent_history_export,
        name="consent_export",
    ),
    # Public (no staff login): SMS webhook, signup forms, the wallet.
    path("sms/inbound/", views_public.sms_inbound, name="sms_inbound"),
    path("signup/<slug:slug>/", views_public.signup_page, name="signup"),
    path("signup/<slug:slug>/thanks/", views_public.signup_done, name="signup_done"),
    path("wallet/", views_public.wallet, name="wallet"),
    path("wallet/sign-in/", views_public.wallet_start, name="wallet_start"),
    path("wallet/code/", views_public.wallet_verify, name="wallet_verify"),
    path("wallet/store/", views_public.wallet_store, name="wallet_store"),
    path("wallet/opt-in/<str:channel>/", views_public.wallet_consent, name="wallet_consent"),
    path("wallet/sign-out/", views_public.wallet_signout, name="wallet_signout"),
    path("email/confirm/<str:token>/", views_public.email_confirm, name="email_confirm"),
    # Public (no staff login): the customer's own data controls.
    path("privacy/", views_privacy.data_controls, name="data_controls"),
    path("privacy/verify/", views_privacy.data_controls_verify, name="data_controls_verify"),
    path("privacy/done/", views_privacy.data_controls_done, name="data_controls_done"),
]
# Settings › Team (Owner only), and the public page a set-password link opens.
from . import views_team as team  # noqa: E402  (added below so the lines above stay as they are)

urlpatterns += [
    path("settings/team/", team.team, name="team"),
    path("settings/team/<int:pk>/", team.member, name="team_member"),
    path("settings/team/<int:pk>/role/", team.member_role, name="team_role"),
    path("settings/team/<int:pk>/deactivate/", team.member_deactivate, name="team_deactivate"),
    path("settings/team/<int:pk>/reactivate/", team.member_reactivate, name="team_reactivate"),
    path("settings/team/<int:pk>/password-link/", team.member_send_reset, name="team_reset"),
    path("accounts/reset/<uidb64>/<token>/", team.set_password, name="password_reset_confirm"),
]
