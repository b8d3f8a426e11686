#!/usr/bin/env bash
# Build the packages with nfpm (go tool nfpm): cronium-agent, cronium-backend
# and cronium-runtimes, as .deb and .rpm, for each architecture.
#
#   packaging/build.sh            (make package runs it; run from anywhere)
#
# Environment:
#   VERSION      the binaries' version (-X main.version; default: git describe)
#   PKG_VERSION  the packages' version (default: made from VERSION, see
#                pkg_version below)
#   ARCHES       default "amd64 arm64" (Debian names; Go's are the same)
#   PACKAGES     default "cronium-agent cronium-backend cronium-runtimes"
#   FORMATS      default "deb rpm"
#   DIST         output directory (default dist/ in the repository)
#   IMAGE_CACHE  where hack/build-images.sh left the runtime images (default
#                /var/cache/cronium-agent/images; <runtime>.path names each of
#                the host's architecture, <runtime>-<arch>.path those of
#                another, which ARCH=<arch> hack/build-images.sh builds)
#   AGENT_YAML   the configuration file to ship (default packaging/agent.yaml;
#                the package test ships a changed one to test conffiles)
#
# cronium-runtimes is built for an architecture only when the cached images
# are of that architecture (hack/build-images.sh builds the host's, make
# images-arm64 arm64's): for any other it says so and skips it.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
ARCHES=${ARCHES:-amd64 arm64}
PACKAGES=${PACKAGES:-cronium-agent cronium-backend cronium-runtimes}
FORMATS=${FORMATS:-deb rpm}
DIST=${DIST:-$REPO/dist}
IMAGE_CACHE=${IMAGE_CACHE:-/var/cache/cronium-agent/images}
AGENT_YAML=${AGENT_YAML:-$REPO/packaging/agent.yaml}
RUNTIMES=(bash python node)
HOST_ARCH=$(dpkg --print-architecture)

log() { printf '%s\n' "$*" >&2; }
die() { log "package: $*"; exit 1; }

