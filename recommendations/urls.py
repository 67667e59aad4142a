from django.urls import path

from recommendations import apis

urlpatterns = [
    path("rec/users/<int:user_id>", apis.UserRecommendationsApi.as_view(), name="api-rec-user"),
    path(
        "rec/users/<int:user_id>/similar",
        apis.SimilarUsersApi.as_view(),
        name="api-rec-similar-users",
    ),
    path(
        "tracks/<int:track_id>/similar",
        apis.SimilarTracksApi.as_view(),
        name="api-similar-tracks",
    ),
    path("continue", apis.ContinueApi.as_view(), name="api-continue"),
    path(
        "playlists/<int:playlist_id>/continue",
        apis.PlaylistContinueApi.as_view(),
        name="api-playlist-continue",
    ),
]
