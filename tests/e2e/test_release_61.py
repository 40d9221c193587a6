"""A full release of the 6.1 line (the pentium variant) through doit:
build, boot-test over PXE, check, package, sign, publish, verify."""
import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.aptroot import AptRoot
from tests.conftest import project_env, run_doit
from tests.httpserver import serve_folder

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
    assert names == ["SHA256SUMS", "SHA256SUMS.asc", "apt", f"ltsp_linux61_core_{version}.tar.gz",
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


# -- the apt repository, as a site's apt-get sees it --------------------------------------

def _site(tmp_path, url: str, release: Path) -> AptRoot:
    site = AptRoot(tmp_path / "server")
    print(site.add_source(url, "ltsp23", "main", release / "apt" / "ltsp-mosix-release.asc"))
    return site


def test_apt_installs_the_kernel_and_core_then_removes_every_file(released_61, tmp_path):
    """A Debian LTSP 23 server's apt-get (a private root): the repository
    added with signed-by, the pentium kernel and the core installed, every
    installed file as the manifest says; then purged, nothing left."""
    manifest = json.loads((released_61 / "manifest.json").read_text())
    packages = {p["package"]: p for p in manifest["apt"]["suites"]["ltsp23"]["packages"]}
    assert sorted(packages) == ["ltsp-mosix-linux-6.1-core", "ltsp-mosix-linux-6.1-pentium"]
    with serve_folder(released_61.parent) as url:
        site = _site(tmp_path, f"{url}/linux-6.1/apt", released_61)
        before = site.files()
        print(site.apt("update").stdout[-800:])
        print(site.apt("install", *packages).stdout[-1500:])
    assert site.installed() == {name: p["version"] for name, p in packages.items()}
    for name, entry in packages.items():
        for path, digest in entry["files"].items():
            on_disk = site.root / path.lstrip("/")
            assert on_disk.is_file(), f"{name}: {path} is not installed"
            assert subprocess.run(["sha256sum", str(on_disk)], capture_output=True, text=True,
                                  check=True).stdout.split()[0] == digest, path
    kernel = packages["ltsp-mosix-linux-6.1-pentium"]
    assert kernel["kernel_path"] == "/srv/tftp/ltsp/ltsp-mosix-linux-6.1-pentium/vmlinuz"
    assert kernel["files"][kernel["kernel_path"]] == kernel["bzImage_sha256"]
    dropin = site.root / "usr/share/ltsp/server/ipxe/60-ltsp_mosix_linux_6_1_pentium.sh"
    assert "ltsp_mosix_linux_6_1_pentium_main()" in dropin.read_text()

    site.apt("purge", *packages)
    assert site.installed() == {}
    assert site.files() == before, sorted(site.files() - before)
    leftover = sorted(f for f in site.folders() if "ltsp-mosix" in f or f.startswith("/srv/tftp"))
    assert leftover == [], leftover


def _tamper_packages(apt: Path) -> None:
    for index in apt.glob("dists/ltsp23/main/binary-*/Packages"):
        text = index.read_text().replace("Priority: optional", "Priority: OPTIONAL", 1)   # same size: apt must check the hash
        index.write_text(text)
        index.with_name("Packages.gz").write_bytes(gzip.compress(text.encode(), mtime=0))


def _flip_byte(path: Path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


def _tamper_inrelease(apt: Path) -> None:
    path = apt / "dists/ltsp23/InRelease"
    path.write_text(path.read_text().replace("Suite: ltsp23", "Suite: ltsp24", 1))


def _unsigned(apt: Path) -> None:
    (apt / "dists/ltsp23/InRelease").unlink()
    (apt / "dists/ltsp23/Release.gpg").unlink()


REFUSALS = {
    "unsigned": (_unsigned, "update", "is not signed"),
    "tampered InRelease": (_tamper_inrelease, "update", "BADSIG"),
    # apt fetches Packages.gz: its size or its hash no longer what Release says
    "Packages index": (_tamper_packages, "update", "Hash Sum mismatch|File has unexpected size"),
    "changed .deb": (lambda apt: _flip_byte(next(apt.glob("pool/ltsp23/ltsp-mosix-linux-6.1-pentium_*.deb"))),
                     "install", "Hash Sum mismatch"),
}


@pytest.mark.parametrize("case", [*REFUSALS, "another key"])
def test_apt_itself_refuses_a_tampered_or_foreign_repository(released_61, gpg_keys, tmp_path, case):
    """apt-get, not our verifier, refuses; the message is apt's own."""
    served = tmp_path / "served"
    shutil.copytree(released_61.resolve(), served / "linux-6.1")
    apt = served / "linux-6.1" / "apt"
    if case == "another key":
        release = apt / "dists/ltsp23/Release"
        (apt / "dists/ltsp23/InRelease").write_bytes(gpg_keys.clearsign(gpg_keys.other, release.read_bytes()))
        gpg_keys.sign(gpg_keys.other, release.read_bytes(), apt / "dists/ltsp23/Release.gpg")
        step, message = "update", "NO_PUBKEY"
    else:
        tamper, step, message = REFUSALS[case]
        tamper(apt)
    with serve_folder(served) as url:
        site = _site(tmp_path, f"{url}/linux-6.1/apt", released_61)
        update = site.apt("update", check=step != "update")
        result = update if step == "update" else site.apt("install", "ltsp-mosix-linux-6.1-pentium", check=False)
    said = result.stdout + result.stderr
    print(f"{case}: apt-get {step} exit {result.returncode}:\n{said[-1200:]}")
    assert result.returncode != 0 and re.search(message, said), said[-2000:]
    assert site.installed() == {}
    assert not (site.root / "srv").exists() or not any((site.root / "srv").rglob("vmlinuz"))


def test_a_rotated_release_key_signs_the_next_release(released_61, gpg_keys, tmp_path):
    """`doit release` of the same builds with a new key, as typed: the live
    link moves to a folder signed by the new key, which verify-release
    accepts with the new key and refuses with the old one."""
    releases = tmp_path / "releases"
    shutil.copytree(released_61.parent, releases, symlinks=True)
    env = project_env(LTSP_MOSIX_RELEASE_DIR=str(releases))
    before = (releases / "linux-6.1").resolve().name
    run_doit("line=linux-6.1", "release", "variants=pentium", f"key={gpg_keys.other}", f"keyring={gpg_keys.home}",
             env=env)
    live = releases / "linux-6.1"
    assert live.resolve().name != before and not (releases / before).exists()
    new = run_doit("verify-release", f"dir={live}", f"key={gpg_keys.other}", f"keys={gpg_keys.keys_dir}", env=env)
    assert f"good by {gpg_keys.other}" in new.stdout
    old = run_doit("verify-release", f"dir={live}", f"key={gpg_keys.good}", f"keys={gpg_keys.keys_dir}", env=env,
                   check=False)
    assert old.returncode == 3 and gpg_keys.other in old.stdout + old.stderr
