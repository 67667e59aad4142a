from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.utils import html
from rest_framework.views import APIView

from feedback.models import DoNotRecommend, Interaction
from feedback.selectors import do_not_recommend_marks
from feedback.services import (
    DoNotRecommendError,
    EventInput,
    FeedbackError,
    IdempotencyKeyConflict,
    do_not_recommend_mark,
    do_not_recommend_unmark,
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


class RequestIdField(serializers.UUIDField):
    """A served list's `request_id`: a UUID as a string (not a number)."""

    default_error_messages = {
        "invalid": "request_id must be the request_id of a list served to you (a UUID)."
    }

    def to_internal_value(self, data):
        if not isinstance(data, str) or len(data) > 45:  # the longest form is a urn:uuid:…
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


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
        request_id = RequestIdField(
            required=False,
            help_text="the request_id of the served list the track was shown in (from "
            "/api/rec, /api/continue, similar tracks): the event is linked to that "
            "impression; lists served to someone else never link",
        )

    class FeedbackEventSerializer(serializers.ModelSerializer):
        event = serializers.CharField(source="kind")
        ts = serializers.DateTimeField(source="occurred_at")

        class Meta:
            model = Interaction
            fields = ["id", "track_id", "event", "ts", "hour", "day_of_week", "source",
                      "idempotency_key", "request_id", "impression_id"]  # fmt: skip

    @extend_schema(
        request=FeedbackInputSerializer,
        responses={
            201: FeedbackEventSerializer,
            200: OpenApiResponse(FeedbackEventSerializer, description="repeated idempotency_key"),
            400: OpenApiResponse(
                description="unknown track or event, bad timestamp, malformed request_id"
            ),
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
                request_id=row.get("request_id"),
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


# ----------------------------------------------------------------------------- do not recommend

NO_SUCH_USER = "No user with this id."  # also for someone else's id: ids cannot be probed


def _acting_for(request, user_id: int | None):
    """The listener whose marks are read or changed: yourself, or anyone if you are staff;
    404 for someone else's id (exactly like a missing one)."""
    if user_id is None or user_id == request.user.pk:
        return request.user
    user = get_user_model().objects.filter(pk=user_id).first() if request.user.is_staff else None
    if user is None:
        raise NotFound(NO_SUCH_USER)
    return user


class DoNotRecommendTargetSerializer(serializers.Serializer):
    """Exactly one of track_id and artist_id (and, for staff, whose mark it is)."""

    track_id = id_field(required=False)
    artist_id = id_field(required=False, help_text="every track of the artist")
    user_id = id_field(required=False, help_text="whose mark (staff only); default: yours")

    def validate(self, attrs):
        if ("track_id" in attrs) == ("artist_id" in attrs):
            raise ValidationError(
                {"non_field_errors": ["give exactly one of track_id and artist_id"]}
            )
        return attrs


class DoNotRecommendApi(APIView):
    """A listener's "do not recommend" marks: a track, or an artist with all their tracks,
    kept out of every list served to them (recommendations, Discover, continuation, similar
    tracks, generated playlists), optionally until a moment. Your own marks only, unless you
    are staff (`user_id`)."""

    throttle_scope = "feedback"  # THROTTLE_FEEDBACK_RATE per user

    class DoNotRecommendInputSerializer(DoNotRecommendTargetSerializer):
        until = TimestampField(
            required=False,
            allow_null=True,
            help_text="ISO 8601 moment in the future after which the mark lapses; "
            "default: for good",
        )

    class DoNotRecommendListQuerySerializer(serializers.Serializer):
        user_id = id_field(required=False, help_text="whose marks (staff only); default: yours")

    class DoNotRecommendMarkSerializer(serializers.ModelSerializer):
        in_force = serializers.SerializerMethodField()

        class Meta:
            model = DoNotRecommend
            fields = ["id", "user_id", "track_id", "artist_id", "until", "created_at", "in_force"]

        def get_in_force(self, mark) -> bool:
            return mark.applies_at(self.context["now"])

    def _output(self, marks, *, many: bool):
        context = {"now": timezone.now()}
        return self.DoNotRecommendMarkSerializer(marks, many=many, context=context).data

    @extend_schema(
        parameters=[DoNotRecommendListQuerySerializer],
        responses={
            200: DoNotRecommendMarkSerializer(many=True),
            404: OpenApiResponse(
                description="someone else's user_id (you are not staff), or no user with this id"
            ),
        },
        description="Your marks, newest first, lapsed ones included (`in_force` false).",
    )
    def get(self, request):
        params = self.DoNotRecommendListQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        user = _acting_for(request, params.validated_data.get("user_id"))
        return Response(self._output(do_not_recommend_marks(user=user), many=True))

    @extend_schema(
        request=DoNotRecommendInputSerializer,
        responses={
            201: DoNotRecommendMarkSerializer,
            200: OpenApiResponse(
                DoNotRecommendMarkSerializer,
                description="the mark existed: its `until` is replaced",
            ),
            400: OpenApiResponse(
                description="not exactly one of track_id and artist_id, an "
                "unknown track or artist, or an until not in the future"
            ),
            404: OpenApiResponse(description="someone else's user_id (you are not staff)"),
        },
    )
    def post(self, request):
        serializer = self.DoNotRecommendInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = _acting_for(request, data.get("user_id"))
        try:
            mark, created = do_not_recommend_mark(
                user=user, track_id=data.get("track_id"), artist_id=data.get("artist_id"),
                until=data.get("until"),
            )  # fmt: skip
        except DoNotRecommendError as error:
            raise ValidationError({"detail": str(error)}) from None
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(self._output(mark, many=False), status=code)

    @extend_schema(
        parameters=[DoNotRecommendTargetSerializer],
        responses={
            204: OpenApiResponse(description="the mark is removed"),
            400: OpenApiResponse(description="not exactly one of track_id and artist_id"),
            404: OpenApiResponse(description="no such mark, or someone else's user_id"),
        },
    )
    def delete(self, request):
        params = DoNotRecommendTargetSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        user = _acting_for(request, data.get("user_id"))
        removed = do_not_recommend_unmark(
            user=user, track_id=data.get("track_id"), artist_id=data.get("artist_id")
        )
        if not removed:
            raise NotFound("No such mark.")
        return Response(status=status.HTTP_204_NO_CONTENT)
