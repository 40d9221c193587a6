"""Release a line: gates first (verified sources, passed boot tests, clean
check, a known and clean patch series), then deterministic packages,
SHA256SUMS, a detached signature by the release key and manifest.json,
published by an atomic rename.  verify_release() is what a site runs."""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from kernels import build, invariants, kconfig, package, paths, tree
from kernels.errors import InfraError, UserError, VerificationError
from kernels.sources import Signature

SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.asc"
MANIFEST = "manifest.json"


def boot_results_path(line, variant) -> Path:
    return paths.line_dir(line.name) / "boot" / variant.name / "results.json"


def release_root() -> Path:
    return Path(os.environ.get("LTSP_MOSIX_RELEASE_DIR", paths.build_dir() / "releases")).resolve()


# -- gates ---------------------------------------------------------------------

def gate_refusals(line, variants) -> list[str]:
    """Every reason this release must not ship, all at once."""
    if line.unsupported:
        return [f"line {line.name}: {line.unsupported}"]
    refusals = _series_refusals(line)
    for variant in variants:
        refusals += _variant_refusals(line, variant)
    configs = {v.name: kconfig.final_config_path(line, v) for v in line.variants()}
    try:
        invariants.check_line(line.name, line.invariants, configs)
    except UserError as error:
        refusals.append(f"doit check fails: {error.args[0]}")
    return refusals


def _series_refusals(line) -> list[str]:
    try:
        patches = tree.series(line)
    except UserError as error:
        return [f"unknown patch series: {error.args[0]}"]
    if not patches:
        return []
    folder = line.series_file.parent
    status = subprocess.run(["git", "status", "--porcelain", "--", str(folder)], cwd=folder,
                            capture_output=True, text=True)
    if status.returncode != 0:
        return [f"patch series {folder} is not in a git checkout: its state is unknown"]
    if status.stdout.strip():
        return [f"patch series {folder} has uncommitted changes:\n{status.stdout.rstrip()}"]
    return []


def _variant_refusals(line, variant) -> list[str]:
    record_path = build.out_dir(line, variant) / "build.json"
    if not record_path.is_file():
        return [f"{variant.name}: not built ({record_path} missing)"]
    record = json.loads(record_path.read_text())
    refusals = []
    if record["source"] != "verified":
        refusals.append(f"{variant.name}: built from an {tree.UNVERIFIED} ({record.get('override')})")
    current = [{"name": p.name, "sha256": tree.sha256_file(p)} for p in _safe_series(line)]
    if record["patches"] != current:
        refusals.append(f"{variant.name}: built with another patch series than patches/{line.patches}")
    refusals += _boot_refusals(line, variant, record)
    return refusals


def _safe_series(line) -> list[Path]:
    try:
        return tree.series(line)
    except UserError:
        return []


def _boot_refusals(line, variant, record: dict) -> list[str]:
    results_path = boot_results_path(line, variant)
    if not results_path.is_file():
        return [f"{variant.name}: no boot test (run doit boot-test:{variant.name})"]
    results = json.loads(results_path.read_text())
    if results["kernel_sha256"] != record["bzImage"]["sha256"]:
        return [f"{variant.name}: the boot test ran on another kernel (rebuilt since; boot-test again)"]
    failed = [f"{r['name']}: {r['verdict']}" for r in results["boots"] if r["verdict"] != "pass"]
    if not results["boots"]:
        return [f"{variant.name}: boot test recorded no boots"]
    if failed:
        return [f"{variant.name}: boot test failed: {', '.join(failed)}"]
    return _relocation_refusals(line, variant, results["boots"])


def _relocation_refusals(line, variant, boots: list[dict]) -> list[str]:
    """Lines with high_initrd_at_mb ship only when a boot at that size with
    the initrd forced high passed and showed it relocated below low memory."""
    if line.high_initrd_at_mb is None:
        return []
    if any(relocated_initrd(boot) for boot in boots if boot["mem_mb"] == line.high_initrd_at_mb):
        return []
    return [f"{variant.name}: no passing boot at {line.high_initrd_at_mb}M with the initrd forced "
            f"above low memory and relocated (boot-test:{variant.name} again)"]


