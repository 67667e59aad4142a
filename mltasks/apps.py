from django.apps import AppConfig


class MltasksConfig(AppConfig):
    name = "mltasks"
    default_auto_field = "django.db.models.BigAutoField"
