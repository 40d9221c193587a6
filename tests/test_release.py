"""Release gates, packaging, signing, publishing and verify-release on a
line whose build and boot records are laid out as the pipeline writes them
(the full release of a real 6.1 kernel is in tests/e2e/test_release_61.py)."""
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import tarfile

import pytest
import yaml

from common.errors import UserError, VerificationError
from common.hashing import sha256_file
from initrd.build import initrd_path
from kernels import build, kconfig, matrix
from lab import lava
from lab.boot.variant import boot_results_path
from release import publish
from release.gates import gate_refusals
from release.verify import _check_kernel_in_deb, verify_release
from tests.lava_results import write_server_results


FAKE_INITRD = b"070701 fake initramfs"


def lay_out_variant(line, variant, *, source="verified", verdict="pass", kernel=b"HdrS-kernel"):
    """What doit kernel:<v> and boot-test:<v> leave behind."""
    out = build.out_dir(line, variant)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bzImage").write_bytes(kernel + variant.name.encode())
    (out / "System.map").write_text("c1000000 T _text\n")
    shutil.copy(kconfig.final_config_path(line, variant), out / "config")
    record = {"line": line.name, "kernel_release": "6.1.192", "variant": variant.name, "source": source,
              "override": None if source == "verified" else "/somewhere",
              "sources": [{"name": "linux", "file": "linux-source-6.1.tar.xz", "sha256": "ab" * 32,
                           "trust": "debian package"}],
              "patches": [], "config_sha256": sha256_file(out / "config"),
              "bzImage": {"sha256": sha256_file(out / "bzImage"), "size": 10},
              "toolchain": {"gcc": "gcc 12"}, "source_date_epoch": 1670792400}
    (out / "build.json").write_text(json.dumps(record))
    boots = [{"name": f"{variant.name}-e1000-{mem}M-pxe", "nic": "e1000", "path": "pxe", "mem_mb": mem,
              "verdict": verdict} for mem in (512, 2048, 3584)]
    results = boot_results_path(line, variant)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({"kernel_sha256": record["bzImage"]["sha256"],
                                   "initrd_sha256": hashlib.sha256(FAKE_INITRD).hexdigest(), "boots": boots}))


@pytest.fixture
def built_line(isolated):
    """linux-6.1 with every variant's final config carrying the invariant
    block, and pentium + p4 built and boot-tested."""
    line = matrix.load_line("linux-6.1")
    block = line.invariants.read_text()
    for variant in line.variants():
        path = kconfig.final_config_path(line, variant)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"CONFIG_{variant.cpu.upper()}=y\n{block}")
    chosen = [line.variant("pentium"), line.variant("p4-epic100")]
    for variant in chosen:
        lay_out_variant(line, variant)
    initrd = isolated / "initrd.cpio"
    initrd.write_bytes(FAKE_INITRD)
    overlay = isolated / "out" / "opt" / "ltsp" / "i386"
    (overlay / "etc").mkdir(parents=True)
    (overlay / "mfs").mkdir()
    (isolated / "out" / "server").mkdir()
    (isolated / "out" / "server" / "fstab.mfs").write_text("cluster /mfs mfs dfsa=1 0 0\n")
    (overlay / "etc" / "hpc.map").write_text("1 10.0.2.15 1\n")
    return line, chosen, initrd, overlay


def do_release(built_line, gpg_keys, key=None):
    line, chosen, initrd, overlay = built_line
    return publish.release(line, chosen, key=key or gpg_keys.good, gnupghome=gpg_keys.home,
                           initrd=initrd, overlay=overlay)


