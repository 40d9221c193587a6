"""Where things live.  Everything generated goes below one ignored build
folder and one shared download folder, both movable by environment
variables (like Buildroot's BR2_DL_DIR)."""
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIGS = PROJECT_ROOT / "configs"
PATCHES = PROJECT_ROOT / "patches"


def patches_dir() -> Path:
    """patches/ of the project, movable for tests."""
    return Path(os.environ.get("LTSP_MOSIX_PATCHES", PATCHES)).resolve()


def build_dir() -> Path:
    return Path(os.environ.get("LTSP_MOSIX_BUILD_DIR", PROJECT_ROOT / "build")).resolve()


def dl_dir() -> Path:
    return Path(os.environ.get("LTSP_MOSIX_DL_DIR", PROJECT_ROOT / "dl")).resolve()


def line_dir(line_name: str) -> Path:
    return build_dir() / line_name


def variant_dir(line_name: str, variant_name: str) -> Path:
    return line_dir(line_name) / "variants" / variant_name


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write to a temporary name beside the target, then rename: a reader
    never sees half a file and a crash leaves no partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())
