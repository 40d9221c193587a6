"""Release a line: the gates first (release/gates.py), then deterministic
packages laid out for an LTSP 3 server, Debian packages in a signed apt
repository (release/repository.py), SHA256SUMS, a detached signature by the
release key and manifest.json, published by an atomic symlink swap."""
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from common import paths
from common.errors import InfraError, UserError
from common.hashing import sha256_file
from kernels import build
from lab.boot.qemu import route
from lab.boot.variant import boot_results_path
from lab.lava import lab_results
from release import package, repository
from release.gates import gate_refusals, relocated_initrd
from release.verify import MANIFEST, SIGNATURE, SUMS
from rootfs.layout import site_layout
from rootfs.pxetree import lts_path


def release_root() -> Path:
    return Path(os.environ.get("LTSP_MOSIX_RELEASE_DIR", paths.build_dir() / "releases")).resolve()


def make_packages(line, variants, staging: Path, *, initrd: Path, overlay: Path | None) -> list[dict]:
    layout = site_layout()
    epoch = build.source_date_epoch(line)
    entries = []
    version = None
    for variant in variants:
        out = build.out_dir(line, variant)
        record = json.loads((out / "build.json").read_text())
        version = version or record["kernel_release"]
        name = package.kernel_package_name(line, variant, record["kernel_release"])
        shipped = {"vmlinuz": out / "bzImage", "System.map": out / "System.map",
                   "config": out / "config", "initrd": initrd}
        files = {f"{layout.tftp_root}/{lts_path(line.name, kind, variant.name)}": path
                 for kind, path in shipped.items()}
        package.write_tar_gz(staging / name, files, epoch)
        entries.append(_manifest_entry(staging / name, line, variant, record,
                                       json.loads(boot_results_path(line, variant).read_text())))
    if overlay is not None:
        name = package.core_package_name(line, version)
        files = package.tree_entries(overlay, layout.overlay)
        server = overlay.parents[2] / "server"       # snippets the server admin merges
        if server.is_dir():
            files.update(package.tree_entries(server, layout.server_snippets))
        package.write_tar_gz(staging / name, files, epoch)
        entries.append({"package": name, "sha256": sha256_file(staging / name), "line": line.name,
                        "kind": "core", "source_date_epoch": epoch})
    return entries


def _manifest_entry(path: Path, line, variant, record: dict, boots: dict) -> dict:
    verdicts, relocations, ran_on = {}, {}, []
    for boot in boots["boots"]:
        how = (f"{boot['nic']}/{route(boot['path'], boot.get('firmware'))}"
               + ("/high-initrd" if boot.get("high_initrd") else ""))
        verdicts.setdefault(f"{boot['mem_mb']}M", {})[how] = boot["verdict"]
        ran_on.append({"boot": boot["name"], "ran_on": "qemu/local", "verdict": boot["verdict"]})
        if moved := relocated_initrd(boot):
            relocations[f"{boot['mem_mb']}M"] = moved
    for lab in lab_results(line, variant):
        ran_on.append({"boot": lab["job_name"], "ran_on": lab["ran_on"], "device_type": lab["device_type"],
                       "card": lab.get("card"), "job_id": lab.get("job_id", ""), "verdict": lab["verdict"]})
    return {
        "package": path.name, "sha256": sha256_file(path), "kind": "kernel",
        "line": line.name, "variant": variant.name, "kernel_release": record["kernel_release"],
        "sources": [{k: s[k] for k in ("name", "file", "sha256", "trust")} for s in record["sources"]],
        "patches": record["patches"], "config_sha256": record["config_sha256"],
        "bzImage_sha256": record["bzImage"]["sha256"],
        "toolchain": record["toolchain"], "source_date_epoch": record["source_date_epoch"],
        "boot_tests": verdicts,
        "initrd_relocated": relocations,
        "boots_ran_on": ran_on,
    }


def write_sums(staging: Path, names: list[str]) -> Path:
    lines = [f"{sha256_file(staging / name)}  {name}\n" for name in sorted(names)]
    (staging / SUMS).write_text("".join(lines))
    return staging / SUMS


def check_release_key(fingerprint: str, gnupghome: Path) -> None:
    """Before anything is built: the keyring named explicitly holds the
    release key's secret part."""
    import gnupg
    if not Path(gnupghome).is_dir():
        raise UserError(f"keyring {gnupghome} does not exist (keyring=GNUPGHOME of the release key)")
    gpg = gnupg.GPG(gnupghome=str(gnupghome))
    secret = {key["fingerprint"] for key in gpg.list_keys(secret=True)}
    if fingerprint not in secret:
        raise UserError(f"release key {fingerprint} has no secret key in {gnupghome}")


