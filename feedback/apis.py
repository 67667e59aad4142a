from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from feedback.models import Interaction
from feedback.services import EventInput, FeedbackError, interactions_record

MAX_EVENTS_PER_REQUEST = 500


class FeedbackApi(APIView):
    """Record listening feedback for the authenticated user: one event, or a list of up to 500
    stored in one transaction. A repeated idempotency_key answers 200 with the stored event."""

    class FeedbackInputSerializer(serializers.Serializer):
        track_id = serializers.IntegerField(min_value=1)
        event = serializers.ChoiceField(choices=Interaction.Kind.values)
        ts = serializers.DateTimeField(required=False, help_text="ISO 8601; default: now")
        idempotency_key = serializers.CharField(max_length=128, required=False)

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
        except FeedbackError as error:
            raise ValidationError({"detail": str(error)}) from None
        created = any(was_created for _, was_created in results)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        output = [self.FeedbackEventSerializer(event).data for event, _ in results]
        return Response(output if many else output[0], status=code)
