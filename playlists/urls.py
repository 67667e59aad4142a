"""The playlists API. tunedin/urls.py mounts it at api/playlists/ in the "playlists" namespace,
which it shares with the playlist pages (web.urls.playlist_urlpatterns)."""

from django.urls import path

from playlists import apis

urlpatterns = [
    path("", apis.PlaylistListApi.as_view(), name="api-list"),
    path("create/", apis.PlaylistCreateApi.as_view(), name="api-create"),
    path("<int:playlist_id>/", apis.PlaylistDetailApi.as_view(), name="api-detail"),
    path("<int:playlist_id>/update/", apis.PlaylistUpdateApi.as_view(), name="api-update"),
    path("<int:playlist_id>/delete/", apis.PlaylistDeleteApi.as_view(), name="api-delete"),
    path("<int:playlist_id>/save/", apis.PlaylistSaveApi.as_view(), name="api-save"),
    path(
        "<int:playlist_id>/tracks/add/",
        apis.PlaylistTracksAddApi.as_view(),
        name="api-tracks-add",
    ),
    path(
        "<int:playlist_id>/tracks/remove/",
        apis.PlaylistTracksRemoveApi.as_view(),
        name="api-tracks-remove",
    ),
    path(
        "<int:playlist_id>/tracks/move/",
        apis.PlaylistTracksMoveApi.as_view(),
        name="api-tracks-move",
    ),
]