def test_release_packages_sums_signature_and_manifest(built_line, gpg_keys):
    link = do_release(built_line, gpg_keys)
    names = sorted(p.name for p in link.iterdir())
    assert names == ["SHA256SUMS", "SHA256SUMS.asc", "apt", "ltsp_linux61_core_6.1.192.tar.gz",
                     "ltsp_linux61_kernel_P4_epic100_6.1.192.tar.gz",
                     "ltsp_linux61_kernel_Pentium_6.1.192.tar.gz", "manifest.json"]
    with tarfile.open(link / "ltsp_linux61_kernel_Pentium_6.1.192.tar.gz") as tar:
        members = tar.getmembers()
    assert "tftpboot/lts/linux-6.1/vmlinuz-pentium" in [m.name for m in members]
    with tarfile.open(link / "ltsp_linux61_core_6.1.192.tar.gz") as tar:
        core = {m.name: m for m in tar.getmembers()}
    assert core["opt/ltsp/i386/mfs"].isdir(), "the empty /mfs mount point is packaged"
    assert "usr/share/ltsp-mosix/server/fstab.mfs" in core
    assert {(m.uid, m.gid, m.uname, m.mtime) for m in members} == {(0, 0, "root", 1670792400)}
    manifest = json.loads((link / "manifest.json").read_text())
    entry = next(e for e in manifest["packages"] if e.get("variant") == "p4-epic100")
    assert entry["boot_tests"]["3584M"] == {"e1000/pxe": "pass"}
    assert entry["source_date_epoch"] == 1670792400 and len(entry["config_sha256"]) == 64
    assert "verified" in verify_release(link, gpg_keys.good, gpg_keys.keys_dir)


def test_two_releases_from_the_same_builds_are_byte_identical(built_line, gpg_keys, tmp_path):
    first = do_release(built_line, gpg_keys).resolve()
    kept = tmp_path / "first"
    shutil.copytree(first, kept)
    shutil.rmtree(publish.release_root())
    second = do_release(built_line, gpg_keys).resolve()
    compared = 0
    for path in sorted(kept.rglob("*")):
        if path.is_file() and path.name not in ("SHA256SUMS.asc", "InRelease", "Release.gpg"):
            # a signature carries its own time; everything else, .debs and indexes included, is the same
            assert path.read_bytes() == (second / path.relative_to(kept)).read_bytes(), path
            compared += 1
    assert compared > 20


@pytest.fixture
def published(built_line, gpg_keys, tmp_path):
    copy = tmp_path / "site-copy"
    shutil.copytree(do_release(built_line, gpg_keys).resolve(), copy)
    return copy


def test_changed_byte_in_a_package_is_caught(published, gpg_keys):
    target = published / "ltsp_linux61_kernel_Pentium_6.1.192.tar.gz"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="ltsp_linux61_kernel_Pentium_6.1.192.tar.gz: sha256 .* does not match"):
        verify_release(published, gpg_keys.good, gpg_keys.keys_dir)


def test_removed_file_is_caught(published, gpg_keys):
    (published / "ltsp_linux61_core_6.1.192.tar.gz").unlink()
    with pytest.raises(VerificationError, match="ltsp_linux61_core_6.1.192.tar.gz is listed in SHA256SUMS but missing"):
        verify_release(published, gpg_keys.good, gpg_keys.keys_dir)


def test_edited_sum_line_breaks_the_signature(published, gpg_keys):
    sums = published / "SHA256SUMS"
    sums.write_text(sums.read_text().replace("0", "1", 1))
    with pytest.raises(VerificationError):
        verify_release(published, gpg_keys.good, gpg_keys.keys_dir)


def test_signature_by_another_key_is_refused(published, gpg_keys):
    (published / "SHA256SUMS.asc").unlink()
    gpg_keys.sign(gpg_keys.other, (published / "SHA256SUMS").read_bytes(), published / "SHA256SUMS.asc")
    with pytest.raises(VerificationError, match=gpg_keys.other):
        verify_release(published, gpg_keys.good, gpg_keys.keys_dir)


def test_missing_signature_and_extra_file(published, gpg_keys):
    (published / "stray.txt").write_text("not released")
    with pytest.raises(VerificationError, match="files not covered by SHA256SUMS: stray.txt"):
        verify_release(published, gpg_keys.good, gpg_keys.keys_dir)
    (published / "SHA256SUMS.asc").unlink()
    with pytest.raises(VerificationError, match="SHA256SUMS.asc is missing"):
        verify_release(published, gpg_keys.good, gpg_keys.keys_dir)


def refusal(built_line, gpg_keys):
    with pytest.raises(UserError) as error:
        do_release(built_line, gpg_keys)
    assert not publish.release_root().joinpath("linux-6.1").exists()
    return str(error.value)


def test_gate_refuses_an_unverified_source(built_line, gpg_keys):
    line, chosen, *_ = built_line
    lay_out_variant(line, chosen[0], source="unverified source")
    assert "pentium: built from an unverified source (/somewhere)" in refusal(built_line, gpg_keys)


