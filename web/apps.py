from django.apps import AppConfig


class WebConfig(AppConfig):
    """The server-rendered site: every page, its forms, templates and template tags."""

    name = "web"
