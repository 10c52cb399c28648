from django.urls import path

from . import views

app_name = "imports"
urlpatterns = [
    path("", views.import_history, name="history"),
    path("new/", views.import_new, name="new"),
    path("<int:pk>/", views.import_detail, name="detail"),
    path("<int:pk>/progress/", views.import_progress, name="progress"),
    path("<int:pk>/run/", views.import_run, name="run"),
    path("<int:pk>/cancel/", views.import_cancel, name="cancel"),
    path("<int:pk>/resume/", views.import_resume, name="resume"),
    path("<int:pk>/issues.csv", views.import_errors, name="errors"),
    path("<int:pk>/double-opt-in/", views.import_send_double_opt_in, name="double_opt_in"),
]