def test_gate_refuses_missing_failed_or_stale_boot_tests(built_line, gpg_keys):
    line, chosen, *_ = built_line
    boot_results_path(line, chosen[1]).unlink()
    assert "p4-epic100: no boot test (run doit boot-test:p4-epic100)" in refusal(built_line, gpg_keys)
    lay_out_variant(line, chosen[1], verdict="hang")
    assert "p4-epic100: boot test failed: p4-epic100-e1000-512M-pxe: hang" in refusal(built_line, gpg_keys)
    lay_out_variant(line, chosen[1])
    (build.out_dir(line, chosen[1]) / "bzImage").write_bytes(b"rebuilt")
    record = json.loads((build.out_dir(line, chosen[1]) / "build.json").read_text())
    record["bzImage"]["sha256"] = sha256_file(build.out_dir(line, chosen[1]) / "bzImage")
    (build.out_dir(line, chosen[1]) / "build.json").write_text(json.dumps(record))
    assert "the boot test ran on another kernel" in refusal(built_line, gpg_keys)


def test_gate_requires_a_relocated_high_initrd_boot_where_the_line_asks(built_line):
    """A 2.4 line (high_initrd_at_mb) ships only when its 3.5 GB boot forced
    the initrd high and the kernel relocated it."""
    line, chosen, *_ = built_line
    line = dataclasses.replace(line, boot=dataclasses.replace(line.boot, high_initrd_at_mb=3584))
    wanted = "no passing boot at 3584M with the initrd forced above low memory and relocated"
    assert any(wanted in r for r in gate_refusals(line, chosen[:1]))
    results = boot_results_path(line, chosen[0])
    record = json.loads(results.read_text())
    high = next(b for b in record["boots"] if b["mem_mb"] == 3584)
    high.update(high_initrd=True, initrd_relocated=None)          # high, but not moved
    results.write_text(json.dumps(record))
    assert any(wanted in r for r in gate_refusals(line, chosen[:1]))
    high.update(initrd_relocated="0xbfee0000 -> 0x402b000")
    results.write_text(json.dumps(record))
    assert gate_refusals(line, chosen[:1]) == []
    entry = publish._manifest_entry(results, line, chosen[0],
                                    json.loads((build.out_dir(line, chosen[0]) / "build.json").read_text()),
                                    record)
    assert entry["boot_tests"]["3584M"] == {"e1000/pxe/high-initrd": "pass"}
    assert entry["initrd_relocated"] == {"3584M": "0xbfee0000 -> 0x402b000"}


def test_gate_refuses_an_initrd_other_than_the_booted_one(built_line, gpg_keys):
    _, _, initrd, _ = built_line
    initrd.write_bytes(FAKE_INITRD + b" rebuilt")
    assert "pentium: the boot test booted another initrd than the one to be packaged" in \
        refusal(built_line, gpg_keys)


def test_gate_refuses_a_line_failing_check(built_line, gpg_keys):
    line, *_ = built_line
    config = kconfig.final_config_path(line, line.variant("athlon-3c590"))
    config.write_text(config.read_text().replace("CONFIG_CHECKPOINT_RESTORE=y",
                                                 "# CONFIG_CHECKPOINT_RESTORE is not set"))
    message = refusal(built_line, gpg_keys)
    assert "doit check fails" in message and "CONFIG_CHECKPOINT_RESTORE" in message


def test_gate_refuses_unknown_or_dirty_patch_series(built_line, gpg_keys, isolated):
    line, chosen, initrd, overlay = built_line
    toml = isolated / "configs" / "lines" / "linux-6.1.toml"
    toml.write_text(toml.read_text().replace('initrd_format = "cpio"', 'initrd_format = "cpio"\npatches = "linux-6.1"'))
    series_dir = isolated / "patches" / "linux-6.1"
    series_dir.mkdir()
    (series_dir / "series").write_text("0001-fix.patch\n")
    line = matrix.load_line("linux-6.1")
    built = (line, chosen, initrd, overlay)
    assert "unknown patch series" in refusal(built, gpg_keys)
    (series_dir / "0001-fix.patch").write_text("--- a/x\n+++ b/x\n")
    assert "is not in a git checkout: its state is unknown" in refusal(built, gpg_keys)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(series_dir)]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "series"], check=True)
    (series_dir / "0001-fix.patch").write_text("--- a/x\n+++ b/x\n@@ edited @@\n")
    assert "has uncommitted changes" in refusal(built, gpg_keys)


