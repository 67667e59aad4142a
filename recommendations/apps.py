from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # feedback sits below recommendations: it announces new events, serving reacts to them.
        from feedback.signals import feedback_recorded
        from mltasks.interleaving_signals import interleaving_test_changed
        from recommendations.services import feedback_recorded_receiver
        from recommendations.serving import interleaving_test_changed_receiver

        feedback_recorded.connect(
            feedback_recorded_receiver, dispatch_uid="recommendations.feedback_recorded"
        )
        # Likewise mltasks announces interleaved-test changes; serving follows them.
        interleaving_test_changed.connect(
            interleaving_test_changed_receiver, dispatch_uid="recommendations.interleaving_changed"
        )
