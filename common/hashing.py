"""Digests of files, read once in 1 MiB blocks."""
import hashlib
import json
from pathlib import Path

from common import paths

_CHUNK = 1 << 20


def compute_digests(path: Path, algos=("sha256", "md5")) -> dict[str, str]:
    """All requested digests in one pass over the file."""
    hashers = {algo: hashlib.new(algo) for algo in algos}
    with open(path, "rb") as stream:
        while block := stream.read(_CHUNK):
            for hasher in hashers.values():
                hasher.update(block)
    return {algo: hasher.hexdigest() for algo, hasher in hashers.items()}


def sha256_file(path: Path) -> str:
    return compute_digests(path, ("sha256",))["sha256"]


def cached_sha256(path: Path) -> str:
    """sha256_file(path), remembered (build/.sha256-cache.json) while the
    file's size, mtime, ctime and inode stay the same: a big file that
    rarely changes (Debian's kernel source) is hashed once, not per run."""
    path = Path(path)
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"
    cache_file = paths.build_dir() / ".sha256-cache.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        cache = {k: v for k, v in cache.items() if not k.startswith(f"{path.resolve()}:")}
        cache[key] = sha256_file(path)
        paths.atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True) + "\n")
    return cache[key]
