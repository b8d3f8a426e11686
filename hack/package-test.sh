#!/usr/bin/env bash
# Test the packages in dist/ (make package-test; make test runs it last).
#
#   hack/package-test.sh      (root; builds the packages with `make package`
#                              when dist/ has none for this host)
#
# 1. Contents: files, modes, conffiles, dependencies and scripts of every .deb
#    (dpkg-deb) and .rpm (rpm -qp), every architecture.
# 2. Debian: a clean bookworm root (debootstrap, cached in $PKGTEST_CACHE), in
#    which apt installs the three .debs with their dependencies from the
#    Debian archive; files, modes, the state directory, the maintainer
#    scripts' calls to systemctl (a stand-in records them: systemd does not
#    run there), `systemd-analyze verify` of the units (Debian's and the
#    RPM's), exit status 78 of an unconfigured agent; an upgrade to a newer
#    version with a changed conffile (the admin's edits are kept, the agent
#    is try-restarted on the new binary); then, with the Debian containerd
#    the package pulled in running inside the root (see run_jobs), the
#    installed agent imports the images of the installed cronium-runtimes,
#    passes `doctor` (when the binary has it) and runs a job with `exec`;
#    then the development backend and the agent run as their units start
#    them (environment files; NOTIFY_SOCKET for the agent): READY=1, a job
#    submitted to the backend runs, SIGTERM gives STOPPING=1 and exit
#    status 0. Then remove and purge.
# 3. RPM: `rpm --root` installs the three .rpms into an empty root (a static
#    busybox as its /bin/sh) running their scriptlets, then erases them.
#
# Everything mounted is mounted in mount namespaces of the test's own
# (unshare), which vanish with their processes; the job part also runs in
# network and PID namespaces of its own, so its bridges, firewall rules,
# containerd and shims never touch the host's, and end with it.
#
# Environment: DIST (default dist/), PKGTEST_CACHE (default
# /var/cache/cronium-agent/pkgtest: the Debian root and the downloaded .debs),
# PKGTEST_REFRESH=1 rebuilds the cached root, DEBIAN_MIRROR,
# DEBIAN_SECURITY_MIRROR, PKGTEST_KEEP=1 keeps the work directory.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF=$REPO/hack/$(basename "${BASH_SOURCE[0]}")
DIST=${DIST:-$REPO/dist}
CACHE=${PKGTEST_CACHE:-/var/cache/cronium-agent/pkgtest}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
ROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH=/usr/local/go/bin:$PATH

log() { printf '%s\n' "$*" >&2; }
die() { log "package-test: $*"; exit 1; }

