from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from config import observability

urlpatterns = [
    path("healthz", observability.health, name="health"),
    path("", RedirectView.as_view(pattern_name="personas:list", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("admin/", admin.site.urls),
    path("", include("personas.urls")),
    path("", include("customers.urls")),
    path("imports/", include("imports.urls")),
    path("flows/", include("flows.urls")),
]
