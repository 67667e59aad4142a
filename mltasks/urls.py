from django.urls import path

from mltasks import views

urlpatterns = [
    path("models/", views.model_dashboard, name="model-dashboard"),
    path("models/retrain/", views.model_retrain, name="model-retrain"),
    path(
        "models/<int:version_id>/activate/",
        views.model_version_activate_view,
        name="model-version-activate",
    ),
]
