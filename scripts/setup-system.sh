#!/usr/bin/env bash
# Installs the Debian packages Ferry's tests drive for real. Idempotent, and
# quiet when everything is already there.
set -euo pipefail
needed=()
command -v tar >/dev/null || needed+=(tar)
command -v openssl >/dev/null || needed+=(openssl)
command -v tmux >/dev/null || needed+=(tmux)   # the console's terminal tests
command -v pgrep >/dev/null || needed+=(procps)
command -v unshare >/dev/null || needed+=(util-linux)   # ferry-installer alone in an empty root; losetup, mount, nsenter
# test/faults and the console test of a mounted stick: loop-mounted ext4 images (mkfs.ext4, e2fsck, chattr) and an artifact's peak memory
command -v mkfs.ext4 >/dev/null || needed+=(e2fsprogs)
[ -x /usr/bin/time ] || needed+=(time)
command -v strace >/dev/null || needed+=(strace)   # what ferry init fsyncs (test/faults/power-loss)
command -v tc >/dev/null || needed+=(iproute2)   # npm run bench: pulls through a namespace's loopback held to a link's rate (tc, ip)
# The OCI registry tests start their own docker-registry (Distribution 2.8) on
# loopback; the packaged service, if systemd starts it, is not used.
command -v docker-registry >/dev/null || needed+=(docker-registry)
command -v skopeo >/dev/null || needed+=(skopeo)   # an independent OCI client, for interop tests
command -v zsh >/dev/null || needed+=(zsh)   # ferry completion zsh, run by its tests
command -v fish >/dev/null || needed+=(fish)   # ferry completion fish
# ferry media: ISO images (xorriso), and the tests' real FAT32 images (mkfs.fat, mcopy).
command -v xorriso >/dev/null || needed+=(xorriso)
command -v mcopy >/dev/null || needed+=(mtools)
command -v mkfs.fat >/dev/null || needed+=(dosfstools)
# ...mounted read-only through FUSE: this kernel may have no vfat or iso9660 module.
command -v fusefat >/dev/null || needed+=(fusefat)
command -v fuseiso >/dev/null || needed+=(fuseiso)
if [ ${#needed[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-system: missing ${needed[*]}; install them with apt-get (needs root)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${needed[@]}"
fi
