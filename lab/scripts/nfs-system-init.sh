#!/bin/sh
# The real init of the lab's NFS system (systemd on a pimaster's), in place of /sbin/init in
# the lab's NFS root. The NFS system's first init (pkg/netboot's nfs-init.sh, named by init=)
# starts it once the node's root is its own RAM overlay over the read-only NFS root. It tells
# the lab's "kernel" (boot.sh) so, waits for /dev, /proc, /run…, then runs sshd.
touch /run/pilab-root-ready || exit 1 # a read-only root: no init= made this node a writable one
while [ ! -e /run/pilab-sshd_config ]; do sleep 0.05; done
exec /bin/sh /run/pilab-bin/stage2.sh
