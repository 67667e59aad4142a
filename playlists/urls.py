from django.urls import include, path

from playlists import apis, views

app_name = "playlists"

api_urlpatterns = [
    path("", apis.PlaylistListApi.as_view(), name="api-list"),
    path("create/", apis.PlaylistCreateApi.as_view(), name="api-create"),
    path("<int:playlist_id>/", apis.PlaylistDetailApi.as_view(), name="api-detail"),
    path("<int:playlist_id>/update/", apis.PlaylistUpdateApi.as_view(), name="api-update"),
    path("<int:playlist_id>/delete/", apis.PlaylistDeleteApi.as_view(), name="api-delete"),
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

site_urlpatterns = [
    path("", views.playlist_list, name="list"),
    path("add/", views.add_to_playlist, name="add-track"),
    path("<int:playlist_id>/", views.playlist_detail, name="detail"),
    path("<int:playlist_id>/settings/", views.playlist_settings, name="settings"),
    path("<int:playlist_id>/delete/", views.playlist_delete_view, name="delete"),
    path("<int:playlist_id>/tracks/", views.playlist_track_add, name="track-add"),
    path(
        "<int:playlist_id>/entries/<int:position>/remove/",
        views.playlist_entry_remove,
        name="entry-remove",
    ),
    path(
        "<int:playlist_id>/entries/<int:position>/move/",
        views.playlist_entry_move,
        name="entry-move",
    ),
    path("<int:playlist_id>/continue/", views.playlist_continue, name="continue"),
]

urlpatterns = [
    path("api/playlists/", include(api_urlpatterns)),
    path("playlists/", include(site_urlpatterns)),
]
