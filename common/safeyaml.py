"""YAML and text from outside the project (LAVA results, lava-run logs,
job files): bounded and without surprises.

- A file larger than its cap is refused before it is read, naming the file
  and the cap; so is a line longer than its cap.
- Aliases are refused before anything is built: the formats read here
  never need them, and a kilobyte of nested aliases (the "billion laughs")
  expands to gigabytes once a value is turned into text.
- Only the safe loader's types: a `!!python/...` tag is bad input, not a
  bug.  Every YAML error is a UserError naming where it was found."""
from pathlib import Path

import yaml

from common.errors import UserError

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MiB = 1024 * 1024


def read_capped(path: Path, cap_bytes: int, what: str) -> str:
    """The file's text, refused unread above cap_bytes."""
    path = Path(path)
    size = path.stat().st_size
    if size > cap_bytes:
        raise UserError(f"{path}: {size} bytes, over the {_size(cap_bytes)} cap for {what}")
    return path.read_text(errors="replace")


def check_lines(text: str, cap_bytes: int, where: str) -> None:
    for number, line in enumerate(text.splitlines(), 1):
        if len(line) > cap_bytes:
            raise UserError(f"{where}:{number}: a line of {len(line)} characters, over the "
                            f"{_size(cap_bytes)} cap per line")


def load(text: str, where: str):
    """One YAML document, aliases and unsafe tags refused."""
    try:
        for event in yaml.parse(text, Loader=LOADER):
            if isinstance(event, yaml.AliasEvent):
                raise UserError(f"{where}: YAML alias *{event.anchor} refused (aliases are not "
                                f"accepted in files from outside)")
        return yaml.load(text, Loader=LOADER)
    except yaml.YAMLError as error:
        raise UserError(f"{where}: not valid YAML for this: {_first_line(error)}") from None


def _first_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text[:200]


def _size(count: int) -> str:
    if count >= MiB and count % MiB == 0:
        return f"{count // MiB} MiB"
    return f"{count // 1024} KiB" if count >= 1024 and count % 1024 == 0 else f"{count} bytes"
