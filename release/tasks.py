"""Task bodies of the release stage (doit release, verify-release): one
function each, so dodo.py stays a task graph only."""
from pathlib import Path

from common import paths
from common.errors import UserError
from common.paths import configs_dir
from initrd.build import initrd_path
from release import kcidb, publish
from release.verify import verify_release as verify_directory
from rootfs import overlay


def release_line(line, variant_names: str, key: str, keyring: str, hardware: str = "") -> None:
    if not key or not keyring:
        raise UserError("release needs the signing key: doit release key=FINGERPRINT keyring=GNUPGHOME "
                        "(or LTSP_MOSIX_RELEASE_KEY / LTSP_MOSIX_RELEASE_KEYRING); the default keyring is never used")
    core = overlay.build_for_release(line, paths.line_dir(line.name) / "overlay") if line.release_overlay else None
    link = publish.release(line, line.selected(variant_names), key=key.replace(" ", "").upper(),
                           gnupghome=Path(keyring), initrd=initrd_path(line), overlay=core,
                           hardware=_hardware_required(hardware))
    published = link.resolve()
    for path in sorted(published.rglob("*")):
        if path.is_file() and (path.parent == published or path.suffix == ".deb"):
            print(f"  {path.stat().st_size:>10}  {path.relative_to(published)}")
    print(f"[release {line.name}] published {link} -> {link.resolve().name}", flush=True)


def _hardware_required(value: str) -> bool:
    """hardware=required: NIC-specific variants need a real node's pass."""
    if value in ("", "optional"):
        return False
    if value == "required":
        return True
    raise UserError(f"hardware={value!r}: expected hardware=required or hardware=optional")


def verify_release(directory: str, key: str, keys: str) -> None:
    if not directory or not key:
        raise UserError("verify-release needs dir=RELEASE_DIR key=FINGERPRINT [keys=DIR with <FPR>.asc]")
    keys_path = Path(keys) if keys else configs_dir() / "keys"
    print(verify_directory(Path(directory), key.replace(" ", "").upper(), keys_path), flush=True)


def kcidb_line(line) -> None:
    """doit kcidb: the line's builds and boots as KCIDB JSON."""
    kcidb.write_kcidb(line, line.variants())
