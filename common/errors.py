"""Who is at fault, in four kinds (as TuxMake separates a user's error from
the infrastructure's, and LAVA adds test failures and bugs).  Each kind has
its own exit status, documented in the README; the CLI prints the message
without a traceback.

    bad input        UserError, VerificationError   exit 3
    infrastructure   InfraError                     exit 4
    kernel/test      KernelFailure                  exit 1
    bug              anything else (traceback kept in a log)   exit 5
"""

EXIT_KERNEL_FAILURE = 1     # doit's own status for a failed task: a result, not a fault
EXIT_USER_ERROR = 3         # doit's own status for a bad command line: bad input too
EXIT_INFRA_ERROR = 4
EXIT_BUG = 5
EXIT_INTERRUPTED = 130      # SIGINT, as a shell reports it


class LtspError(Exception):
    """Base of every error this project reports to a person."""

    kind = "error"
    exit_status = EXIT_BUG

    @property
    def message(self) -> str:
        """The message without its kind: for wrapping in another error
        (str() of the error would print the kind twice)."""
        return str(self.args[0]) if self.args else ""

    def __str__(self):
        return f"{self.kind}: {self.message}"


class UserError(LtspError):
    """Bad input: unknown line or variant, malformed fragment or cluster
    file, bad arguments, hash mismatch, bad signature, unpinned source.
    Fix the config, the arguments or the source."""

    kind = "user error"
    exit_status = EXIT_USER_ERROR


class VerificationError(UserError):
    """A source or release failed its integrity or authenticity check."""

    kind = "verification error"


class InfraError(LtspError):
    """The machine is lacking: a tool is missing, the network is down, QEMU
    cannot start, a compiler was killed by a signal, the disk is full.
    Fix the machine, not the config."""

    kind = "infrastructure error"
    exit_status = EXIT_INFRA_ERROR


class KernelFailure(LtspError):
    """The kernel under test failed: a compile error in its code, a boot that
    failed or hung.  A result of the pipeline, not a fault of its input or
    its machine."""

    kind = "kernel failure"
    exit_status = EXIT_KERNEL_FAILURE
