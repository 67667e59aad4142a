import factory
from django.utils import timezone

from catalog.tests.factories import TrackFactory, UserFactory
from feedback.context import interaction_context
from feedback.models import Interaction


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    user = factory.SubFactory(UserFactory)
    track = factory.SubFactory(TrackFactory)
    kind = Interaction.Kind.PLAY
    occurred_at = factory.LazyFunction(timezone.now)
    hour = factory.LazyAttribute(lambda o: interaction_context(occurred_at=o.occurred_at)[0])
    day_of_week = factory.LazyAttribute(lambda o: interaction_context(occurred_at=o.occurred_at)[1])
    source = Interaction.Source.API
