"""The linux-2.4.22 line for real, on every machine: the vanilla test archive
(tests/conftest.py: sha256 checked, never copied into the repository) is
what a site keeps of its own tree.  The site pins it deliberately under its
own file name and serves it from a file:// mirror in a copied configs
folder, so the build is verified: fetch, prepare (the gcc-12 series),
config, check, build, boot-test, release and verify-release all run through
doit and must pass.  The same tree unpacked and handed over as the local
override builds too, bit-identical, and stays refused by the release.

Then what only 2.4 shows: the hostile loader (unpatched 2.4.22 drops a high
initrd, the series relocates it), a plain 3.5 GB PXE boot that keeps the
initrd low, the linuxrc path and an NFS root.  With CI=true none of this
may skip (conftest.py)."""
import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from common import paths
from common.hashing import sha256_file
from initrd.build import compile_init, make_ext2_initrd
from kernels import matrix, tree
from lab.boot.qemu import boot_once
from lab.nfsboot import boot_nfsroot
from lab.boot.hostile import LOWMEM_END, make_hostile_bzimage, read_initrd_addr_max
from release.gates import gate_refusals
from tests.aptroot import AptRoot
from tests.conftest import (ROOT, VANILLA_24, VANILLA_24_SHA256, console_shows, interrupt_doit, new_path_appears,
                            project_env, qemu_processes, run_doit, run_doit_killed, settled)
from tests.httpserver import serve_folder
from tests.lava_results import write_server_results
from tests.ltsp_site import ltsp_conf, ltsp_server

pytestmark = [pytest.mark.e2e, pytest.mark.linux24]
LINE = "linux-2.4.22"
RELOCATION_PATCH = "0014-initrd-relocate-below-lowmem.patch"
MB = 1024


# -- the site: its own archive, pinned on purpose ----------------------------------------

@dataclass(frozen=True)
class Site:
    root: Path

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def hash_file(self) -> Path:
        return self.configs / "lines" / f"{LINE}.hash"

    @property
    def line_dir(self) -> Path:
        return self.root / "build" / LINE

    def out(self, variant: str) -> Path:
        return self.line_dir / "variants" / variant / "out"

    def env(self, **extra) -> dict:
        return project_env(LTSP_MOSIX_CONFIGS=str(self.configs),
                           LTSP_MOSIX_BUILD_DIR=str(self.root / "build"),
                           LTSP_MOSIX_DL_DIR=str(self.root / "dl"), **extra)

    def doit(self, *args, check=True, jobs=1, **extra):
        """doit line=2.4.22 ARGS in the site; jobs: doit's -n (tasks at once;
        the option belongs to doit's run command, so only given above 1)."""
        options = ["-n", str(jobs)] if jobs > 1 else []
        return run_doit(*options, f"line={LINE}", *args, env=self.env(**extra), check=check)


def site_line_toml(shipped: str, mirror: str) -> str:
    """The shipped line with its kernel source replaced by the site's own
    archive: another file name, a file:// mirror, no kernel.org listing."""
    text = shipped.replace('file = "linux-2.4.22.tar.bz2"', f'file = "{VANILLA_24}"')
    text, urls = re.subn(r'(?ms)^urls = \[.*?\]\n', f'urls = ["{mirror}"]\n', text, count=1)
    text, backups = re.subn(r'(?m)^backup = \[.*\]\n', "", text, count=1)
    text, listings = re.subn(r'(?ms)^\[sources\.listing\].*?^keys = \[.*?\]\n', "", text, count=1)
    assert (urls, backups, listings) == (1, 1, 1) and "kernel.org" not in text, text
    return text


# ccache stays on for the 2.4 builds: the matrix fills it, and the builds in
# other folders below (override, clean NIC variant, unpatched kernel) hit it
# through CCACHE_BASEDIR; the kill test alone turns it off.

@pytest.fixture(scope="module")
def site(vanilla_24_archive) -> Site:
    """A configs copy under the run's build folder (with
    LTSP_MOSIX_TEST_BUILD_DIR a stable path: doit's state keeps a rerun
    cheap); the hash file keeps an earlier run's pin."""
    site = Site(paths.build_dir() / "test-site-2.4")
    pinned = site.hash_file.read_text() if site.hash_file.is_file() else None
    shutil.rmtree(site.configs, ignore_errors=True)
    shutil.copytree(ROOT / "configs", site.configs)
    toml = site.configs / "lines" / f"{LINE}.toml"
    toml.write_text(site_line_toml(toml.read_text(), vanilla_24_archive.as_uri()))
    if pinned and VANILLA_24 in pinned:
        site.hash_file.write_text(pinned)
    return site


@pytest.fixture(scope="module")
def site_pinned(site) -> Site:
    result = site.doit("pin", "source=linux")
    print(result.stdout[-1500:])
    return site