def sign(sums: Path, fingerprint: str, gnupghome: Path) -> Path:
    """Detached ASCII-armoured signature by the release key, from the keyring
    named explicitly (never the user's default one)."""
    import gnupg
    check_release_key(fingerprint, gnupghome)
    gpg = gnupg.GPG(gnupghome=str(gnupghome))
    with sums.open("rb") as handle:
        result = gpg.sign_file(handle, keyid=fingerprint, detach=True, binary=False,
                               output=str(sums.with_name(SIGNATURE)), extra_args=["--digest-algo", "SHA256"])
    if not result or result.fingerprint != fingerprint:
        raise InfraError(f"gpg could not sign {sums} with {fingerprint}: {result.stderr.strip()[-300:]}")
    return sums.with_name(SIGNATURE)


def publish(staging: Path, line, key: str) -> Path:
    """<root>/<line> is a symlink to a complete release directory, swapped
    atomically: a reader sees the old release or the new one, never half.
    The directory is named by its SHA256SUMS and the signing key, so the
    same content signed by the same key is the same directory: republishing
    it only re-points the link; signed by another key (a rotated release
    key) it is a new directory, and the link moves to it.  Nothing the link
    points at is removed before the swap; other releases of the line are
    removed after it."""
    root = release_root()
    digest = hashlib.sha256((staging / SUMS).read_bytes() + f"signed-by {key}".encode()).hexdigest()[:16]
    final = root / f".{line.name}-{digest}"
    link = root / line.name
    if link.exists() and not link.is_symlink():
        raise UserError(f"{link} exists and is not a release link: move it away")
    if not final.is_dir():
        _make_readable_and_durable(staging)
        os.replace(staging, final)
        _fsync_dir(root)
    tmp_link = root / f".{line.name}.link-{os.getpid()}"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(final.name)
    os.replace(tmp_link, link)
    _fsync_dir(root)
    mine = re.compile(rf"^\.{re.escape(line.name)}-[0-9a-f]{{16}}$")
    for other in root.iterdir():
        if other != final and mine.match(other.name) and not other.is_symlink():
            shutil.rmtree(other)
    return link


def _make_readable_and_durable(tree: Path) -> None:
    """Whatever the umask or mkdtemp's 0700: folders 0755, files 0644, so a
    web server or rsync running as another user can serve the release; and
    every byte on disk before the rename makes it live."""
    tree.chmod(0o755)
    for path in sorted(tree.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(tree)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_debris(root: Path, line) -> list[str]:
    """What interrupted releases of the line left in the release folder:
    staging folders of processes that are gone, temporary links."""
    removed = []
    for path in root.glob(f".staging-{line.name}-*"):
        pid = path.name[len(f".staging-{line.name}-"):].split("-")[0]
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    for path in root.glob(f".{line.name}.link-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def release(line, variants, *, key: str, gnupghome: Path, initrd: Path, overlay: Path | None,
            hardware: bool = False) -> Path:
    refusals = gate_refusals(line, variants, initrd=initrd, hardware=hardware)
    if refusals:
        raise UserError(f"release of {line.name} refused:\n" + "\n".join(f"  - {r}" for r in refusals))
    check_release_key(key, gnupghome)
    root = release_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"release folder {root} cannot be made: {error.strerror}") from None
    if removed := remove_debris(root, line):
        print(f"[release {line.name}] removed what interrupted releases left: {', '.join(removed)}")
    try:      # the first write: a folder that refuses it (mode, read-only mount) stops the release here
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{line.name}-{os.getpid()}-", dir=root))
    except OSError as error:
        raise UserError(f"release folder {root} is not writable ({error.strerror}): "
                        f"nothing was built or published") from None
    try:
        entries = make_packages(line, variants, staging, initrd=initrd, overlay=overlay)
        apt = repository.make_repository(line, variants, staging, initrd=initrd, overlay=overlay, key=key)
        live = root / line.name
        repository.check_against_live(apt, live.resolve() if live.is_symlink() else None, line)
        repository.sign_repository(staging, apt, key, gnupghome)
        manifest = {"line": line.name, "description": line.description,
                    "source_date_epoch": build.source_date_epoch(line),
                    "packages": sorted(entries, key=lambda e: e["package"]), "apt": apt}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        sums = write_sums(staging, [e["package"] for e in entries] + [MANIFEST])
        sign(sums, key, gnupghome)
        return publish(staging, line, key)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