FAILS=0
pass() { printf '  ok    %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*"; FAILS=$((FAILS + 1)); }
# check MESSAGE CMD...: pass when CMD succeeds.
check() {
	local msg=$1
	shift
	if "$@" >/dev/null 2>&1; then pass "$msg"; else fail "$msg"; fi
}
# same WHAT GOT WANT
same() {
	if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi
}

T0=$(date +%s%N)
TSTEP=$T0
TIMINGS=()
secs() { awk -v s="$1" -v e="$(date +%s%N)" 'BEGIN { printf "%.1f", (e - s) / 1e9 }'; }
# step NAME: ends the previous step (its time recorded), starts NAME.
step() {
	if [[ -n ${STEP:-} ]]; then
		TIMINGS+=("$(printf '%7ss  %s' "$(secs "$TSTEP")" "$STEP")")
	fi
	STEP=$1
	TSTEP=$(date +%s%N)
	[[ -n $STEP ]] && printf '\n== %s\n' "$STEP"
	return 0
}

# ---------------------------------------------------------------- contents

# elf_info FILE: "<machine> static|dynamic".
elf_info() {
	/usr/bin/python3 - "$1" <<-'EOF'
		import struct, sys
		with open(sys.argv[1], "rb") as f:
		    h = f.read(64)
		    assert h[:4] == b"\x7fELF" and h[4] == 2 and h[5] == 1, "not a 64-bit little-endian ELF"
		    machine, = struct.unpack_from("<H", h, 18)
		    phoff, = struct.unpack_from("<Q", h, 32)
		    phentsize, phnum = struct.unpack_from("<HH", h, 54)
		    f.seek(phoff)
		    ph = f.read(phentsize * phnum)
		    interp = any(struct.unpack_from("<I", ph, i * phentsize)[0] == 3 for i in range(phnum))
		print({62: "amd64", 183: "arm64"}.get(machine, str(machine)), "dynamic" if interp else "static")
	EOF
}

# deb_modes DEB: "<perms> <owner> <path>" per entry.
deb_modes() { dpkg-deb -c "$1" | awk '{ p = $6; sub(/^\./, "", p); print $1, $2, p }'; }
# deb_file DEB PATH: the file's content.
deb_file() { dpkg-deb --fsys-tarfile "$1" | tar -xOf - ".$2"; }
# rpm_modes RPM: "<perms> <flags> <owner> <path>" per entry (flags "-" if none).
rpm_modes() {
	rpm -qp --qf '[%{FILEMODES:perms}|%{FILEFLAGS:fflags}|%{FILEUSERNAME}:%{FILEGROUPNAME}|%{FILENAMES}\n]' "$1" 2>/dev/null |
		awk -F'|' '{ print $1, ($2 == "" ? "-" : $2), $3, $4 }'
}
# rpm_file RPM PATH: the file's content.
rpm_file() { rpm2cpio "$1" | (cd "$SCRATCH" && rm -rf x && mkdir x && cd x && cpio -idm --quiet ".$2" && cat ".$2"); }

# has_line TEXT LINE
has_line() { grep -qxF -- "$2" <<<"$1"; }

check_deb() {
	local deb=$1 arch=$2 name modes info
	name=$(dpkg-deb -f "$deb" Package)
	modes=$(deb_modes "$deb")
	info=$(dpkg-deb -I "$deb")
	log "-- $(basename "$deb")"
	same "$name $arch: Architecture" "$(dpkg-deb -f "$deb" Architecture)" "$arch"
	same "$name $arch: Version" "$(dpkg-deb -f "$deb" Version)" "$PKG_VERSION-1"
	case $name in
	cronium-agent)
		check "$name $arch: /usr/bin/cronium-agent 0755 root" has_line "$modes" "-rwxr-xr-x root/root /usr/bin/cronium-agent"
		check "$name $arch: /usr/libexec/cronium/cronium-job 0755 root" has_line "$modes" "-rwxr-xr-x root/root /usr/libexec/cronium/cronium-job"
		check "$name $arch: the unit 0644" has_line "$modes" "-rw-r--r-- root/root /usr/lib/systemd/system/cronium-agent.service"
		check "$name $arch: /etc/cronium/agent.yaml 0640" has_line "$modes" "-rw-r----- root/root /etc/cronium/agent.yaml"
		check "$name $arch: /etc/default/cronium-agent 0600" has_line "$modes" "-rw------- root/root /etc/default/cronium-agent"
		check "$name $arch: no /etc/sysconfig in the .deb" bash -c "! grep -q sysconfig <<<\"\$1\"" _ "$modes"
		same "$name $arch: conffiles" "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles | sort | tr '\n' ' ')" "/etc/cronium/agent.yaml /etc/default/cronium-agent "
		same "$name $arch: Depends" "$(dpkg-deb -f "$deb" Depends)" "containerd (>= 1.6) | containerd.io (>= 1.6), runc, containernetworking-plugins, iptables"
		same "$name $arch: Recommends" "$(dpkg-deb -f "$deb" Recommends)" "cronium-runtimes, crun"
		same "$name $arch: the unit is packaging/systemd's" "$(deb_file "$deb" /usr/lib/systemd/system/cronium-agent.service | sha256sum)" "$(sha256sum <packaging/systemd/cronium-agent.service)"
		same "$name $arch: agent.yaml is packaging/agent.yaml" "$(deb_file "$deb" /etc/cronium/agent.yaml | sha256sum)" "$(sha256sum <packaging/agent.yaml)"
		check "$name $arch: the environment file names CRONIUM_BACKEND_URL and CRONIUM_BACKEND_TOKEN" \
			bash -c 'grep -qx "#CRONIUM_BACKEND_URL=.*" <<<"$1" && grep -qx "#CRONIUM_BACKEND_TOKEN=" <<<"$1"' _ "$(deb_file "$deb" /etc/default/cronium-agent)"
		same "$name $arch: the binary" "$(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/bin/cronium-agent >"$SCRATCH/bin" && elf_info "$SCRATCH/bin")" "$arch static"
		same "$name $arch: the jobs' program" "$(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/libexec/cronium/cronium-job >"$SCRATCH/bin" && elf_info "$SCRATCH/bin")" "$arch static"
		;;
	cronium-backend)
		check "$name $arch: /usr/bin/cronium-backend 0755" has_line "$modes" "-rwxr-xr-x root/root /usr/bin/cronium-backend"
		check "$name $arch: the unit 0644" has_line "$modes" "-rw-r--r-- root/root /usr/lib/systemd/system/cronium-backend.service"
		check "$name $arch: /etc/default/cronium-backend 0600" has_line "$modes" "-rw------- root/root /etc/default/cronium-backend"
		same "$name $arch: conffiles" "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles | tr '\n' ' ')" "/etc/default/cronium-backend "
		same "$name $arch: the binary" "$(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/bin/cronium-backend >"$SCRATCH/bin" && elf_info "$SCRATCH/bin")" "$arch static"
		;;
	cronium-runtimes)
		local rt want got suffix=""
		# packaging/build.sh takes the host's images from <rt>.path, another
		# architecture's from <rt>-<arch>.path, and names both <rt>-<hash>.tar.
		[[ $arch == "$(dpkg --print-architecture)" ]] || suffix=-$arch
		for rt in bash python node; do
			want=$(basename "$(cat "${IMAGE_CACHE:-/var/cache/cronium-agent/images}/$rt$suffix.path" 2>/dev/null || echo "$rt-missing.tar")")
			want=${want/#"$rt$suffix-"/"$rt-"}
			check "$name $arch: /usr/share/cronium/runtimes/$want 0644" has_line "$modes" "-rw-r--r-- root/root /usr/share/cronium/runtimes/$want"
		done
		got=$(grep -c ' /usr/share/cronium/runtimes/.*\.tar$' <<<"$modes" || true)
		same "$name $arch: three archives" "$got" 3
		;;
	*) fail "unexpected package $name in $deb" ;;
	esac
	local s
	for s in postinst prerm postrm; do
		[[ $name == cronium-runtimes ]] && continue
		check "$name $arch: $s is valid sh" bash -c 'dpkg-deb --ctrl-tarfile "$1" | tar -xOf - "./$2" | sh -n' _ "$deb" "$s"
	done
	if [[ $name == cronium-agent ]]; then
		local scripts
		scripts=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./postinst ./prerm ./postrm)
		check "$name $arch: postinst makes the state directory 0711" grep -q 'chmod 0711 "$STATE_DIR"' <<<"$scripts"
		check "$name $arch: postinst try-restarts on upgrade" grep -q 'deb-systemd-invoke try-restart cronium-agent.service' <<<"$scripts"
		check "$name $arch: no script enables or starts the service" bash -c '! grep -v "^[[:space:]]*echo" <<<"$1" | grep -Eq "(systemctl|deb-systemd-invoke|deb-systemd-helper)( --[a-z-]+)* (start|enable|restart) "' _ "$scripts"
		check "$name $arch: purge removes the state directory" grep -q 'rm -rf /var/lib/cronium-agent' <<<"$scripts"
	fi
}

