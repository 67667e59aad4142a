"""Playlists over HTTP: owners write, anyone reads a public playlist, and someone else's private
playlist answers 404 as if it did not exist."""

from __future__ import annotations

from contextlib import contextmanager

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from playlists.models import Playlist
from playlists.selectors import playlist_for_reading, playlist_for_writing, playlists_owned_by
from playlists.services import (
    MAX_TRACKS_PER_ADD,
    NAME_MAX_LENGTH,
    playlist_add_tracks,
    playlist_create,
    playlist_delete,
    playlist_move_entry,
    playlist_remove_entry,
    playlist_rename,
    playlist_save_copy,
    playlist_set_visibility,
)
from tunedin.parsers import JSONParser
from tunedin.schema import StrictBooleanField, StrictCharField, StrictIntegerField, id_field

NOT_FOUND = OpenApiResponse(description="no such playlist, or someone else's private one")
NOT_YOURS = OpenApiResponse(
    description="someone else's public playlist: only its owner changes it; or a generated "
    "playlist (Weekly Exploration, Daily Jams), rebuilt on each run: save a copy to change it"
)


@contextmanager
def service_errors():
    """A service's ValidationError becomes a 400 with the same field → reason mapping."""
    try:
        yield
    except DjangoValidationError as error:
        detail = error.message_dict if hasattr(error, "error_dict") else error.messages
        raise ApiValidationError(detail=detail) from error


def readable_playlist(*, playlist_id: int, user) -> Playlist:
    try:
        return playlist_for_reading(playlist_id=playlist_id, user=user, with_entries=True)
    except Playlist.DoesNotExist as missing:
        raise NotFound("No such playlist.") from missing


def writable_playlist(*, playlist_id: int, user) -> Playlist:
    try:
        return playlist_for_writing(playlist_id=playlist_id, user=user)
    except Playlist.DoesNotExist as missing:
        raise NotFound("No such playlist.") from missing


class ArtistOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class TrackOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    artist = ArtistOutputSerializer()


class EntryOutputSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    track = TrackOutputSerializer()
    added_at = serializers.DateTimeField()


@extend_schema_serializer(component_name="PlaylistDetail")
class PlaylistDetailOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    is_public = serializers.BooleanField()
    generated = serializers.ChoiceField(
        choices=["", *Playlist.Generated.values],
        help_text="which generated playlist this is (rebuilt on each run, read-only); "
        '"" for a playlist of your own',
    )
    owner = serializers.CharField(source="owner.username")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    entries = EntryOutputSerializer(many=True, source="entries.all")


def writing_responses(bad_request: str) -> dict:
    """What a change to a playlist answers: the playlist, or why not."""
    return {
        200: PlaylistDetailOutputSerializer,
        400: OpenApiResponse(description=bad_request),
        403: NOT_YOURS,
        404: NOT_FOUND,
    }


def playlist_detail_response(*, playlist_id: int, user, status_code: int = 200) -> Response:
    playlist = readable_playlist(playlist_id=playlist_id, user=user)
    return Response(PlaylistDetailOutputSerializer(playlist).data, status=status_code)