def test_interrupted_release_leaves_the_previous_one_intact(built_line, gpg_keys):
    first = do_release(built_line, gpg_keys)
    before = {p.name: p.read_bytes() for p in first.resolve().iterdir() if p.is_file()}
    line, chosen, *_ = built_line
    lay_out_variant(line, chosen[0], kernel=b"HdrS-newer-kernel")
    with pytest.raises(UserError, match="has no secret key"):
        do_release(built_line, gpg_keys, key="0" * 40)
    after = {p.name: p.read_bytes() for p in (publish.release_root() / "linux-6.1").resolve().iterdir() if p.is_file()}
    assert after == before
    leftovers = [p.name for p in publish.release_root().iterdir() if p.name.startswith(".staging")]
    assert leftovers == []


def test_published_release_is_world_readable_whatever_the_umask(built_line, gpg_keys):
    old = os.umask(0o077)
    try:
        link = do_release(built_line, gpg_keys)
    finally:
        os.umask(old)
    folder = link.resolve()
    assert folder.stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in folder.rglob("*") if p.is_file()} == {0o644}
    assert {p.stat().st_mode & 0o777 for p in folder.rglob("*") if p.is_dir()} == {0o755}


def test_republishing_the_same_content_keeps_the_live_release(built_line, gpg_keys, monkeypatch):
    """The same content is the same folder: it is never removed, only the
    link is set again, so no instant exists where the link points nowhere."""
    first = do_release(built_line, gpg_keys).resolve()
    inode = first.stat().st_ino
    removed = []
    real_rmtree = shutil.rmtree
    monkeypatch.setattr(shutil, "rmtree", lambda path, *a, **k: (removed.append(str(path)),
                                                                  real_rmtree(path, *a, **k)))
    second = do_release(built_line, gpg_keys).resolve()
    assert second == first and second.stat().st_ino == inode
    assert str(first) not in removed
    assert "files verified" in verify_release(second.parent / "linux-6.1", gpg_keys.good, gpg_keys.keys_dir)


def test_debris_of_killed_releases_is_cleaned_by_the_next(built_line, gpg_keys):
    root = publish.release_root()
    root.mkdir(parents=True)
    dead = root / ".staging-linux-6.1-999999999-abcd"      # no such pid
    (dead / "half").mkdir(parents=True)
    (root / ".linux-6.1.link-999999999").symlink_to("nowhere")
    alive = root / f".staging-linux-6.1-{os.getpid()}-efgh"  # a release running now
    alive.mkdir()
    do_release(built_line, gpg_keys)
    left = sorted(p.name for p in root.iterdir() if p.name.startswith("."))
    assert left == sorted([alive.name, (root / "linux-6.1").resolve().name])


def import_lab_pass(line, variant, tmp_path, **kwargs):
    """A lab node's results for the variant's x86 LAVA job, imported."""
    job = next(j for j in lava.jobs_for(line, variant, "http://lab.example") if j["device_type"] == "x86")
    job_path = tmp_path / f"{variant.name}-job.yaml"
    job_path.write_text(yaml.safe_dump(job))
    results = write_server_results(tmp_path / f"{variant.name}-results.yaml", job_path, job_id=77, **kwargs)
    return lava.import_results(line, job_path, results, "lab-node-epic")


def test_gate_with_hardware_required_takes_a_real_node_pass_on_the_card(built_line, gpg_keys, tmp_path):
    line, chosen, initrd, overlay = built_line
    epic = chosen[1]
    initrd_path(line).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(initrd, initrd_path(line))
    wanted = "p4-epic100: no real-hardware pass on a node with its epic100 card"
    assert any(wanted in r for r in gate_refusals(line, chosen, hardware=True))
    assert gate_refusals(line, chosen) == []                # QEMU boots suffice unless asked
    import_lab_pass(line, epic, tmp_path)
    assert gate_refusals(line, chosen, hardware=True) == []
    link = publish.release(line, chosen, key=gpg_keys.good, gnupghome=gpg_keys.home, initrd=initrd,
                           overlay=overlay, hardware=True)
    entry = next(e for e in json.loads((link / "manifest.json").read_text())["packages"]
                 if e.get("variant") == "p4-epic100")
    assert {"boot": "ltsp-mosix linux-6.1 p4-epic100 x86 epic100", "ran_on": "lab/lab-node-epic",
            "device_type": "x86", "card": "epic100", "job_id": "77", "verdict": "pass"} in entry["boots_ran_on"]