check_rpm() {
	local rpmf=$1 arch=$2 name rarch modes reqs scripts
	name=$(rpm -qp --qf '%{NAME}' "$rpmf" 2>/dev/null)
	rarch=$(rpm -qp --qf '%{ARCH}' "$rpmf" 2>/dev/null)
	modes=$(rpm_modes "$rpmf")
	scripts=$(rpm -qp --scripts "$rpmf" 2>/dev/null)
	log "-- $(basename "$rpmf")"
	same "$name $arch: Arch" "$rarch" "$(case $arch in amd64) echo x86_64 ;; arm64) echo aarch64 ;; esac)"
	same "$name $arch: Version" "$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$rpmf" 2>/dev/null)" "$PKG_VERSION-1"
	case $name in
	cronium-agent)
		check "$name $arch: /usr/bin/cronium-agent 0755" has_line "$modes" "-rwxr-xr-x - root:root /usr/bin/cronium-agent"
		check "$name $arch: /usr/libexec/cronium/cronium-job 0755" has_line "$modes" "-rwxr-xr-x - root:root /usr/libexec/cronium/cronium-job"
		check "$name $arch: the unit 0644" has_line "$modes" "-rw-r--r-- - root:root /usr/lib/systemd/system/cronium-agent.service"
		check "$name $arch: agent.yaml 0640 %config(noreplace)" has_line "$modes" "-rw-r----- cn root:root /etc/cronium/agent.yaml"
		check "$name $arch: /etc/sysconfig/cronium-agent 0600 %config(noreplace)" has_line "$modes" "-rw------- cn root:root /etc/sysconfig/cronium-agent"
		check "$name $arch: no /etc/default in the .rpm" bash -c "! grep -q /etc/default <<<\"\$1\"" _ "$modes"
		reqs=$(rpm -qp --requires "$rpmf" 2>/dev/null | grep -v '^rpmlib(' | tr '\n' ',')
		same "$name $arch: Requires" "$reqs" "(containerd >= 1.6 or containerd.io >= 1.6),runc,containernetworking-plugins,iptables,"
		local unit
		unit=$(rpm_file "$rpmf" /usr/lib/systemd/system/cronium-agent.service)
		check "$name $arch: the unit reads /etc/sysconfig/cronium-agent" grep -qx 'EnvironmentFile=-/etc/sysconfig/cronium-agent' <<<"$unit"
		same "$name $arch: the unit is Debian's but for that line" "$(sed 's|^EnvironmentFile=-/etc/sysconfig/|EnvironmentFile=-/etc/default/|' <<<"$unit" | sha256sum)" "$(sha256sum <packaging/systemd/cronium-agent.service)"
		check "$name $arch: sysconfig lists /usr/libexec/cni" grep -qx 'CRONIUM_NETWORK_PLUGIN_DIRS=/usr/libexec/cni,/usr/lib/cni,/opt/cni/bin' <<<"$(rpm_file "$rpmf" /etc/sysconfig/cronium-agent)"
		check "$name $arch: %post makes the state directory 0711" grep -q 'chmod 0711 "$STATE_DIR"' <<<"$scripts"
		check "$name $arch: %postun try-restarts on upgrade" grep -q 'systemctl try-restart cronium-agent.service' <<<"$scripts"
		check "$name $arch: %preun disables and stops on erase" grep -q 'disable --now cronium-agent.service' <<<"$scripts"
		same "$name $arch: the binary" "$(rpm_file "$rpmf" /usr/bin/cronium-agent >"$SCRATCH/bin" && elf_info "$SCRATCH/bin")" "$arch static"
		;;
	cronium-backend)
		check "$name $arch: /usr/bin/cronium-backend 0755" has_line "$modes" "-rwxr-xr-x - root:root /usr/bin/cronium-backend"
		check "$name $arch: /etc/sysconfig/cronium-backend 0600 %config(noreplace)" has_line "$modes" "-rw------- cn root:root /etc/sysconfig/cronium-backend"
		check "$name $arch: the unit reads /etc/sysconfig/cronium-backend" grep -qx 'EnvironmentFile=-/etc/sysconfig/cronium-backend' <<<"$(rpm_file "$rpmf" /usr/lib/systemd/system/cronium-backend.service)"
		;;
	cronium-runtimes)
		same "$name $arch: three archives" "$(grep -c ' /usr/share/cronium/runtimes/.*\.tar$' <<<"$modes" || true)" 3
		;;
	*) fail "unexpected package $name in $rpmf" ;;
	esac
	local s
	for s in POSTIN PREUN POSTUN; do
		[[ $name == cronium-runtimes ]] && continue
		check "$name $arch: %${s,,} is valid sh" bash -c 'rpm -qp --qf "%{$1}" "$2" 2>/dev/null | sh -n' _ "$s" "$rpmf"
	done
}

