"""The two exception roots (as in TuxMake): what the user must fix, and
what the machine or network lacks.  Both carry a complete message; the CLI
prints it without a traceback."""


class LtspError(Exception):
    """Base of every error this project reports to a person."""

    kind = "error"

    def __str__(self):
        return f"{self.kind}: {self.args[0] if self.args else ''}"


class UserError(LtspError):
    """Bad input: unknown line or variant, malformed fragment, hash mismatch,
    bad signature, unpinned source.  Fix the config or the source."""

    kind = "user error"


class InfraError(LtspError):
    """The environment is lacking: a tool is missing, a URL is unreachable,
    the disk is full.  Fix the machine, not the config."""

    kind = "infrastructure error"


class VerificationError(UserError):
    """A source failed its integrity or authenticity check."""

    kind = "verification error"
