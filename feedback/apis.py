from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.utils import html
from rest_framework.views import APIView

from feedback.models import Interaction
from feedback.services import (
    EventInput,
    FeedbackError,
    IdempotencyKeyConflict,
    interactions_record,
)
from tunedin.schema import StrictCharField, StrictChoiceField, id_field

MAX_EVENTS_PER_REQUEST = 500


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with what is stored."
    default_code = "conflict"


class TimestampField(serializers.DateTimeField):
    """A DateTimeField for which a blank form value (`ts=`) is a bad timestamp, not "now"."""

    def get_value(self, dictionary):
        if html.is_html_input(dictionary) and dictionary.get(self.field_name) == "":
            return ""
        return super().get_value(dictionary)


class FeedbackApi(APIView):
    """Record listening feedback for the authenticated user: one event, or a list of up to 500
    stored in one transaction. A repeated idempotency_key answers 200 with the stored event, or
    409 when the event sent with it differs from the stored one."""

    throttle_scope = "feedback"  # THROTTLE_FEEDBACK_RATE per user

    class FeedbackInputSerializer(serializers.Serializer):
        track_id = id_field()
        event = StrictChoiceField(choices=Interaction.Kind.values)
        ts = TimestampField(
            required=False, help_text="ISO 8601, from FEEDBACK_MIN_TIMESTAMP to now; default: now"
        )
        idempotency_key = StrictCharField(max_length=128, required=False)

    class FeedbackEventSerializer(serializers.ModelSerializer):
        event = serializers.CharField(source="kind")
        ts = serializers.DateTimeField(source="occurred_at")

        class Meta:
            model = Interaction
            fields = ["id", "track_id", "event", "ts", "hour", "day_of_week", "source",
                      "idempotency_key"]  # fmt: skip

    @extend_schema(
        request=FeedbackInputSerializer,
        responses={
            201: FeedbackEventSerializer,
            200: OpenApiResponse(FeedbackEventSerializer, description="repeated idempotency_key"),
            400: OpenApiResponse(description="unknown track or event, bad timestamp"),
            409: OpenApiResponse(
                description="an idempotency_key already used for a different event; "
                "nothing in the request is stored"
            ),
        },
    )
    def post(self, request):
        many = isinstance(request.data, list)
        if many and not 1 <= len(request.data) <= MAX_EVENTS_PER_REQUEST:
            raise ValidationError(
                {"detail": f"send between 1 and {MAX_EVENTS_PER_REQUEST} events per request"}
            )
        serializer = self.FeedbackInputSerializer(data=request.data, many=many)
        serializer.is_valid(raise_exception=True)
        rows = serializer.validated_data if many else [serializer.validated_data]
        events = [
            EventInput(
                track_id=row["track_id"],
                kind=row["event"],
                occurred_at=row.get("ts"),
                idempotency_key=row.get("idempotency_key"),
            )
            for row in rows
        ]
        try:
            results = interactions_record(
                user=request.user, events=events, source=Interaction.Source.API
            )
        except IdempotencyKeyConflict as error:
            raise Conflict(str(error)) from None
        except FeedbackError as error:
            raise ValidationError({"detail": str(error)}) from None
        created = any(was_created for _, was_created in results)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        output = [self.FeedbackEventSerializer(event).data for event, _ in results]
        return Response(output if many else output[0], status=code)
