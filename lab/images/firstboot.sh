#!/bin/sh
# pilab stand-in for Raspberry Pi OS's first boot, /usr/lib/raspberrypi-sys-mods/firstboot
# (package raspberrypi-sys-mods, started by cmdline.txt's init=). What it does, in the real one's
# order: take init= out of cmdline.txt, grow the root partition and its file system to the end
# of the card when the root is the last partition, delete and regenerate the SSH host keys (it
# has no switch to keep them), give the disk a new identifier (PARTUUID) in fstab and
# cmdline.txt, and reboot. The real one mounts the FAT boot partition; the lab's kernel cannot,
# so this one edits it with mtools.
export MTOOLS_SKIP_CHECK=1 PATH=/usr/sbin:/usr/bin:/sbin:/bin
CARD=/dev/mmcblk0 BOOT=/dev/mmcblk0p1
LOG=/var/log/pilab-firstboot.log
say() { echo "firstboot: $*"; echo "$*" >>$LOG; }
cmdline() { mtype -i $BOOT ::cmdline.txt | tr -d '\r'; }
put_cmdline() { printf '%s\n' "$1" >/run/pilab-cmdline.txt && mcopy -o -i $BOOT /run/pilab-cmdline.txt ::cmdline.txt; }

say "first boot $(date -u +%FT%TZ)"
put_cmdline "$(cmdline | sed 's| init=/usr/lib/raspberrypi-sys-mods/firstboot||; s| sdhci\.debug_quirks2=4||')"

# Resize: only when the root is the card's last partition and does not reach its end yet.
ROOT_PART_DEV=$(findmnt / -o source -n)
ROOT_PART_NUM=${ROOT_PART_DEV##*p}
LAST_PART_NUM=$(partx -g -o NR $CARD | tail -n1 | tr -d ' ')
TARGET_END=$(($(blockdev --getsz $CARD) - 1))
ROOT_PART_END=$(partx -g -o END -n "$ROOT_PART_NUM" $CARD | tr -d ' ')
if [ "$ROOT_PART_NUM" = "$LAST_PART_NUM" ] && [ "$ROOT_PART_END" -lt "$TARGET_END" ]; then
	START=$(partx -g -o START -n "$ROOT_PART_NUM" $CARD | tr -d ' ')
	echo "$START,$((TARGET_END - START + 1))" | sfdisk --no-reread --no-tell-kernel -q -N "$ROOT_PART_NUM" $CARD
	partx -u $CARD
	i=0
	while [ "$(blockdev --getsz "$ROOT_PART_DEV")" -ne $((TARGET_END - START + 1)) ] && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1))
	done
	if out=$(resize2fs "$ROOT_PART_DEV" 2>&1); then
		say "root resized to the end of the card"
	elif [ -d /run/pilab ] && echo "$out" | grep -q "Permission denied"; then
		# Online resizing needs CAP_SYS_RESOURCE, which a container running the lab may lack:
		# the lab's kernel grows the file system before mounting it at the reboot below.
		touch /run/pilab/resize-root
		say "root resized to the end of the card (its file system grows at the reboot)"
	else
		say "root resize failed: $out"
	fi
else
	say "root not resized (not the last partition, or already at the card's end)"
fi

/usr/lib/raspberrypi-sys-mods/regenerate_ssh_host_keys && say "ssh host keys regenerated"

# fix_partuuid: a new disk identifier, written where the old one was named.
OLD=$(sfdisk --disk-id $CARD | sed 's/^0x//')
NEW=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
if sfdisk --disk-id $CARD "0x$NEW" >/dev/null 2>&1; then
	sed -i "s/$OLD/$NEW/g" /etc/fstab
	put_cmdline "$(cmdline | sed "s/$OLD/$NEW/")"
	say "disk identifier $OLD -> $NEW"
fi
sync
reboot -f
sleep 5
