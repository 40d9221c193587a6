"""NIC-specific variants built from their CPU's objects.

`pentium-3c590` differs from `pentium` (every NIC driver) only in its NIC
options.  Its first build starts from a copy of pentium's finished object
tree; its own .config then goes in and make rebuilds what those options
change (kbuild's per-option dependencies: include/config/ on 6.1, mkdep's
include/config/*.h on 2.4) and relinks.  The result must be the bytes a
clean build gives: tests/e2e prove it for one variant of each line.

The copy is taken only when the variant has no build of its own yet (a
variant that has built once rebuilds incrementally in its own tree) and
the base's build is finished and current: its out/ record exists, no make
runs in its tree, and its tree holds the base's audited config.
LTSP_MOSIX_SEED=0 turns seeding off (benchmarks, the clean side of the
identity test)."""
import os
import shutil
import time
from pathlib import Path

from common.paths import replace_tree
from kernels import buildsystem, kconfig, matrix, tree

SEED_ENV = "LTSP_MOSIX_SEED"
SEED_RECORD = ".ltsp-mosix-seeded-from"


def seeding_enabled() -> bool:
    return os.environ.get(SEED_ENV, "1") != "0"


def seeded_from(objdir: Path) -> str | None:
    """The variant whose objects this tree started from (None: a clean build)."""
    record = objdir / SEED_RECORD
    return record.read_text().strip() if record.is_file() else None


def base_variant(line, variant) -> "matrix.Variant | None":
    """The CPU's all-NIC variant a NIC-specific variant starts from."""
    if variant.nic == matrix.DEFAULT_NIC_PROFILE:
        return None
    return matrix.Variant(line.name, variant.cpu, matrix.DEFAULT_NIC_PROFILE)


def _linked(objdir: Path) -> bool:
    return (objdir / "vmlinux").is_file()


def base_ready(line, base, out_record: Path) -> str | None:
    """Why the base cannot seed, or None when it can."""
    objdir = buildsystem.for_line(line).object_dir(line, base)
    final = kconfig.final_config_path(line, base)
    if not out_record.is_file() or not _linked(objdir):
        return f"{base.name} has no finished build"
    if (objdir / tree.RUNNING_MARKER).exists():
        return f"{base.name}'s build did not finish"
    dot_config = objdir / ".config"
    if not final.is_file() or not dot_config.is_file() or dot_config.read_bytes() != final.read_bytes():
        return f"{base.name}'s tree does not hold its audited config"
    return None


def seed_object_dir(line, variant, out_record_of_base: Path, label: str) -> str | None:
    """Replace the variant's object tree by a copy of its base's finished
    one, if it has no build of its own; return the base's name if seeded."""
    base = base_variant(line, variant)
    system = buildsystem.for_line(line)
    objdir = system.object_dir(line, variant)
    if base is None or not seeding_enabled() or _linked(objdir):
        return None
    refusal = base_ready(line, base, out_record_of_base)
    if refusal:
        print(f"[{label}] clean build: {refusal} to start from", flush=True)
        return None
    start = time.monotonic()
    source = system.object_dir(line, base)
    staging = objdir.with_name(objdir.name + ".seeding")
    shutil.rmtree(staging, ignore_errors=True)
    copied = system.seed(line, variant, source, staging, objdir, _copy_tree,
                         kconfig.final_config_path(line, variant))
    (staging / SEED_RECORD).write_text(f"{base.name}\n")
    # Only a finished copy holding the variant's config takes the place of
    # the tree: a run killed before this leaves the old tree (and a staging
    # folder the next run removes).
    replace_tree(staging, objdir)
    print(f"[{label}] object tree seeded from {base.name}'s build ({copied} files copied in "
          f"{time.monotonic() - start:.1f}s); make rebuilds what the NIC options change", flush=True)
    return base.name


def _names_the_tree(name: str) -> bool:
    """2.4's files that hold the tree's absolute path: object flags and
    make dep's dependency lists."""
    return name.endswith(".flags") or name in (".depend", ".hdepend")


def _copy_tree(source: Path, dest: Path, *, shared: Path | None,
               rewrite: tuple[bytes, bytes] | None = None) -> int:
    """Copy source to dest keeping modes and mtimes (make compares them).
    With shared (2.4: the pristine src/ the variant trees are hard-linked
    from), a file that is the same inode as its counterpart in shared is
    hard-linked, not copied: sources stay shared, build products are real
    copies (the compiler truncates its output, which must not reach the
    base's objects through a shared inode).  rewrite=(old, new) replaces
    the base's tree path in the files that record it (mtimes kept)."""
    copied = 0
    for root, dirs, files in os.walk(source):
        rel = Path(root).relative_to(source)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        shutil.copystat(root, dest / rel)
        for name in dirs + files:
            path = Path(root) / name
            target = dest / rel / name
            if path.is_symlink():
                target.symlink_to(os.readlink(path))
                if name in dirs:
                    dirs.remove(name)
                continue
            if name in dirs:
                continue
            twin = shared / rel / name if shared is not None else None
            if twin is not None and twin.exists() and os.path.samestat(path.lstat(), twin.lstat()):
                os.link(twin, target)
                continue
            if rewrite is not None and _names_the_tree(name):
                target.write_bytes(path.read_bytes().replace(*rewrite))
                shutil.copystat(path, target)
            else:
                shutil.copy2(path, target)
            copied += 1
    for root, dirs, _ in os.walk(source):       # directory mtimes last: writing into them changed them
        rel = Path(root).relative_to(source)
        shutil.copystat(root, dest / rel)
    return copied