def test_gate_refuses_a_lab_pass_of_another_kernel_and_a_failed_lab_boot(built_line, tmp_path):
    line, chosen, initrd, _ = built_line
    epic = chosen[1]
    initrd_path(line).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(initrd, initrd_path(line))
    import_lab_pass(line, epic, tmp_path)
    lay_out_variant(line, epic, kernel=b"HdrS-rebuilt")     # rebuilt (and QEMU-booted) since
    refusals = gate_refusals(line, chosen, hardware=True)
    assert any("p4-epic100: LAVA boot 'ltsp-mosix linux-6.1 p4-epic100 x86 epic100' on lab-node-epic (x86) "
               "ran another kernel" in r for r in refusals), refusals
    assert any("no real-hardware pass on a node with its epic100 card" in r for r in refusals)
    import_lab_pass(line, epic, tmp_path, failure="eth0: EPIC/100 transmit timeout, Kernel panic - not syncing")
    refusals = gate_refusals(line, chosen)
    assert any("on lab-node-epic (x86): fail - eth0: EPIC/100 transmit timeout" in r for r in refusals), refusals


# -- the apt repository: what verify-release checks, what the release refuses -------------

def test_the_repository_holds_each_layout_as_a_suite_of_debs(published, gpg_keys):
    manifest = json.loads((published / "manifest.json").read_text())
    suites = manifest["apt"]["suites"]
    assert sorted(suites) == ["ltsp23", "ltsp3"]
    names = sorted(p["package"] for p in suites["ltsp23"]["packages"])
    assert names == ["ltsp-mosix-linux-6.1-core", "ltsp-mosix-linux-6.1-p4-epic100", "ltsp-mosix-linux-6.1-pentium"]
    for suite in suites:
        release = (published / "apt/dists" / suite / "Release").read_text()
        assert f"Suite: {suite}" in release and "Date: Sun, 11 Dec 2022 21:00:00 GMT" in release
        assert (published / "apt/dists" / suite / "InRelease").read_text().startswith("-----BEGIN PGP SIGNED MESSAGE")
        packages = (published / "apt/dists" / suite / "main/binary-amd64/Packages").read_text()
        assert packages.count("Package: ") == 3 and "Architecture: all" in packages
    kernel = next(p for p in suites["ltsp3"]["packages"] if p["package"].endswith("-pentium"))
    assert kernel["kernel_path"] == "/tftpboot/lts/linux-6.1/vmlinuz-pentium"
    assert kernel["files"][kernel["kernel_path"]] == kernel["bzImage_sha256"]
    verified = verify_release(published, gpg_keys.good, gpg_keys.keys_dir)
    assert "apt repository: 2 suites, 6 packages verified" in verified, verified


def _deb(published, suite="ltsp23", end="-pentium"):
    return next((published / "apt/pool" / suite).glob(f"*{end}_*.deb"))


@pytest.mark.parametrize("damage, message", [
    (lambda r: _flip(_deb(r)), "pentium_6.1.192-1_all.deb: sha256 is not the manifest's"),
    (lambda r: (r / "apt/dists/ltsp23/main/binary-i386/Packages").write_text("Package: x\n"),
     "Packages: sha256 or size does not match"),
    (lambda r: (r / "apt/pool/ltsp23/stray.deb").write_bytes(b"!<arch>\n"), "does not account for: apt/pool/ltsp23/stray.deb"),
    (lambda r: (r / "apt/dists/ltsp3/InRelease").unlink(), "InRelease is missing"),
    (lambda r: _relink(_deb(r, "ltsp3")), "_all.deb: a symlink, not a regular file"),
])
def test_verify_release_checks_the_repository(published, gpg_keys, damage, message):
    damage(published)
    with pytest.raises(VerificationError, match=message):
        verify_release(published, gpg_keys.good, gpg_keys.keys_dir)


def _flip(path):
    data = bytearray(path.read_bytes())
    data[-50] ^= 1
    path.write_bytes(bytes(data))


