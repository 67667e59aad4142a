"""API tokens: obtain one with a username and password, revoke your own."""

from axes.helpers import get_cool_off
from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

THROTTLED = OpenApiResponse(description="too many requests or failed logins; see Retry-After")


class TokenObtainApi(ObtainAuthToken):
    """Exchange a username and password for the user's API token (created on first use; the same
    token until it is revoked or the password changes). Throttled per client (scope `api-token`);
    after AXES_FAILURE_LIMIT failed logins a username is locked out from that address for
    AXES_COOLOFF_MINUTES, the right password included."""

    # ObtainAuthToken turns throttling off and lists DRF's own JSON parser.
    throttle_classes = api_settings.DEFAULT_THROTTLE_CLASSES
    throttle_scope = "api-token"
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES

    @extend_schema(
        operation_id="auth_token_create",
        responses={
            200: inline_serializer("AuthTokenResponse", {"token": serializers.CharField()}),
            400: OpenApiResponse(description="wrong or missing username or password"),
            429: THROTTLED,
        },
    )
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            # django-axes marks the request it refused (it is passed to authenticate()).
            if getattr(request, "axes_locked_out", False):
                cool_off = get_cool_off(request)
                raise Throttled(
                    wait=cool_off.total_seconds() if cool_off else None,
                    detail="Too many failed logins: this username is locked out from your "
                    "address for a while.",
                )
            raise ValidationError(serializer.errors)
        user = serializer.validated_data["user"]
        # Obtaining a token is a login: last_login moves, earlier failures are forgiven (axes).
        user_logged_in.send(sender=user.__class__, request=request, user=user)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class TokenRevokeApi(APIView):
    """Delete the caller's API token: it stops working at once. The next token request (with
    the password) creates a new one."""

    @extend_schema(
        operation_id="auth_token_revoke",
        request=None,
        responses={
            204: OpenApiResponse(description="the token is deleted (or there was none)"),
            401: OpenApiResponse(description="not authenticated"),
            429: THROTTLED,
        },
    )
    def post(self, request):
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