def test_the_site_pins_its_archive_deliberately_and_fetch_verifies_it(site_pinned):
    text = site_pinned.hash_file.read_text()
    assert f"sha256  {VANILLA_24_SHA256}  {VANILLA_24}" in text
    assert re.search(rf"# {re.escape(VANILLA_24)}: pinned by \S+ on \S+; downloaded from file://", text)
    fetched = site_pinned.doit("fetch")
    assert f"{VANILLA_24}: sha256 pinned in" in fetched.stdout, fetched.stdout


@pytest.fixture(scope="module")
def line24_built(site_pinned) -> Site:
    """Every variant built from the verified archive through doit: the
    run's only build of the line's matrix."""
    site_pinned.doit("kernel")
    return site_pinned


def test_every_variant_builds_verified_with_gcc12(line24_built):
    records = [json.loads(p.read_text()) for p in sorted(line24_built.line_dir.glob("variants/*/out/build.json"))]
    assert len(records) == 12
    for record in records:
        assert record["source"] == "verified" and record["kernel_release"] == "2.4.22"
        assert [(s["file"], s["sha256"]) for s in record["sources"]] == [(VANILLA_24, VANILLA_24_SHA256)]
        assert [p["name"] for p in record["patches"]][-1] == "0100-reproducible-compile-h.patch"
        print(f"{record['variant']:<22} {record['build_seconds']:6.1f}s  bzImage {record['bzImage']['size']} bytes"
              f"  seeded from {record['seeded_from']}")
        # NIC-specific variants start from their CPU's objects (kernels/seed.py)
        base = record["variant"].split("-")[0]
        assert record["seeded_from"] == (base if "-" in record["variant"] else None)


def test_a_seeded_nic_variant_is_byte_identical_to_a_clean_build(line24_built, tmp_path):
    """pentium-3c590 as `doit kernel` built it (from pentium's objects) and
    built clean in a build folder of its own (a clean build is the point),
    seeding off: the same bytes."""
    seeded = json.loads((line24_built.out("pentium-3c590") / "build.json").read_text())
    assert seeded["seeded_from"] == "pentium"
    clean_dir = tmp_path / "clean"
    env = {**line24_built.env(LTSP_MOSIX_SEED="0"), "LTSP_MOSIX_BUILD_DIR": str(clean_dir)}
    run_doit(f"line={LINE}", "kernel:pentium-3c590", env=env)
    clean = json.loads((clean_dir / LINE / "variants" / "pentium-3c590" / "out" / "build.json").read_text())
    assert clean["seeded_from"] is None
    assert not (clean_dir / LINE / "variants" / "pentium" / "out").exists()     # no base was built
    print(f"pentium-3c590: seeded {seeded['build_seconds']}s, clean {clean['build_seconds']}s, "
          f"bzImage {clean['bzImage']['sha256']}")
    assert clean["bzImage"] == seeded["bzImage"]
    assert clean["config_sha256"] == seeded["config_sha256"]


def test_check_passes_on_the_vanilla_line(line24_built):
    assert "12 variants share" in line24_built.doit("check").stdout


@pytest.fixture(scope="module")
def line24_booted(line24_built) -> Site:
    result = line24_built.doit("boot-test", jobs=2)
    print(result.stdout[-5000:])
    assert "0 fail, 0 hang" in result.stdout
    return line24_built


def test_every_variant_boots_over_pxe_and_relocates_a_high_initrd(line24_booted):
    """doit boot-test itself forces the initrd high at 3.5 GB on 2.4."""
    for results_path in sorted(line24_booted.line_dir.glob("boot/*/results.json")):
        boots = json.loads(results_path.read_text())["boots"]
        high = [b for b in boots if b["mem_mb"] == 3584]
        assert high and all(b["high_initrd"] and b["verdict"] == "pass" for b in high), high
        for boot in high:
            start, moved = (int(x, 16) for x in boot["initrd_relocated"].split(" -> "))
            assert start >= LOWMEM_END > moved
            print(f"{boot['name']}: initrd {boot['initrd_relocated']}")


@pytest.fixture(scope="module")
def released(line24_booted, gpg_keys, tmp_path_factory):
    """The whole line released twice, into two release folders."""
    runs = []
    for run in ("first", "second"):
        releases = tmp_path_factory.mktemp(f"releases-{run}")
        result = line24_booted.doit("release", f"key={gpg_keys.good}", f"keyring={gpg_keys.home}",
                                    LTSP_MOSIX_RELEASE_DIR=str(releases))
        assert "published" in result.stdout, result.stdout[-3000:]
        runs.append(releases / LINE)
    return runs


