from django.urls import path, re_path

from . import views, views_privacy

app_name = "personas"
urlpatterns = [
    path("personas/", views.persona_list, name="list"),
    path("personas/new/", views.persona_create, name="create"),
    path("personas/archived/", views.archived_list, name="archived"),
    path("personas/<int:pk>/", views.persona_detail, name="detail"),
    re_path(
        r"^personas/(?P<pk>[0-9]+)/(?P<tab>points|purchases|activity)/$",
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
    path("personas/<int:pk>/do/erase/", views_privacy.persona_erase, name="erase"),
    path("settings/privacy/", views_privacy.privacy_settings, name="privacy_settings"),
    # Public (no staff login): the customer's own data controls.
    path("privacy/", views_privacy.data_controls, name="data_controls"),
    path("privacy/verify/", views_privacy.data_controls_verify, name="data_controls_verify"),
    path("privacy/done/", views_privacy.data_controls_done, name="data_controls_done"),
]
