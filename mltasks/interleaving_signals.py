"""The signal mltasks sends when an interleaved test starts or ends (serving, above it, connects
to it so that the process that made the change follows at once; others re-read within
seconds)."""

from django.dispatch import Signal

# Sent after a test was started, stopped or promoted, with sender=InterleavingTest and
# test_id: int.
interleaving_test_changed = Signal()
