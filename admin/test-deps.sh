#!/bin/sh
# Installs the servers and tools the tests talk to, beyond the lab's own (lab/install-deps.sh):
# MariaDB, Chromium for the browser tests, shellcheck. Nothing is started here.
set -e
need=""
# systemd-analyze (package systemd, without systemd-sysv: PID 1 is left alone), rsync,
# ssh-keygen and nft: the admin/ tests (units verified, install.sh run in a throwaway root, the
# nodes' firewall loaded in network namespaces); lintian and adduser: the Debian package
# checked, and installed into a throwaway root.
for c in mariadbd:mariadb-server mariadb:mariadb-client chromium:chromium shellcheck:shellcheck gzip:gzip \
	systemd-analyze:systemd rsync:rsync ssh-keygen:openssh-client nft:nftables lintian:lintian adduser:adduser; do
	PATH=$PATH:/usr/sbin:/sbin command -v "${c%%:*}" >/dev/null 2>&1 || need="$need ${c##*:}"
done
[ -z "$need" ] && { echo "test deps: all present"; exit 0; }
echo "test deps: installing$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $need
