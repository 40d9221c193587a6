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
  qemu-system-x86 ipxe-qemu pxelinux syslinux-common
  genext2fs e2fsprogs gnupg shellcheck dash dnsmasq-base
"
# shellcheck disable=SC2086
if ! dpkg -s $PACKAGES >/dev/null 2>&1; then
  $SUDO apt-get update -q
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -q --no-install-recommends $PACKAGES
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
