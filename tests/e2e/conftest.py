"""Fixtures shared by the e2e tests."""
import pytest

from lab.site.netns import NamespaceUnavailable, NetNamespace
from tests.conftest import project_env, run_doit


@pytest.fixture(scope="module")
def namespaces_allowed():
    """Skip, with the reason, where `ip netns add` is not allowed."""
    try:
        with NetNamespace():
            pass
    except NamespaceUnavailable as error:
        pytest.skip(f"network namespaces unavailable (`ip netns add` failed): {error}")


@pytest.fixture(scope="session")
def released_61(kernel_61, gpg_keys, tmp_path_factory):
    """The 6.1 line's pentium released once for the run (build, boot test,
    packages, apt repository), in a release folder of its own: the apt
    tests and the LTSP 23 menu boot install from it."""
    releases = tmp_path_factory.mktemp("releases-61")
    env = project_env(LTSP_MOSIX_RELEASE_DIR=str(releases))
    run_doit("line=linux-6.1", "release", "variants=pentium", f"key={gpg_keys.good}",
             f"keyring={gpg_keys.home}", env=env)
    return releases / "linux-6.1"
