"""The site's pages. tunedin/urls.py mounts `playlist_urlpatterns` at playlists/ inside the
"playlists" namespace, which it shares with the playlists API."""

from django.urls import include, path

from web.views import accounts, catalog, dashboard, experiments, listener, playlists

account_urlpatterns = [
    path("signup/", accounts.sign_up, name="signup"),
    path("onboarding/", accounts.onboarding, name="onboarding"),
    path("", include("django.contrib.auth.urls")),
]

dashboard_urlpatterns = [
    path("models/", dashboard.model_dashboard, name="model-dashboard"),
    path("models/retrain/", dashboard.model_retrain, name="model-retrain"),
    path(
        "models/<int:version_id>/activate/",
        dashboard.model_version_activate_view,
        name="model-version-activate",
    ),
    path("experiments/", experiments.interleaving_tests, name="interleaving-tests"),
    path(
        "experiments/start/",
        experiments.interleaving_test_start_view,
        name="interleaving-test-start",
    ),
    path(
        "experiments/<int:test_id>/stop/",
        experiments.interleaving_test_stop_view,
        name="interleaving-test-stop",
    ),
    path(
        "experiments/<int:test_id>/promote/",
        experiments.interleaving_test_promote_view,
        name="interleaving-test-promote",
    ),
]

playlist_urlpatterns = [
    path("", playlists.playlist_list, name="list"),
    path("add/", playlists.add_to_playlist, name="add-track"),
    path("<int:playlist_id>/", playlists.playlist_detail, name="detail"),
    path("<int:playlist_id>/settings/", playlists.playlist_settings, name="settings"),
    path("<int:playlist_id>/delete/", playlists.playlist_delete_view, name="delete"),
    path("<int:playlist_id>/tracks/", playlists.playlist_track_add, name="track-add"),
    path(
        "<int:playlist_id>/entries/<int:position>/remove/",
        playlists.playlist_entry_remove,
        name="entry-remove",
    ),
    path(
        "<int:playlist_id>/entries/<int:position>/move/",
        playlists.playlist_entry_move,
        name="entry-move",
    ),
    path("<int:playlist_id>/continue/", playlists.playlist_continue, name="continue"),
    path("<int:playlist_id>/save/", playlists.playlist_save, name="save"),
]

urlpatterns = [
    path("", catalog.home, name="home"),
    path("discover/more/", catalog.discover_more, name="discover-more"),
    path("search/", catalog.search, name="search"),
    path("tracks/<int:track_id>/", catalog.track_page, name="track-detail"),
    path("tracks/<int:track_id>/feedback/", catalog.track_feedback, name="track-feedback"),
    path("artists/<int:artist_id>/", catalog.artist_page, name="artist-detail"),
    path("tags/<int:tag_id>/", catalog.tag_page, name="tag-detail"),
    path("not-recommended/", listener.not_recommended, name="not-recommended"),
    path("not-recommended/add/", listener.do_not_recommend, name="do-not-recommend"),
    path("not-recommended/remove/", listener.recommend_again, name="recommend-again"),
    path("accounts/", include(account_urlpatterns)),
    path("dashboard/", include(dashboard_urlpatterns)),
]
