"""Debian packages and their layouts on small files: names and versions,
reproducible bytes from dpkg-deb, the layout data's errors, the version
order against a live release, the LTSP 23 drop-in.  The real packages of
real releases are installed by apt in tests/e2e (test_release_61,
test_linux24)."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from common.errors import UserError
from release import debs, repository
from rootfs.layout import package_settings
from rootfs.ltsp23 import render_ipxe_dropin, script_name
from tests.conftest import ROOT

EPOCH = 1061769600


def _spec(tmp_path: Path, layout, package="ltsp-mosix-linux-2.4.22-pentium", version="2.4.22-1"):
    files = {}
    for kind, size in (("kernel", 3000), ("initrd", 2000), ("system_map", 30), ("config", 20)):
        source = tmp_path / "in" / kind
        source.parent.mkdir(exist_ok=True)
        source.write_bytes(bytes(range(256)) * (size // 256 + 1))
        values = {"line": "linux-2.4.22", "variant": "pentium", "image": package, "script": script_name(package)}
        files[layout.path(kind, **values)] = source
    spec = debs.DebSpec(package=package, version=version, layout=layout, kind="kernel", files=files,
                        summary="Linux 2.4.22 netboot kernel for Pentium nodes",
                        details=["A test line.", "A test variant."], changes=["A test release."])
    if layout.ipxe_dropin:
        text = render_ipxe_dropin(package=package, version=version, image=package, title="test entry",
                                  append="console=ttyS0,115200")
        spec.texts[layout.path("ipxe_dropin", **values)] = (text.encode(), 0o644)
    return spec


def test_names_and_versions_read_at_a_glance_and_order_as_dpkg_does():
    assert debs.package_name("linux-2.4.22", "pentium_smp") == "ltsp-mosix-linux-2.4.22-pentium-smp"
    assert debs.package_name("linux-6.1-x86_64", "k8") == "ltsp-mosix-linux-6.1-x86-64-k8"
    assert debs.package_version("6.1.192", 3, "linux-6.1") == "6.1.192-3"
    assert debs.newer("2.4.22-2", "2.4.22-1") and debs.newer("6.1.193-1", "6.1.192-9")
    assert debs.newer("6.1.192-10", "6.1.192-9")
    with pytest.raises(UserError, match="cannot start a Debian version"):
        debs.package_version("v6.1-rc1", 1, "linux-6.1")
    with pytest.raises(UserError, match="not a Debian package name"):
        debs.package_name("Linux 6.1", "pentium")


def test_dpkg_deb_builds_the_same_bytes_twice_with_the_layout_paths(tmp_path):
    settings = package_settings()
    for layout in settings.layouts:
        first = debs.build_deb(_spec(tmp_path, layout), tmp_path / "a" / layout.name, epoch=EPOCH, settings=settings)
        second = debs.build_deb(_spec(tmp_path, layout), tmp_path / "b" / layout.name, epoch=EPOCH, settings=settings)
        assert first.read_bytes() == second.read_bytes()
        assert first.name == "ltsp-mosix-linux-2.4.22-pentium_2.4.22-1_all.deb"
        info = subprocess.run(["dpkg-deb", "-f", str(first)], capture_output=True, text=True, check=True).stdout
        assert "Architecture: all" in info and "Version: 2.4.22-1" in info
        listing = subprocess.run(["dpkg-deb", "-c", str(first)], capture_output=True, text=True, check=True).stdout
        assert "root/root" in listing and "2003-08-25 00:00" in listing
        installed = debs.contents(first)
        if layout.name == "ltsp23":
            assert "/srv/tftp/ltsp/ltsp-mosix-linux-2.4.22-pentium/vmlinuz" in installed
            assert "/usr/share/ltsp/server/ipxe/60-ltsp_mosix_linux_2_4_22_pentium.sh" in installed
        else:
            assert "/tftpboot/lts/linux-2.4.22/vmlinuz-pentium" in installed
        assert f"/usr/share/doc/{first.name.split('_')[0]}/copyright" in installed


def test_lintian_reports_no_error_on_a_package_of_each_layout(tmp_path):
    settings = package_settings()
    built = [debs.build_deb(_spec(tmp_path, layout, package=f"ltsp-mosix-linux-2.4.22-{layout.name}"),
                            tmp_path / layout.name, epoch=EPOCH, settings=settings) for layout in settings.layouts]
    result = subprocess.run(["lintian", "--fail-on", "error", "--display-level", ">=warning", *map(str, built)],
                            capture_output=True, text=True)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    tags = {line.split(": ", 2)[2].split()[0] for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")}
    assert tags <= {"initial-upload-closes-no-bugs"}, tags        # the warnings docs/releases.md accepts


def test_two_packages_owning_one_file_are_refused():
    with pytest.raises(UserError, match="a and b would both install /srv/x"):
        debs.check_disjoint({"a": {"/srv/x": "1"}, "b": {"/srv/x": "2"}}, "ltsp23")


def _site_toml(tmp_path: Path, edit) -> Path:
    text = (ROOT / "configs" / "site.toml").read_text()
    path = tmp_path / "site.toml"
    path.write_text(edit(text))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('kernel = "srv/tftp/ltsp/{image}/vmlinuz"\n', ""), "missing field 'layouts.ltsp23.kernel'"),
    (lambda t: t.replace('layouts = ["ltsp23", "ltsp3"]', 'layouts = ["ltsp23", "ltsp5"]'), "no [layouts.ltsp5] table"),
    (lambda t: t.replace("{image}/vmlinuz", "{img}/vmlinuz"), "unknown placeholder 'img'"),
    (lambda t: t.replace('node_root = "opt/ltsp/i386"', 'node_root = "../etc"'), "leaves the server's root"),
    (lambda t: t.replace('maintainer = ', 'maintainers = '), "missing field 'packages.maintainer'"),
    (lambda t: t.replace('maintainer = "', 'maintainer = "x\\nPre-Depends: evil <a@b>'), "packages.maintainer"),
    (lambda t: t.replace('kernel = "srv/tftp', 'kernel = "srv/tftp\\"; reboot; \\"'), "layouts.ltsp23.kernel"),
    (lambda t: t.replace('description = "a Debian LTSP 23', 'description = "two\\nlines'), "layouts.ltsp23.description"),
    (lambda t: t.replace('component = "main"', 'component = "main contrib"'), "packages.component"),
    (lambda t: t.replace('tftp_root = "tftpboot"', 'tftp_root = "tftp boot"'), "layout.tftp_root"),
])
def test_a_bad_site_layout_is_refused_naming_the_field(tmp_path, edit, message):
    from rootfs.layout import site_layout
    path = _site_toml(tmp_path, edit)
    with pytest.raises(UserError) as error:
        package_settings(path)
        site_layout(path)
    assert message in str(error.value) and "site.toml" in str(error.value)


class _Line:
    name = "linux-2.4.22"


def _apt(version: str, sha: str) -> dict:
    return {"suites": {"ltsp23": {"packages": [{"package": "ltsp-mosix-linux-2.4.22-pentium",
                                                "version": version, "sha256": sha}]}}}


def test_versions_apt_would_order_wrongly_are_refused_against_the_live_release(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    (live / "manifest.json").write_text(json.dumps({"apt": _apt("2.4.22-2", "aa")}))
    with pytest.raises(UserError, match=r"2.4.22-1 is older than the published 2.4.22-2 .*deb_revision in .*linux-2.4.22.toml"):
        repository.check_against_live(_apt("2.4.22-1", "bb"), live, _Line())
    with pytest.raises(UserError, match="published already with other contents"):
        repository.check_against_live(_apt("2.4.22-2", "bb"), live, _Line())
    repository.check_against_live(_apt("2.4.22-2", "aa"), live, _Line())     # the same package again
    repository.check_against_live(_apt("2.4.22-3", "cc"), live, _Line())     # the next one
    repository.check_against_live(_apt("2.4.22-1", "bb"), None, _Line())     # nothing published yet


def test_the_ltsp_dropin_adds_one_entry_to_a_menu_ltsp_wrote(tmp_path):
    """The drop-in run as `ltsp ipxe` runs it (sourced by sh, its _main
    called) on LTSP's own template: the item before "Other options", the
    label at the end, and only once if run again."""
    menu = tmp_path / "ltsp" / "ltsp.ipxe"
    menu.parent.mkdir()
    shutil.copyfile("/usr/share/ltsp/server/ipxe/ltsp.ipxe", menu)
    dropin = tmp_path / "60-x.sh"
    dropin.write_text(render_ipxe_dropin(package="ltsp-mosix-linux-6.1-pentium", version="6.1.192-1",
                                         image="ltsp-mosix-linux-6.1-pentium", title="ltsp-mosix linux-6.1 pentium",
                                         append="console=ttyS0,115200 panic=1"))
    script = f're() {{ "$@"; }}; TFTP_DIR={tmp_path}; . {dropin}; ltsp_mosix_linux_6_1_pentium_main; ' \
             f'ltsp_mosix_linux_6_1_pentium_main'
    subprocess.run(["sh", "-c", script], check=True)
    text = menu.read_text()
    assert text.count(":ltsp-mosix-linux-6.1-pentium\n") == 1
    item = text.index("item ltsp-mosix-linux-6.1-pentium ltsp-mosix linux-6.1 pentium")
    assert item < text.index("Other options:")
    assert ("kernel /ltsp/ltsp-mosix-linux-6.1-pentium/vmlinuz initrd=initrd.img console=ttyS0,115200 panic=1 "
            "${cmdline_client}\ninitrd /ltsp/ltsp-mosix-linux-6.1-pentium/initrd.img\nboot || goto failed") in text


def test_the_dropin_refuses_text_an_ipxe_script_would_misread():
    with pytest.raises(UserError, match="title"):
        render_ipxe_dropin(package="p", version="1-1", image="p", title="x' ; reboot", append="")
