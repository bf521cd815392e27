#!/bin/sh -e
# pilab stand-in for /usr/lib/raspberrypi-sys-mods/regenerate_ssh_host_keys, run by
# regenerate_ssh_host_keys.service (enabled in the image) and by firstboot: new host keys, then
# the service disables itself (the lab's systemctl is a no-op, so the link goes here).
rm -f /etc/ssh/ssh_host_*_key*
ssh-keygen -A >/dev/null
rm -f /etc/systemd/system/multi-user.target.wants/regenerate_ssh_host_keys.service
echo "regenerate_ssh_host_keys: new host keys"
