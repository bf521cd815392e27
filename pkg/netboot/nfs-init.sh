#!/bin/sh
# The NFS system's first init, installed in the NFS root as /usr/local/sbin/piseduce-nfs-init
# and named by init= in the NFS boot files' cmdline.txt. The NFS root is read-only to the
# nodes (exported ro and root_squash, mounted ro): this gives the node a writable layer of its
# own, in its RAM, then starts the real init. What a node writes stays in its RAM and is gone
# at its next boot; nothing reaches the pimaster's copy or another node.
#
#   /                an overlay: the NFS root below, a tmpfs of the node's above
#   /media/nfsroot   the NFS root itself, read-only (the tmpfs is its mnt/)
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

fail() {
	echo "piseduce-nfs-init: $*" >&2
	exit 1 # init ends: the kernel panics and says so on the console
}

# /mnt is an empty folder of the NFS root: the node's tmpfs goes there.
rw=/mnt
mount -n -t tmpfs -o mode=0755 piseduce-rw "$rw" || fail "cannot mount a tmpfs on $rw"
mkdir "$rw/upper" "$rw/work" "$rw/root"
mount -n -t overlay -o "lowerdir=/,upperdir=$rw/upper,workdir=$rw/work" piseduce-root "$rw/root" ||
	fail "cannot mount the overlay of the NFS root (is overlayfs in this kernel?)"
mkdir -p "$rw/root/media/nfsroot"
cd "$rw/root"
pivot_root . media/nfsroot || fail "pivot_root into the overlay failed"
exec chroot . /sbin/init "$@"