def _relink(path):
    kept = path.with_name("kept")
    path.rename(kept)
    path.symlink_to(kept.name)


def test_inrelease_by_another_key_is_refused(published, gpg_keys):
    dists = published / "apt/dists/ltsp23"
    (dists / "InRelease").write_bytes(gpg_keys.clearsign(gpg_keys.other, (dists / "Release").read_bytes()))
    with pytest.raises(VerificationError, match=gpg_keys.other):
        verify_release(published, gpg_keys.good, gpg_keys.keys_dir)


def test_a_kernel_package_must_hold_the_boot_tested_kernel(published):
    manifest = json.loads((published / "manifest.json").read_text())
    entry = dict(next(p for p in manifest["apt"]["suites"]["ltsp23"]["packages"] if p["package"].endswith("-pentium")))
    _check_kernel_in_deb(published / entry["file"], entry)          # as released
    entry["bzImage_sha256"] = "0" * 64
    with pytest.raises(VerificationError, match="not the boot-tested bzImage"):
        _check_kernel_in_deb(published / entry["file"], entry)


def test_a_release_key_missing_from_the_keyring_is_refused_before_anything_is_built(built_line, gpg_keys):
    missing = "0123456789ABCDEF0123456789ABCDEF01234567"
    with pytest.raises(UserError, match=f"release key {missing} has no secret key in"):
        do_release(built_line, gpg_keys, key=missing)
    assert not publish.release_root().exists() or not any(publish.release_root().iterdir())


