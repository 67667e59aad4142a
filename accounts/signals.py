"""API tokens follow their user: a new password deletes them, and the token cache of
accounts.authentication forgets a token as soon as it, or its user, changes."""

from django.conf import settings
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

from accounts.authentication import token_cache_key


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="token-password-changed")
def note_password_change(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    """Compare the stored password hash with the one about to be saved.

    A hash upgrade (Django rehashing a correct password at login after its hasher changed) saves
    only the password, with no new raw password pending (`_password`): that is no change."""
    instance._password_changed = False
    if raw or instance.pk is None:
        return
    if update_fields is not None and "password" not in update_fields:
        return
    stored = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    rehashed = update_fields == {"password"} and getattr(instance, "_password", None) is None
    instance._password_changed = stored is not None and stored != instance.password and not rehashed


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="token-password-revoke")
def revoke_tokens_on_password_change(sender, instance, **kwargs) -> None:
    if getattr(instance, "_password_changed", False):
        Token.objects.filter(user_id=instance.pk).delete()  # forget_token clears each one's cache
        instance._password_changed = False


@receiver([post_save, post_delete], sender=Token, dispatch_uid="token-auth-cache-token")
def forget_token(sender, instance: Token, **kwargs) -> None:
    cache.delete(token_cache_key(instance.key))


@receiver(
    [post_save, post_delete], sender=settings.AUTH_USER_MODEL, dispatch_uid="token-auth-cache-user"
)
def forget_user_tokens(sender, instance, **kwargs) -> None:
    keys = Token.objects.filter(user_id=instance.pk).values_list("key", flat=True)
    cache.delete_many([token_cache_key(key) for key in keys])
