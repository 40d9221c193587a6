"""A rotated release key: the same content released with a new key is
signed with that key (a new release folder, the link moves to it), and
verify-release with the new key passes; with the old key it no longer does."""
import pytest

from common.errors import VerificationError
from release import publish
from release.verify import verify_release
from tests.test_release import built_line, do_release  # noqa: F401 (fixture)


def test_releasing_the_same_content_with_a_new_key_signs_it_with_that_key(built_line, gpg_keys):  # noqa: F811
    first = do_release(built_line, gpg_keys).resolve()
    assert "good by " + gpg_keys.good in verify_release(first, gpg_keys.good, gpg_keys.keys_dir)
    again = do_release(built_line, gpg_keys).resolve()
    assert again == first                       # same content, same key: the same folder
    rotated = do_release(built_line, gpg_keys, key=gpg_keys.other)
    assert rotated.resolve() != first and not first.exists()
    assert "good by " + gpg_keys.other in verify_release(rotated, gpg_keys.other, gpg_keys.keys_dir)
    with pytest.raises(VerificationError, match=gpg_keys.other):
        verify_release(rotated, gpg_keys.good, gpg_keys.keys_dir)
    assert sorted(p.name for p in publish.release_root().iterdir()) == sorted(["linux-6.1", rotated.resolve().name])
