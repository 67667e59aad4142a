"""Signals feedback sends to the apps above it (which connect to them in their AppConfig.ready)."""

from django.dispatch import Signal

# Sent on commit of newly stored listening events, with sender=Interaction and kwargs
# user (the listener), kinds: set[str] (the events' kinds) and track_ids: set[int].
feedback_recorded = Signal()