class PlaylistListApi(APIView):
    class Pagination(LimitOffsetPagination):
        """limit/offset that are not whole numbers in range answer 400, like every other query
        parameter of the API, instead of DRF's silent fall back to the defaults."""

        default_limit = 50
        max_limit = 200

        class PageQuerySerializer(serializers.Serializer):
            limit = StrictIntegerField(min_value=1, required=False)
            offset = StrictIntegerField(min_value=0, required=False)

        def paginate_queryset(self, queryset, request, view=None):
            self.PageQuerySerializer(data=request.query_params).is_valid(raise_exception=True)
            return super().paginate_queryset(queryset, request, view)

        def get_schema_operation_parameters(self, view):
            parameters = super().get_schema_operation_parameters(view)
            for parameter in parameters:
                field = self.PageQuerySerializer().fields[parameter["name"]]
                parameter["schema"]["minimum"] = field.min_value
            return parameters

    pagination_class = Pagination  # also tells the schema: a page, with limit and offset

    @extend_schema_serializer(component_name="PlaylistSummary")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        is_public = serializers.BooleanField()
        generated = serializers.CharField(help_text='"" for a playlist of your own')
        n_tracks = serializers.IntegerField()
        updated_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="playlists_list",
        summary="Your playlists, most recently changed first, with those generated for you",
        responses={
            200: OutputSerializer(many=True),
            400: OpenApiResponse(description="limit or offset not a whole number in range"),
        },
    )
    def get(self, request):
        paginator = self.pagination_class()
        playlists = playlists_owned_by(user=request.user, include_generated=True)
        page = paginator.paginate_queryset(playlists, request, self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class PlaylistCreateApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema_serializer(component_name="PlaylistCreateInput")
    class InputSerializer(serializers.Serializer):
        name = StrictCharField(min_length=1, max_length=NAME_MAX_LENGTH)
        is_public = StrictBooleanField(default=False)
        description = StrictCharField(required=False, allow_blank=True, default="")

    @extend_schema(
        operation_id="playlists_create",
        summary="Create a playlist",
        request=InputSerializer,
        responses={
            201: PlaylistDetailOutputSerializer,
            400: OpenApiResponse(description="an empty or too long name"),
        },
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors():
            playlist = playlist_create(owner=request.user, **serializer.validated_data)
        return playlist_detail_response(
            playlist_id=playlist.pk, user=request.user, status_code=status.HTTP_201_CREATED
        )


class PlaylistDetailApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="playlists_retrieve",
        summary="A playlist with its tracks in order (public ones without logging in)",
        responses={200: PlaylistDetailOutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request, playlist_id: int):
        return playlist_detail_response(playlist_id=playlist_id, user=request.user)


class PlaylistUpdateApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema_serializer(component_name="PlaylistUpdateInput")
    class InputSerializer(serializers.Serializer):
        name = StrictCharField(min_length=1, max_length=NAME_MAX_LENGTH, required=False)
        is_public = StrictBooleanField(required=False)

        def validate(self, attrs):
            if not attrs:
                raise serializers.ValidationError("Give a new name, is_public, or both.")
            return attrs

    @extend_schema(
        operation_id="playlists_update",
        summary="Rename a playlist or change whether it is public",
        request=InputSerializer,
        responses=writing_responses("nothing to change, or an empty or too long name"),
    )
    def post(self, request, playlist_id: int):
        playlist = writable_playlist(playlist_id=playlist_id, user=request.user)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors():
            if "name" in serializer.validated_data:
                playlist_rename(playlist=playlist, name=serializer.validated_data["name"])
            if "is_public" in serializer.validated_data:
                playlist_set_visibility(
                    playlist=playlist, is_public=serializer.validated_data["is_public"]
                )
        return playlist_detail_response(playlist_id=playlist.pk, user=request.user)


class PlaylistDeleteApi(APIView):
    @extend_schema(
        operation_id="playlists_delete",
        summary="Delete a playlist",
        request=None,
        responses={204: None, 403: NOT_YOURS, 404: NOT_FOUND},
    )
    def post(self, request, playlist_id: int):
        playlist = writable_playlist(playlist_id=playlist_id, user=request.user)
        playlist_delete(playlist=playlist)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PlaylistEditApi(APIView):
    """An owner-only change to a playlist's entries: validate, call the service, show it."""

    InputSerializer: type[serializers.Serializer]
    parser_classes = [JSONParser]

    def edit(self, request, *, playlist_id: int, service) -> Response:
        playlist = writable_playlist(playlist_id=playlist_id, user=request.user)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors():
            service(playlist=playlist, **serializer.validated_data)
        return playlist_detail_response(playlist_id=playlist.pk, user=request.user)


class PlaylistTracksAddApi(PlaylistEditApi):
    @extend_schema_serializer(component_name="PlaylistTracksAddInput")
    class InputSerializer(serializers.Serializer):
        track_ids = serializers.ListField(
            child=id_field(), allow_empty=False, min_length=1, max_length=MAX_TRACKS_PER_ADD
        )
        position = StrictIntegerField(
            min_value=0, required=False, allow_null=True, default=None,
            help_text="Where to insert the tracks; omitted or null appends them.",
        )  # fmt: skip

    @extend_schema(
        operation_id="playlists_tracks_add",
        summary="Insert tracks at a position, or append them",
        request=InputSerializer,
        responses=writing_responses("no track ids, unknown ones, or a position past the end"),
    )
    def post(self, request, playlist_id: int):
        return self.edit(request, playlist_id=playlist_id, service=playlist_add_tracks)


class PlaylistTracksRemoveApi(PlaylistEditApi):
    @extend_schema_serializer(component_name="PlaylistTracksRemoveInput")
    class InputSerializer(serializers.Serializer):
        position = StrictIntegerField(min_value=0)

    @extend_schema(
        operation_id="playlists_tracks_remove",
        summary="Remove the entry at a position; the ones after it move up",
        request=InputSerializer,
        responses=writing_responses("no entry at this position"),
    )
    def post(self, request, playlist_id: int):
        return self.edit(request, playlist_id=playlist_id, service=playlist_remove_entry)


class PlaylistTracksMoveApi(PlaylistEditApi):
    @extend_schema_serializer(component_name="PlaylistTracksMoveInput")
    class InputSerializer(serializers.Serializer):
        from_position = StrictIntegerField(min_value=0)
        to_position = StrictIntegerField(min_value=0)

    @extend_schema(
        operation_id="playlists_tracks_move",
        summary="Move an entry to another position; the entries between shift by one",
        request=InputSerializer,
        responses=writing_responses("a position with no entry"),
    )
    def post(self, request, playlist_id: int):
        return self.edit(request, playlist_id=playlist_id, service=playlist_move_entry)


class PlaylistSaveApi(APIView):
    """Save a playlist you may read (a generated one, or a public one) as a new playlist of
    your own, which you can then change."""

    parser_classes = [JSONParser]

    @extend_schema_serializer(component_name="PlaylistSaveInput")
    class InputSerializer(serializers.Serializer):
        name = StrictCharField(
            min_length=1, max_length=NAME_MAX_LENGTH, required=False,
            help_text="default: the playlist's name (dated for a generated playlist)",
        )  # fmt: skip

    @extend_schema(
        operation_id="playlists_save",
        summary="Save a copy of a playlist as your own",
        request=InputSerializer,
        responses={
            201: PlaylistDetailOutputSerializer,
            400: OpenApiResponse(description="an empty or too long name"),
            404: NOT_FOUND,
        },
    )
    def post(self, request, playlist_id: int):
        playlist = readable_playlist(playlist_id=playlist_id, user=request.user)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors():
            copy = playlist_save_copy(
                playlist=playlist, owner=request.user, name=serializer.validated_data.get("name")
            )
        return playlist_detail_response(
            playlist_id=copy.pk, user=request.user, status_code=status.HTTP_201_CREATED
        )
