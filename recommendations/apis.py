import math
import re

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.fields import empty
from rest_framework.response import Response
from rest_framework.utils import html
from rest_framework.views import APIView

from feedback.models import Impression
from feedback.services import impression_request_id, impressions_log
from mltasks.models import ModelVersion
from playlists.models import Playlist
from playlists.selectors import playlist_for_reading
from recommendations.continuation_selectors import MAX_CONTINUATION, MAX_INPUT_TRACKS
from recommendations.continuation_services import continuation_page, playlist_continuation_page
from recommendations.retrieval import RETRIEVAL_BACKENDS, retrieval_backend
from recommendations.selectors import (
    DEFAULT_MAX_PER_ARTIST,
    MAX_RECOMMENDATIONS,
    Slate,
    user_readable_by,
    users_similar_to,
)
from recommendations.services import recommendation_page_for_user, similar_tracks_page
from recommendations.serving import active_state
from tunedin.parsers import JSONParser
from tunedin.schema import (
    StrictBooleanField,
    StrictChoiceField,
    StrictIntegerField,
    id_field,
)

NO_SUCH_USER = "No user with this id."  # also for someone else's id: ids cannot be probed
USER_NOT_FOUND = OpenApiResponse(
    description="no user with this id that you may read: only your own id, any for staff "
    "(someone else's id answers exactly like a missing one)"
)


REQUEST_ID_HELP = (
    "this response's id (a new one each time, a cached list included): send it back with "
    "feedback on its tracks (POST /api/feedback `request_id`) to link the feedback to what "
    "was shown"
)


def served_pipeline(*, kind: str, version_id: int | None) -> str:
    """The name of the pipeline `version_id` serves ("" for none, or for a version no longer
    active here)."""
    state = active_state(kind)
    return state.algorithm if state is not None and state.version_id == version_id else ""


def _shown(*, user_id: int, surface: str, items: list[dict], model_version_id, pipeline,
           interleaving_test_id=None, teams=None, first_position: int = 0) -> str:  # fmt: skip
    """Log the impressions of a served list under a new request id; returns the id."""
    request_id = impression_request_id()
    impressions_log(
        user_id=user_id, surface=surface, request_id=request_id,
        track_ids=[item["track_id"] for item in items], model_version_id=model_version_id,
        pipeline=pipeline, interleaving_test_id=interleaving_test_id, teams=teams,
        first_position=first_position,
    )  # fmt: skip
    return str(request_id)


def _readable_user(request, user_id: int):
    """The user whose data is asked for: yourself, or anyone if you are staff; 404 otherwise."""
    user = user_readable_by(user_id=user_id, reader=request.user)
    if user is None:
        raise NotFound(NO_SUCH_USER)
    return user


_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