def test_release_of_the_line_verifies_and_is_reproducible(released, line24_booted, gpg_keys):
    first, second = released
    names = sorted(p.name for p in first.iterdir())
    assert len([n for n in names if n.startswith("ltsp_linux2422_kernel_")]) == 12
    assert {"SHA256SUMS", "SHA256SUMS.asc", "manifest.json", "ltsp_linux2422_core_2.4.22.tar.gz"} <= set(names)
    verified = line24_booted.doit("verify-release", f"dir={first}", f"key={gpg_keys.good}",
                                  f"keys={gpg_keys.keys_dir}")
    assert "files verified" in verified.stdout and "signature: good by" in verified.stdout
    sums = (first / "SHA256SUMS").read_text()
    assert (second / "SHA256SUMS").read_text() == sums
    print("SHA256SUMS, identical in both runs:\n" + sums)
    manifest = json.loads((first / "manifest.json").read_text())
    kernels = [p for p in manifest["packages"] if p["kind"] == "kernel"]
    assert len(kernels) == 12
    for entry in kernels:
        assert list(entry["boot_tests"]["3584M"].items()) == [(f"{nic_of(entry['variant'])}/pxe/ipxe/high-initrd", "pass")]
        assert entry["initrd_relocated"]["3584M"].startswith("0x")
        assert entry["sources"][0]["sha256"] == VANILLA_24_SHA256


