#!/usr/bin/env bash
# Build the runtime images (runtimes/images/<runtime>/) as OCI image archives.
#
#   hack/build-images.sh [runtime...]      (default: every recipe; run as root)
#
# Each archive is cached by a hash of its recipe, this script, the packer and
# the architecture: ${IMAGE_CACHE}/<runtime>-<hash>.tar, plus <runtime>.ref
# (full image reference) and <runtime>.path (archive path) for the scripts
# that import it. Images of another architecture than the host's (ARCH) go
# beside them as <runtime>-<arch>-<hash>.tar, <runtime>-<arch>.ref and
# <runtime>-<arch>.path.
#
# Environment: ARCH (Debian architecture of the images; default: the host's.
# Another one runs its binaries under qemu-user-static through binfmt_misc,
# see foreign_setup), IMAGE_CACHE (default /var/cache/cronium-agent/images),
# DEBIAN_MIRROR (default http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR
# (default http://deb.debian.org/debian-security), SOURCE_DATE_EPOCH (image
# creation time; default: now), GO (go binary).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE_CACHE=${IMAGE_CACHE:-/var/cache/cronium-agent/images}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
REF_PREFIX=cronium.local/runtimes
RECIPES=runtimes/images
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf '%s\n' "$*" >&2; }
die() { log "build-images: $*"; exit 1; }

# list FILE: the non-empty, non-comment lines of FILE (nothing if it is missing).
list() {
	[[ -f $1 ]] || return 0
	sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$1"
}

# write_atomic FILE CONTENT
write_atomic() {
	printf '%s\n' "$2" >"$1.tmp.$$"
	mv -f "$1.tmp.$$" "$1"
}

# oci_platform: the OCI "arch variant" of dpkg's architecture.
oci_platform() {
	case $1 in
	amd64 | arm64 | riscv64 | s390x | mips64le) echo "$1" ;;
	armhf) echo "arm v7" ;;
	armel) echo "arm v5" ;;
	i386) echo "386" ;;
	ppc64el) echo "ppc64le" ;;
	*) die "unsupported architecture $1" ;;
	esac
}

# qemu_arch DEB_ARCH: the qemu-user name of DEB_ARCH (qemu-<name>).
qemu_arch() {
	case $1 in
	amd64) echo x86_64 ;;
	arm64) echo aarch64 ;;
	armhf | armel) echo arm ;;
	ppc64el) echo ppc64le ;;
	i386 | riscv64 | s390x | mips64el) echo "$1" ;;
	*) die "unsupported architecture $1" ;;
	esac
}

# elf_machine DEB_ARCH: the ELF e_machine of DEB_ARCH's binaries.
elf_machine() {
	case $1 in
	amd64) echo 62 ;;
	arm64) echo 183 ;;
	armhf | armel) echo 40 ;;
	i386) echo 3 ;;
	ppc64el) echo 21 ;;
	riscv64) echo 243 ;;
	s390x) echo 22 ;;
	mips64el) echo 8 ;;
	*) die "unsupported architecture $1" ;;
	esac
}