def relocated_initrd(boot: dict) -> str | None:
    """"0x... -> 0x..." for a passed forced-high boot that moved its initrd
    below low memory (as the boot judged it), else None."""
    if boot.get("high_initrd") and boot["verdict"] == "pass":
        return boot.get("initrd_relocated")
    return None


# -- packages --------------------------------------------------------------------

def make_packages(line, variants, staging: Path, *, initrd: Path, overlay: Path | None) -> list[dict]:
    layout = package.release_config()["layout"]
    epoch = build.source_date_epoch(line)
    entries = []
    version = None
    for variant in variants:
        out = build.out_dir(line, variant)
        record = json.loads((out / "build.json").read_text())
        version = version or record["kernel_release"]
        name = package.kernel_package_name(line, variant, record["kernel_release"])
        prefix = f"{layout['kernels']}/{line.name}"
        files = {f"{prefix}/vmlinuz-{variant.name}": out / "bzImage",
                 f"{prefix}/System.map-{variant.name}": out / "System.map",
                 f"{prefix}/config-{variant.name}": out / "config",
                 f"{prefix}/initrd-{variant.name}.img": initrd}
        package.write_tar_gz(staging / name, files, epoch)
        entries.append(_manifest_entry(staging / name, line, variant, record,
                                       json.loads(boot_results_path(line, variant).read_text())))
    if overlay is not None:
        name = package.core_package_name(line, version)
        files = package.tree_entries(overlay, layout["overlay"])
        server = overlay.parents[2] / "server"       # snippets the server admin merges
        if server.is_dir():
            files.update(package.tree_entries(server, layout["server_snippets"]))
        package.write_tar_gz(staging / name, files, epoch)
        entries.append({"package": name, "sha256": tree.sha256_file(staging / name), "line": line.name,
                        "kind": "core", "source_date_epoch": epoch})
    return entries


def _manifest_entry(path: Path, line, variant, record: dict, boots: dict) -> dict:
    verdicts, relocations = {}, {}
    for boot in boots["boots"]:
        how = f"{boot['nic']}/{boot['path']}" + ("/high-initrd" if boot.get("high_initrd") else "")
        verdicts.setdefault(f"{boot['mem_mb']}M", {})[how] = boot["verdict"]
        if moved := relocated_initrd(boot):
            relocations[f"{boot['mem_mb']}M"] = moved
    return {
        "package": path.name, "sha256": tree.sha256_file(path), "kind": "kernel",
        "line": line.name, "variant": variant.name, "kernel_release": record["kernel_release"],
        "sources": [{k: s[k] for k in ("name", "file", "sha256", "trust")} for s in record["sources"]],
        "patches": record["patches"], "config_sha256": record["config_sha256"],
        "bzImage_sha256": record["bzImage"]["sha256"],
        "toolchain": record["toolchain"], "source_date_epoch": record["source_date_epoch"],
        "boot_tests": verdicts,
        "initrd_relocated": relocations,
    }


def write_sums(staging: Path, names: list[str]) -> Path:
    lines = [f"{tree.sha256_file(staging / name)}  {name}\n" for name in sorted(names)]
    (staging / SUMS).write_text("".join(lines))
    return staging / SUMS


def sign(sums: Path, fingerprint: str, gnupghome: Path) -> Path:
    """Detached ASCII-armoured signature by the release key, from the keyring
    named explicitly (never the user's default one)."""
    import gnupg
    gpg = gnupg.GPG(gnupghome=str(gnupghome))
    secret = {key["fingerprint"] for key in gpg.list_keys(secret=True)}
    if fingerprint not in secret:
        raise UserError(f"release key {fingerprint} has no secret key in {gnupghome}")
    with sums.open("rb") as handle:
        result = gpg.sign_file(handle, keyid=fingerprint, detach=True, binary=False,
                               output=str(sums.with_name(SIGNATURE)), extra_args=["--digest-algo", "SHA256"])
    if not result or result.fingerprint != fingerprint:
        raise InfraError(f"gpg could not sign {sums} with {fingerprint}: {result.stderr.strip()[-300:]}")
    return sums.with_name(SIGNATURE)