def test_lintian_finds_no_error_in_any_package_of_the_release(released):
    """Every .deb of the whole line's release, both layouts: lintian's own
    verdict, errors fail; the package list with sizes is printed."""
    debs = sorted(released[0].resolve().glob("apt/pool/*/*.deb"))
    assert len(debs) == 2 * 13
    for deb in debs:
        print(f"{deb.stat().st_size:>10}  {deb.relative_to(released[0].resolve())}")
    tags = set()
    for suite in ("ltsp23", "ltsp3"):    # one run each: lintian takes one package of a name and version
        result = subprocess.run(["lintian", "--fail-on", "error", "--display-level", ">=warning",
                                 *(str(d) for d in debs if d.parent.name == suite)], capture_output=True, text=True)
        print(f"lintian, {suite}:\n{result.stdout[-1500:]}")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        tags |= {line.split(": ", 2)[2].split()[0] for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")}
    assert tags <= {"initial-upload-closes-no-bugs"}, tags        # the warnings docs/releases.md accepts


def _installed_as_manifest(server: AptRoot, release: Path, names: list[str]) -> dict:
    """Every file the manifest lists for the packages is on the server's
    disk with its sha256; returns the manifest's ltsp23 entries by name."""
    suite = json.loads((release / "manifest.json").read_text())["apt"]["suites"]["ltsp23"]
    entries = {p["package"]: p for p in suite["packages"] if p["package"] in names}
    assert server.installed() == {name: entries[name]["version"] for name in names}
    for name in names:
        for path, digest in entries[name]["files"].items():
            assert sha256_file(server.root / path.lstrip("/")) == digest, f"{name}: {path}"
    return entries


def test_apt_upgrades_a_site_to_the_next_release_and_refuses_an_older_one(released, line24_booted, gpg_keys,
                                                                          tmp_path):
    """A site installs the pentium kernel and the core from the line's
    release; the next release (one more kernel option, deb_revision 2)
    is published into the same release folder (the link swaps) and
    `apt-get upgrade` takes it; publishing revision 1 again is refused
    (apt would never go back to it); a purge leaves nothing behind."""
    site_releases = tmp_path / "releases"
    site_releases.mkdir()
    first = released[0].resolve()
    shutil.copytree(first, site_releases / first.name)
    (site_releases / LINE).symlink_to(first.name)
    names = [f"ltsp-mosix-{LINE}-pentium", f"ltsp-mosix-{LINE}-core"]
    server = AptRoot(tmp_path / "server")
    with serve_folder(site_releases) as url:
        print(server.add_source(f"{url}/{LINE}/apt", "ltsp23", "main",
                                site_releases / LINE / "apt" / "ltsp-mosix-release.asc"))
        before = server.files()
        server.apt("update")
        print(server.apt("install", *names).stdout[-1200:])
        old = _installed_as_manifest(server, site_releases / LINE, names)

        upgrade = Site(tmp_path / "next")
        shutil.copytree(line24_booted.configs, upgrade.configs)
        toml = upgrade.configs / "lines" / f"{LINE}.toml"
        toml.write_text(toml.read_text().replace("deb_revision = 1\n", "deb_revision = 2\n"))
        base = upgrade.configs / "base" / "linux-2.4.22.config"
        base.write_text(base.read_text() + "CONFIG_BSD_PROCESS_ACCT=y\n")
        published = upgrade.doit("release", "variants=pentium", f"key={gpg_keys.good}",
                                 f"keyring={gpg_keys.home}", jobs=2, LTSP_MOSIX_RELEASE_DIR=str(site_releases))
        print(published.stdout[-1500:])
        assert (site_releases / LINE).resolve().name != first.name

        server.apt("update")
        upgraded = server.apt("upgrade")
        print(upgraded.stdout[-1500:])
        new = _installed_as_manifest(server, site_releases / LINE, names)
        assert {n: e["version"] for n, e in new.items()} == {n: "2.4.22-2" for n in names}
        kernel = new[names[0]]
        assert kernel["bzImage_sha256"] != old[names[0]]["bzImage_sha256"], "the next release changed the kernel"
        assert sha256_file(server.root / kernel["kernel_path"].lstrip("/")) == kernel["bzImage_sha256"]

        again = line24_booted.doit("release", "variants=pentium", f"key={gpg_keys.good}",
                                   f"keyring={gpg_keys.home}", check=False,
                                   LTSP_MOSIX_RELEASE_DIR=str(site_releases))
        said = again.stdout + again.stderr
        print(said[-600:])
        assert again.returncode != 0 and "older than the published 2.4.22-2" in said and "deb_revision" in said
        assert (site_releases / LINE).resolve().name != first.name

        server.apt("purge", *names)
    assert server.installed() == {}
    assert server.files() == before, sorted(server.files() - before)


def test_ltsp23_menu_boots_the_released_24_and_61_kernels(released, released_61, namespaces_allowed, tmp_path):
    """Debian's LTSP 23 on the server side: apt installs the 2.4.22 and
    6.1 pentium packages side by side, LTSP's own `ltsp ipxe` writes the
    menu (the packages' drop-ins add their entries), dnsmasq runs LTSP's
    configuration in a network namespace, and two QEMU nodes netboot from
    their NIC's PXE ROM through LTSP's menu, each taking the entry its
    ltsp.conf section names, to the kernel's marker."""
    serving = tmp_path / "serving"
    serving.mkdir()
    for release in (released[0], released_61):
        shutil.copytree(release.resolve(), serving / release.name)
    entries = {LINE: f"ltsp-mosix-{LINE}-pentium", "linux-6.1": "ltsp-mosix-linux-6.1-pentium"}
    server = AptRoot(tmp_path / "server")
    with serve_folder(serving) as url:
        sources = server.root / "etc/apt/sources.list.d"
        for line in entries:
            server.add_source(f"{url}/{line}/apt", "ltsp23", "main", serving / line / "apt" / "ltsp-mosix-release.asc")
            (sources / "ltsp-mosix.list").rename(sources / f"{line}.list")
        server.apt("update")
        server.apt("install", *entries.values())
    nodes = {"52:54:00:23:00:24": entries[LINE], "52:54:00:23:00:61": entries["linux-6.1"]}
    (server.root / "etc/ltsp").mkdir(parents=True, exist_ok=True)
    (server.root / "etc/ltsp/ltsp.conf").write_text(ltsp_conf(nodes))
    with ltsp_server(server.root, tmp_path / "state") as (ltsp, ipxe):
        menu = (server.root / "srv/tftp/ltsp/ltsp.ipxe").read_text()
        for entry in entries.values():
            assert f"\n:{entry}\n" in menu and f"item {entry} " in menu, menu
        print("\n".join(l for l in menu.splitlines() if "ltsp-mosix" in l))
        for (mac, entry), name in zip(nodes.items(), ("node24", "node61")):
            watch = ltsp.boot(mac=mac, cpu="pentium", mem_mb=512, name=name)
            console = watch.transcript
            print(f"{name} ({entry}): {watch.verdict} in {watch.seconds:.1f}s: {watch.line}")
            assert watch.verdict == "pass", console[-3000:]
            release = "2.4.22" if entry == entries[LINE] else "6.1."
            assert f"Linux version {release}" in console, console[-2000:]
    # what the nodes fetched, in order: LTSP's menu, then the entry's kernel and initrd
    log = (tmp_path / "state" / "dnsmasq.log").read_text()
    sent = [l.split("sent ", 1)[1].split(" to ")[0] for l in log.splitlines() if "dnsmasq-tftp" in l and " sent " in l]
    print("\n".join(sent))
    for entry in entries.values():
        menu_at = sent.index(str(server.root / "srv/tftp/ltsp/ltsp.ipxe"))
        kernel_at = sent.index(str(server.root / f"srv/tftp/ltsp/{entry}/vmlinuz"))
        assert menu_at < kernel_at and str(server.root / f"srv/tftp/ltsp/{entry}/initrd.img") in sent


def test_lava_runs_a_24_job_and_the_release_takes_a_real_hardware_pass(line24_booted, gpg_keys, tmp_path):
    """The 3c590 kernel: its QEMU job through lava-run (artifacts on
    loopback) passes; `release hardware=required` refuses it until a lab
    node with a 3c59x card passed its x86 job (that lab's results imported,
    never results of another kernel); the manifest says where each boot ran."""
    site, variant = line24_booted, "pentium-3c590"
    lab = site.line_dir / "boot" / variant / "lab"
    jobs = site.line_dir / "lava" / "jobs" / variant
    shutil.rmtree(lab, ignore_errors=True)
    try:
        with serve_folder(site.line_dir / "lava" / "artifacts") as base_url:
            made = site.doit("lava-jobs", f"variants={variant}", f"base_url={base_url}")
            assert "4 jobs valid for LAVA's schema" in made.stdout, made.stdout
            run = site.doit("lava-run", f"job={jobs / f'{LINE}-{variant}-qemu-512M.yaml'}")
        print(run.stdout[-600:])
        assert f"{variant}: ltsp-mosix {LINE} {variant} qemu 512M on qemu-local (qemu): pass" in run.stdout
        releases = tmp_path / "releases"
        args = ("release", f"variants={variant}", f"key={gpg_keys.good}", f"keyring={gpg_keys.home}",
                "hardware=required")
        refused = site.doit(*args, check=False, LTSP_MOSIX_RELEASE_DIR=str(releases))
        assert refused.returncode != 0
        assert f"{variant}: no real-hardware pass on a node with its 3c59x card" in refused.stdout + refused.stderr
        node_job = jobs / f"{LINE}-{variant}-x86-3c59x.yaml"
        other = write_server_results(tmp_path / "other-kernel.yaml", node_job, job_id=4241,
                                     kernel_sha256="0" * 64)
        wrong = site.doit("lava-import", f"job={node_job}", f"results={other}", "device=lab-node-3c59x",
                          check=False)
        assert wrong.returncode != 0 and "downloaded kernel sha256 " + "0" * 64 in wrong.stdout + wrong.stderr
        assert not (lab / f"{LINE}-{variant}-x86-3c59x.json").exists()
        results = write_server_results(tmp_path / "results.yaml", node_job, job_id=4242)
        site.doit("lava-import", f"job={node_job}", f"results={results}", "device=lab-node-3c59x")
        published = site.doit(*args, LTSP_MOSIX_RELEASE_DIR=str(releases))
        assert "published" in published.stdout, published.stdout[-2000:]
        manifest = json.loads((releases / LINE / "manifest.json").read_text())
        entry = next(p for p in manifest["packages"] if p.get("variant") == variant)
        print(json.dumps(entry["boots_ran_on"], indent=1))
        assert {b["ran_on"] for b in entry["boots_ran_on"]} == {"qemu/local", "lab/qemu-local",
                                                                "lab/lab-node-3c59x"}
        node = next(b for b in entry["boots_ran_on"] if b["ran_on"] == "lab/lab-node-3c59x")
        assert (node["card"], node["device_type"], node["job_id"], node["verdict"]) == \
            ("3c590", "x86", "4242", "pass")
    finally:
        shutil.rmtree(lab, ignore_errors=True)


def nic_of(variant: str) -> str:
    """The NIC a variant's boots are filed under: the all-driver variants
    boot e1000 at 3.5 GB, the NIC-specific ones their own card's name."""
    return variant.partition("-")[2] or "e1000"


# -- the same tree through the local override --------------------------------------------

def override_env(tree_dir: Path, **extra) -> dict:
    return project_env(LTSP_MOSIX_OVERRIDE_LINUX_2_4_22=str(tree_dir), **extra)


def test_override_build_is_identical_and_refused_by_the_release(line24_built, vanilla_24_tree, tmp_path,
                                                                  monkeypatch):
    build_dir = tmp_path / "b"      # its own folder: the override route is another prepared tree
    run_doit(f"line={LINE}", "kernel:pentium_smp", env=override_env(vanilla_24_tree, LTSP_MOSIX_BUILD_DIR=str(build_dir)))
    verified = line24_built.out("pentium_smp") / "bzImage"
    override = build_dir / LINE / "variants" / "pentium_smp" / "out" / "bzImage"
    assert sha256_file(verified) == sha256_file(override)
    print(f"pentium_smp, verified archive and override tree: {sha256_file(verified)}")

    monkeypatch.setenv("LTSP_MOSIX_BUILD_DIR", str(build_dir))
    monkeypatch.setenv("LTSP_MOSIX_OVERRIDE_LINUX_2_4_22", str(vanilla_24_tree))
    line = matrix.load_line(LINE)
    refusals = gate_refusals(line, [line.variant("pentium_smp")])
    assert any(f"pentium_smp: built from an {tree.UNVERIFIED}" in r for r in refusals), refusals


def test_mosix_option_on_the_vanilla_24_tree_fails_the_audit(vanilla_24_tree, tmp_path):
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    toml = configs / "lines" / f"{LINE}.toml"
    toml.write_text(toml.read_text().replace('invariants = "none.config"', 'invariants = "mosix.config"'))
    result = run_doit(f"line={LINE}", "config:athlon", check=False,
                      env=override_env(vanilla_24_tree, LTSP_MOSIX_CONFIGS=str(configs),
                                       LTSP_MOSIX_BUILD_DIR=str(tmp_path / "b")))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "CONFIG_MOSIX: requested y, final absent" in output, output[-2000:]


# -- what only 2.4 shows: the loader, the initrd, the root ------------------------------

@pytest.fixture(scope="module")
def initrd_24(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("initrd24")
    return make_ext2_initrd(work / "initrd.ext2", compile_init(work))


@pytest.fixture(scope="module")
def unpatched_24(vanilla_24_tree, tmp_path_factory) -> Path:
    """pentium built without the relocation patch: the Mosix-era kernel (a
    kernel of its own, so a build folder of its own)."""
    work = tmp_path_factory.mktemp("unpatched")
    patches = work / "patches"
    shutil.copytree(ROOT / "patches", patches)
    series = patches / LINE / "series"
    series.write_text(series.read_text().replace(RELOCATION_PATCH + "\n", ""))
    (patches / LINE / RELOCATION_PATCH).unlink()
    run_doit(f"line={LINE}", "kernel:pentium",
             env=override_env(vanilla_24_tree, LTSP_MOSIX_PATCHES=str(patches),
                              LTSP_MOSIX_BUILD_DIR=str(work / "build")))
    return work / "build" / LINE / "variants" / "pentium" / "out" / "bzImage"


def boot24(kernel: Path, initrd: Path, logs: Path, **kwargs):
    kwargs.setdefault("cpu", "pentium")
    kwargs.setdefault("nic", "e1000")
    kwargs.setdefault("append", matrix.load_line(LINE).kernel_append)
    kwargs.setdefault("path", "direct")
    name = f"{kwargs['path']}-{kwargs['mem_mb']}M" + ("-high-initrd" if kwargs.get("high_initrd") else "")
    result = boot_once(kernel, initrd, log_path=logs / f"{name}.log", line=LINE, variant="pentium", **kwargs)
    print(f"{result.name}: {result.verdict} {result.kind or ''} {result.seconds}s "
          f"initrd {result.initrd_relocated or result.console_line} (log {result.log_path})")
    return result


@pytest.mark.parametrize("path", ["direct", "pxe"])
def test_hostile_loader_unpatched_drops_the_initrd(unpatched_24, initrd_24, tmp_path, path):
    hostile = make_hostile_bzimage(unpatched_24, tmp_path / "bzImage-hostile")
    result = boot24(hostile, initrd_24, tmp_path / "logs", mem_mb=3584, path=path, require_interface=False)
    assert (result.verdict, result.kind) == ("fail", "initrd-beyond-memory"), result.console_line
    assert result.console_line.startswith("initrd extends beyond end of memory (0x")


def test_forced_high_boot_of_the_unpatched_kernel_fails_the_matrix_rule(unpatched_24, initrd_24, tmp_path):
    """What doit boot-test runs at 3.5 GB, on the kernel without 0014."""
    result = boot24(unpatched_24, initrd_24, tmp_path / "logs", mem_mb=3584, path="pxe", high_initrd=True)
    assert result.verdict == "fail" and result.kind == "initrd-beyond-memory"
    assert result.initrd_relocated is None


def test_hostile_loader_patched_relocates(line24_built, initrd_24, tmp_path):
    hostile = make_hostile_bzimage(line24_built.out("pentium") / "bzImage", tmp_path / "bzImage-hostile")
    result = boot24(hostile, initrd_24, tmp_path / "logs", mem_mb=3584, require_interface=False)
    assert result.verdict == "pass", result.console_line
    assert result.initrd_relocated is not None and result.initrd_moved_to < LOWMEM_END


def test_plain_pxe_at_3584_mb_keeps_the_initrd_low(line24_built, initrd_24, tmp_path):
    """pxelinux honours the header's 0x37FFFFFF: no relocation is needed."""
    kernel = line24_built.out("pentium") / "bzImage"
    assert read_initrd_addr_max(kernel.read_bytes()) == 0x37FFFFFF
    result = boot24(kernel, initrd_24, tmp_path / "logs", mem_mb=3584, path="pxe")
    assert result.passed, result.console_line
    assert result.mem_total_kb > 2900 * MB and result.initrd_moved_to is None


@pytest.mark.parametrize("append", [matrix.load_line(LINE).kernel_append, "console=ttyS0,115200 panic=1"],
                         ids=["sbin-init", "linuxrc"])
def test_direct_boot_runs_the_node_init(line24_built, initrd_24, tmp_path, append):
    result = boot24(line24_built.out("pentium") / "bzImage", initrd_24, tmp_path / "logs", mem_mb=512,
                    append=append)
    assert result.passed, result.console_line
    assert result.kernel_version.startswith("2.4.22") and result.interfaces == ["lo", "eth0"]


def test_nfs_root_boot_of_a_24_node(line24_built, tmp_path):
    """2.4 nodes mount their root over NFSv3/UDP from the project's ganesha."""
    result = boot_nfsroot(line24_built.out("pentium") / "bzImage", tmp_path, line=LINE)
    print(f"2.4.22 NFS-root boot: {result.verdict} in {result.seconds}s; root {result.report.root}")
    assert result.verdict == "pass" and not result.problems, (result.problems, result.log_path)


# -- killed anywhere ----------------------------------------------------------------------

def test_a_24_build_killed_anywhere_reruns_to_the_same_bytes(line24_built, vanilla_24_tree, tmp_path):
    """kill -9 of the whole doit process group as each of these is seen:
    prepare copying the tree, the variant's tree being linked, kernel/sched.o,
    af_packet.o (the object 2.4's make once took as complete when
    half-written), vmlinux (make bzImage linking); then the same command to
    the end.  The bzImage is the uninterrupted build's, byte for byte.  A
    build folder of its own and ccache off: the kills must reach real
    compilers writing objects, in a build that starts clean."""
    env = override_env(vanilla_24_tree, LTSP_MOSIX_BUILD_DIR=str(tmp_path / "b"), LTSP_MOSIX_CCACHE="0")
    line_dir = tmp_path / "b" / LINE
    tree_dir = line_dir / "variants" / "pentium" / "tree"
    points = [("prepare copying the tree", line_dir, "src.tmp"),
              ("the variant tree being linked", tree_dir.parent, "tree"),
              ("kernel/sched.o", tree_dir, "kernel/sched.o"),
              ("net/packet/af_packet.o", tree_dir, "net/packet/af_packet.o"),
              ("vmlinux", tree_dir, "vmlinux")]
    outcomes = {}
    for name, root, pattern in points:      # each event watched from the start of its own run
        outcomes[name] = run_doit_killed(f"line={LINE}", "kernel:pentium", env=env,
                                         kill_when=new_path_appears(root, pattern))
    final = run_doit(f"line={LINE}", "kernel:pentium", env=env)
    for name, outcome in outcomes.items():
        print(f"kill when {name} appears: {outcome}")
    assert sum(o.startswith("killed") for o in outcomes.values()) >= 3, outcomes
    out = tmp_path / "b" / LINE / "variants" / "pentium" / "out"
    assert sha256_file(out / "bzImage") == sha256_file(line24_built.out("pentium") / "bzImage")
    assert " packet_init" in (out / "System.map").read_text()
    assert "previous build was interrupted" in final.stdout + final.stderr
    assert not list(tree_dir.rglob(".ltsp-mosix-build-running"))


def test_boot_test_killed_leaves_no_qemu_and_reruns(line24_booted):
    """kill -9 once a kernel is booting in QEMU (its console says so)."""
    line24_booted.doit("forget", "boot-test:pentium")
    logs = line24_booted.line_dir / "boot" / "pentium" / "logs"
    outcome = run_doit_killed(f"line={LINE}", "boot-test:pentium", env=line24_booted.env(),
                              kill_when=console_shows(logs, "Linux version"))
    print(f"boot-test:pentium {outcome}")
    assert outcome.startswith("killed"), outcome
    assert settled(lambda: qemu_processes(f"ltsp-mosix-{LINE}-pentium-")) == [], "QEMU outlived its killed parent"
    rerun = line24_booted.doit("boot-test:pentium")
    assert "5 boots: 5 pass" in rerun.stdout, rerun.stdout[-2000:]


def test_release_killed_anywhere_keeps_a_whole_readable_release(line24_booted, gpg_keys, tmp_path):
    """Releases of the same content killed as each step is seen (staging
    made, first and last package, manifest, sums, signature): the live link
    always verifies, the next release leaves no debris and the same
    SHA256SUMS, and everything published is world-readable."""
    releases = tmp_path / "releases"
    args = ("release", f"key={gpg_keys.good}", f"keyring={gpg_keys.home}")
    env = line24_booted.env(LTSP_MOSIX_RELEASE_DIR=str(releases))
    line24_booted.doit(*args, LTSP_MOSIX_RELEASE_DIR=str(releases))
    live = releases / LINE
    sums = (live / "SHA256SUMS").read_text()
    staging = f".staging-{LINE}-*"
    steps = [staging, f"{staging}/ltsp_linux2422_kernel_*", f"{staging}/ltsp_linux2422_core_*",
             f"{staging}/apt/pool/ltsp23/*.deb", f"{staging}/apt/dists/ltsp3/InRelease",
             f"{staging}/manifest.json", f"{staging}/SHA256SUMS", f"{staging}/SHA256SUMS.asc"]
    outcomes = []
    for step in steps:      # each step watched from the start of its own run
        outcomes.append(run_doit_killed(f"line={LINE}", *args, env=env,
                                        kill_when=new_path_appears(releases, step)))
        verified = line24_booted.doit("verify-release", f"dir={live}", f"key={gpg_keys.good}",
                                      f"keys={gpg_keys.keys_dir}")
        print(f"release killed when {step} appeared: {outcomes[-1]}; live release still verifies: "
              f"{verified.stdout.strip()[-60:]}")
    assert sum(o.startswith("killed") for o in outcomes) >= 3, outcomes
    line24_booted.doit(*args, LTSP_MOSIX_RELEASE_DIR=str(releases))
    assert (live / "SHA256SUMS").read_text() == sums
    assert sorted(p.name for p in releases.iterdir()) == sorted([LINE, live.resolve().name])
    assert live.resolve().stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in live.resolve().rglob("*") if p.is_file()} == {0o644}
    assert {p.stat().st_mode & 0o777 for p in live.resolve().rglob("*") if p.is_dir()} == {0o755}


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_24_build_ends_cleanly(vanilla_24_tree, tmp_path, sig, status):
    """Ctrl-C (SIGINT to the foreground group) or SIGTERM during make: one
    line, status 128+signal, no traceback, and no make or compiler left."""
    env = override_env(vanilla_24_tree, LTSP_MOSIX_BUILD_DIR=str(tmp_path / "b"))
    tree_dir = tmp_path / "b" / LINE / "variants" / "pentium" / "tree"
    outcome, code, output = interrupt_doit(f"line={LINE}", "kernel:pentium", env=env, sig=sig,
                                           kill_when=lambda t: (tree_dir / "kernel" / "sched.o").exists())
    print(f"kernel:pentium {outcome}: exit {code}; {output.strip().splitlines()[-1]}")
    assert code == status, output[-2000:]
    assert "Traceback" not in output
    assert f"interrupted by {signal.Signals(sig).name}" in output
    assert settled(lambda: processes_working_in(tree_dir)) == []


def processes_working_in(folder: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                found.append((proc / "comm").read_text().strip())
        except OSError:
            continue
    return found


def test_ctrl_c_during_boot_test_ends_cleanly(line24_booted):
    """SIGINT to doit's process group while QEMU boots: one line, status
    130, no traceback, no QEMU left; the next run boots again."""
    line24_booted.doit("forget", "boot-test:pentium")
    logs = line24_booted.line_dir / "boot" / "pentium" / "logs"
    outcome, code, output = interrupt_doit(f"line={LINE}", "boot-test:pentium", env=line24_booted.env(),
                                           sig=signal.SIGINT, kill_when=console_shows(logs, "Linux version"))
    print(f"boot-test:pentium {outcome}: exit {code}; {output.strip().splitlines()[-1]}")
    assert code == 130 and "Traceback" not in output, output[-2000:]
    assert "interrupted by SIGINT" in output
    assert qemu_processes(f"ltsp-mosix-{LINE}-pentium-") == []
    assert "5 boots: 5 pass" in line24_booted.doit("boot-test:pentium").stdout


def test_a_disk_filling_during_make_is_infrastructure_and_keeps_doits_state(vanilla_24_tree, tmp_path):
    """A tmpfs build folder sized to what prepare and config used plus a
    few MB, so make fills it: exit 4 with one line naming the folder, no
    traceback; after space returns the rerun does not prepare again
    (doit's state survived) and builds the kernel."""
    folder = tmp_path / "small"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1g", "ltsp-mosix-full", str(folder)], check=True)
    try:
        env = override_env(vanilla_24_tree, LTSP_MOSIX_BUILD_DIR=str(folder))
        run_doit(f"line={LINE}", "config:pentium", env=env)
        used = os.statvfs(folder)
        used_bytes = (used.f_blocks - used.f_bfree) * used.f_frsize
        room = used_bytes + 3 * 1024 * 1024
        subprocess.run(["mount", "-o", f"remount,size={room}", str(folder)], check=True)
        full = run_doit(f"line={LINE}", "kernel:pentium", env=env, check=False)
        said = full.stdout + full.stderr
        print(f"{used_bytes >> 20} MB used before make, tmpfs {room >> 20} MB: exit {full.returncode}\n{said[-1500:]}")
        assert full.returncode == 4, said[-3000:]
        assert "Traceback" not in said and "bug:" not in said
        assert f"no space left on the device holding {folder}" in said
        subprocess.run(["mount", "-o", "remount,size=1g", str(folder)], check=True)
        again = run_doit(f"line={LINE}", "kernel:pentium", env=env)
        assert "copying local override" not in again.stdout + again.stderr, "prepare ran again: doit's state was lost"
        assert (folder / LINE / "variants" / "pentium" / "out" / "bzImage").is_file()
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
