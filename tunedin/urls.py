from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from accounts.apis import TokenObtainApi, TokenRevokeApi
from tunedin.api_docs import redoc, swagger_ui
from tunedin.views import healthz, metrics
from web.urls import playlist_urlpatterns

# One "playlists" namespace for the API and the pages ("playlists:api-list", "playlists:detail").
playlist_routes = [
    path("api/playlists/", include("playlists.urls")),
    path("playlists/", include(playlist_urlpatterns)),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", swagger_ui, name="swagger-ui"),
    path("api/redoc/", redoc, name="redoc"),
    path("api/auth/token", TokenObtainApi.as_view(), name="api-token"),
    path("api/auth/token/revoke", TokenRevokeApi.as_view(), name="api-token-revoke"),
    path("api/", include("feedback.urls")),
    path("api/", include("recommendations.urls")),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="prometheus-django-metrics"),
    path("", include((playlist_routes, "playlists"))),
    path("", include("web.urls")),
]
