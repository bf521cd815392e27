package netboot

import _ "embed" // NFSInit

// NFSInitPath is where the NFS system's first init lives in the NFS root: init= of its
// cmdline.txt.
const NFSInitPath = "/usr/local/sbin/piseduce-nfs-init"

// NFSInit is that init (nfs-init.sh): it gives each node a writable layer of its own, in RAM,
// over the read-only NFS root, then starts the real init. admin/install.sh installs it.
//
//go:embed nfs-init.sh
var NFSInit string
