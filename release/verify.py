"""What a site runs on a downloaded release: the signature over SHA256SUMS
by the release key, every file against its sum, the manifest against the
sums, and no file the sums do not cover; then the apt repository: each
suite's InRelease and Release.gpg by the release key, the indexes against
Release, the packages against the indexes and the manifest, each kernel
package's kernel against the bzImage the boot test booted, and no file the
repository does not account for.  Every file it reads must be a regular
file inside the release folder: a symlink to identical bytes elsewhere
would verify, yet what a site installs would come from outside what was
signed."""
import json
import os
import stat
from pathlib import Path

from debian.deb822 import Deb822

from common.errors import VerificationError
from common.hashing import sha256_file
from kernels.signature import verify_clearsigned, verify_signature
from kernels.sources import Signature
from release import debs

SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.asc"
MANIFEST = "manifest.json"


def verify_release(directory: Path, fingerprint: str, keys_dir: Path) -> str:
    directory = directory.resolve()          # <root>/<line> is a link to the folder: that one is fine
    for needed in (SUMS, SIGNATURE, MANIFEST):
        _regular_file(directory, directory / needed, f"{directory}: {needed} is missing")
    signature = Signature(url=str(directory / SIGNATURE), covers="file", keys=(fingerprint,))
    summary = verify_signature(signature, directory / SUMS, directory / SIGNATURE, keys_dir)
    sums = _read_sums(directory / SUMS)
    for name, expected in sums.items():
        path = _regular_file(directory, directory / name, f"{directory}: {name} is listed in {SUMS} but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise VerificationError(f"{path}: sha256 {actual} does not match {SUMS} ({expected})")
    manifest = _check_manifest(directory, sums)
    listed = set(sums) | {SUMS, SIGNATURE}
    apt_summary = ""
    if "apt" in manifest:
        listed.add(APT_DIR)
        apt_summary = "; " + verify_repository(directory, manifest["apt"], fingerprint, keys_dir)
    extra = sorted(p.name for p in directory.iterdir() if p.name not in listed)
    if extra:
        raise VerificationError(f"{directory}: files not covered by {SUMS}: {', '.join(extra)}")
    return f"{directory}: {len(sums)} files verified; {summary}{apt_summary}"


_NOT_REGULAR = ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _regular_file(directory: Path, path: Path, missing: str) -> Path:
    """`path` itself (lstat: a link is not followed) is a regular file and
    resolves inside the resolved release folder `directory`.  A link would
    have the sums checked on bytes outside the signed folder; a FIFO or
    device would hang the reader or feed it anything; a `..` in a listed
    name, or a linked folder on the way, would leave the folder."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise VerificationError(missing) from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _NOT_REGULAR if test(mode)), "not a file")
        raise VerificationError(f"{path}: {kind}, not a regular file")
    if not path.resolve().is_relative_to(directory):
        raise VerificationError(f"{path}: resolves to {path.resolve()}, outside the release folder {directory}")
    return path


def _read_sums(path: Path) -> dict[str, str]:
    sums = {}
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        digest, _, name = text.partition("  ")
        if len(digest) != 64 or not name or "/" in name:
            raise VerificationError(f"{path}:{number}: not a sha256sum line: {text!r}")
        sums[name] = digest
    return sums


def _check_manifest(directory: Path, sums: dict[str, str]) -> dict:
    if MANIFEST not in sums:
        raise VerificationError(f"{directory}: {MANIFEST} is not covered by {SUMS}")
    manifest = _load_manifest(directory / MANIFEST)
    packaged = {entry["package"]: entry["sha256"] for entry in manifest["packages"]}
    for name, digest in packaged.items():
        if sums.get(name) != digest:
            raise VerificationError(f"{directory}: {MANIFEST} and {SUMS} disagree about {name}")
    unlisted = sorted(set(sums) - set(packaged) - {MANIFEST})
    if unlisted:
        raise VerificationError(f"{directory}: packages missing from {MANIFEST}: {', '.join(unlisted)}")
    return manifest


def _load_manifest(path: Path) -> dict:
    """manifest.json parsed, and every field verify-release reads checked
    for presence and type first: a malformed manifest is a bad release
    (exit 3) named by its field, not a KeyError taken for a bug (exit 5)."""
    try:
        manifest = json.loads(path.read_text())
    except ValueError as error:              # JSONDecodeError, UnicodeDecodeError
        raise VerificationError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise VerificationError(f"{path}: not a JSON object")
    for number, entry in enumerate(_field(path, manifest, "packages", list)):
        for name in ("package", "sha256"):
            _field(path, entry, name, str, f"packages[{number}]")
    if "apt" in manifest:
        apt = _field(path, manifest, "apt", dict)
        for name in ("file", "sha256"):
            _field(path, _field(path, apt, "key", dict, "apt"), name, str, "apt.key")
        for suite, table in _field(path, apt, "suites", dict, "apt").items():
            where = f"apt.suites.{suite}"
            for number, entry in enumerate(_field(path, table, "packages", list, where)):
                at = f"{where}.packages[{number}]"
                for name, kind in (("file", str), ("sha256", str), ("size", int), ("kind", str)):
                    _field(path, entry, name, kind, at)
                if entry["kind"] == "kernel":
                    for name in ("kernel_path", "bzImage_sha256"):
                        _field(path, entry, name, str, at)
    return manifest


def _field(path: Path, mapping, key: str, kind: type, where: str = ""):
    """mapping[key] when mapping is an object holding a `kind` there."""
    if not isinstance(mapping, dict):
        raise VerificationError(f"{path}: {where or 'the top level'} is not a JSON object")
    name = f"{where}.{key}" if where else key
    if key not in mapping:
        raise VerificationError(f"{path}: {name!r} is missing")
    value = mapping[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise VerificationError(f"{path}: {name!r} is not a JSON {_JSON_TYPES[kind]}")
    return value


_JSON_TYPES = {str: "string", int: "integer", list: "array", dict: "object"}


APT_DIR = "apt"


def verify_repository(directory: Path, apt: dict, fingerprint: str, keys_dir: Path) -> str:
    """The apt repository of a release, as apt would check it and more."""
    root = directory / APT_DIR
    if not root.is_dir() or root.is_symlink():
        raise VerificationError(f"{root}: the manifest lists an apt repository but the folder is missing")
    accounted = {apt["key"]["file"]}
    key_file = directory / apt["key"]["file"]
    _regular_file(directory, key_file, f"{key_file}: the exported release key is missing")
    if sha256_file(key_file) != apt["key"]["sha256"]:
        raise VerificationError(f"{key_file}: the exported release key is not the one the manifest names")
    debs = 0
    for suite, table in sorted(apt["suites"].items()):
        dists = root / "dists" / suite
        release_path = dists / "Release"
        for name in ("Release", "InRelease", "Release.gpg"):
            _regular_file(directory, dists / name, f"{dists / name} is missing")
            accounted.add(f"{APT_DIR}/dists/{suite}/{name}")
        where = f"{dists / 'InRelease'}"
        signed = verify_clearsigned((dists / "InRelease").read_bytes(), (fingerprint,), keys_dir, where=where)
        release_text = release_path.read_text()
        if signed.text.strip("\n") != release_text.strip("\n"):
            raise VerificationError(f"{where}: the signed text is not {release_path}")
        detached = Signature(url=str(dists / "Release.gpg"), covers="file", keys=(fingerprint,))
        verify_signature(detached, release_path, dists / "Release.gpg", keys_dir)
        release = Deb822(release_text)
        indexed = {}
        for line in release.get("SHA256", "").strip().splitlines():
            digest, size, name = line.split()
            path = _regular_file(directory, dists / name, f"{release_path}: lists {name}, which is missing")
            if sha256_file(path) != digest or path.stat().st_size != int(size):
                raise VerificationError(f"{path}: sha256 or size does not match {release_path}")
            accounted.add(f"{APT_DIR}/dists/{suite}/{name}")
            indexed[name] = path
        packages = [p for name, p in indexed.items() if name.endswith("/Packages")]
        if not packages:
            raise VerificationError(f"{release_path}: lists no Packages index")
        expected = {p["file"]: p for p in table["packages"]}
        for index in packages:
            stanzas = list(Deb822.iter_paragraphs(index.read_text()))
            files = {f"{APT_DIR}/{s['Filename']}": s for s in stanzas}
            if set(files) != set(expected):
                raise VerificationError(f"{index}: lists {sorted(set(files) ^ set(expected))} unlike the manifest")
            for name, stanza in files.items():
                entry = expected[name]
                if stanza["SHA256"] != entry["sha256"] or int(stanza["Size"]) != entry["size"]:
                    raise VerificationError(f"{index}: {name} has another sha256 or size than the manifest")
        for name, entry in expected.items():
            deb = _regular_file(directory, directory / name, f"{directory / name}: listed in {MANIFEST} but missing")
            if sha256_file(deb) != entry["sha256"]:
                raise VerificationError(f"{deb}: sha256 is not the manifest's {entry['sha256']}")
            if entry["kind"] == "kernel":
                _check_kernel_in_deb(deb, entry)
            accounted.add(name)
            debs += 1
    extra = sorted(str(p.relative_to(directory)) for p in root.rglob("*")
                   if (p.is_symlink() or not p.is_dir()) and str(p.relative_to(directory)) not in accounted)
    if extra:
        raise VerificationError(f"{root}: files the repository does not account for: {', '.join(extra)}")
    return f"apt repository: {len(apt['suites'])} suites, {debs} packages verified, each kernel the one boot-tested"


def _check_kernel_in_deb(deb: Path, entry: dict) -> None:
    """The package's kernel, read out of its data archive, is the bzImage
    the boot test booted (build.json, the gate's record)."""
    found = debs.contents(deb).get(entry["kernel_path"])
    if found is None:
        raise VerificationError(f"{deb}: holds no {entry['kernel_path']}")
    if found != entry["bzImage_sha256"]:
        raise VerificationError(f"{deb}: {entry['kernel_path']} has sha256 {found}, not the boot-tested "
                                f"bzImage {entry['bzImage_sha256']}")
