#!/bin/sh
# Set up a fresh Debian 12 machine for ltsp-mosix: the Debian packages the
# pipeline runs (kernel build tools, QEMU, pxelinux, gpg, ...) and a Python
# virtualenv in .venv with the project installed.  Safe to run again.
set -eu
cd "$(dirname "$0")"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
PACKAGES="
  python3 python3-venv python3-pip git patch diffutils
  linux-source-6.1 gcc gcc-multilib make flex bison bc perl libelf-dev libssl-dev
  xz-utils bzip2 gzip cpio ccache distcc
  qemu-system-x86 ipxe-qemu ipxe pxelinux syslinux-common
  genext2fs e2fsprogs gnupg shellcheck dash dnsmasq-base
  nfs-ganesha nfs-ganesha-vfs rpcbind iproute2 chromium lava-common lava-dispatcher criu
  apt-utils lintian ltsp
"
# shellcheck disable=SC2086
if ! dpkg -s $PACKAGES >/dev/null 2>&1; then
  # Install without starting services: the pipeline runs its own rpcbind,
  # NFS server and dnsmasq, and a system-wide one would hold their ports.
  NO_SERVICES=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    NO_SERVICES=1
  fi
  $SUDO apt-get update -q
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -q --no-install-recommends $PACKAGES
  [ -z "$NO_SERVICES" ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
