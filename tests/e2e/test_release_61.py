"""A full release of the 6.1 line (the pentium variant) through doit:
build, boot-test over PXE, check, package, sign, publish, verify."""
import os
import shutil

import pytest

from tests.conftest import run_doit

pytestmark = pytest.mark.e2e


def project_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTSP_MOSIX_")}
    env.update(extra)
    return env


def test_release_of_the_61_line_then_verify(kernel_61, gpg_keys, tmp_path):
    env = project_env(LTSP_MOSIX_RELEASE_DIR=str(tmp_path / "releases"))
    args = ["release", "variants=pentium", f"key={gpg_keys.good}", f"keyring={gpg_keys.home}"]
    first = run_doit(*args, env=env)
    assert "published" in first.stdout, first.stdout
    link = tmp_path / "releases" / "linux-6.1"
    names = sorted(p.name for p in link.iterdir())
    assert names == ["SHA256SUMS", "SHA256SUMS.asc", "ltsp_linux61_core_6.1.192.tar.gz",
                     "ltsp_linux61_kernel_Pentium_6.1.192.tar.gz", "manifest.json"]
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
