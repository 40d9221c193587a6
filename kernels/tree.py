"""One prepared tree per line: verified sources unpacked (or a local
override copied), the upstream patch (Mosix/openMosix) and then the
project's series applied.  Variants reuse it as their build system says
(kernels/buildsystem.py): O= builds for Kbuild, cheap hard-link copies for
CML1 (2.4 has no O=)."""
import bz2
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from common import paths
from common.errors import UserError
from common.hashing import sha256_file
from common.procs import kill_group
from kernels.runner import run_logged
from kernels.unpack import safe_extract

UNVERIFIED = "unverified source"


@dataclass(frozen=True)
class Provenance:
    """Where a prepared tree came from: goes into every build record."""
    sources: tuple[dict, ...]       # name, file, sha256, trust
    patches: tuple[dict, ...]       # name, sha256
    override: str | None = None     # local source dir, if any

    @property
    def verified(self) -> bool:
        return self.override is None

    def as_dict(self) -> dict:
        return asdict(self)


def override_var(line_name: str) -> str:
    return "LTSP_MOSIX_OVERRIDE_" + re.sub(r"[^A-Z0-9]", "_", line_name.upper())


def override_dir(line) -> Path | None:
    """Like Buildroot's <PKG>_OVERRIDE_SRCDIR: build from an unpacked tree."""
    value = os.environ.get(override_var(line.name))
    if not value:
        return None
    tree = Path(value).resolve()
    if not (tree / "Makefile").is_file():
        raise UserError(f"{override_var(line.name)}={value}: not a kernel tree (no Makefile)")
    return tree


def src_dir(line) -> Path:
    return paths.line_dir(line.name) / "src"


def stamp_path(line) -> Path:
    return paths.line_dir(line.name) / "prepared.json"


def series(line) -> list[Path]:
    """The project's patches in order; a listed patch that is missing, or a
    patch file that the series does not list, is an error (a release must
    never ship an unknown series)."""
    if line.series_file is None:
        return []
    if not line.series_file.is_file():
        raise UserError(f"line {line.name}: series file {line.series_file} is missing")
    folder = line.series_file.parent
    names = [entry.split("#")[0].strip() for entry in line.series_file.read_text().splitlines()]
    names = [name for name in names if name]
    patches = []
    for name in names:
        patch = folder / name
        if not patch.is_file():
            raise UserError(f"{line.series_file}: lists {name}, which does not exist")
        patches.append(patch)
    unlisted = sorted(p.name for p in folder.glob("*.patch") if p.name not in names)
    if unlisted:
        raise UserError(f"{folder}: patches not in the series file: {', '.join(unlisted)}")
    return patches


def prepare(line, *, fetched: dict | None = None, log: Path | None = None, shared: bool = False) -> Provenance:
    """Build src/ for the line and write prepared.json.  `fetched` maps a
    source name to its kernels.fetch.FetchResult (absent with an override).
    shared: builds only read the tree (the line's build system says so), so
    one prepared tree serves every line with the same sources and patches."""
    if line.unsupported:
        raise UserError(f"line {line.name} cannot be built here: {line.unsupported}")
    paths.check_build_path()
    log = log or paths.line_dir(line.name) / "prepare.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    override = override_dir(line)
    patches = series(line)
    # From here until the new stamp is written, src/ may be half replaced:
    # without a stamp, no later step (or doit) takes it as prepared.
    stamp_path(line).unlink(missing_ok=True)
    staging = paths.line_dir(line.name) / "src.tmp"
    replaced = paths.line_dir(line.name) / "src.old"
    for leftover in (staging, replaced):     # what an interrupted run left for this one to remove
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        provenance = _build_staging(line, staging, override, patches, fetched, log, shared)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM ends the run now: deleting a half-unpacked 6.1
        # tree takes a minute on a busy disk, so src.tmp stays for the next
        # run to remove (no stamp: nothing takes it as prepared).
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)      # no half-prepared tree stays behind
        raise
    target = src_dir(line)
    if target.exists():
        os.replace(target, replaced)
    os.replace(staging, target)
    paths.atomic_write_text(stamp_path(line), json.dumps(provenance.as_dict(), indent=2) + "\n")
    shutil.rmtree(replaced, ignore_errors=True)          # interrupted here, the next run removes it
    return provenance


