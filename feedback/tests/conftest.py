import pytest

from catalog.tests.factories import UserFactory


@pytest.fixture
def listener(api_client):
    """A user that `api_client` is logged in as."""
    user = UserFactory()
    api_client.force_authenticate(user)
    return user
