"""Fixtures shared by the e2e tests."""
import pytest

from qemu.netns import NamespaceUnavailable, NetNamespace


@pytest.fixture(scope="module")
def namespaces_allowed():
    """Skip, with the reason, where `ip netns add` is not allowed."""
    try:
        with NetNamespace():
            pass
    except NamespaceUnavailable as error:
        pytest.skip(f"network namespaces unavailable (`ip netns add` failed): {error}")
