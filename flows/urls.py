from django.urls import path

from . import views

app_name = "flows"
urlpatterns = [
    path("", views.flow_list, name="list"),
    path("new/", views.flow_new, name="new"),
    path("import/", views.flow_import, name="import"),
    path("<int:pk>/", views.flow_detail, name="detail"),
    path("<int:pk>/steps/add/", views.step_add, name="step_add"),
    # path: a step saved before names were checked ("a/b") must still open, to be renamed
    path("<int:pk>/steps/<path:name>/", views.step_edit, name="step_edit"),
    path("<int:pk>/delete-step/<path:name>/", views.step_delete, name="step_delete"),
    path("<int:pk>/first-step/<path:name>/", views.step_first, name="step_first"),
    path("<int:pk>/publish/", views.flow_publish, name="publish"),
    path("<int:pk>/pause/", views.flow_pause, name="pause"),
    path("<int:pk>/resume/", views.flow_resume, name="resume"),
    path("<int:pk>/archive/", views.flow_archive, name="archive"),
    path("<int:pk>/test/", views.flow_test, name="test"),
    path("<int:pk>/runs/", views.flow_runs, name="runs"),
    path("<int:pk>/export.json", views.flow_export, name="export"),
    path("<int:pk>/enroll-list/", views.enroll_list, name="enroll_list"),
    path("<int:pk>/enrolments/", views.flow_enrolments, name="enrolments"),
    path("enrolments/<int:pk>/cancel/", views.enrolment_cancel, name="enrolment_cancel"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("enroll/<int:persona_pk>/", views.enroll_persona, name="enroll_persona"),
]