def _build_staging(line, staging: Path, override: Path | None, patches: list[Path],
                   fetched: dict | None, log: Path, shared_tree: bool) -> Provenance:
    if override:
        print(f"[prepare {line.name}] copying local override {override} ({UNVERIFIED})", flush=True)
        subprocess.run(["cp", "-a", "--reflink=auto", f"{override}/.", str(staging)], check=True)
        sources = ({"name": line.kernel_source.name, "file": str(override), "sha256": None,
                    "trust": f"{UNVERIFIED}: local override {override_var(line.name)}"},)
    else:
        sources = tuple({"name": name, "file": result.path.name, "sha256": result.sha256,
                         "trust": result.trust} for name, result in sorted(fetched.items()))
        shared = shared_tree_path(line, sources, patches) if shared_tree else None
        if shared is not None and shared.is_dir():
            print(f"[prepare {line.name}] linking the tree prepared from the same sources and "
                  f"patches ({paths.shown(shared)})", flush=True)
            subprocess.run(["cp", "-al", f"{shared}/.", str(staging)], check=True)
            return _provenance(sources, patches, override)
        kernel = fetched[line.kernel_source.name]
        print(f"[prepare {line.name}] unpacking {kernel.path.name}", flush=True)
        safe_extract(kernel.path, staging, strip_components=1)
        for source in line.patch_sources:
            apply_patch(staging, _patch_text_path(fetched[source.name].path, staging),
                        label=f"{line.name}: upstream {source.file}", log=log)
    for patch in patches:
        apply_patch(staging, patch, label=f"{line.name}: {patch.name}", log=log)
    if not override and shared_tree:
        _keep_shared(staging, shared_tree_path(line, sources, patches))
    return _provenance(sources, patches, override)


def _provenance(sources: tuple, patches: list[Path], override: Path | None) -> Provenance:
    return Provenance(sources=sources,
                      patches=tuple({"name": p.name, "sha256": sha256_file(p)} for p in patches),
                      override=str(override) if override else None)


def shared_tree_path(line, sources: tuple, patches: list[Path]) -> Path:
    """Where a prepared tree that builds only read (kbuild's O= builds) is
    kept for every line with the same sources and patches (linux-6.1 and
    linux-6.1-x86_64 unpack Debian's linux-source-6.1 once)."""
    key = json.dumps({"sources": [(s["name"], s["sha256"]) for s in sources],
                      "patches": [sha256_file(p) for p in patches]}, sort_keys=True)
    return paths.build_dir() / "trees" / hashlib.sha256(key.encode()).hexdigest()[:16]