def test_a_release_folder_that_cannot_be_made_is_refused(built_line, gpg_keys, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LTSP_MOSIX_RELEASE_DIR", str(blocker / "releases"))
    with pytest.raises(UserError, match="a-file/releases cannot be made"):
        do_release(built_line, gpg_keys)


def test_a_changed_package_under_a_published_version_is_refused(built_line, gpg_keys):
    line, chosen, *_ = built_line
    do_release(built_line, gpg_keys)
    (build.out_dir(line, chosen[0]) / "config").write_text("CONFIG_CHANGED=y\n")
    with pytest.raises(UserError, match="6.1.192-1 is published already with other contents .*deb_revision"):
        do_release(built_line, gpg_keys)


# -- verify-release reads only regular files inside the release folder, and a bad manifest is bad input --

PENTIUM = "ltsp_linux61_kernel_Pentium_6.1.192.tar.gz"


def _outside_copy(path, outside):
    """A copy of the file's identical bytes outside the release folder."""
    outside.mkdir(exist_ok=True)
    return shutil.copy(path, outside / path.name)


def _link_out(path, outside, relative=False):
    target = _outside_copy(path, outside)
    path.unlink()
    path.symlink_to(os.path.relpath(target, path.parent) if relative else target)


def _fifo(path, outside):
    path.unlink()
    os.mkfifo(path)


def _resign(release, gpg_keys):
    """SHA256SUMS recomputed over the files as they are now and signed again
    by the release key: what only the holder of the key could do."""
    sums = release / "SHA256SUMS"
    names = [line.partition("  ")[2] for line in sums.read_text().splitlines()]
    sums.write_text("".join(f"{sha256_file(release / name)}  {name}\n" for name in names))
    (release / "SHA256SUMS.asc").unlink()
    gpg_keys.sign(gpg_keys.good, sums.read_bytes(), release / "SHA256SUMS.asc")


def _rewrite_manifest(release, gpg_keys, edit):
    path = release / "manifest.json"
    text = edit(json.loads(path.read_text()))
    path.write_text(text if isinstance(text, str) else json.dumps(text))
    _resign(release, gpg_keys)


def _without(*keys):
    """The manifest with the field at keys (a path into it) deleted."""
    def edit(manifest):
        inner = manifest
        for key in keys[:-1]:
            inner = inner[key]
        del inner[keys[-1]]
        return manifest
    return edit


def _first_apt_package(manifest):
    return manifest["apt"]["suites"]["ltsp23"]["packages"][0]


@pytest.mark.parametrize("damage, message", [
    (lambda r, o, g: _link_out(r / PENTIUM, o), f"{PENTIUM}: a symlink, not a regular file"),
    (lambda r, o, g: _link_out(r / PENTIUM, o, relative=True), f"{PENTIUM}: a symlink, not a regular file"),
    (lambda r, o, g: _link_out(r / "SHA256SUMS", o), "SHA256SUMS: a symlink, not a regular file"),
    (lambda r, o, g: _link_out(_deb(r), o), "pentium_6.1.192-1_all.deb: a symlink, not a regular file"),
    (lambda r, o, g: _fifo(r / PENTIUM, o), f"{PENTIUM}: a FIFO, not a regular file"),
    (lambda r, o, g: _rewrite_manifest(r, g, _without("packages")), "manifest.json: 'packages' is missing"),
    (lambda r, o, g: _rewrite_manifest(r, g, lambda m: "{not json"), "manifest.json: not valid JSON"),
    (lambda r, o, g: _rewrite_manifest(r, g, lambda m: m["packages"]), "manifest.json: not a JSON object"),
    (lambda r, o, g: _rewrite_manifest(r, g, _without("packages", 0, "sha256")),
     r"manifest.json: 'packages\[0\].sha256' is missing"),
    (lambda r, o, g: _rewrite_manifest(r, g, lambda m: (_first_apt_package(m).pop("size"), m)[1]),
     r"manifest.json: 'apt.suites.ltsp23.packages\[0\].size' is missing"),
    (lambda r, o, g: _rewrite_manifest(r, g, _without("apt", "key")), "manifest.json: 'apt.key' is missing"),
], ids=["absolute-link", "relative-link", "sums-link", "deb-link", "fifo", "no-packages", "not-json",
        "not-object", "entry-without-sha256", "apt-entry-without-size", "apt-without-key"])
def test_verify_release_refuses_links_special_files_and_a_malformed_manifest(published, gpg_keys, tmp_path,
                                                                           damage, message):
    damage(published, tmp_path / "outside", gpg_keys)
    with pytest.raises(VerificationError, match=message):
        verify_release(published, gpg_keys.good, gpg_keys.keys_dir)


def test_a_resigned_release_with_a_well_formed_manifest_still_verifies(published, gpg_keys):
    """The re-signing above is sound: what those tests refuse is the damage."""
    _rewrite_manifest(published, gpg_keys, lambda manifest: json.dumps(manifest, indent=1))
    assert "files verified" in verify_release(published, gpg_keys.good, gpg_keys.keys_dir)


def test_a_listed_name_leaving_the_folder_is_refused(published, gpg_keys, tmp_path):
    """A manifest naming the release key's file by a path through `..` is
    refused, though a regular file with the right bytes lies there."""
    manifest = json.loads((published / "manifest.json").read_text())
    copy = _outside_copy(published / manifest["apt"]["key"]["file"], tmp_path / "outside")

    def edit(manifest):
        manifest["apt"]["key"]["file"] = os.path.relpath(copy, published)
        return manifest
    _rewrite_manifest(published, gpg_keys, edit)
    with pytest.raises(VerificationError, match="outside the release folder"):
        verify_release(published, gpg_keys.good, gpg_keys.keys_dir)


@pytest.mark.parametrize("case", ["relative-link", "no-packages"])
def test_doit_verify_release_refuses_a_link_or_a_malformed_manifest_as_bad_input(published, gpg_keys, tmp_path,
                                                                                 case):
    """The same refusals through `doit verify-release` as a site types it:
    exit 3, one line naming the file, no traceback."""
    from tests.conftest import project_env, run_doit
    if case == "relative-link":
        _link_out(published / PENTIUM, tmp_path / "outside", relative=True)
        named = f"{PENTIUM}: a symlink, not a regular file"
    else:
        _rewrite_manifest(published, gpg_keys, _without("packages"))
        named = "manifest.json: 'packages' is missing"
    result = run_doit("verify-release", f"dir={published}", f"key={gpg_keys.good}", f"keys={gpg_keys.keys_dir}",
                      env=project_env(), check=False)
    said = result.stdout + result.stderr
    assert result.returncode == 3 and named in said and "Traceback" not in said, said[-1500:]


def test_a_package_dpkg_cannot_read_is_named(published):
    """A .deb that is not an archive: the reading itself is refused by name."""
    from release import debs
    broken = published / "broken.deb"
    broken.write_bytes(b"!<arch>\nnot really\n")
    with pytest.raises(VerificationError, match="broken.deb: not a readable Debian package"):
        debs.contents(broken)
