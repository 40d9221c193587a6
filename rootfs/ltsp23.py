"""Debian's LTSP 23 (package ltsp 23.02): a kernel package's drop-in for
`ltsp ipxe`, rendered from templates/ltsp-ipxe-dropin.sh.in.

`ltsp ipxe` regenerates $TFTP_DIR/ltsp/ltsp.ipxe from its own template on
every run and has no include for a site's entries; it does source every
NN-name.sh in /usr/share/ltsp/server/ipxe (and /run, /etc) and calls
name_main after its own ipxe_main (NN > 55).  The drop-in adds one menu
item and its label, booting /ltsp/<image>/vmlinuz with initrd.img."""
import re
from pathlib import Path

from common.errors import UserError

TEMPLATE = Path(__file__).resolve().parent / "templates" / "ltsp-ipxe-dropin.sh.in"
_PLACEHOLDER = re.compile(r"@[A-Z_]+@")
# What may reach the iPXE script and the sed command line unquoted.
_SAFE = {
    "LABEL": re.compile(r"[a-z0-9][a-z0-9.+-]*"),
    "IMAGE": re.compile(r"[a-z0-9][a-z0-9.+-]*"),
    "SCRIPT": re.compile(r"[a-z][a-z0-9_]*"),
    "TITLE": re.compile(r"[A-Za-z0-9 .,:()_+-]+"),
    "APPEND": re.compile(r"[A-Za-z0-9 .,:=/_+-]*"),
}


def script_name(package: str) -> str:
    """The drop-in's name as LTSP derives its function from it: letters and
    digits kept, everything else "_" (LTSP cuts a file name at its first ".")."""
    return re.sub(r"[^a-z0-9]", "_", package)


def render_ipxe_dropin(*, package: str, version: str, image: str, title: str, append: str,
                       template: Path = TEMPLATE) -> str:
    values = {"PACKAGE": package, "VERSION": version, "LABEL": package, "IMAGE": image,
              "SCRIPT": script_name(package), "TITLE": title, "APPEND": append}
    for name, pattern in _SAFE.items():
        if not pattern.fullmatch(values[name]):
            raise UserError(f"LTSP menu entry of {package}: {name.lower()} {values[name]!r} has characters "
                            f"an iPXE script or the drop-in's sed command would misread")
    text = template.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    leftover = sorted(set(_PLACEHOLDER.findall(text)))
    if leftover:
        raise UserError(f"{template}: unknown placeholder(s) {', '.join(leftover)}")
    return text
