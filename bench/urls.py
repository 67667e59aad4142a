from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView


class NoopApi(APIView):
    """The framework floor: middlewares, DRF and token authentication, then nothing."""

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("bench/noop", NoopApi.as_view(), name="bench-noop"),
    path("", include("tunedin.urls")),
]