contents() {
	local arch f n
	for arch in amd64 arm64; do
		n=0
		for f in "$DIST"/*_"$PKG_VERSION"-1_"$arch".deb; do
			[[ -f $f ]] || continue
			check_deb "$f" "$arch"
			n=$((n + 1))
		done
		if [[ $arch == arm64 && $n == 2 ]]; then
			log "   (no cronium-runtimes for arm64: no arm64 images in the cache; make images-arm64 builds them)"
		fi
		((n >= 2)) || fail "$arch: $n .deb packages in $DIST (want cronium-agent, cronium-backend[, cronium-runtimes])"
		n=0
		for f in "$DIST"/*-"$PKG_VERSION"-1."$(case $arch in amd64) echo x86_64 ;; arm64) echo aarch64 ;; esac)".rpm; do
			[[ -f $f ]] || continue
			check_rpm "$f" "$arch"
			n=$((n + 1))
		done
		((n >= 2)) || fail "$arch: $n .rpm packages in $DIST"
	done
}

# ------------------------------------------------------------ Debian root

# base_root: a bookworm minbase root with systemd (for systemd-analyze and
# systemctl enable) and fresh package lists, made once.
base_root() {
	local base=$CACHE/bookworm-base
	if [[ ${PKGTEST_REFRESH:-} == 1 ]]; then
		remove_tree "$base"
	fi
	if [[ -f $base/.complete ]]; then
		log "cached $base ($(cat "$base/.complete"))"
		return 0
	fi
	remove_tree "$base.tmp"
	log "debootstrap $SUITE into $base (once; cached)"
	mkdir -p "$CACHE/debootstrap-debs"
	if ! debootstrap --variant=minbase --include=systemd --cache-dir="$CACHE/debootstrap-debs" \
		"$SUITE" "$base.tmp" "$DEBIAN_MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
		tail -n 30 "$CACHE/debootstrap.log" >&2
		die "debootstrap failed (log: $CACHE/debootstrap.log)"
	fi
	unmount_under "$base.tmp"
	cat >"$base.tmp/etc/apt/sources.list" <<-EOF
		deb $DEBIAN_MIRROR $SUITE main
		deb $DEBIAN_MIRROR $SUITE-updates main
		deb $DEBIAN_SECURITY_MIRROR $SUITE-security main
	EOF
	R=$base.tmp in_root apt-get -q update >/dev/null
	R=$base.tmp in_root apt-get -q -y upgrade >/dev/null
	R=$base.tmp in_root apt-get clean
	date -u +%FT%TZ >"$base.tmp/.complete"
	mv "$base.tmp" "$base"
}

# shellcheck source=hack/lib-fs.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-fs.sh"

# in_root CMD...: CMD in the root $R, with /proc, /dev and the .deb cache
# mounted in a mount namespace of its own, so the mounts end with CMD.
in_root() {
	unshare --mount --propagation private -- "$SELF" __in_root "$R" "$@"
}
__in_root() {
	local r=$1
	shift
	mount -t proc proc "$r/proc"
	mount --rbind /dev "$r/dev"
	mkdir -p "$CACHE/apt-archives/partial"
	mount --bind "$CACHE/apt-archives" "$r/var/cache/apt/archives"
	cp -L /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
	exec chroot "$r" /usr/bin/env -i PATH="$ROOT_PATH" HOME=/root LC_ALL=C.UTF-8 TERM=dumb \
		DEBIAN_FRONTEND=noninteractive "$@"
}

APT=(apt-get -q -y -o DPkg::Path="$ROOT_PATH" -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef)

# A stand-in for systemctl, first on the root's PATH, with a systemd "running"
# (/run/systemd/system): the maintainer scripts' calls are recorded, and
# nothing starts.
fake_systemctl() {
	mkdir -p "$R/run/systemd/system" "$R/usr/local/sbin"
	cat >"$R/usr/local/sbin/systemctl" <<-'EOF'
		#!/bin/sh
		# package test: record what maintainer scripts ask of systemd
		extra=
		case "$*" in
		*try-restart*cronium-agent.service*) extra=" [binary: $(/usr/bin/cronium-agent version 2>&1)]" ;;
		esac
		echo "systemctl $*$extra" >>/var/log/pkgtest-systemctl.log
		case "$1" in
		is-enabled) echo disabled; exit 1 ;;
		is-active) exit 3 ;;
		esac
		exit 0
	EOF
	chmod 0755 "$R/usr/local/sbin/systemctl"
	: >"$R/var/log/pkgtest-systemctl.log"
}
# calls: the recorded systemctl calls about our units since the last one.
calls() {
	grep -E 'cronium-(agent|backend)|daemon-reload' "$R/var/log/pkgtest-systemctl.log" || true
	: >"$R/var/log/pkgtest-systemctl.log"
}

# mode_of PATH (in the root): "<octal mode> <owner>:<group>"
mode_of() { stat -c '%a %U:%G' "$R$1" 2>/dev/null || echo missing; }

debian_install() {
	local agent=$1 runtimes=$2 backend=$3 out
	mkdir -p "$R/tmp/pkgs"
	cp "$agent" "$runtimes" "$backend" "$R/tmp/pkgs/"
	chmod 0644 "$R"/tmp/pkgs/*
	in_root apt-get -q update >/dev/null
	out=$(in_root "${APT[@]}" install "/tmp/pkgs/$(basename "$agent")" "/tmp/pkgs/$(basename "$runtimes")" "/tmp/pkgs/$(basename "$backend")" 2>&1) ||
		{ printf '%s\n' "$out" | tail -30; die "apt-get install failed"; }
	local p
	# crun: recommended, so apt installs it; the agent runs jobs under it
	# where the host's cgroups suit it (doctor's oci-runtime line says).
	for p in cronium-agent cronium-runtimes cronium-backend containerd runc crun containernetworking-plugins iptables; do
		check "installed: $p ($(in_root dpkg-query -W -f='${Version}' "$p" 2>/dev/null))" in_root dpkg-query -W -f='${Status}' "$p"
	done
	check "postinst says how to configure and enable the agent" grep -q 'set CRONIUM_BACKEND_URL and CRONIUM_BACKEND_TOKEN in /etc/default/cronium-agent, then: systemctl enable --now cronium-agent' <<<"$out"
	same "/usr/bin/cronium-agent" "$(mode_of /usr/bin/cronium-agent)" "755 root:root"
	same "/usr/bin/cronium-backend" "$(mode_of /usr/bin/cronium-backend)" "755 root:root"
	same "/etc/cronium/agent.yaml" "$(mode_of /etc/cronium/agent.yaml)" "640 root:root"
	same "/etc/default/cronium-agent" "$(mode_of /etc/default/cronium-agent)" "600 root:root"
	same "/etc/default/cronium-backend" "$(mode_of /etc/default/cronium-backend)" "600 root:root"
	same "the agent unit" "$(mode_of /usr/lib/systemd/system/cronium-agent.service)" "644 root:root"
	same "the state directory (made by postinst)" "$(mode_of /var/lib/cronium-agent)" "711 root:root"
	same "the runtime archives" "$(cd "$R/usr/share/cronium/runtimes" && ls | tr '\n' ' ')" "$(for rt in bash node python; do basename "$(cat "${IMAGE_CACHE:-/var/cache/cronium-agent/images}/$rt.path")"; done | tr '\n' ' ')"
	same "conffiles registered" "$(in_root dpkg-query -W -f='${Conffiles}' cronium-agent | awk 'NF { print $1 }' | sort | tr '\n' ' ')" "/etc/cronium/agent.yaml /etc/default/cronium-agent "
	local c
	c=$(calls)
	check "postinst reloads systemd" grep -q 'daemon-reload' <<<"$c"
	check "postinst neither enables nor starts anything of ours (calls: $(tr '\n' ';' <<<"$c"))" bash -c '! grep -Eq "(enable|start|restart) .*cronium" <<<"$1"' _ "$c"
	check "the agent is not enabled" test ! -e "$R/etc/systemd/system/multi-user.target.wants/cronium-agent.service"
	same "cronium-agent version" "$(in_root cronium-agent version 2>&1)" "cronium-agent $BIN_VERSION"
}

analyze() {
	local out u
	# The RPM's units beside Debian's, as systemd would find them.
	mkdir -p "$R/tmp/rpm-units"
	for u in cronium-agent cronium-backend; do
		rpm_file "$(ls "$DIST/$u-$PKG_VERSION-1.$RPM_ARCH.rpm")" /usr/lib/systemd/system/$u.service >"$R/tmp/rpm-units/$u.service"
	done
	for u in /usr/lib/systemd/system/cronium-agent.service /usr/lib/systemd/system/cronium-backend.service \
		/tmp/rpm-units/cronium-agent.service /tmp/rpm-units/cronium-backend.service; do
		if out=$(in_root systemd-analyze verify "$u" 2>&1) && [[ -z $out ]]; then
			pass "systemd-analyze verify $u"
		else
			fail "systemd-analyze verify $u: $out"
		fi
	done
	# For the record (the agent's score is bounded by what it must do as
	# root in the host's namespaces; see the unit's comments).
	for u in cronium-agent cronium-backend containerd; do
		out=$(in_root systemd-analyze security --offline=yes "/usr/lib/systemd/system/$u.service" 2>&1 | grep -o 'exposure level for .*' || true)
		printf '  info  systemd-analyze security: %s\n' "${out:-?}"
	done
}

unconfigured() {
	local out code=0
	out=$(in_root cronium-agent run 2>&1) || code=$?
	same "run without a backend: exit status (EX_CONFIG, no restart: RestartPreventExitStatus)" "$code" 78
	check "run without a backend: says what to set" grep -q 'set backend.url and backend.token' <<<"$out"
	check "the unit does not restart on 78" grep -qx 'RestartPreventExitStatus=2 78' "$R/usr/lib/systemd/system/cronium-agent.service"
}

upgrade() {
	local out v2dir
	# The admin's edits, and something of the agent's in the state directory.
	printf '# edited by the admin\n' >>"$R/etc/cronium/agent.yaml"
	sed -i -e 's|^#CRONIUM_BACKEND_URL=.*|CRONIUM_BACKEND_URL=http://127.0.0.1:5001|' \
		-e 's|^#CRONIUM_BACKEND_TOKEN=.*|CRONIUM_BACKEND_TOKEN=pkgtest-token|' "$R/etc/default/cronium-agent"
	sed -i -e 's|^#CRONIUM_BACKEND_TOKEN=.*|CRONIUM_BACKEND_TOKEN=pkgtest-token|' "$R/etc/default/cronium-backend"
	echo journal >"$R/var/lib/cronium-agent/pkgtest-marker"
	# The next version: another binary, and a changed agent.yaml.
	v2dir=$WORK/v2
	mkdir -p "$v2dir"
	{ cat packaging/agent.yaml; printf '# changed in the next version\n'; } >"$v2dir/agent.yaml"
	VERSION=pkgtest-upgrade PKG_VERSION=$PKG_VERSION.1 ARCHES=$HOST_ARCH PACKAGES=cronium-agent FORMATS=deb \
		AGENT_YAML=$v2dir/agent.yaml DIST=$v2dir/dist packaging/build.sh 2>"$v2dir/build.log" ||
		{ cat "$v2dir/build.log"; die "building the next version failed"; }
	local deb2
	deb2=$(ls "$v2dir"/dist/cronium-agent_*_"$HOST_ARCH".deb)
	cp "$deb2" "$R/tmp/pkgs/"
	chmod 0644 "$R/tmp/pkgs/$(basename "$deb2")"
	calls >/dev/null
	out=$(in_root "${APT[@]}" install "/tmp/pkgs/$(basename "$deb2")" 2>&1) ||
		{ printf '%s\n' "$out" | tail -30; die "the upgrade failed"; }
	same "upgraded to" "$(in_root dpkg-query -W -f='${Version}' cronium-agent)" "$PKG_VERSION.1-1"
	same "the new binary" "$(in_root cronium-agent version 2>&1)" "cronium-agent pkgtest-upgrade"
	check "agent.yaml: the admin's edit kept" grep -qx '# edited by the admin' "$R/etc/cronium/agent.yaml"
	check "agent.yaml: the new version's beside it as agent.yaml.dpkg-dist" grep -qx '# changed in the next version' "$R/etc/cronium/agent.yaml.dpkg-dist"
	check "the environment file: the token kept" grep -qx 'CRONIUM_BACKEND_TOKEN=pkgtest-token' "$R/etc/default/cronium-agent"
	same "the environment file: mode kept" "$(mode_of /etc/default/cronium-agent)" "600 root:root"
	check "the state directory kept" grep -qx journal "$R/var/lib/cronium-agent/pkgtest-marker"
	local c
	c=$(calls)
	check "the agent was try-restarted on the new binary (calls: $(tr '\n' ';' <<<"$c"))" grep -q 'try-restart cronium-agent.service \[binary: cronium-agent pkgtest-upgrade\]' <<<"$c"
	check "the upgrade did not stop the agent before the new binary was in (prerm upgrade)" bash -c '! grep -q "stop cronium-agent" <<<"$1"' _ "$c"
}

# run_jobs: the installed agent runs a job. Debian's containerd (pulled in
# by the package) runs inside the root, so every path the agent hands it
# (run files, its own binary for the output logger, network namespaces) is
# the same for both: the host's containerd would resolve those paths outside
# the root. The root is the real root of a mount namespace (pivot_root, not
# chroot: the kernel refuses to create a job's user namespace in a chroot),
# and the network and PID namespaces are the test's own: bridges, firewall
# rules, network namespaces, containerd and its shims all end with it.
run_jobs() {
	local res=$WORK/jobs
	mkdir -p "$res"
	unshare --mount --net --pid --fork --propagation private -- "$SELF" __run_jobs "$R" "$res" || true
	[[ -f $res/results ]] && grep -v '^# finished$' "$res/results"
	local n
	n=$(grep -c '^  FAIL' "$res/results" 2>/dev/null || true)
	FAILS=$((FAILS + n))
	if ! grep -qx '# finished' "$res/results" 2>/dev/null; then
		fail "the job part did not finish"
		[[ -f $res/log ]] && tail -40 "$res/log"
	fi
	if ((n)) || ! grep -qx '# finished' "$res/results" 2>/dev/null; then
		log "(its log: $res/log, containerd's: $res/containerd.log; PKGTEST_KEEP=1 keeps them)"
	fi
	return 0
}
__run_jobs() {
	local r=$1 res=$2
	# Results, logs: open now, written through these descriptors once the
	# host's file system is out of sight.
	exec 3>"$res/results" 4>"$res/log" 5>"$res/containerd.log"
	local out code
	ip link set lo up
	# sd_notify's receiver, as systemd is for a Type=notify unit: an abstract
	# socket (this network namespace's), each message appended to a file of
	# the root (opened per message, once the root is /).
	/usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0cronium-pkgtest-notify")
while True:
    d = s.recv(65536)
    with open("/tmp/pkgtest-notify", "ab") as f:
        f.write(d + b"\n")
' &
	mount --bind "$r" "$r"
	mount -t proc proc "$r/proc"
	mount -t sysfs sysfs "$r/sys"
	mount --rbind /sys/fs/cgroup "$r/sys/fs/cgroup"
	mount --rbind /dev "$r/dev"
	mount -t tmpfs -o mode=0755 tmpfs "$r/run"
	cd "$r"
	mkdir -p .pkgtest-oldroot
	pivot_root . .pkgtest-oldroot
	cd /
	umount -l /.pkgtest-oldroot
	rmdir /.pkgtest-oldroot
	export PATH=$ROOT_PATH
	# Commands as the root's own, with a clean environment. INR for those
	# started in the background: $! is then the command itself (env and sh
	# exec it), not a subshell.
	local INR=(env -i PATH="$ROOT_PATH" HOME=/root LC_ALL=C.UTF-8)
	inr() { "${INR[@]}" "$@"; }
	mkdir -p /run/pkgtest
	cat >/run/pkgtest/containerd.toml <<-'EOF'
		version = 2
		root = "/var/lib/containerd"
		state = "/run/containerd"
		disabled_plugins = ["io.containerd.grpc.v1.cri"]
		[grpc]
		  address = "/run/containerd/containerd.sock"
	EOF
	"${INR[@]}" containerd --config /run/pkgtest/containerd.toml >&5 2>&1 &
	local cpid=$! i
	for i in $(seq 100); do
		inr ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1 && break
		sleep 0.1
	done
	if ! inr ctr --address /run/containerd/containerd.sock version >/dev/null 2>&1; then
		echo "  FAIL  the root's containerd did not start (see its log)" >&3
		echo "# finished" >&3
		return 0
	fi
	echo "  ok    the root's containerd ($(inr containerd --version | awk '{ print $3 }')) answers at /run/containerd/containerd.sock (the agent's default)" >&3
	local t
	t=$(date +%s%N)
	if out=$(inr sh -c 'cronium-agent images import /usr/share/cronium/runtimes/*.tar' 2>&1); then
		echo "  ok    images import /usr/share/cronium/runtimes/*.tar ($(secs "$t")s)" >&3
	else
		echo "  FAIL  images import: $out" >&3
	fi
	printf '%s\n' "$out" >&4
	out=$(inr cronium-agent images list 2>&1) || true
	printf '%s\n' "$out" >&4
	for i in bash python node; do
		if grep -q "cronium.local/runtimes/$i:latest" <<<"$out"; then
			echo "  ok    images list: cronium.local/runtimes/$i:latest" >&3
		else
			echo "  FAIL  images list has no cronium.local/runtimes/$i:latest: $out" >&3
		fi
	done
	if inr cronium-agent doctor --help >/dev/null 2>&1; then
		code=0
		out=$(inr cronium-agent doctor 2>&1) || code=$?
		printf 'doctor:\n%s\n' "$out" >&4
		if ((code == 0)); then
			echo "  ok    cronium-agent doctor; $(grep -o 'oci-runtime.*' <<<"$out" | tr -s ' ' | cut -c1-110)" >&3
		else
			echo "  FAIL  cronium-agent doctor (exit $code):" >&3
			printf '%s\n' "$out" | sed 's/^/          /' >&3
		fi
	else
		echo "  skip  cronium-agent doctor: this binary has no doctor command yet" >&3
	fi
	t=$(date +%s%N)
	code=0
	out=$(inr cronium-agent exec --json --runtime bash \
		-c 'echo "hello from $(hostname) as $(id -un)"; cronium_output "{\"from\": \"the package test\"}"' 2>/tmp/exec.stderr) || code=$?
	printf 'exec:\n%s\n%s\n' "$out" "$(cat /tmp/exec.stderr)" >&4
	if ((code == 0)) && grep -q '^hello from cronium-.* as cronium$' <<<"$out" &&
		grep -q '"status":"completed"' <<<"$out" && grep -q '"output":{"from":"the package test"}' <<<"$out"; then
		echo "  ok    exec: a bash job ran, reached its runtime API and set its output ($(secs "$t")s)" >&3
	else
		echo "  FAIL  exec (exit $code): $out $(tail -5 /tmp/exec.stderr)" >&3
	fi
	# The development backend and the agent as their units start them: the
	# environment files' settings (the URL and tokens the upgrade test put
	# there), the agent with NOTIFY_SOCKET as Type=notify gives it. A job
	# submitted to the backend runs through the agent.
	mkdir -p /var/lib/cronium-backend
	"${INR[@]}" sh -c 'CRONIUM_BACKEND_LISTEN=127.0.0.1:5001; set -a; . /etc/default/cronium-backend; set +a
		exec cronium-backend serve --listen "$CRONIUM_BACKEND_LISTEN" --data /var/lib/cronium-backend' >/tmp/backend.out 2>/tmp/backend.log &
	local bpid=$!
	for i in $(seq 50); do
		grep -q listening /tmp/backend.out 2>/dev/null && break
		sleep 0.1
	done
	if grep -q 'listening on http://127.0.0.1:5001' /tmp/backend.out; then
		echo "  ok    cronium-backend serve with /etc/default/cronium-backend: listening on 127.0.0.1:5001" >&3
	else
		echo "  FAIL  cronium-backend serve: $(cat /tmp/backend.out /tmp/backend.log)" >&3
	fi
	t=$(date +%s%N)
	"${INR[@]}" NOTIFY_SOCKET=@cronium-pkgtest-notify CRONIUM_LOG_LEVEL=info \
		sh -c 'set -a; . /etc/default/cronium-agent; set +a; exec cronium-agent run' 2>/tmp/agent.log &
	local apid=$!
	for i in $(seq 600); do
		grep -q '^READY=1' /tmp/pkgtest-notify 2>/dev/null && break
		kill -0 "$apid" 2>/dev/null || break
		sleep 0.1
	done
	if grep -q '^READY=1' /tmp/pkgtest-notify 2>/dev/null; then
		echo "  ok    run with /etc/default/cronium-agent: READY=1 after $(secs "$t")s ($(grep -A1 '^READY=1' /tmp/pkgtest-notify | grep -m1 '^STATUS='))" >&3
	else
		echo "  FAIL  run with /etc/default/cronium-agent: no READY=1 within 60 s: $(tail -5 /tmp/agent.log)" >&3
	fi
	t=$(date +%s%N)
	code=0
	out=$(inr CRONIUM_BACKEND_URL=http://127.0.0.1:5001 CRONIUM_BACKEND_TOKEN=pkgtest-token timeout 120 \
		cronium-backend submit --runtime python --wait -c 'import cronium; print("python via the backend"); cronium.output({"n": 1})' 2>&1) || code=$?
	printf 'submit:\n%s\n' "$out" >&4
	if ((code == 0)) && grep -q 'python via the backend' <<<"$out"; then
		echo "  ok    a python job submitted to cronium-backend ran through cronium-agent run ($(secs "$t")s)" >&3
	else
		echo "  FAIL  the job through the backend (exit $code): $out" >&3
	fi
	if out=$(inr cronium-agent status 2>&1); then
		echo "  ok    cronium-agent status (admin socket)" >&3
	else
		echo "  FAIL  cronium-agent status: $out" >&3
	fi
	printf 'status:\n%s\n' "$out" >&4
	t=$(date +%s%N)
	kill -TERM "$apid" 2>/dev/null || true
	code=0
	wait "$apid" || code=$?
	if ((code == 0)) && grep -q '^STOPPING=1' /tmp/pkgtest-notify; then
		echo "  ok    SIGTERM: STOPPING=1, exit status 0 after $(secs "$t")s (the unit ends inactive, not failed)" >&3
	else
		echo "  FAIL  SIGTERM: exit status $code; notifications: $(tr '\n' ' ' </tmp/pkgtest-notify)" >&3
	fi
	printf 'agent log:\n%s\nnotifications:\n%s\n' "$(cat /tmp/agent.log)" "$(cat /tmp/pkgtest-notify 2>/dev/null)" >&4
	kill -TERM "$bpid" 2>/dev/null || true
	wait "$bpid" 2>/dev/null || true
	inr cronium-agent gc --all >&4 2>&1 || echo "  FAIL  gc --all after the jobs" >&3
	kill "$cpid" 2>/dev/null || true
	wait "$cpid" 2>/dev/null || true
	echo "# finished" >&3
}

remove_purge() {
	local out c
	# As `systemctl enable cronium-agent` leaves it (systemd's own systemctl,
	# offline: --root).
	in_root /usr/bin/systemctl --root=/ enable cronium-agent.service >/dev/null 2>&1 || true
	check "systemctl enable made the wants link" test -L "$R/etc/systemd/system/multi-user.target.wants/cronium-agent.service"
	calls >/dev/null
	out=$(in_root "${APT[@]}" remove cronium-agent cronium-backend cronium-runtimes 2>&1) || { printf '%s\n' "$out" | tail -20; die "apt-get remove failed"; }
	c=$(calls)
	check "remove stopped the agent (prerm)" grep -q 'stop cronium-agent.service' <<<"$c"
	check "remove: the binary is gone" test ! -e "$R/usr/bin/cronium-agent"
	check "remove: the runtime archives are gone" test ! -e "$R/usr/share/cronium"
	check "remove: the configuration is kept" test -f "$R/etc/cronium/agent.yaml"
	check "remove: the state directory is kept" test -f "$R/var/lib/cronium-agent/pkgtest-marker"
	out=$(in_root "${APT[@]}" purge cronium-agent cronium-backend cronium-runtimes 2>&1) || { printf '%s\n' "$out" | tail -20; die "apt-get purge failed"; }
	check "purge: the state directory is gone" test ! -e "$R/var/lib/cronium-agent"
	check "purge: the backend's database is gone" test ! -e "$R/var/lib/cronium-backend"
	check "purge: /etc/cronium is gone (with agent.yaml.dpkg-dist)" test ! -e "$R/etc/cronium"
	check "purge: /etc/default/cronium-agent is gone" test ! -e "$R/etc/default/cronium-agent"
	check "purge: /etc/default/cronium-backend is gone" test ! -e "$R/etc/default/cronium-backend"
	check "purge: the wants link is gone" test ! -L "$R/etc/systemd/system/multi-user.target.wants/cronium-agent.service"
	same "purge: dpkg knows nothing of ours" "$(in_root dpkg-query -W -f='${Package} ' 'cronium-*' 2>/dev/null || true)" ""
}

# ------------------------------------------------------------------- RPM

rpm_root() {
	local root=$WORK/rpmroot out a
	mkdir -p "$root/bin" "$root/var/tmp" "$root/tmp" "$root/usr/bin"
	cp /bin/busybox "$root/bin/busybox"
	for a in sh mkdir chmod rm cat echo test; do ln -s busybox "$root/bin/$a"; done
	rpm --root "$root" --initdb
	local rpms=()
	for a in cronium-agent cronium-runtimes cronium-backend; do
		rpms+=("$(ls "$DIST/$a-$PKG_VERSION-1.$RPM_ARCH.rpm")")
	done
	out=$(rpm --root "$root" --nodeps -i "${rpms[@]}" 2>&1) || { printf '%s\n' "$out"; fail "rpm -i"; return 0; }
	pass "rpm --root --nodeps -i: the three packages, scriptlets run by busybox sh"
	check "%post says how to configure and enable the agent" grep -q 'CRONIUM_BACKEND_TOKEN in /etc/sysconfig/cronium-agent' <<<"$out"
	same "%post made the state directory" "$(stat -c '%a %U:%G' "$root/var/lib/cronium-agent" 2>&1)" "711 root:root"
	same "/etc/sysconfig/cronium-agent" "$(stat -c '%a' "$root/etc/sysconfig/cronium-agent" 2>&1)" 600
	same "/etc/cronium/agent.yaml" "$(stat -c '%a' "$root/etc/cronium/agent.yaml" 2>&1)" 640
	same "rpm -V: the installed files are as packaged" "$(rpm --root "$root" -V --nodeps cronium-agent cronium-backend cronium-runtimes 2>&1)" ""
	RPM_DU=$(du -sh "$root" | cut -f1)
	echo local >"$root/var/lib/cronium-agent/marker"
	out=$(rpm --root "$root" --nodeps -e cronium-agent cronium-backend cronium-runtimes 2>&1) || { printf '%s\n' "$out"; fail "rpm -e"; return 0; }
	check "rpm -e: the binary is gone" test ! -e "$root/usr/bin/cronium-agent"
	check "rpm -e: the state directory stays (RPM has no purge)" test -f "$root/var/lib/cronium-agent/marker"
}

# ------------------------------------------------------------------- main

cleanup() {
	local rc=$? p
	# Processes left in the roots (an interrupted apt): ours, by their root.
	if [[ -n ${WORK:-} && -d $WORK ]]; then
		for p in /proc/[0-9]*; do
			[[ $(readlink "$p/root" 2>/dev/null) == "$WORK"/* ]] && kill -KILL "${p#/proc/}" 2>/dev/null
		done
		unmount_under "$WORK"
		if [[ ${PKGTEST_KEEP:-} == 1 ]]; then
			log "kept $WORK"
		else
			rm -rf --one-file-system "$WORK"
		fi
	fi
	exit "$rc"
}

main() {
	((EUID == 0)) || die "run as root (debootstrap, chroot, mounts)"
	cd "$REPO"
	HOST_ARCH=$(dpkg --print-architecture)
	RPM_ARCH=$(case $HOST_ARCH in amd64) echo x86_64 ;; arm64) echo aarch64 ;; *) echo "$HOST_ARCH" ;; esac)
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock 9

	step "packages"
	if ! compgen -G "$DIST/cronium-agent_*_$HOST_ARCH.deb" >/dev/null; then
		make --no-print-directory package
	fi
	local agent
	agent=$(ls -t "$DIST"/cronium-agent_*_"$HOST_ARCH".deb | head -1)
	PKG_VERSION=$(dpkg-deb -f "$agent" Version)
	PKG_VERSION=${PKG_VERSION%-1}
	BIN_VERSION=$(dpkg-deb --fsys-tarfile "$agent" | tar -xOf - ./usr/bin/cronium-agent >"${TMPDIR:-/tmp}/pkgtest-agent.$$" &&
		chmod +x "${TMPDIR:-/tmp}/pkgtest-agent.$$" && "${TMPDIR:-/tmp}/pkgtest-agent.$$" version | awk '{ print $2 }')
	rm -f "${TMPDIR:-/tmp}/pkgtest-agent.$$"
	log "testing $PKG_VERSION (binaries $BIN_VERSION) from $DIST"
	ls -l "$DIST"

	WORK=$(mktemp -d "$CACHE/work.XXXXXX")
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	SCRATCH=$WORK/scratch
	mkdir -p "$SCRATCH"

	step "contents: dpkg-deb and rpm -qp"
	contents

	step "Debian root: debootstrap (cached)"
	base_root
	step "Debian root: copy"
	R=$WORK/debian
	cp -a "$CACHE/bookworm-base" "$R"
	fake_systemctl

	step "Debian: apt-get install ./cronium-agent ./cronium-runtimes ./cronium-backend"
	debian_install "$agent" "$(ls "$DIST"/cronium-runtimes_"$PKG_VERSION"-1_"$HOST_ARCH".deb)" "$(ls "$DIST"/cronium-backend_"$PKG_VERSION"-1_"$HOST_ARCH".deb)"
	step "Debian: systemd-analyze verify, unconfigured agent"
	analyze
	unconfigured
	step "Debian: upgrade to the next version (conffiles, restart)"
	upgrade
	step "Debian: images import, doctor, exec, run (the root's own containerd)"
	run_jobs
	local du_root
	du_root=$(du -sh "$R/usr/bin/cronium-agent" "$R/usr/bin/cronium-backend" "$R/usr/share/cronium" "$R/var/lib/containerd" "$R/var/lib/cronium-agent" 2>/dev/null | sed "s|$R||")
	step "Debian: remove, purge"
	remove_purge

	step "RPM: rpm --root install into an empty root, erase"
	rpm_root
	step ""

	printf '\ninstalled footprint in the Debian root (after the job ran):\n%s\n' "$du_root"
	[[ -n ${RPM_DU:-} ]] && printf 'the RPM root with the three packages installed: %s\n' "$RPM_DU"
	printf '\ntimings:\n'
	printf '%s\n' "${TIMINGS[@]}"
	printf '%7ss  total\n' "$(secs "$T0")"
	if ((FAILS)); then
		printf '\npackage-test: %d check(s) FAILED\n' "$FAILS"
		exit 1
	fi
	printf '\npackage-test: all checks passed\n'
}

case ${1:-} in
__in_root)
	shift
	__in_root "$@"
	;;
__run_jobs)
	shift
	__run_jobs "$@"
	;;
*) main "$@" ;;
esac