def _keep_shared(staging: Path, shared: Path) -> None:
    """A hard-link copy of the freshly prepared tree, put in place whole."""
    work = shared.with_name(f".{shared.name}.{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["cp", "-al", str(staging), str(work)], check=True)
        try:
            os.replace(work, shared)
        except OSError:
            if not shared.is_dir():     # else another prepare kept the same tree first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def read_provenance(line) -> Provenance:
    data = json.loads(stamp_path(line).read_text())
    return Provenance(sources=tuple(data["sources"]), patches=tuple(data["patches"]),
                      override=data["override"])


def _patch_text_path(archive: Path, workdir: Path) -> Path:
    """Upstream patches ship compressed (openMosix-2.4.22-2.bz2)."""
    opener = {".bz2": bz2.open, ".gz": gzip.open}.get(archive.suffix)
    if opener is None:
        return archive
    plain = workdir.parent / (archive.stem + ".patch")
    with opener(archive, "rb") as packed, plain.open("wb") as out:
        shutil.copyfileobj(packed, out)
    return plain


def apply_patch(tree: Path, patch: Path, *, label: str, log: Path) -> str:
    """Apply one patch with -p1; "applied" or "already applied".  A series
    that is already in the tree (e.g. an override tree that carries it) is
    detected by a clean reverse dry run and not applied twice."""
    forward = _patch(tree, patch, "--dry-run")
    if forward.returncode == 0:
        run_logged(["patch", "-p1", "--forward", "--batch", "-i", str(patch)], cwd=tree, log=log,
                   label=label, stage="patch", quiet=True)
        return "applied"
    if _patch(tree, patch, "--dry-run", "--reverse").returncode == 0:
        with log.open("a") as out:
            out.write(f"# {patch.name}: already applied, skipped\n")
        print(f"[{label}] already applied, skipped", flush=True)
        return "already applied"
    raise UserError(f"{label}: patch {patch} does not apply:\n{_failed_hunks(forward.stdout)}")


def _patch(tree: Path, patch: Path, *flags: str) -> subprocess.CompletedProcess:
    # --forward refuses reversed hunks, --batch never asks, -t no questions
    return subprocess.run(["patch", "-p1", "--forward", "--batch", *flags, "-i", str(patch)],
                          cwd=tree, capture_output=True, text=True)


def _failed_hunks(output: str) -> str:
    """'patching file X' followed by 'Hunk #N FAILED at L.' -> 'X: hunk #N (line L)'."""
    current, failures = "?", []
    for line in output.splitlines():
        if line.startswith(("patching file ", "checking file ")):
            current = line.split(" file ", 1)[1].strip("'")
        elif match := re.search(r"Hunk #(\d+) FAILED at (\d+)", line):
            failures.append(f"  {current}: hunk #{match.group(1)} FAILED (at line {match.group(2)})")
        elif "can't find file to patch" in line or "No file to patch" in line:
            failures.append(f"  {current}: file not found in the tree")
    return "\n".join(failures) or output.strip()[-800:]


def unshare_headers(tree: Path) -> int:
    """Give a hard-linked 2.4 tree its own copy of every header (mtime
    kept).  2.4's make dep touches each header whose config options changed
    (its .hdepend rules); through a shared inode that touch would reach
    src/ and every other variant's tree, whose objects then look out of
    date (and a seeded tree would be copied with them)."""
    count = 0
    for root, _dirs, files in os.walk(tree):
        for name in files:
            path = Path(root) / name
            if name.endswith(".h") and not path.is_symlink():
                spare = path.with_name(name + ".unshared")
                shutil.copy2(path, spare)
                os.replace(spare, path)
                count += 1
    return count


def kbuild_object_dir(line_name: str, variant_name: str) -> Path:
    """A kbuild variant's O= folder (no side effect: nothing is made)."""
    return paths.variant_dir(line_name, variant_name) / "obj"


# Present in the object dir while make runs; it outlives a killed build.
# Its mtime is when the run began; it holds make's process group.
RUNNING_MARKER = ".ltsp-mosix-build-running"


def note_build_group(marker: Path, pgid: int) -> None:
    """Record make's process group in the marker, keeping its mtime."""
    stat = marker.stat()
    marker.write_text(f"{pgid}\n")
    os.utime(marker, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def recover_object_dir(objdir: Path, label: str, sources: Path | None = None) -> Path:
    """Make an object dir safe to write in (the config step and the build
    both start here: doit forgets what a killed run finished, so a config
    step may run again over an interrupted build).  If the previous build
    did not finish (the marker is still there), first stop what is left of
    it (a compiler orphaned by a SIGKILL can still be writing), then remove
    every file it wrote (newer than the marker: 2.4's make takes a
    half-written or empty object as up to date) and every empty object;
    older, complete objects stay.  sources: the pristine tree, where the
    object dir also holds the sources (2.4, whose make touches them): a
    file that tree also has is a source and stays."""
    marker = objdir / RUNNING_MARKER
    if not marker.is_file():
        return objdir
    text = marker.read_text().strip()
    if text.isdigit():
        kill_group(int(text))
    newer, empty = _files_written_since(objdir, marker.stat().st_mtime_ns)
    if sources is not None:
        newer = [path for path in newer if not (sources / path.relative_to(objdir)).exists()]
    for path in newer + empty:
        path.unlink(missing_ok=True)
    marker.unlink()
    print(f"[{label}] previous build was interrupted: removed {len(newer)} files it wrote "
          f"and {len(empty)} empty objects; make rebuilds them", flush=True)
    return objdir


def _files_written_since(root: Path, since_ns: int) -> tuple[list[Path], list[Path]]:
    """(regular files with mtime >= since_ns, other empty *.o files); the
    marker itself and symlinks are left out."""
    newer, empty = [], []
    stack = [root]
    while stack:
        for entry in os.scandir(stack.pop()):
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False) and entry.name != RUNNING_MARKER:
                stat = entry.stat(follow_symlinks=False)
                if stat.st_mtime_ns >= since_ns:
                    newer.append(Path(entry.path))
                elif stat.st_size == 0 and entry.name.endswith(".o"):
                    empty.append(Path(entry.path))
    return newer, empty
