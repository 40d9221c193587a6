"""MAC addresses: one spelling for QEMU's -device, pxelinux's 01-<mac>
file names, dnsmasq and the cluster description."""
import re

from common.errors import UserError

DEFAULT_MAC = "52:54:00:12:34:56"      # QEMU's own default
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def normalise_mac(mac: str) -> str:
    """aa:bb:cc:dd:ee:ff in lower case (also accepts dashes)."""
    text = str(mac).strip().lower().replace("-", ":")
    if not _MAC.match(text):
        raise UserError(f"bad MAC address {mac!r}: expected six hex pairs like {DEFAULT_MAC}")
    if int(text[:2], 16) & 1:
        raise UserError(f"MAC address {mac!r} is a multicast address (odd first octet)")
    return text
