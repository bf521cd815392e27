#!/usr/bin/env bash
# Builds the piseduce Debian package for each architecture given; run by make package.
set -euo pipefail

usage() {
	cat <<'EOF2'
usage: admin/deb/package.sh [options] ARCH...

Builds dist/piseduce_VERSION-1_ARCH.deb for each ARCH (amd64, arm64, armhf): both daemons
cross-built without cgo, both systemd units, /etc/seducepp.conf as a conffile and the
maintainer scripts of admin/deb/, packaged by nfpm (built from the version pinned in
tools/go.mod, never downloaded as a binary).

Options:
  --version V      the package and release version (required; make package gives it)
  --date D         the build date the binaries report (default: now, or SOURCE_DATE_EPOCH)
  --dist DIR       where the packages go (default: dist)
  -h, --help       this help

Environment: MAINTAINER (the package's Maintainer field), GO (the go command).
EOF2
}

die() {
	printf 'package.sh: %s\n' "$*" >&2
	exit 2
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(cd "$HERE/../.." && pwd)
GO=${GO:-go}
VERSION=""
DATE=""
DIST=dist
ARCHS=()
while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	--version) [ $# -ge 2 ] || die "--version needs a value"; VERSION=$2; shift ;;
	--date) [ $# -ge 2 ] || die "--date needs a value"; DATE=$2; shift ;;
	--dist) [ $# -ge 2 ] || die "--dist needs a value"; DIST=$2; shift ;;
	-*) die "unknown option '$1' (see --help)" ;;
	*) ARCHS+=("$1") ;;
	esac
	shift
done
[ ${#ARCHS[@]} -gt 0 ] || die "no architecture given (amd64, arm64, armhf)"
# A Debian version: it starts with a digit, and holds only these characters.
[[ $VERSION =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "--version '$VERSION' is not a Debian version (e.g. 1.2.0)"
if [ -z "$DATE" ]; then
	DATE=$(date -u ${SOURCE_DATE_EPOCH:+-d "@$SOURCE_DATE_EPOCH"} +%Y-%m-%dT%H:%M:%SZ)
fi
export MAINTAINER=${MAINTAINER:-PiSeduce maintainers <piseduce@example.org>} VERSION
mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)

for arch in "${ARCHS[@]}"; do
	case $arch in
	amd64 | arm64 | armhf) ;;
	*) die "unknown architecture '$arch' (amd64, arm64, armhf)" ;;
	esac
done
NFPM=$DIST/.nfpm
"$GO" -C "$CHECKOUT/tools" build -o "$NFPM" github.com/goreleaser/nfpm/v2/cmd/nfpm

PKG=github.com/piseduce/piseduce/pkg/version
for arch in "${ARCHS[@]}"; do
	case $arch in
	amd64) goarch=amd64 goarm="" NFPM_ARCH=amd64 ;;
	arm64) goarch=arm64 goarm="" NFPM_ARCH=arm64 ;;
	armhf) goarch=arm goarm=7 NFPM_ARCH=arm7 ;;
	esac
	export NFPM_ARCH
	stage=$DIST/stage-$arch
	rm -rf "$stage"
	mkdir -p "$stage"
	(cd "$CHECKOUT" && CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm "$GO" build -trimpath \
		-ldflags "-s -w -X $PKG.version=$VERSION -X $PKG.date=$DATE" -o "$stage/" ./cmd/pifrontend ./cmd/pitasks ./cmd/piseduce)
	cp "$CHECKOUT/admin/pifrontend.service" "$CHECKOUT/admin/pitasks.service" "$CHECKOUT/README.md" \
		"$CHECKOUT/admin/grafana-dashboard.json" "$HERE/postinst" "$HERE/prerm" "$HERE/postrm" "$HERE/lintian-overrides" "$stage/"
	# The shipped configuration, with the paths of a packaged install instead of a checkout's.
	sed -e 's|^connection_url = sqlite://./data/piseduce.db$|connection_url = sqlite:///var/lib/piseduce/db/piseduce.db|' \
		-e 's|^ssh_key = ./data/id_ed25519$|ssh_key = /var/lib/piseduce/id_ed25519|' \
		"$CHECKOUT/seducepp.conf" >"$stage/seducepp.conf"
	if grep -q '^[^#]*\./data' "$stage/seducepp.conf"; then
		die "seducepp.conf still names ./data: update the paths package.sh rewrites"
	fi
	# Debian's machine-readable copyright file, around the license.
	{
		printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n'
		printf 'Upstream-Name: PiSeduce\nSource: https://github.com/piseduce/piseduce\n\n'
		printf 'Files: *\nCopyright: %s\nLicense: Expat\n' "$(sed -n 's/^Copyright (c) //p' "$CHECKOUT/LICENSE" | head -n1)"
		sed -n '/^Permission is hereby granted/,$p' "$CHECKOUT/LICENSE" | sed -e 's/^$/./' -e 's/^/ /'
	} >"$stage/copyright"
	cat >"$stage/changelog.yml" <<EOF2
- semver: "$VERSION-1"
  date: "$DATE"
  packager: "$MAINTAINER"
  deb:
    urgency: medium
    distributions: [stable]
  changes:
    - note: "PiSeduce $VERSION."
EOF2
	(cd "$stage" && "$NFPM" package --config "$HERE/nfpm.yaml" --packager deb --target "$DIST/")
done
