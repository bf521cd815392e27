#!/bin/sh
# Installs the programs the virtual Pi lab needs (Debian/Ubuntu). Nothing is started:
# the lab starts its own daemons and stops them by their recorded PIDs.
set -e
need=""
for c in snmpd:snmpd snmpset:snmp dnsmasq:dnsmasq sshd:openssh-server ssh:openssh-client udhcpc:udhcpc curl:curl pv:pv \
	mkfs.vfat:dosfstools mcopy:mtools sfdisk:fdisk parted:parted mkfs.ext4:e2fsprogs debugfs:e2fsprogs busybox:busybox \
	ip:iproute2 tc:iproute2 zstd:zstd xz:xz-utils openssl:openssl losetup:mount partx:util-linux; do
	PATH=$PATH:/usr/sbin:/sbin command -v "${c%%:*}" >/dev/null 2>&1 || need="$need ${c##*:}"
done
# The cloud-init stand-in of the family images (lab/images/cloud-init.py) runs the host's python3.
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || need="$need python3 python3-yaml"
[ -z "$need" ] && { echo "lab: all packages present"; exit 0; }
echo "lab: installing$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $need