# file_machine FILE: the ELF e_machine of FILE (empty if it is not ELF).
file_machine() {
	local b
	read -r -a b <<<"$(od -An -v -tu1 -w20 -N20 "$1" 2>/dev/null)"
	if ((${#b[@]} != 20)) || [[ ${b[*]:0:4} != "127 69 76 70" ]]; then
		return 0
	fi
	if ((b[5] == 2)); then echo $((b[18] * 256 + b[19])); else echo $((b[19] * 256 + b[18])); fi
}

# foreign_setup: let this host run DEB_ARCH's binaries, which debootstrap's
# second stage and update_packages run in the chroot: qemu-user-static's
# interpreter registered with binfmt_misc. Debian registers it with the F
# flag (the kernel opens the interpreter at registration), so it works in a
# chroot with no copy of qemu inside, and the image gets none.
foreign_setup() {
	local q bm=/proc/sys/fs/binfmt_misc
	[[ $HOST_ARCH == amd64 && $DEB_ARCH == i386 ]] && return 0 # runs natively
	q=qemu-$(qemu_arch "$DEB_ARCH")
	if [[ ! -x /usr/bin/$q-static ]] || ! command -v update-binfmts >/dev/null; then
		log "installing qemu-user-static and binfmt-support (images for $DEB_ARCH)"
		local pkgs=(qemu-user-static binfmt-support)
		apt-get install -y --no-install-recommends "${pkgs[@]}" >&2 ||
			{ apt-get update >&2 && apt-get install -y --no-install-recommends "${pkgs[@]}" >&2; }
	fi
	if [[ ! -e $bm/status ]]; then
		mount -t binfmt_misc binfmt_misc "$bm" || die "cannot mount binfmt_misc on $bm (needed to run $DEB_ARCH binaries)"
	fi
	[[ $(cat "$bm/status") == enabled ]] || echo 1 >"$bm/status"
	if [[ ! -e $bm/$q ]]; then
		update-binfmts --enable "$q" >&2 || update-binfmts --import "$q" >&2 || true
	fi
	if [[ ! -e $bm/$q ]] || ! grep -qx enabled "$bm/$q"; then
		die "binfmt_misc has no enabled $q (update-binfmts --enable $q)"
	fi
	grep -q '^flags:.*F' "$bm/$q" || die "binfmt_misc's $q lacks the F (fix binary) flag, so it cannot run in a chroot"
}

# smoke ROOTFS RUNTIME: the root is DEB_ARCH's and its default command runs
# (under qemu for a foreign architecture): dpkg's architecture, the ELF
# machine of the command's binary, and "<cmd> --version" in the chroot.
smoke() {
	local r=$1 rt=$2 cmd=() got bin
	got=$(chroot "$r" /usr/bin/dpkg --print-architecture) || die "$rt: cannot run dpkg in the root"
	[[ $got == "$DEB_ARCH" ]] || die "$rt: the root's dpkg architecture is $got, not $DEB_ARCH"
	mapfile -t cmd < <(list "$REPO/$RECIPES/$rt/cmd")
	((${#cmd[@]})) || cmd=(/bin/sh)
	# shellcheck disable=SC2016 # expanded by the root's shell
	bin=$(chroot "$r" /usr/bin/env PATH="$IMAGE_PATH" /bin/sh -c 'readlink -f "$(command -v "$1")"' sh "${cmd[0]}") || bin=
	[[ $bin == /* ]] || die "$rt: no ${cmd[0]} in the root"
	got=$(file_machine "$r$bin")
	[[ $got == "$(elf_machine "$DEB_ARCH")" ]] || die "$rt: $bin has ELF machine '${got}', not $DEB_ARCH's $(elf_machine "$DEB_ARCH")"
	got=$(chroot "$r" /usr/bin/env -i PATH="$IMAGE_PATH" LANG=C.UTF-8 "${cmd[0]}" --version </dev/null 2>&1) ||
		die "$rt: ${cmd[0]} --version failed in the root: $got"
	log "$rt: smoke: $bin ($DEB_ARCH) runs: $(head -n1 <<<"$got")"
}

# recipe_hash RUNTIME: first 12 hex digits of a sha256 over the recipe files,
# this script and the packer's Go sources (names and contents), the suite and
# the architecture.
recipe_hash() {
	(
		cd "$REPO"
		{
			find "$RECIPES/$1" -type f
			echo hack/build-images.sh
			find runtimes/imagebuild cmd/cronium-imagepack -maxdepth 1 -type f -name '*.go' ! -name '*_test.go'
		} | LC_ALL=C sort | xargs -d '\n' sha256sum
		echo "suite=$SUITE arch=$DEB_ARCH"
	) | sha256sum | cut -c1-12
}

# shellcheck source=hack/lib-fs.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-fs.sh"

# trim ROOTFS [CLEANUP_FILE]: remove what a job never needs.
trim() {
	local r=${1:?} p
	# Docs, except the copyright files; man/info pages; translations; lintian.
	if [[ -d $r/usr/share/doc ]]; then
		find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
		find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
	fi
	rm -rf "$r"/usr/share/{man,info,groff,lintian,linda,bash-completion}
	if [[ -d $r/usr/share/locale ]]; then
		find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
	fi
	if [[ -d $r/usr/lib/locale ]]; then # keep C.utf8 only
		find "$r/usr/lib/locale" -mindepth 1 -maxdepth 1 ! -name C.utf8 -exec rm -rf {} +
	fi
	# apt lists and caches (apt and dpkg stay, with dpkg's database), logs.
	find "$r/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial ! -name lock -exec rm -rf {} +
	rm -rf "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/archives/partial/*
	rm -f "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old "$r"/var/cache/ldconfig/aux-cache
	find "$r/var/log" -type f -delete
	rm -rf "$r"/tmp/* "$r"/var/tmp/* "$r"/root/.cache
	# The runtime provides /dev, the resolver, the host name.
	rm -rf "${r:?}"/dev/*
	: >"$r/etc/resolv.conf"
	: >"$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
	# Recipe-specific paths (relative to /, globs allowed).
	if [[ -n ${2:-} ]]; then
		while read -r p; do
			[[ $p == /* ]] && p=${p#/}
			[[ $p == "" || $p == *..* ]] && die "bad cleanup path '$p' in $2"
			# shellcheck disable=SC2086 # globs are wanted
			(cd "$r" && rm -rf --one-file-system -- $p)
		done < <(list "$2")
	fi
}

# setup_image ROOTFS: the job user and the fixed directories.
setup_image() {
	local r=${1:?}
	grep -q '^cronium:' "$r/etc/passwd" || echo 'cronium:x:1000:1000:Cronium job:/workspace:/bin/bash' >>"$r/etc/passwd"
	grep -q '^cronium:' "$r/etc/group" || echo 'cronium:x:1000:' >>"$r/etc/group"
	grep -q '^cronium:' "$r/etc/shadow" || echo 'cronium:*:19000:0:99999:7:::' >>"$r/etc/shadow"
	grep -q '^cronium:' "$r/etc/gshadow" || echo 'cronium:!::' >>"$r/etc/gshadow"
	install -d -m 0755 -o 1000 -g 1000 "$r/workspace"
	install -d -m 0755 -o 0 -g 0 "$r/cronium"
	install -d -m 1777 "$r/tmp" "$r/var/tmp"
	chmod 1777 "$r/tmp" "$r/var/tmp"
	# Packages installed later (e.g. in a derived image) skip docs too.
	cat >"$r/etc/dpkg/dpkg.cfg.d/cronium-nodoc" <<-'EOF'
		path-exclude=/usr/share/doc/*
		path-include=/usr/share/doc/*/copyright
		path-exclude=/usr/share/man/*
		path-exclude=/usr/share/info/*
		path-exclude=/usr/share/groff/*
		path-exclude=/usr/share/lintian/*
		path-exclude=/usr/share/locale/*
		path-include=/usr/share/locale/locale.alias
	EOF
}

# update_packages ROOTFS: the latest bookworm-updates and bookworm-security.
update_packages() {
	local r=${1:?}
	cat >"$r/etc/apt/sources.list" <<-EOF
		deb $DEBIAN_MIRROR $SUITE main
		deb $DEBIAN_MIRROR $SUITE-updates main
		deb $DEBIAN_SECURITY_MIRROR $SUITE-security main
	EOF
	cp /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
	local apt=(chroot "$r" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH="$IMAGE_PATH"
		apt-get -q -o Acquire::Languages=none -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef)
	"${apt[@]}" update
	"${apt[@]}" -y upgrade
	"${apt[@]}" clean
}

# build RUNTIME HASH REF ARCHIVE
build() {
	local rt=$1 hash=$2 ref=$3 archive=$4
	local dir=$WORK/$rt rootfs=$WORK/$rt/rootfs packages cmdargs=() a
	mkdir -p "$dir"
	packages=$(list "$REPO/$RECIPES/$rt/packages" | paste -sd, -)
	[[ -n $packages ]] || die "$rt: no packages in $RECIPES/$rt/packages"

	log "$rt: debootstrap $SUITE $DEB_ARCH ($packages)"
	if ! debootstrap --variant=minbase --arch="$DEB_ARCH" --include="$packages" \
		--cache-dir="$IMAGE_CACHE/debs" "$SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$dir/debootstrap.log" 2>&1; then
		tail -n 40 "$dir/debootstrap.log" >&2
		[[ -f $rootfs/debootstrap/debootstrap.log ]] && tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2
		die "$rt: debootstrap failed"
	fi
	unmount_under "$rootfs"
	log "$rt: security and stable updates"
	update_packages "$rootfs" >"$dir/update.log" 2>&1 || { tail -n 40 "$dir/update.log" >&2; die "$rt: updating packages failed"; }
	setup_image "$rootfs"
	trim "$rootfs" "$REPO/$RECIPES/$rt/cleanup"
	smoke "$rootfs" "$rt"
	du -sx -B1 "$rootfs" | cut -f1 >"$dir/size"

	while IFS= read -r a; do cmdargs+=(--cmd "$a"); done < <(list "$REPO/$RECIPES/$rt/cmd")
	local plat
	read -r -a plat <<<"$(oci_platform "$DEB_ARCH")"
	log "$rt: packing $ref"
	TMPDIR=$WORK "$(packer)" --rootfs "$rootfs" --ref "$ref" --out "$archive.tmp.$$" \
		--arch "${plat[0]}" ${plat[1]:+--variant "${plat[1]}"} \
		--env "PATH=$IMAGE_PATH" --env LANG=C.UTF-8 --workdir /workspace --user 1000:1000 \
		--label "io.cronium.runtime=$rt" --label "io.cronium.recipe-hash=$hash" \
		--created "@${SOURCE_DATE_EPOCH:-$(date +%s)}" \
		"${cmdargs[@]}"
	mv -f "$archive.tmp.$$" "$archive"
	write_atomic "${archive%.tar}.size" "$(cat "$dir/size")"
	remove_tree "$dir"

	# Older archives of this runtime and architecture (<runtime>-<hash>.tar
	# never matches <runtime>-<arch>-<hash>.tar, nor the other way round).
	local old
	for old in "$IMAGE_CACHE/$rt$SUFFIX"-????????????.tar; do
		[[ -e $old && $old != "$archive" ]] || continue
		log "$rt: removing old $old"
		rm -f "$old" "${old%.tar}.size"
	done
}

# packer: path of the cronium-imagepack binary, built once per run.
packer() {
	local bin=$WORK/cronium-imagepack
	if [[ ! -x $bin ]]; then
		(cd "$REPO" && "$GO" build -buildvcs=false -o "$bin" ./cmd/cronium-imagepack) >&2
	fi
	echo "$bin"
}

main() {
	local rt runtimes=("$@")
	if ((${#runtimes[@]} == 0)); then
		for rt in "$REPO/$RECIPES"/*/packages; do
			runtimes+=("$(basename "$(dirname "$rt")")")
		done
	fi
	for rt in "${runtimes[@]}"; do
		[[ $rt =~ ^[a-z0-9][a-z0-9_-]*$ && -f $REPO/$RECIPES/$rt/packages ]] ||
			die "unknown runtime '$rt' (no $RECIPES/$rt/packages)"
		# Its files would be those of another runtime's foreign images.
		[[ $rt =~ -(amd64|arm64|armhf|armel|i386|ppc64el|riscv64|s390x|mips64el)$ ]] &&
			die "runtime '$rt': a name must not end in -<architecture>"
	done

	((EUID == 0)) || die "must run as root (debootstrap, chroot, file owners)"
	if ! command -v debootstrap >/dev/null || [[ ! -f /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
		log "installing debootstrap and debian-archive-keyring"
		local pkgs=(debootstrap debian-archive-keyring)
		apt-get install -y "${pkgs[@]}" >&2 || { apt-get update >&2 && apt-get install -y "${pkgs[@]}" >&2; }
	fi
	GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
	[[ -x $GO ]] || die "go not found (set GO)"
	HOST_ARCH=$(dpkg --print-architecture)
	DEB_ARCH=${ARCH:-$HOST_ARCH}
	oci_platform "$DEB_ARCH" >/dev/null
	# The host's architecture keeps the plain names; another one is named.
	SUFFIX=
	if [[ $DEB_ARCH != "$HOST_ARCH" ]]; then
		SUFFIX=-$DEB_ARCH
		foreign_setup
	fi

	mkdir -p "$IMAGE_CACHE/debs"
	exec 9>"$IMAGE_CACHE/.lock"
	flock 9
	WORK=$(mktemp -d "$IMAGE_CACHE/.build.XXXXXX")
	trap 'remove_tree "$WORK"' EXIT

	local summary=() hash ref archive start secs
	for rt in "${runtimes[@]}"; do
		start=$(date +%s%N)
		hash=$(recipe_hash "$rt")
		ref=$REF_PREFIX/$rt:$hash
		archive=$IMAGE_CACHE/$rt$SUFFIX-$hash.tar
		if [[ -f $archive ]]; then
			log "$rt: cached $archive"
		else
			build "$rt" "$hash" "$ref" "$archive"
		fi
		write_atomic "$IMAGE_CACHE/$rt$SUFFIX.ref" "$ref"
		write_atomic "$IMAGE_CACHE/$rt$SUFFIX.path" "$archive"
		secs=$(awk -v s="$start" -v e="$(date +%s%N)" 'BEGIN { printf "%.1f", (e - s) / 1e9 }')
		summary+=("$(printf '%-8s %-44s %9s %9s %7ss' "$rt" "$ref" \
			"$(numfmt --to=iec-i --suffix=B "$(stat -c %s "$archive")")" \
			"$(numfmt --to=iec-i --suffix=B "$(cat "${archive%.tar}.size" 2>/dev/null || echo 0)")" "$secs")")
	done

	printf '%-8s %-44s %9s %9s %8s\n' runtime ref archive unpacked time
	printf '%s\n' "${summary[@]}"
}

main "$@"
