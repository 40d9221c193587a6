"""A release's Debian packages and apt repository: for each layout that
configs/site.toml [packages] names, one package per kernel variant and one
core package, indexed as the suite named after the layout (release/debs.py
builds, release/aptrepo.py indexes and signs).

The manifest's "apt" table records, for every package, its file, sha256,
version and the sha256 of every file it installs, so a site can check what
apt put on its disk and verify-release can check that each kernel package
holds the kernel the boot test booted."""
import json
from pathlib import Path

from common.errors import UserError
from common.paths import configs_dir
from common.hashing import sha256_file
from kernels import build, matrix
from lab.boot.qemu import kernel_append
from release import aptrepo, debs
from rootfs.layout import PackageLayout, package_settings
from rootfs.ltsp23 import render_ipxe_dropin, script_name

APT_DIR = "apt"
KERNEL_FILES = ("kernel", "initrd", "system_map", "config")


def make_repository(line, variants, staging: Path, *, initrd: Path, overlay: Path | None,
                    key: str) -> dict:
    """Builds every package into staging/apt/pool/<suite>/ and the indexes;
    returns the manifest's "apt" table.  Signing is sign_repository's."""
    settings = package_settings()
    epoch = build.source_date_epoch(line)
    apt_dir = staging / APT_DIR
    records = {v.name: json.loads((build.out_dir(line, v) / "build.json").read_text()) for v in variants}
    release = records[variants[0].name]["kernel_release"]
    version = debs.package_version(release, line.deb_revision, line.name)
    _check_names(line, variants)
    suites = {}
    for layout in settings.layouts:
        pool = apt_dir / "pool" / layout.name
        packages = []
        specs = [_kernel_spec(line, v, layout, records[v.name], initrd) for v in variants]
        if overlay is not None:
            specs.append(_core_spec(line, layout, version, overlay))
        print(f"[release {line.name}] {layout.name}: building {len(specs)} Debian packages", flush=True)
        for spec in specs:
            deb = debs.build_deb(spec, pool, epoch=epoch, settings=settings)
            entry = {"package": spec.package, "version": spec.version, "kind": spec.kind,
                     "file": str(deb.relative_to(staging)), "sha256": sha256_file(deb),
                     "size": deb.stat().st_size, "files": debs.contents(deb)}
            if spec.kind == "kernel":
                entry["variant"] = next(v.name for v in variants
                                        if debs.package_name(line.name, v.name) == spec.package)
                entry["kernel_path"] = "/" + layout.path("kernel", **_values(line, entry["variant"], spec.package))
                entry["bzImage_sha256"] = records[entry["variant"]]["bzImage"]["sha256"]
            packages.append(entry)
        debs.check_disjoint({p["package"]: p["files"] for p in packages}, layout.name)
        aptrepo.write_indexes(apt_dir, layout.name, component=settings.component,
                              architectures=settings.architectures, origin="ltsp-mosix", label=line.name,
                              description=f"ltsp-mosix {line.name} for {layout.description}", epoch=epoch)
        suites[layout.name] = {"description": layout.description, "packages": packages}
    return {"key": {"file": f"{APT_DIR}/{aptrepo.KEY_FILE}", "fingerprint": key},
            "component": settings.component, "architectures": list(settings.architectures), "suites": suites}


def sign_repository(staging: Path, apt: dict, key: str, gnupghome: Path) -> None:
    apt_dir = staging / APT_DIR
    for suite in apt["suites"]:
        aptrepo.sign_release(apt_dir / "dists" / suite / "Release", key, gnupghome)
    aptrepo.export_key(apt_dir, key, gnupghome)
    apt["key"]["sha256"] = sha256_file(staging / apt["key"]["file"])


