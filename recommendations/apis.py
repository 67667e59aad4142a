from django.contrib.auth import get_user_model
from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from playlists.models import Playlist
from recommendations.continuation_selectors import (
    MAX_CONTINUATION,
    MAX_INPUT_TRACKS,
    continuation_page,
    playlist_continuation_page,
)
from recommendations.selectors import (
    MAX_RECOMMENDATIONS,
    RETRIEVAL_BACKENDS,
    recommendation_page_for_user,
    similar_tracks_page,
    users_similar_to,
)


def _readable_user(request, user_id: int):
    """The user whose data is asked for: yourself, or anyone if you are staff."""
    if user_id == request.user.pk:
        return request.user
    user = get_object_or_404(get_user_model(), pk=user_id)
    if user.pk != request.user.pk and not request.user.is_staff:
        raise PermissionDenied("You can only read your own recommendations.")
    return user


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
        n = serializers.IntegerField(min_value=1, max_value=MAX_RECOMMENDATIONS, default=50)
        offset = serializers.IntegerField(min_value=0, max_value=MAX_RECOMMENDATIONS, default=0)
        backend = serializers.ChoiceField(choices=RETRIEVAL_BACKENDS, required=False)

    class RecommendationListSerializer(serializers.Serializer):
        user_id = serializers.IntegerField()
        model_version = serializers.IntegerField(allow_null=True)
        items = RecommendedTrackSerializer(many=True)

    @extend_schema(
        parameters=[RecommendationQuerySerializer],
        responses={200: RecommendationListSerializer},
        description="Top tracks for a user, excluding every track they already interacted "
        "with. `model_version` is null when no model is active (popularity or tags).",
    )
    def get(self, request, user_id: int):
        params = self.RecommendationQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        user = _readable_user(request, user_id)
        page = recommendation_page_for_user(user=user, **params.validated_data)
        return Response(
            {"user_id": user.pk, "model_version": page.model_version, "items": page.items}
        )


class SimilarUsersApi(APIView):
    class SimilarUsersQuerySerializer(serializers.Serializer):
        n = serializers.IntegerField(min_value=1, max_value=MAX_RECOMMENDATIONS, default=20)

    class SimilarUsersSerializer(serializers.Serializer):
        user_id = serializers.IntegerField()
        model_version = serializers.IntegerField(allow_null=True)
        items = SimilarUserSerializer(many=True)

    @extend_schema(
        parameters=[SimilarUsersQuerySerializer], responses={200: SimilarUsersSerializer}
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
        n = serializers.IntegerField(min_value=1, max_value=MAX_RECOMMENDATIONS, default=20)
        use_ann = serializers.BooleanField(default=False)

    class SimilarTracksSerializer(serializers.Serializer):
        track_id = serializers.IntegerField()
        items = ScoredTrackSerializer(many=True)

    @extend_schema(
        parameters=[SimilarTracksQuerySerializer], responses={200: SimilarTracksSerializer}
    )
    def get(self, request, track_id: int):
        params = self.SimilarTracksQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        page = similar_tracks_page(track_id=track_id, **params.validated_data)
        if page is None:
            raise NotFound("No track with this id.")
        return Response(page)


class ContinuationOutputSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(allow_null=True)
    fallback = serializers.CharField(allow_null=True)
    unknown_tracks = serializers.ListField(child=serializers.IntegerField())
    items = ScoredTrackSerializer(many=True)


class ContextSerializer(serializers.Serializer):
    hour = serializers.IntegerField(min_value=0, max_value=23)
    dow = serializers.IntegerField(min_value=0, max_value=6, help_text="0 = Monday")


class ContinuationOptionsSerializer(serializers.Serializer):
    k = serializers.IntegerField(min_value=1, max_value=MAX_CONTINUATION, default=20)
    context = ContextSerializer(required=False, help_text="default: now")
    use_ann = serializers.BooleanField(default=False)
    exclude = serializers.ListField(
        child=serializers.IntegerField(min_value=1), max_length=1000, default=list
    )
    max_per_artist = serializers.IntegerField(
        min_value=1, max_value=MAX_CONTINUATION, allow_null=True, default=2
    )


def _continuation_options(data: dict) -> dict:
    context = data.pop("context", None) or {}
    return {**data, "hour": context.get("hour"), "dow": context.get("dow")}


class ContinueApi(APIView):
    """Continue a sequence of tracks (a playlist being built, a listening session)."""

    parser_classes = [JSONParser]  # a form cannot carry the nested `context`: JSON only

    class ContinueInputSerializer(ContinuationOptionsSerializer):
        tracks = serializers.ListField(
            child=serializers.IntegerField(min_value=1),
            min_length=1,
            max_length=MAX_INPUT_TRACKS,
            help_text="track ids, oldest first",
        )

    @extend_schema(request=ContinueInputSerializer, responses={200: ContinuationOutputSerializer})
    def post(self, request):
        serializer = self.ContinueInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        options = _continuation_options(dict(serializer.validated_data))
        return Response(continuation_page(track_ids=options.pop("tracks"), **options))


class PlaylistContinueApi(APIView):
    """Continue a playlist you own (or a public one) with its tracks as the sequence."""

    parser_classes = [JSONParser]  # a form cannot carry the nested `context`: JSON only

    @extend_schema(
        request=ContinuationOptionsSerializer,
        parameters=[OpenApiParameter("k", int, description="overrides the body's k")],
        responses={200: ContinuationOutputSerializer},
    )
    def post(self, request, playlist_id: int):
        data = {**(request.data if isinstance(request.data, dict) else {})}
        if "k" in request.query_params:
            data["k"] = request.query_params["k"]
        serializer = ContinuationOptionsSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        playlist = get_object_or_404(
            Playlist.objects.filter(Q(owner=request.user) | Q(is_public=True)), pk=playlist_id
        )
        options = _continuation_options(dict(serializer.validated_data))
        return Response(playlist_continuation_page(playlist=playlist, **options))
