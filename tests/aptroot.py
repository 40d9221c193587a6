"""A throw-away Debian server root for the release's packages: the real
apt-get and dpkg of this machine, every apt and dpkg folder inside the
root (APT_CONFIG names a private configuration: Dir::State, Dir::Cache,
Dir::Etc, dpkg's --root), so installs, upgrades and removals land in the
root and the machine's own package state is never read or touched.  The
packages have no maintainer scripts and no dependencies, so no chroot is
needed.  apt fetches from the release served over loopback HTTP."""
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOURCE_LIST = "ltsp-mosix.list"


@dataclass
class AptRoot:
    root: Path

    def __post_init__(self):
        root = self.root
        for folder in ("etc/apt/sources.list.d", "etc/apt/apt.conf.d", "etc/apt/preferences.d",
                       "etc/apt/trusted.gpg.d", "etc/apt/keyrings", "var/lib/apt/lists/partial",
                       "var/cache/apt/archives/partial", "var/lib/dpkg/info", "var/lib/dpkg/updates",
                       "var/lib/dpkg/triggers", "var/log/apt", "tmp"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for name in ("status", "available"):
            (root / "var/lib/dpkg" / name).touch()
        (root / "etc/apt/sources.list").touch()
        self.config.write_text("\n".join([
            f'Dir::State "{root}/var/lib/apt";',
            f'Dir::State::status "{root}/var/lib/dpkg/status";',
            f'Dir::Cache "{root}/var/cache/apt";',
            f'Dir::Etc "{root}/etc/apt";',
            f'Dir::Log "{root}/var/log/apt";',
            'APT::Architecture "amd64";',
            'APT::Architectures { "amd64"; };',
            # files in a private (0700) test folder: apt's _apt user could not read them
            'APT::Sandbox::User "root";',
            'Acquire::Languages "none";',
            'Acquire::Retries "0";',
            f'DPkg::Options {{ "--root={root}"; "--admindir={root}/var/lib/dpkg"; "--log={root}/var/log/dpkg.log"; }};',
            'DPkg::Use-Pty "false";',
            "",
        ]))

    @property
    def config(self) -> Path:
        return self.root / "apt.conf"

    def add_source(self, url: str, suite: str, component: str, key: Path) -> str:
        """The release's repository as a site adds it: its key saved as the
        keyring signed-by= names, one deb line."""
        keyring = self.root / "etc/apt/keyrings/ltsp-mosix.asc"
        keyring.write_bytes(Path(key).read_bytes())
        line = f"deb [signed-by={keyring}] {url} {suite} {component}\n"
        (self.root / "etc/apt/sources.list.d" / SOURCE_LIST).write_text(line)
        return line

    def apt(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "APT_CONFIG": str(self.config), "DEBIAN_FRONTEND": "noninteractive",
               "LC_ALL": "C.UTF-8"}
        result = subprocess.run(["apt-get", "-q", "-y", "-o", "Dpkg::Progress-Fancy=0", *args],
                                capture_output=True, text=True, env=env, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"apt-get {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def installed(self) -> dict[str, str]:
        """package -> version, as dpkg records them in the root."""
        result = subprocess.run(["dpkg-query", f"--admindir={self.root}/var/lib/dpkg", "-W",
                                 "-f", "${Package} ${Version} ${db:Status-Abbrev}\n"],
                                capture_output=True, text=True, check=True)
        return {name: version for name, version, status in
                (line.split(" ", 2) for line in result.stdout.splitlines()) if status.startswith("ii")}

    def owned_by(self, package: str) -> list[str]:
        result = subprocess.run(["dpkg-query", f"--admindir={self.root}/var/lib/dpkg", "-L", package],
                                capture_output=True, text=True)
        return result.stdout.split() if result.returncode == 0 else []

    def files(self, prefix: str = "") -> set[str]:
        """Every file and link below the root's srv, usr, tftpboot and opt,
        as a server path."""
        found = set()
        for top in ("srv", "usr", "tftpboot", "opt"):
            for path in (self.root / top).rglob("*") if (self.root / top).exists() else ():
                if path.is_file() or path.is_symlink():
                    found.add("/" + str(path.relative_to(self.root)))
        return {p for p in found if p.startswith(prefix)}

    def folders(self) -> set[str]:
        found = set()
        for top in ("srv", "usr", "tftpboot", "opt"):
            base = self.root / top
            if base.exists():
                found.add("/" + top)
                found.update("/" + str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_dir())
        return found
