"""Signals feedback sends to the apps above it (which connect to them in their AppConfig.ready)."""

from django.dispatch import Signal

# Sent on commit of newly stored listening events, with sender=Interaction and kwargs
# user (the listener), kinds: set[str] (the events' kinds) and track_ids: set[int]; and on
# commit of a change to a listener's do-not-recommend marks, with sender=DoNotRecommend,
# kinds={DO_NOT_RECOMMEND} and track_ids: the marked track's id (none for an artist).
feedback_recorded = Signal()
DO_NOT_RECOMMEND = "do-not-recommend"
