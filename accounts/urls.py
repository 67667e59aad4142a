from django.urls import include, path

from accounts import views

urlpatterns = [
    path("signup/", views.sign_up, name="signup"),
    path("onboarding/", views.onboarding, name="onboarding"),
    path("", include("django.contrib.auth.urls")),
]
