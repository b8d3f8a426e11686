# cronium-agent. Run as root on Debian 12:
#   make demo   install what is missing, build, start containerd, build and import
#               the runtime images, run one job per runtime
#   make test   the same set-up, then the whole test suite
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

CONTAINERD_ADDRESS ?= /run/cronium-containerd/containerd.sock
IMAGE_CACHE        ?= /var/cache/cronium-agent/images
STATE_DIR          ?= /var/lib/cronium-agent
VERSION            ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
AGENT              := bin/cronium-agent
BACKEND            := bin/cronium-backend
GOTEST_FLAGS       ?= -count=1 -timeout 40m
export CONTAINERD_ADDRESS IMAGE_CACHE

# The agent as the demo and tests run it: our containerd, our state dir.
RUN_AGENT := CRONIUM_CONTAINERD_ADDRESS=$(CONTAINERD_ADDRESS) CRONIUM_STATE_DIR=$(STATE_DIR) $(AGENT)

.PHONY: all deps build containerd images images-arm64 import demo test profile unit bench bench-all gc clean stop package package-test vm-test

all: build

deps:
	@hack/deps.sh

# The agent, the program it runs inside jobs (cronium-job: found beside the
# agent), and the development backend (make demo and the README use both).
build: deps
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(AGENT) ./cmd/cronium-agent
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BACKEND) ./cmd/cronium-backend
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/cronium-job ./cmd/cronium-job

# hack/cgroups.sh: on a hybrid cgroup host (this VM), what crun needs to run
# jobs, as it does on a Debian 12 host (cgroup v2); see the script.
containerd: deps
	@hack/cgroups.sh
	@hack/containerd.sh >/dev/null

images: deps
	@hack/build-images.sh

# The runtime images for arm64 (the cronium-runtimes arm64 package), under
# qemu-user-static on another host: <runtime>-arm64-<hash>.tar in IMAGE_CACHE.
images-arm64: deps
	@ARCH=arm64 hack/build-images.sh

# Import the cached archives; containerd skips content it already has.
import: build containerd images
	@for rt in bash python node; do \
		$(RUN_AGENT) images import "$$(cat $(IMAGE_CACHE)/$$rt.path)" >/dev/null || exit 1; \
	done
	@$(RUN_AGENT) images list

demo: import
	@hack/demo.sh $(AGENT)
	@hack/demo-agent.sh $(AGENT) $(BACKEND)

test: import
	CRONIUM_TEST_CONTAINERD_ADDRESS=$(CONTAINERD_ADDRESS) \
	CRONIUM_REQUIRE_CONTAINERD=$(if $(CI),1,$(CRONIUM_REQUIRE_CONTAINERD)) \
		go test $(GOTEST_FLAGS) ./... 2>&1 | tee /tmp/cronium-test.log; exit $${PIPESTATUS[0]}
	@$(MAKE) --no-print-directory leftovers
	@$(MAKE) --no-print-directory package-test
	@$(MAKE) --no-print-directory leftovers

# The .deb and .rpm packages (cronium-agent, cronium-backend, cronium-runtimes)
# for amd64 and arm64 into dist/, with nfpm (go tool nfpm): packaging/build.sh.
package: deps images
	@VERSION=$(VERSION) IMAGE_CACHE=$(IMAGE_CACHE) packaging/build.sh

# Build the packages, then check their contents and scripts, install them in a
# clean Debian 12 root (debootstrap, cached in /var/cache/cronium-agent/pkgtest)
# and run a job there with the installed agent; the .rpm into an empty root.
package-test: package
	@hack/package-test.sh

# Boot a Debian 12 VM (qemu, TCG, no network device) and test the .debs and
# systemd units under a real systemd: hack/vm-test.sh (8-16 min on 2 cores;
# the first run also builds the cached VM image, about 5 min). Not part of
# make test, for CI's time budget.
vm-test: package
	@hack/vm-test.sh

# Unit tests only: no root, no containerd.
unit:
	go test -short ./...

# One table of the agent's figures, each beside its `runc run` floor measured
# in the same run, written to bench/latest.md with the machine and the commit
# (hack/bench.sh; about 5 min on 2 cores).
bench: import
	@CONTAINERD_ADDRESS=$(CONTAINERD_ADDRESS) hack/bench.sh

# make bench, then every other benchmark (the journal, the network set-up,
# claims, output, the sidecar, SSH), printed only.
bench-all: bench
	CRONIUM_TEST_CONTAINERD_ADDRESS=$(CONTAINERD_ADDRESS) \
		go test -run '^$$' -bench . -skip 'BenchmarkTrivialJob|BenchmarkThroughput|BenchmarkE2E$$|BenchmarkE2EJournal|BenchmarkIdleClaimLatency' -benchtime 100x ./runner/container/ ./cni/ ./cmd/cronium-agent/
	CRONIUM_TEST_CONTAINERD_ADDRESS=$(CONTAINERD_ADDRESS) \
		go test -run '^$$' -bench BenchmarkE2EJournal -benchtime 1x -count 3 ./cmd/cronium-agent/
	CRONIUM_TEST_CONTAINERD_ADDRESS=$(CONTAINERD_ADDRESS) \
		go test -run '^$$' -bench BenchmarkIdleClaimLatency -benchtime 10x ./cmd/cronium-agent/
	go test -run '^$$' -bench . ./runner/output/ ./sidecar/
	go test -run '^$$' -bench . -benchtime 3x ./state/journal/ ./state/syncer/
	go test -run '^$$' -bench BenchmarkSSH -benchtime 30x ./runner/sshexec/

# Whole-host CPU profile of 100 trivial jobs, by command (process accounting).
profile: import
	@hack/profile-jobs.sh

# Fail when anything of the agent's is left on this host.
leftovers:
	@hack/leftovers.sh

gc: build containerd
	$(RUN_AGENT) gc

stop:
	@hack/demo-agent.sh --stop
	@hack/containerd.sh stop

clean:
	rm -rf bin dist
