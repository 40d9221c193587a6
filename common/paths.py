"""Where things live, and how files get there.  Everything generated goes
below one ignored build folder and one shared download folder, both movable
by environment variables (like Buildroot's BR2_DL_DIR); configs/ and
patches/ are movable too, for tests and sites.

Every file and tree is written under a temporary name beside its target and
renamed into place: a reader never sees half of one, and a crash leaves no
partial one under the real name."""
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from common.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIGS = PROJECT_ROOT / "configs"
PATCHES = PROJECT_ROOT / "patches"


def configs_dir() -> Path:
    """configs/ of the project: the matrix as data."""
    return Path(os.environ.get("LTSP_MOSIX_CONFIGS", CONFIGS)).resolve()


def patches_dir() -> Path:
    """patches/ of the project, movable for tests."""
    return Path(os.environ.get("LTSP_MOSIX_PATCHES", PATCHES)).resolve()


def build_dir() -> Path:
    return Path(os.environ.get("LTSP_MOSIX_BUILD_DIR", PROJECT_ROOT / "build")).resolve()


# What make (Kbuild's O=, 2.4's top Makefile, make's own syntax) cannot take
# in a path: whitespace and ':' split words and targets, '#' starts a
# comment, '$' expands, '%' is a pattern, quotes, '\\', ';' and '=' are read.
MAKE_UNSAFE = set(" \t\n:#$%\\\"';=")


def check_build_path(path: Path | None = None) -> Path:
    """The build folder, refused before any work if make could not use it."""
    path = Path(path or build_dir())
    bad = sorted(set(str(path)) & MAKE_UNSAFE)
    if bad:
        shown_chars = " ".join(repr(c) for c in bad)
        raise UserError(f"build folder {path}: its path holds {shown_chars}, which make cannot take in a "
                        f"path; choose another folder (LTSP_MOSIX_BUILD_DIR)")
    return path


def dl_dir() -> Path:
    return Path(os.environ.get("LTSP_MOSIX_DL_DIR", PROJECT_ROOT / "dl")).resolve()


def line_dir(line_name: str) -> Path:
    return build_dir() / line_name


def variant_dir(line_name: str, variant_name: str) -> Path:
    return line_dir(line_name) / "variants" / variant_name


def shown(path: Path) -> str:
    """A path as messages show it: relative to the project when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


@contextlib.contextmanager
def atomic_output(path: Path, mode: int | None = None):
    """Yield a temporary path beside `path` for a tool (or the caller) to
    write; when the block ends without an exception it is renamed to
    `path` (with `mode`, if given).  The temporary file never survives."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        if mode is not None:
            tmp.chmod(mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> Path:
    with atomic_output(path, mode) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> Path:
    return atomic_write_bytes(path, text.encode(), mode)


def replace_tree(work: Path, target: Path) -> None:
    """Put a finished tree at target; an older one there goes only after."""
    if not target.exists() and not target.is_symlink():
        os.replace(work, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.replace(target, old / "tree")
    os.replace(work, target)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_tree(target: Path):
    """Yield an empty temporary folder beside `target` to fill; when the
    block succeeds it replaces `target` (mode 0755: a TFTP or NFS server
    runs as another user), otherwise it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield work
        work.chmod(0o755)           # mkdtemp makes 0700
        replace_tree(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work)