# pkg_version: a version dpkg and rpm both accept and order sensibly, from
# VERSION: a tag (v1.2.3, 1.2.3-rc1, v1.2.3-4-gabc1234[-dirty]) keeps its
# number; anything else (an untagged commit: abc1234[-dirty]) becomes
# 0.0.0~git<commits>.g<hash>[.dirty], which sorts before any release and
# grows with each commit. No "-" remains (dpkg reads it as the revision,
# rpm refuses it).
pkg_version() {
	local v=${VERSION#v} n
	if [[ $v =~ ^[0-9]+\.[0-9]+ ]]; then
		if [[ $v =~ ^(.*)-([0-9]+)-g([0-9a-f]+)(-dirty)?$ ]]; then
			v="${BASH_REMATCH[1]}+git${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}${BASH_REMATCH[4]:+.dirty}"
		fi
		v=${v//-/\~}
	else
		n=$(git rev-list --count HEAD 2>/dev/null || echo 0)
		v="0.0.0~git$n.g${v//-/.}"
	fi
	[[ $v =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "cannot make a package version of '$VERSION' (got '$v'): set PKG_VERSION"
	echo "$v"
}
PKG_VERSION=${PKG_VERSION:-$(pkg_version)}

# image_arch ARCHIVE: the architecture of the (single) image in an OCI
# archive, from its configuration.
image_arch() {
	/usr/bin/python3 - "$1" <<-'EOF'
		import json, sys, tarfile
		with tarfile.open(sys.argv[1]) as t:
		    blob = lambda d: json.load(t.extractfile("blobs/" + d.replace(":", "/")))
		    desc = json.load(t.extractfile("index.json"))["manifests"][0]
		    m = blob(desc["digest"])
		    if "manifests" in m:  # an index: its first manifest
		        m = blob(m["manifests"][0]["digest"])
		    print(blob(m["config"]["digest"])["architecture"])
	EOF
}

# stage ARCH: the files of ARCH's packages in $STAGE.
stage() {
	local arch=$1 rt archive
	rm -rf "$STAGE"
	mkdir -p "$STAGE/rpm" "$STAGE/runtimes"
	local ldflags="-s -w -X main.version=$VERSION"
	if [[ " $PACKAGES " == *" cronium-agent "* ]]; then
		CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -ldflags "$ldflags" -o "$STAGE/cronium-agent" ./cmd/cronium-agent
		CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -ldflags "-s -w" -o "$STAGE/cronium-job" ./cmd/cronium-job
	fi
	if [[ " $PACKAGES " == *" cronium-backend "* ]]; then
		CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -ldflags "$ldflags" -o "$STAGE/cronium-backend" ./cmd/cronium-backend
	fi
	install -m 0640 "$AGENT_YAML" "$STAGE/agent.yaml"
	# The RPM units read /etc/sysconfig/<name> instead of /etc/default/<name>.
	local unit
	for unit in cronium-agent cronium-backend; do
		sed "s|^EnvironmentFile=-/etc/default/$unit\$|EnvironmentFile=-/etc/sysconfig/$unit|" "packaging/systemd/$unit.service" >"$STAGE/rpm/$unit.service"
		grep -q "EnvironmentFile=-/etc/sysconfig/$unit\$" "$STAGE/rpm/$unit.service" || die "$unit.service: no EnvironmentFile=-/etc/default/$unit to turn into /etc/sysconfig"
	done
	{
		sed "s|/etc/default/cronium-agent|/etc/sysconfig/cronium-agent|g" packaging/default/cronium-agent
		cat <<-'EOF'
			#
			# RHEL, Fedora and their kin install the CNI plugins in /usr/libexec/cni,
			# which the default network.pluginDirs (/usr/lib/cni, /opt/cni/bin) does
			# not list. Set here, this wins over network.pluginDirs in agent.yaml.
			CRONIUM_NETWORK_PLUGIN_DIRS=/usr/libexec/cni,/usr/lib/cni,/opt/cni/bin
		EOF
	} >"$STAGE/rpm/cronium-agent.env"
	RUNTIMES_STAGED=false
	if [[ " $PACKAGES " == *" cronium-runtimes "* ]]; then
		# The host's architecture's images are <runtime>.path's, another's
		# <runtime>-<arch>.path's (hack/build-images.sh with ARCH=<arch>).
		local suffix="" make=images name
		if [[ $arch != "$HOST_ARCH" ]]; then
			suffix=-$arch make=images-$arch
		fi
		for rt in "${RUNTIMES[@]}"; do
			if [[ $arch == "$HOST_ARCH" ]]; then
				[[ -f $IMAGE_CACHE/$rt.path ]] || die "no $IMAGE_CACHE/$rt.path: build the runtime images first (make images)"
			elif [[ ! -f $IMAGE_CACHE/$rt$suffix.path ]]; then
				log "cronium-runtimes: no $arch images (no $IMAGE_CACHE/$rt$suffix.path; ARCH=$arch hack/build-images.sh, or make $make, builds them): not built for $arch"
				return 0
			fi
			archive=$(cat "$IMAGE_CACHE/$rt$suffix.path")
			[[ -f $archive ]] || die "$archive (named by $IMAGE_CACHE/$rt$suffix.path) is missing: make $make"
			local got
			got=$(image_arch "$archive") || die "cannot read the architecture of $archive"
			if [[ $got != "$arch" ]]; then
				log "cronium-runtimes: no $arch images ($archive is $got): not built for $arch"
				return 0
			fi
			# The same names in every architecture's package:
			# <runtime>-<hash>.tar. A hard link when the cache is on the same
			# file system: no copy.
			name=$(basename "$archive")
			name=${name/#"$rt$suffix-"/"$rt-"}
			ln "$archive" "$STAGE/runtimes/$name" 2>/dev/null || cp "$archive" "$STAGE/runtimes/$name"
		done
		RUNTIMES_STAGED=true
	fi
}

[[ -x $GO ]] || die "go not found (set GO)"
mkdir -p "$DIST"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cronium-package.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/stage
export PKG_VERSION STAGE

log "packages $PKG_VERSION (binaries $VERSION) for $ARCHES into $DIST"
for arch in $ARCHES; do
	start=$(date +%s%N)
	stage "$arch"
	for pkg in $PACKAGES; do
		if [[ $pkg == cronium-runtimes ]] && ! $RUNTIMES_STAGED; then
			continue
		fi
		for fmt in $FORMATS; do
			ARCH=$arch go tool nfpm package --config "packaging/nfpm/$pkg.yaml" --packager "$fmt" --target "$DIST/" >/dev/null ||
				die "nfpm failed for $pkg $fmt $arch"
		done
	done
	log "$arch: $(awk -v s="$start" -v e="$(date +%s%N)" 'BEGIN { printf "%.1f", (e - s) / 1e9 }')s"
done
# Only this version's packages, of the architectures built now or before.
find "$DIST" -maxdepth 1 -type f \( -name '*.deb' -o -name '*.rpm' \) ! -name "*$PKG_VERSION*" -print -delete | sed 's/^/removed older /' >&2
ls -l "$DIST" >&2
