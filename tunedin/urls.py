from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token

from recommendations.views import healthz
from tunedin.views import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/auth/token", obtain_auth_token, name="api-token"),
    path("api/", include("feedback.urls")),
    path("api/", include("recommendations.urls")),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="prometheus-django-metrics"),
    path("dashboard/", include("mltasks.urls")),
    path("", include("playlists.urls")),
    path("", include("catalog.urls")),
]
