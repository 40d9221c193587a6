"""Which NIC profiles fit a node's card (configs/cards.toml, configs/nic/):
a kernel whose profile builds in none of the card's drivers would find no
network on that node and never mount its root."""
from kernels import matrix
from kernels.fragments import parse_fragment


def default_nic_profile(card: str) -> str:
    """The one-driver profile named after the card where there is one
    (3c590, epic100), else the all-driver profile (the QEMU cards)."""
    return card if card in matrix.nic_profiles() else matrix.DEFAULT_NIC_PROFILE


def profiles_for_card(card: str) -> list[str]:
    """The NIC profiles whose kernels have a driver for this card."""
    return [p for p in matrix.nic_profiles() if _profile_drives(p, card)]


def _profile_drives(profile: str, card: str) -> bool:
    """The profile's fragment builds in one of the drivers that bind to the
    card (configs/cards.toml): the "all" profile fits any card."""
    options = parse_fragment(matrix.nic_fragment(profile))
    return any(options[s].value == "y" for s in matrix.cards()[card].drivers if s in options)


def check_profile_fits_card(profile: str, card: str, stop) -> None:
    if profile not in matrix.nic_profiles():
        stop("nic_profile", f"unknown NIC profile {profile!r}; valid profiles: "
                            f"{', '.join(matrix.nic_profiles())}")
    if not _profile_drives(profile, card):
        stop("nic_profile", f"profile {profile!r} has no driver for the node's {card} card "
                            f"({' or '.join(matrix.cards()[card].drivers)}): its kernel would find no "
                            f"network and never mount its root; profiles that fit: "
                            f"{', '.join(profiles_for_card(card))}")
