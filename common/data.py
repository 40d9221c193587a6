"""Reading the matrix's data files: TOML whose errors name the file and the
field at fault."""
import tomllib
from pathlib import Path

from common.errors import UserError


def read_toml(path: Path) -> dict:
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: not valid TOML: {error}") from None
    except FileNotFoundError:
        raise UserError(f"{path}: missing") from None


_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "a table", bool: "true or false"}


def require(data: dict, field: str, kind: type, path: Path, *, where: str = ""):
    """data[field], which must exist and be of `kind`."""
    label = f"{where}.{field}" if where else field
    if field not in data:
        raise UserError(f"{path}: missing field {label!r}")
    value = data[field]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UserError(f"{path}: field {label!r} must be {_TYPE_NAMES.get(kind, kind.__name__)}, "
                        f"not {value!r}")
    return value


def optional(data: dict, field: str, kind: type, path: Path, default=None, *, where: str = ""):
    return require(data, field, kind, path, where=where) if field in data else default
