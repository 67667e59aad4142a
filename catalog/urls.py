from django.urls import path

from catalog import views

urlpatterns = [
    path("", views.home, name="home"),
    path("discover/more/", views.discover_more, name="discover-more"),
    path("search/", views.search, name="search"),
    path("tracks/<int:track_id>/", views.track_page, name="track-detail"),
    path("tracks/<int:track_id>/feedback/", views.track_feedback, name="track-feedback"),
    path("artists/<int:artist_id>/", views.artist_page, name="artist-detail"),
    path("tags/<int:tag_id>/", views.tag_page, name="tag-detail"),
]
