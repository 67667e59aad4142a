from django.shortcuts import render

from catalog.selectors import tracks_by_popularity


def home(request):
    return render(request, "catalog/home.html", {"tracks": tracks_by_popularity(limit=50)})
