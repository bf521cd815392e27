#!/bin/sh
# pilab stand-in for Raspberry Pi OS's userconfig.service (package userconf-pi,
# /usr/lib/userconf-pi/userconf-service): userconf.txt (or userconf) on the boot partition holds
# "name:password-hash"; the first user (uid 1000) is renamed to name, its home moved, its group
# renamed, the hash set, the file deleted, and the service disabled. Without the file the real
# service asks on the console; here the account simply stays locked.
export MTOOLS_SKIP_CHECK=1 PATH=/usr/sbin:/usr/bin:/sbin:/bin
BOOT=/dev/mmcblk0p1
for f in userconf userconf.txt; do
	LINE=$(mtype -i $BOOT "::$f" 2>/dev/null | head -n1 | tr -d '\r') || continue
	[ -n "$LINE" ] || continue
	NEW_USER=${LINE%%:*} NEW_PASS=${LINE#*:}
	if ! echo "$NEW_USER" | grep -q '^[a-z][a-z0-9-]*$' || [ "$NEW_USER" = root ] || [ -z "$NEW_PASS" ]; then
		echo "userconf: invalid $f" >&2
		mren -i $BOOT "::$f" "::failed_$f"
		exit 0
	fi
	FIRSTUSER=$(getent passwd 1000 | cut -d: -f1)
	FIRSTGROUP=$(getent group 1000 | cut -d: -f1)
	if [ "$FIRSTUSER" != "$NEW_USER" ]; then
		usermod -l "$NEW_USER" "$FIRSTUSER"
		usermod -m -d "/home/$NEW_USER" "$NEW_USER"
		groupmod -n "$NEW_USER" "$FIRSTGROUP"
	fi
	echo "$NEW_USER:$NEW_PASS" | chpasswd -e
	mdel -i $BOOT "::$f"
	# cancel-rename: "systemctl disable userconfig" (the lab's systemctl is a no-op).
	rm -f /etc/systemd/system/multi-user.target.wants/userconfig.service
	echo "userconf: user $NEW_USER configured"
	exit 0
done
echo "userconf: no userconf.txt: the first user stays locked (the real service asks on the console)"
