"""API token authentication with the token -> user lookup cached in Redis.

DRF's TokenAuthentication runs one joined query per request; on the hot API routes that query
costs more than the cached recommendation it authenticates. The user (with its is_active and
is_staff flags) is cached under a hash of the token for TOKEN_AUTH_CACHE_SECONDS, and the entry
is deleted whenever the user or one of its tokens is saved or deleted (accounts.signals), so a
revoked token or a deactivated user stops working at once. Changes that bypass model signals
(queryset.update, raw SQL) take effect when the entry expires. With Redis down the cache misses
and every request falls back to the database lookup.
"""

import hashlib

from django.conf import settings
from django.core.cache import cache
from rest_framework.authentication import TokenAuthentication


def token_cache_key(token_key: str) -> str:
    return "auth-token:" + hashlib.sha256(token_key.encode()).hexdigest()


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        cache_key = token_cache_key(key)
        user = cache.get(cache_key)
        if user is not None:
            return (user, None)
        user, token = super().authenticate_credentials(key)
        cache.set(cache_key, user, timeout=settings.TOKEN_AUTH_CACHE_SECONDS)
        return (user, token)
