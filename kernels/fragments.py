"""Kernel config fragments: parse, merge, read back a final .config.

A fragment holds lines `CONFIG_X=value` or `# CONFIG_X is not set`, blank
lines and `#` comments; anything else is an error naming file:line.  Every
option remembers where it was asked for, so the audit can point at it."""
import re
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError

SET_RE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
UNSET_RE = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")
VALUE_RE = re.compile(r'^(y|m|n|-?\d+|0x[0-9A-Fa-f]+|"(?:[^"\\]|\\.)*")$')
LOOKS_LIKE_UNSET_RE = re.compile(r"^#\s*CONFIG_\w+\s+is\s+not\s+set")
NOT_SET = "n"


@dataclass(frozen=True)
class Option:
    name: str
    value: str        # "y", "m", "n" (not set), a number, or a quoted string
    origin: str       # "path:line" of the fragment that asked for it

    def config_line(self) -> str:
        if self.value == NOT_SET:
            return f"# {self.name} is not set"
        return f"{self.name}={self.value}"


def parse_fragment(path: Path, *, strict: bool = True) -> dict[str, Option]:
    """Options of one fragment, in file order.  `strict` (fragments written
    by people) rejects malformed lines and contradicting duplicates; a
    kernel-written .config is read with strict=False (it has other comments)."""
    options: dict[str, Option] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        option = _parse_line(raw.strip(), f"{path}:{number}", strict)
        if option is None:
            continue
        earlier = options.get(option.name)
        if strict and earlier and earlier.value != option.value:
            raise UserError(
                f"{option.origin}: {option.name} set twice in one fragment "
                f"({earlier.value} at {earlier.origin}, {option.value} here)")
        options[option.name] = option
    return options


def _parse_line(line: str, origin: str, strict: bool) -> Option | None:
    if not line:
        return None
    if match := UNSET_RE.match(line):
        return Option(match.group(1), NOT_SET, origin)
    if line.startswith("#"):
        if strict and LOOKS_LIKE_UNSET_RE.match(line):
            raise UserError(f"{origin}: malformed 'not set' line: {line!r} "
                            "(write exactly '# CONFIG_X is not set')")
        return None
    match = SET_RE.match(line)
    if match and VALUE_RE.match(match.group(2)):
        return Option(match.group(1), match.group(2), origin)
    if strict:
        raise UserError(
            f"{origin}: not a config line: {line!r} "
            "(expected CONFIG_X=value or '# CONFIG_X is not set')")
    return None


def merge(*fragments: dict[str, Option]) -> dict[str, Option]:
    """Later fragments win, as in the kernel's merge_config.sh."""
    merged: dict[str, Option] = {}
    for fragment in fragments:
        for name, option in fragment.items():
            merged.pop(name, None)      # keep the winner at its later position
            merged[name] = option
    return merged


def render(options: dict[str, Option]) -> str:
    return "".join(option.config_line() + "\n" for option in options.values())


def read_config_values(path: Path) -> dict[str, str]:
    """name -> value of a kernel-written .config (absent means not set)."""
    return {name: option.value for name, option in parse_fragment(path, strict=False).items()}
