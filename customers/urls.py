"""The customer's own pages (no staff login), at the site's root."""

from django.urls import path

from . import views

app_name = "customers"
urlpatterns = [
    path("sms/inbound/", views.sms_inbound, name="sms_inbound"),
    path("signup/<slug:slug>/", views.signup_page, name="signup"),
    path("signup/<slug:slug>/thanks/", views.signup_done, name="signup_done"),
    path("email/confirm/<str:token>/", views.email_confirm, name="email_confirm"),
    path("wallet/", views.wallet, name="wallet"),
    path("wallet/sign-in/", views.wallet_start, name="wallet_start"),
    path("wallet/code/", views.wallet_verify, name="wallet_verify"),
    path("wallet/store/", views.wallet_store, name="wallet_store"),
    path("wallet/opt-in/<str:channel>/", views.wallet_consent, name="wallet_consent"),
    path("wallet/sign-out/", views.wallet_signout, name="wallet_signout"),
    path("privacy/", views.data_controls, name="data_controls"),
    path("privacy/verify/", views.data_controls_verify, name="data_controls_verify"),
    path("privacy/done/", views.data_controls_done, name="data_controls_done"),
]