@extend_schema_field({"type": "number", "minimum": 0, "maximum": 1})
class DiversityField(serializers.FloatField):
    """λ in [0, 1]: a JSON number, or a plain decimal (`0.3`) in a query string; not NaN,
    an infinity, a boolean or text like `1e0`."""

    def get_value(self, dictionary):
        if not html.is_html_input(dictionary):
            return super().get_value(dictionary)
        value = dictionary.get(self.field_name, empty)  # an empty `?diversity=` is refused
        if isinstance(value, str) and _DECIMAL.fullmatch(value) and len(value) <= 20:
            return float(value)
        return value  # any other text is refused by to_internal_value

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float) or not math.isfinite(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class ScoredTrackSerializer(serializers.Serializer):
    track_id = serializers.IntegerField(source="track.pk")
    title = serializers.CharField(source="track.title")
    artist = serializers.CharField(source="track.artist.name")
    score = serializers.FloatField()


class RecommendedTrackSerializer(ScoredTrackSerializer):
    reason = serializers.CharField()


class SimilarUserSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    score = serializers.FloatField()


class UserRecommendationsApi(APIView):
    class RecommendationQuerySerializer(serializers.Serializer):
        n = StrictIntegerField(min_value=1, max_value=MAX_RECOMMENDATIONS, default=50)
        offset = StrictIntegerField(min_value=0, max_value=MAX_RECOMMENDATIONS, default=0)
        backend = StrictChoiceField(
            choices=RETRIEVAL_BACKENDS,
            required=False,
            help_text="vector search for a served factor model (default: RETRIEVAL_BACKEND); "
            "a served ranker or item-item model scores exactly and ignores it",
        )
        max_per_artist = StrictIntegerField(
            min_value=0,
            max_value=MAX_RECOMMENDATIONS,
            default=DEFAULT_MAX_PER_ARTIST,
            help_text="at most this many tracks of an artist ahead of the other artists' "
            "tracks (the extra ones come after them); 0: no cap",
        )
        diversity = DiversityField(
            min_value=0.0,
            max_value=1.0,
            required=False,
            help_text="MMR re-rank on the tracks' tags: 0 keeps the model's order, 1 puts "
            "the track least like those above it next (default: no re-rank)",
        )

    class RecommendationListSerializer(serializers.Serializer):
        user_id = serializers.IntegerField()
        model_version = serializers.IntegerField(allow_null=True)
        request_id = serializers.UUIDField(help_text=REQUEST_ID_HELP)
        items = RecommendedTrackSerializer(many=True)

    @extend_schema(
        parameters=[RecommendationQuerySerializer],
        responses={
            200: RecommendationListSerializer,
            400: OpenApiResponse(
                description="n, offset, max_per_artist or diversity out of range, or an "
                "unknown backend"
            ),
            404: USER_NOT_FOUND,
        },
        description="Top tracks for a user, excluding every track they already interacted "
        "with and every track or artist they asked not to be recommended "
        "(/api/do-not-recommend), with at most `max_per_artist` tracks of an artist ahead of "
        "the rest. `model_version` is null when no model is active (popularity or tags). "
        "Each response is logged as shown to the user (impressions) under its `request_id`.",
    )
    def get(self, request, user_id: int):
        params = self.RecommendationQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        user = _readable_user(request, user_id)
        options = dict(params.validated_data)
        backend = retrieval_backend(options.pop("backend", None))
        slate = Slate(options.pop("max_per_artist"), options.pop("diversity", None))
        page = recommendation_page_for_user(user=user, backend=backend, slate=slate, **options)
        request_id = _shown(
            user_id=user.pk, surface=Impression.Surface.API_REC, items=page.items,
            model_version_id=page.model_version,
            pipeline=page.pipeline or served_pipeline(
                kind=ModelVersion.Kind.RECOMMENDER, version_id=page.model_version
            ),
            interleaving_test_id=page.interleaving_test, teams=page.teams,
            first_position=options["offset"],  # a later page goes on from the one before
        )  # fmt: skip
        return Response(
            {"user_id": user.pk, "model_version": page.model_version, "request_id": request_id,
             "items": page.items}
        )  # fmt: skip


class SimilarUsersApi(APIView):
    class SimilarUsersQuerySerializer(serializers.Serializer):
        n = StrictIntegerField(min_value=1, max_value=MAX_RECOMMENDATIONS, default=20)

    class SimilarUsersSerializer(serializers.Serializer):
        user_id = serializers.IntegerField()
        model_version = serializers.IntegerField(allow_null=True)
        items = SimilarUserSerializer(many=True)

    @extend_schema(
        parameters=[SimilarUsersQuerySerializer],
        responses={
            200: SimilarUsersSerializer,
            400: OpenApiResponse(description="n out of range"),
            404: USER_NOT_FOUND,
        },
    )
    def get(self, request, user_id: int):
        params = self.SimilarUsersQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        user = _readable_user(request, user_id)
        version, neighbours = users_similar_to(user_id=user.pk, n=params.validated_data["n"])
        return Response(
            {
                "user_id": user.pk,
                "model_version": version,
                "items": SimilarUserSerializer(neighbours, many=True).data,
            }
        )


class SimilarTracksApi(APIView):
    class SimilarTracksQuerySerializer(serializers.Serializer):
        n = StrictIntegerField(min_value=1, max_value=MAX_RECOMMENDATIONS, default=20)
        use_ann = StrictBooleanField(default=False)

    class SimilarTracksSerializer(serializers.Serializer):
        track_id = serializers.IntegerField()
        request_id = serializers.UUIDField(help_text=REQUEST_ID_HELP)
        items = ScoredTrackSerializer(many=True)

    @extend_schema(
        parameters=[SimilarTracksQuerySerializer],
        responses={
            200: SimilarTracksSerializer,
            400: OpenApiResponse(description="n out of range, or use_ann not true or false"),
            404: OpenApiResponse(description="no track with this id"),
        },
    )
    def get(self, request, track_id: int):
        params = self.SimilarTracksQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        page = similar_tracks_page(track_id=track_id, user=request.user, **params.validated_data)
        if page is None:
            raise NotFound("No track with this id.")
        # Ranked by the active recommender's vectors when it knows the track, else by tags.
        state = active_state(ModelVersion.Kind.RECOMMENDER)
        by_model = state is not None and track_id in state.track_index
        request_id = _shown(
            user_id=request.user.pk, surface=Impression.Surface.SIMILAR, items=page["items"],
            model_version_id=state.version_id if by_model else None,
            pipeline=state.algorithm if by_model else "",
        )  # fmt: skip
        return Response({"track_id": page["track_id"], "request_id": request_id,
                         "items": page["items"]})  # fmt: skip


class ContinuationOutputSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(allow_null=True)
    request_id = serializers.UUIDField(help_text=REQUEST_ID_HELP)
    fallback = serializers.CharField(allow_null=True)
    unknown_tracks = serializers.ListField(child=serializers.IntegerField())
    items = ScoredTrackSerializer(many=True)


class ContextSerializer(serializers.Serializer):
    hour = StrictIntegerField(min_value=0, max_value=23)
    dow = StrictIntegerField(min_value=0, max_value=6, help_text="0 = Monday")


class ContinuationOptionsSerializer(serializers.Serializer):
    k = StrictIntegerField(min_value=1, max_value=MAX_CONTINUATION, default=20)
    context = ContextSerializer(required=False, help_text="default: now")
    use_ann = StrictBooleanField(
        default=False,
        help_text="FAISS HNSW over a served neural model's vectors; a served ranker, Markov "
        "chain or session-kNN scores exactly and ignores it",
    )
    exclude = serializers.ListField(child=id_field(), max_length=1000, default=list)
    max_per_artist = StrictIntegerField(
        min_value=1, max_value=MAX_CONTINUATION, allow_null=True, default=2
    )


def _continuation_shown(*, user_id: int, page: dict) -> dict:
    """The continuation payload with its request id, its impressions logged (a popularity
    fallback under no model version)."""
    version_id = None if page["fallback"] else page["model_version"]
    request_id = _shown(
        user_id=user_id, surface=Impression.Surface.CONTINUATION, items=page["items"],
        model_version_id=version_id,
        pipeline=served_pipeline(kind=ModelVersion.Kind.CONTINUATION, version_id=version_id),
    )  # fmt: skip
    return {"model_version": page["model_version"], "request_id": request_id,
            **{key: value for key, value in page.items() if key != "model_version"}}  # fmt: skip


def _continuation_options(data: dict) -> dict:
    context = data.pop("context", None) or {}
    return {**data, "hour": context.get("hour"), "dow": context.get("dow")}


class ContinueApi(APIView):
    """Continue a sequence of tracks (a playlist being built, a listening session)."""

    parser_classes = [JSONParser]  # a form cannot carry the nested `context`: JSON only

    class ContinueInputSerializer(ContinuationOptionsSerializer):
        tracks = serializers.ListField(
            child=id_field(),
            min_length=1,
            max_length=MAX_INPUT_TRACKS,
            help_text="track ids, oldest first",
        )

    @extend_schema(
        request=ContinueInputSerializer,
        responses={
            200: ContinuationOutputSerializer,
            400: OpenApiResponse(description="no tracks, too many, or an option out of range"),
        },
    )
    def post(self, request):
        serializer = self.ContinueInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        options = _continuation_options(dict(serializer.validated_data))
        page = continuation_page(track_ids=options.pop("tracks"), user=request.user, **options)
        return Response(_continuation_shown(user_id=request.user.pk, page=page))


class PlaylistContinueApi(APIView):
    """Continue a playlist you own (or a public one) with its tracks as the sequence."""

    parser_classes = [JSONParser]  # a form cannot carry the nested `context`: JSON only

    class PlaylistContinueQuerySerializer(serializers.Serializer):
        k = StrictIntegerField(
            min_value=1, max_value=MAX_CONTINUATION, required=False,
            help_text="overrides the body's k",
        )  # fmt: skip

    @extend_schema(
        request=ContinuationOptionsSerializer,
        parameters=[PlaylistContinueQuerySerializer],
        responses={
            200: ContinuationOutputSerializer,
            400: OpenApiResponse(description="an option out of range"),
            404: OpenApiResponse(description="no playlist with this id that you may read"),
        },
    )
    def post(self, request, playlist_id: int):
        query = self.PlaylistContinueQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        serializer = ContinuationOptionsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            playlist = playlist_for_reading(playlist_id=playlist_id, user=request.user)
        except Playlist.DoesNotExist:
            raise NotFound("No playlist with this id.") from None
        options = _continuation_options({**serializer.validated_data, **query.validated_data})
        page = playlist_continuation_page(playlist=playlist, user=request.user, **options)
        return Response(_continuation_shown(user_id=request.user.pk, page=page))
