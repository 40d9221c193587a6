"""Sources a line takes from an installed Debian package (trust =
"debian-package", e.g. /usr/src/linux-source-6.1.tar.xz): apt verified the
file when it installed it, and `dpkg --verify` checks it again each time."""
import subprocess
from pathlib import Path

from common.errors import InfraError, UserError, VerificationError
from kernels.sources import Source


def verified_installed_file(source: Source) -> tuple[Path, str]:
    """(the file, its package's installed version), dpkg --verify clean."""
    if not source.package or not source.path:
        raise UserError(f"source {source.name} of line {source.line}: trust = 'debian-package' "
                        f"needs both `package` and `path`")
    path = Path(source.path)
    version = installed_version(source)
    _dpkg_verify(source.package, path, source)
    if not path.is_file():
        raise VerificationError(f"source {source.name}: {path} is not there although package "
                                f"{source.package} {version} is installed")
    return path, version


def _run_dpkg(args: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise InfraError(f"{args[0]} not found: trust = 'debian-package' needs a Debian "
                         f"system (dpkg)") from None


def installed_version(source: Source) -> str:
    package = source.package
    result = _run_dpkg(["dpkg-query", "-W", "-f=${db:Status-Status}\t${Version}", package])
    status, _, version = result.stdout.partition("\t")
    if result.returncode != 0 or status != "installed" or not version:
        raise InfraError(f"source {source.name} of line {source.line} needs package {package}, "
                         f"which is not installed (status: {status or 'unknown'}): "
                         f"apt-get install {package}")
    return version


def _dpkg_verify(package: str, path: Path, source: Source) -> None:
    """dpkg --verify prints one line per changed or missing file, e.g.
    `??5??????   /usr/src/linux-source-6.1.tar.xz` (5 = md5 differs)."""
    result = _run_dpkg(["dpkg", "--verify", package])
    for line in result.stdout.splitlines():
        if line.split() and line.split()[-1] == str(path):
            raise VerificationError(f"source {source.name}: {path} differs from what package "
                                    f"{package} installed (dpkg --verify: {line.strip()}); "
                                    f"reinstall it: apt-get install --reinstall {package}")