def check_against_live(apt: dict, live: Path | None, line) -> None:
    """Refuses versions apt would order wrongly against the live release: a
    package older than the live one (apt would never upgrade to it), or a
    changed package under a version already published (apt would keep the
    old bytes, or refuse the download as a hash mismatch)."""
    if live is None or not (live / "manifest.json").is_file():
        return
    try:
        published = json.loads((live / "manifest.json").read_text()).get("apt", {}).get("suites", {})
    except (OSError, ValueError, AttributeError):
        return
    where = f"deb_revision in {configs_dir() / 'lines' / (line.name + '.toml')}"
    for suite, table in apt["suites"].items():
        old = {p["package"]: p for p in published.get(suite, {}).get("packages", []) if isinstance(p, dict)}
        for package in table["packages"]:
            before = old.get(package["package"])
            if before is None:
                continue
            if debs.newer(before["version"], package["version"]):
                raise UserError(f"release of {line.name} refused: {package['package']} {package['version']} "
                                f"is older than the published {before['version']} ({suite}); apt would "
                                f"never upgrade to it: raise {where}")
            if before["version"] == package["version"] and before["sha256"] != package["sha256"]:
                raise UserError(f"release of {line.name} refused: {package['package']} {package['version']} "
                                f"is published already with other contents ({suite}); a site's apt would "
                                f"keep the old package or refuse the new one: raise {where}")


def _values(line, variant: str, package: str) -> dict:
    return {"line": line.name, "variant": variant, "image": package, "script": script_name(package)}


def _check_names(line, variants) -> None:
    seen: dict[str, str] = {}
    for name in [v.name for v in variants] + ["core"]:
        package = debs.package_name(line.name, name)
        if package in seen:
            raise UserError(f"line {line.name}: {seen[package]!r} and {name!r} give the same package name "
                            f"{package}")
        seen[package] = name


def _kernel_spec(line, variant, layout: PackageLayout, record: dict, initrd: Path) -> debs.DebSpec:
    out = build.out_dir(line, variant)
    package = debs.package_name(line.name, variant.name)
    version = debs.package_version(record["kernel_release"], line.deb_revision, line.name)
    values = _values(line, variant.name, package)
    sources = {"kernel": out / "bzImage", "initrd": initrd, "system_map": out / "System.map", "config": out / "config"}
    files = {layout.path(kind, **values): sources[kind] for kind in KERNEL_FILES}
    cpu = matrix.cpu_spec(variant.cpu).package_name.replace("_", " ")
    nic = "" if variant.name == variant.cpu else f", {variant.nic} NIC"
    spec = debs.DebSpec(
        package=package, version=version, layout=layout, kind="kernel", files=files,
        summary=f"Linux {record['kernel_release']} netboot kernel for {cpu} nodes{nic}",
        details=[line.description,
                 f"Variant {variant.name} (CPU {variant.cpu}, NIC profile {variant.nic}), built by ltsp-mosix "
                 f"and boot-tested under QEMU over PXE before release; bzImage sha256 "
                 f"{record['bzImage']['sha256']}.",
                 f"Laid out for {layout.description}: the kernel is /{layout.path('kernel', **values)}."],
        changes=[f"Release {version} of {line.name}, variant {variant.name}: bzImage sha256 "
                 f"{record['bzImage']['sha256']}, config sha256 {record['config_sha256']}, "
                 + "sources " + ", ".join(f"{s['file']} (sha256 {s['sha256'][:16]}..., {s['trust']})"
                                          for s in record["sources"])
                 + f", {len(record['patches'])} patches."])
    if layout.ipxe_dropin:
        text = render_ipxe_dropin(package=package, version=version, image=package,
                                  title=f"ltsp-mosix {line.name} {variant.name} ({version})",
                                  append=kernel_append(line))
        spec.texts[layout.path("ipxe_dropin", **values)] = (text.encode(), 0o644)
    return spec


def _core_spec(line, layout: PackageLayout, version: str, overlay: Path) -> debs.DebSpec:
    package = debs.package_name(line.name, "core")
    values = _values(line, "", package)
    trees = {layout.path("node_root", **values): overlay}
    server = overlay.parents[2] / "server"          # rootfs.overlay: <out>/server beside the node root
    if server.is_dir():
        trees[layout.path("server_snippets", **values)] = server
    return debs.DebSpec(
        package=package, version=version, layout=layout, kind="core", section="admin", trees=trees,
        summary=f"site files of the ltsp-mosix {line.name} cluster nodes",
        details=[line.description,
                 "The node root overlay (cluster map, lts.conf, the rc script that starts process "
                 "migration, the /mfs mount point) and the snippets the server's administrator merges.",
                 f"Laid out for {layout.description}: the node root files are below "
                 f"/{layout.path('node_root', **values)}."],
        changes=[f"Release {version} of {line.name}: the site files of configs/cluster.toml."])
