"""A full release of the 6.1 line (the pentium variant) through doit:
build, boot-test over PXE, check, package, sign, publish, verify."""
import json
import shutil

import pytest

from tests.conftest import project_env, run_doit

pytestmark = pytest.mark.e2e


def test_release_of_the_61_line_then_verify(kernel_61, gpg_keys, tmp_path):
    env = project_env(LTSP_MOSIX_RELEASE_DIR=str(tmp_path / "releases"))
    args = ["release", "variants=pentium", f"key={gpg_keys.good}", f"keyring={gpg_keys.home}"]
    first = run_doit(*args, env=env)
    assert "published" in first.stdout, first.stdout
    link = tmp_path / "releases" / "linux-6.1"
    names = sorted(p.name for p in link.iterdir())
    # the version is Debian's current point release of linux-source-6.1
    version = json.loads((kernel_61.parent / "build.json").read_text())["kernel_release"]
    assert version.startswith("6.1.")
    assert names == ["SHA256SUMS", "SHA256SUMS.asc", f"ltsp_linux61_core_{version}.tar.gz",
                     f"ltsp_linux61_kernel_Pentium_{version}.tar.gz", "manifest.json"]
    print(first.stdout)
    sums_first = (link / "SHA256SUMS").read_text()

    verified = run_doit("verify-release", f"dir={link}", f"key={gpg_keys.good}", f"keys={gpg_keys.keys_dir}",
                        env=env)
    assert "files verified" in verified.stdout
    print(verified.stdout)

    shutil.rmtree(tmp_path / "releases")
    run_doit(*args, env=env)
    assert (link / "SHA256SUMS").read_text() == sums_first
    print("SHA256SUMS of both runs:\n" + sums_first)

    kernel_package = next(link.glob("ltsp_linux61_kernel_Pentium_*.tar.gz"))
    data = bytearray(kernel_package.read_bytes())
    data[100] ^= 1
    kernel_package.write_bytes(bytes(data))
    tampered = run_doit("verify-release", f"dir={link}", f"key={gpg_keys.good}", f"keys={gpg_keys.keys_dir}",
                        env=env, check=False)
    assert tampered.returncode != 0 and kernel_package.name in tampered.stdout + tampered.stderr