def publish(staging: Path, line) -> Path:
    """<root>/<line> is a symlink to a complete release directory, swapped
    atomically: a reader sees the old release or the new one, never half."""
    root = release_root()
    digest = hashlib.sha256((staging / SUMS).read_bytes()).hexdigest()[:16]
    final = root / f".{line.name}-{digest}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    link = root / line.name
    if link.exists() and not link.is_symlink():
        raise UserError(f"{link} exists and is not a release link: move it away")
    old = link.resolve() if link.is_symlink() else None
    tmp_link = root / f".{line.name}.link-{os.getpid()}"
    tmp_link.symlink_to(final.name)
    os.replace(tmp_link, link)
    if old and old != final and old.exists():
        shutil.rmtree(old)
    return link


def release(line, variants, *, key: str, gnupghome: Path, initrd: Path, overlay: Path | None) -> Path:
    refusals = gate_refusals(line, variants)
    if refusals:
        raise UserError(f"release of {line.name} refused:\n" + "\n".join(f"  - {r}" for r in refusals))
    root = release_root()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{line.name}-", dir=root))
    try:
        entries = make_packages(line, variants, staging, initrd=initrd, overlay=overlay)
        manifest = {"line": line.name, "description": line.description,
                    "source_date_epoch": build.source_date_epoch(line),
                    "packages": sorted(entries, key=lambda e: e["package"])}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        sums = write_sums(staging, [e["package"] for e in entries] + [MANIFEST])
        sign(sums, key, gnupghome)
        return publish(staging, line)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# -- verification (a site's side) ---------------------------------------------------

def verify_release(directory: Path, fingerprint: str, keys_dir: Path) -> str:
    from kernels.signature import verify_signature
    directory = directory.resolve()
    for needed in (SUMS, SIGNATURE, MANIFEST):
        if not (directory / needed).is_file():
            raise VerificationError(f"{directory}: {needed} is missing")
    signature = Signature(url=str(directory / SIGNATURE), covers="file", keys=(fingerprint,))
    summary = verify_signature(signature, directory / SUMS, directory / SIGNATURE, keys_dir)
    sums = _read_sums(directory / SUMS)
    for name, expected in sums.items():
        path = directory / name
        if not path.is_file():
            raise VerificationError(f"{directory}: {name} is listed in {SUMS} but missing")
        actual = tree.sha256_file(path)
        if actual != expected:
            raise VerificationError(f"{path}: sha256 {actual} does not match {SUMS} ({expected})")
    _check_manifest(directory, sums)
    listed = set(sums) | {SUMS, SIGNATURE}
    extra = sorted(p.name for p in directory.iterdir() if p.name not in listed)
    if extra:
        raise VerificationError(f"{directory}: files not covered by {SUMS}: {', '.join(extra)}")
    return f"{directory}: {len(sums)} files verified; {summary}"


def _read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        digest, _, name = text.partition("  ")
        if len(digest) != 64 or not name or "/" in name:
            raise VerificationError(f"{path}:{number}: not a sha256sum line: {text!r}")
        sums[name] = digest
    return sums


def _check_manifest(directory: Path, sums: dict[str, str]) -> None:
    if MANIFEST not in sums:
        raise VerificationError(f"{directory}: {MANIFEST} is not covered by {SUMS}")
    manifest = json.loads((directory / MANIFEST).read_text())
    packaged = {entry["package"]: entry["sha256"] for entry in manifest["packages"]}
    for name, digest in packaged.items():
        if sums.get(name) != digest:
            raise VerificationError(f"{directory}: {MANIFEST} and {SUMS} disagree about {name}")
    unlisted = sorted(set(sums) - set(packaged) - {MANIFEST})
    if unlisted:
        raise VerificationError(f"{directory}: packages missing from {MANIFEST}: {', '.join(unlisted)}")
