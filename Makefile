# PiSeduce. `make run` starts both daemons on the embedded SQLite database; `make test` runs
# every test (the virtual Pi lab and end-to-end tests need root on Linux: without it they are
# skipped, loudly).
GO      ?= go
BIN     := bin
DIST    := dist
CMDS    := pifrontend pitasks piseduce
export CGO_ENABLED ?= 0

# The version and build date the binaries report (--version, piseduce_build_info, the admins'
# footer): the last v* tag, else 0.0.0+git<commit date>.<commit>; make VERSION=1.2.0 sets it.
# The build date is now, or SOURCE_DATE_EPOCH for a reproducible build.
ifeq ($(origin VERSION),undefined)
VERSION := $(shell git describe --tags --match 'v[0-9]*' 2>/dev/null | sed -e 's/^v//' -e 's/-\([0-9]*\)-g/+\1.g/')
ifeq ($(VERSION),)
VERSION := 0.0.0+git$(shell git log -1 --format=%cd.%h --date=format:%Y%m%d 2>/dev/null)
endif
endif
BUILD_DATE := $(shell date -u $${SOURCE_DATE_EPOCH:+-d @$$SOURCE_DATE_EPOCH} +%Y-%m-%dT%H:%M:%SZ)
VERSION_PKG := github.com/piseduce/piseduce/pkg/version
LDFLAGS := -s -w -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).date=$(BUILD_DATE)

.PHONY: all build release package run test fuzz bench bench-lab bench-cpu bench-soak vet fmt deps lab lab-down demo clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

# The pimaster is usually a Raspberry Pi: arm64 (Pi 4/5, 64-bit OS) and armv7 (32-bit OS).
release: build
	@mkdir -p $(DIST)
	for c in $(CMDS); do \
		GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/$$c-linux-amd64 ./cmd/$$c && \
		GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/$$c-linux-arm64 ./cmd/$$c && \
		GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/$$c-linux-armv7 ./cmd/$$c || exit 1; \
	done
	@ls -l $(DIST)

# Debian packages for a pimaster: amd64, arm64 (Pi 4/5, 64-bit OS), armhf (32-bit OS); see
# admin/deb/package.sh. make package DEB_ARCHS=arm64 builds one.
DEB_ARCHS ?= amd64 arm64 armhf
package:
	bash admin/deb/package.sh --version '$(VERSION)' --date '$(BUILD_DATE)' --dist $(DIST) $(DEB_ARCHS)
	@ls -l $(DIST)/*.deb

# Both daemons with ./seducepp.conf (SQLite under ./data); Ctrl-C stops both.
run: build
	@mkdir -p data
	@$(BIN)/pitasks -config seducepp.conf & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid' EXIT INT TERM; \
	$(BIN)/pifrontend -config seducepp.conf

# Packages that bring up the virtual Pi lab share one subnet and its names: they run one at a
# time, after the others.
LAB_PKGS = ./lab/... ./pkg/deploy/... ./pkg/discovery/... ./cmd/pitasks/... ./pkg/web ./cmd/piseduce/...
test: vet
	@[ "$$(id -u)" = 0 ] || printf '\n*** WARNING: not root: the virtual Pi lab, sshd and end-to-end tests will be SKIPPED ***\n\n' >&2
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m $$($(GO) list ./... | grep -vxF "$$($(GO) list $(LAB_PKGS))")
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 60m -p 1 $(LAB_PKGS)

# Each fuzz target for a short while (longer: make fuzz FUZZTIME=10m).
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./pkg/config
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./pkg/clusterdesc
	$(GO) test -run '^$$' -fuzz '^FuzzParseV3$$' -fuzztime $(FUZZTIME) ./pkg/power
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./pkg/sshkey
	$(GO) test -run '^$$' -fuzz '^FuzzUsed$$' -fuzztime $(FUZZTIME) ./pkg/usedmap

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20x ./pkg/engine

# pitasks deploying 1, 5 and 20 virtual Pis at once vs a plain ssh+dd baseline (root; ~5 min).
bench-lab:
	bash bench/run.sh $(BENCH_FLAGS)

bench-cpu:
	bash bench/cpu.sh

# Both daemons' resident memory under 1,000 nodes, 100 viewers and churn, on SQLite and MariaDB
# (bench/soak.sh; 4 min per database, PISEDUCE_SOAK_DURATION=1h for an hour).
bench-soak:
	bash bench/soak.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Installs what the tests need on Debian (packages only; nothing is started).
deps:
	sh lab/install-deps.sh
	sh admin/test-deps.sh

lab:
	$(GO) run ./lab/cmd/pilab up -n $(or $(N),4)

# The newcomer's demo (root, Linux): the lab, registered, both daemons; see lab/demo.sh.
demo:
	bash lab/demo.sh

lab-down:
	$(GO) run ./lab/cmd/pilab down

clean:
	rm -rf $(BIN) $(DIST)
