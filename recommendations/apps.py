from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # feedback sits below recommendations: it announces new events, serving reacts to them.
        from feedback.signals import feedback_recorded
        from recommendations.services import feedback_recorded_receiver

        feedback_recorded.connect(
            feedback_recorded_receiver, dispatch_uid="recommendations.feedback_recorded"
        )
