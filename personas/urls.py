from django.urls import path

from . import views

app_name = "personas"
urlpatterns = [
    path("personas/", views.persona_list, name="list"),
    path("settings/", views.settings_home, name="settings"),
]
