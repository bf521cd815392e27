#!/bin/sh
# Installs the programs the virtual Pi lab needs (Debian/Ubuntu). Nothing is started:
# the lab starts its own daemons and stops them by their recorded PIDs.
set -e
need=""
for c in snmpd:snmpd snmpset:snmp dnsmasq:dnsmasq sshd:openssh-server ssh:openssh-client udhcpc:udhcpc curl:curl pv:pv \
	mkfs.vfat:dosfstools mcopy:mtools sfdisk:fdisk parted:parted mkfs.ext4:e2fsprogs debugfs:e2fsprogs busybox:busybox \
	ip:iproute2 tc:iproute2 zstd:zstd xz:xz-utils openssl:openssl losetup:mount partx:util-linux nginx:nginx; do
	PATH=$PATH:/usr/sbin:/sbin command -v "${c%%:*}" >/dev/null 2>&1 || need="$need ${c##*:}"
done
# nginx publishing the lab's nodes (its test runs its own nginx, never the service): the stream
# module is a package of its own.
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || need="$need libnginx-mod-stream"
# The cloud-init stand-in of the family images (lab/images/cloud-init.py) runs the host's python3.
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || need="$need python3 python3-yaml"
[ -z "$need" ] && { echo "lab: all packages present"; exit 0; }
echo "lab: installing$need"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# "Nothing is started": the packages' services (nginx would take port 80) are kept from
# starting by a policy-rc.d for the install, unless the machine has its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e $policy ]; then
	printf '#!/bin/sh\nexit 101\n' >$policy
	chmod 755 $policy
	trap 'rm -f $policy' EXIT
fi
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $need
