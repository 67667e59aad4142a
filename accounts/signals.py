"""Drop cached token authentications when a user or a token changes (accounts.authentication)."""

from django.conf import settings
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

from accounts.authentication import token_cache_key


@receiver([post_save, post_delete], sender=Token, dispatch_uid="token-auth-cache-token")
def forget_token(sender, instance: Token, **kwargs) -> None:
    cache.delete(token_cache_key(instance.key))


@receiver(
    [post_save, post_delete], sender=settings.AUTH_USER_MODEL, dispatch_uid="token-auth-cache-user"
)
def forget_user_tokens(sender, instance, **kwargs) -> None:
    keys = Token.objects.filter(user_id=instance.pk).values_list("key", flat=True)
    cache.delete_many([token_cache_key(key) for key in keys])
