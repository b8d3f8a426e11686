#!/usr/bin/env bash
# Test the .deb packages and the systemd units on a real booted systemd: a
# Debian 12 VM under qemu (TCG), with no network device.
#
#   hack/vm-test.sh          (root; make vm-test) the whole test
#   hack/vm-test.sh image    only build (or find) the cached VM image
#
# 1. The image (once; cached in $VM_CACHE/image-<key>, the key a hash of this
#    recipe and of the packages' Depends and Recommends): debootstrap bookworm (minbase) with
#    systemd-sysv, udev, linux-image-amd64 and what the .debs depend on and
#    recommend (containerd, runc, crun, containernetworking-plugins,
#    iptables), so that apt in
#    the VM, which has no network, finds every dependency installed; jq for
#    the test. Root's password locked, no getty on the serial console, the
#    apt timers masked (they would take the dpkg lock mid-test). An ext4
#    image of it made with mkfs.ext4 -d (nothing mounted); its kernel and
#    initrd beside it.
# 2. The next version of the agent package, for the upgrade: built with
#    packaging/build.sh (what `make package` runs) as VERSION=vmtest-upgrade,
#    package version <dist's>.1.
# 3. A copy of the image for this run, into which debugfs writes (nothing
#    mounted) the three .debs of dist/, the next agent .deb, the guest test
#    hack/vm/guest-test.sh and cronium-vmtest.service, enabled: the VM runs
#    it once multi-user.target is reached and powers off when it ends.
# 4. qemu-system-x86_64 -accel tcg -m 2048 -smp 2 -nic none, the kernel and
#    initrd of the image's /boot, root=/dev/vda, the serial console in a file
#    whose VMTEST lines are printed as they come. After the poweroff (or the
#    time bound, VM_TIMEOUT), the results are read from the disk image
#    (debugfs) and printed with their timings; exit 1 on any FAIL, or when
#    the guest did not finish. The logs of the last run stay in
#    $VM_CACHE/last-run (console.log, results, log, journal.txt).
#
# What the guest tests is listed in hack/vm/guest-test.sh: apt install
# offline, the unconfigured agent (78, no restart loop), the backend's and
# the agent's units (Type=notify), doctor, a job, an upgrade while a job
# runs, kill -9 while a job runs (Restart=, KillMode=process, adoption), a
# draining stop, purge.
#
# Bounds, so that it cannot hang CI: the whole script VM_TOTAL_TIMEOUT
# (default 3600 s; it runs itself under timeout(1)), the VM VM_TIMEOUT, the
# test inside it a little less (RuntimeMaxSec=; then it powers off), the
# agent's first start in it VM_START_BOUND (900 s), debootstrap and each apt
# run 1800 s. On any exit, interrupt or time-out, the trap kills qemu (by its
# pid) and removes the work directory; nothing is mounted and no loop
# device is used (mkfs.ext4 -d and debugfs work on the image file).
#
# Environment: DIST (default dist/), VM_CACHE (default
# /var/cache/cronium-agent/vm), VM_REFRESH=1 rebuilds the image, VM_TIMEOUT
# (seconds the VM may run, default 2400), VM_TOTAL_TIMEOUT, VM_START_BOUND,
# VM_MEM (MiB, default 2048), VM_SMP (default 2), VM_KEEP=1 keeps the work
# directory (with the disk image), DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIST=${DIST:-$REPO/dist}
CACHE=${VM_CACHE:-/var/cache/cronium-agent/vm}
VM_TIMEOUT=${VM_TIMEOUT:-2400}
VM_MEM=${VM_MEM:-2048}
VM_SMP=${VM_SMP:-2}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
DISK_SIZE=8G
VM_TOTAL_TIMEOUT=${VM_TOTAL_TIMEOUT:-3600}
# The guest's own bound on the agent's first start (it imports and remaps
# ~150 MB of runtime images: about 4-5 minutes under TCG here).
START_BOUND=${VM_START_BOUND:-900}
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf '%s\n' "$*" >&2; }
die() { log "vm-test: $*"; exit 1; }
now() { date +%s%N; }
secs() { awk -v s="$1" -v e="${2:-$(now)}" 'BEGIN { printf "%.1f", (e - s) / 1e9 }'; }
T0=$(now)
TIMINGS=()
# timed NAME START: records how long NAME took.
timed() { TIMINGS+=("$(printf '%7ss  %s' "$(secs "$2")" "$1")"); }

# Packages of the image besides the .debs' own Depends.
BASE_PACKAGES=(systemd-sysv udev kmod linux-image-amd64 initramfs-tools ca-certificates iproute2 procps jq)

# deb_depends DEB...: the first alternative of every Depends, Pre-Depends
# and Recommends, without versions (what apt would pick on Debian; it
# installs recommends by default), but the .debs' own packages.
deb_depends() {
	local deb
	for deb in "$@"; do
		dpkg-deb -f "$deb" Depends Pre-Depends Recommends | sed -n 's/^[A-Za-z-]*: //p'
	done | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' | grep . | grep -v '^cronium-' | sort -u
}

# in_root ROOT CMD...: CMD chrooted in ROOT with /proc, /sys and /dev
# mounted in a mount namespace of its own (the mounts end with CMD); at most
# 30 minutes (apt reaches Debian's archive: it must not hang a CI run).
in_root() {
	local root=$1
	shift
	timeout 1800 unshare --mount --propagation private -- bash -c '
		set -e
		r=$1
		shift
		mount -t proc proc "$r/proc"
		mount -t sysfs sysfs "$r/sys"
		mount --rbind /dev "$r/dev"
		exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
	' _ "$root" "$@"
}

# build_image DIR PACKAGES...: the VM image in DIR (disk.img, vmlinuz,
# initrd.img, packages.txt).
build_image() {
	local dir=$1 root=$1/root
	shift
	mkdir -p "$CACHE/debootstrap-debs"
	log "debootstrap $SUITE (minbase) into $root"
	if ! timeout 1800 debootstrap --variant=minbase --cache-dir="$CACHE/debootstrap-debs" "$SUITE" "$root" "$DEBIAN_MIRROR" >"$dir/debootstrap.log" 2>&1; then
		tail -n 30 "$dir/debootstrap.log" >&2
		die "debootstrap failed (log: $dir/debootstrap.log)"
	fi
	cat >"$root/etc/apt/sources.list" <<-EOF
		deb $DEBIAN_MIRROR $SUITE main
		deb $DEBIAN_MIRROR $SUITE-updates main
		deb $DEBIAN_SECURITY_MIRROR $SUITE-security main
	EOF
	# No service starts in the chroot.
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 0755 "$root/usr/sbin/policy-rc.d"
	log "apt-get install --no-install-recommends $*"
	{
		in_root "$root" apt-get -q update &&
			in_root "$root" apt-get -q -y upgrade &&
			in_root "$root" apt-get -q -y install --no-install-recommends "$@"
	} >"$dir/apt.log" 2>&1 || {
		tail -n 30 "$dir/apt.log" >&2
		die "apt-get in the image root failed (log: $dir/apt.log)"
	}
	in_root "$root" dpkg-query -W -f='${Package} ${Version}\n' >"$dir/packages.txt"
	in_root "$root" apt-get clean
	rm -rf "$root"/var/lib/apt/lists/* "$root/usr/sbin/policy-rc.d"
	# The VM: root on /dev/vda, loopback only, root locked, a machine id of
	# its own (not a first boot), nothing on the serial console but the
	# kernel, systemd and the test, no apt timers (they would take the dpkg
	# lock in the middle of the test).
	printf '/dev/vda / ext4 rw,errors=remount-ro 0 0\n' >"$root/etc/fstab"
	echo cronium-vm >"$root/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tcronium-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$root/etc/machine-id"
	echo >>"$root/etc/machine-id"
	in_root "$root" passwd -l root >/dev/null
	local u
	for u in serial-getty@ttyS0.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer; do
		ln -sf /dev/null "$root/etc/systemd/system/$u"
	done
	local k i
	k=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
	i=$root/boot/initrd.img-${k##*/vmlinuz-}
	[[ -f $k && -f $i ]] || die "no kernel and initrd in $root/boot: $(ls "$root/boot")"
	cp "$k" "$dir/vmlinuz"
	cp "$i" "$dir/initrd.img"
	log "mkfs.ext4 -d (a $DISK_SIZE sparse image of $(du -sh "$root" | cut -f1))"
	truncate -s "$DISK_SIZE" "$dir/disk.img"
	mkfs.ext4 -q -F -L cronium-vm -d "$root" "$dir/disk.img" >"$dir/mkfs.log" 2>&1 || { cat "$dir/mkfs.log" >&2; die "mkfs.ext4 -d failed"; }
	rm -rf --one-file-system "$root"
}

# image PACKAGES...: the cached image for these packages (built when
# missing); sets IMG.
image() {
	local key
	key=$(printf '%s\n' "$(declare -f build_image in_root)" "$DISK_SIZE" "$SUITE" "$@" | sha256sum | cut -c1-12)
	IMG=$CACHE/image-$key
	if [[ ${VM_REFRESH:-} == 1 ]]; then
		rm -rf --one-file-system "$IMG"
	fi
	if [[ -f $IMG/.complete ]]; then
		log "cached image $IMG (built $(cat "$IMG/.complete"))"
		return 0
	fi
	local t
	t=$(now)
	rm -rf --one-file-system "$IMG.tmp"
	mkdir -p "$IMG.tmp"
	build_image "$IMG.tmp" "$@"
	date -u +%FT%TZ >"$IMG.tmp/.complete"
	rm -rf --one-file-system "$IMG"
	mv "$IMG.tmp" "$IMG"
	# Older images (of other recipes) go.
	find "$CACHE" -maxdepth 1 -name 'image-*' ! -name "image-$key" -exec rm -rf --one-file-system {} +
	timed "image: debootstrap, apt, mkfs.ext4 -d (once; cached)" "$t"
}

# dfs IMAGE CMDFILE: debugfs -w with the commands in CMDFILE; fails on any
# error it reports.
dfs() {
	local out
	out=$(debugfs -w -f "$2" "$1" 2>&1)
	if grep -vE '^debugfs [0-9.]+ \(|^debugfs: |^Allocated inode: ' <<<"$out" | grep -q .; then
		printf '%s\n' "$out" >&2
		return 1
	fi
}

# ------------------------------------------------------------------- run

QEMU_PID=
cleanup() {
	local rc=$?
	# Our qemu only, by its pid.
	if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
		kill -TERM "$QEMU_PID" 2>/dev/null || true
		sleep 2
		kill -KILL "$QEMU_PID" 2>/dev/null || true
	fi
	if [[ -n ${WORK:-} && -d $WORK ]]; then
		if [[ ${VM_KEEP:-} == 1 ]]; then
			log "kept $WORK"
		else
			rm -rf --one-file-system "$WORK"
		fi
	fi
	rm -rf --one-file-system "${IMG:-/nonexistent}.tmp" 2>/dev/null || true
	exit "$rc"
}

main() {
	((EUID == 0)) || die "run as root (debootstrap, chroot)"
	cd "$REPO"
	local tool
	for tool in qemu-system-x86_64 debootstrap mkfs.ext4 debugfs unshare; do
		command -v "$tool" >/dev/null || { log "vm-test: $tool is missing: running hack/deps.sh"; hack/deps.sh; break; }
	done
	[[ $(dpkg --print-architecture) == amd64 ]] || die "the VM is amd64 (the packages of this host's architecture would not run in it)"
	mkdir -p "$CACHE"
	# One VM at a time: this machine has 2 cores.
	exec 9>"$CACHE/.lock"
	flock -n 9 || { log "vm-test: another vm-test holds $CACHE/.lock; waiting"; flock 9; }

	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	local agent runtimes backend pkgver t
	if ! compgen -G "$DIST/cronium-agent_*_amd64.deb" >/dev/null; then
		make --no-print-directory package
	fi
	agent=$(ls -t "$DIST"/cronium-agent_*_amd64.deb | head -1)
	pkgver=$(dpkg-deb -f "$agent" Version)
	pkgver=${pkgver%-1}
	runtimes=$DIST/cronium-runtimes_${pkgver}-1_amd64.deb
	backend=$DIST/cronium-backend_${pkgver}-1_amd64.deb
	[[ -f $runtimes && -f $backend ]] || die "dist has $(basename "$agent") but not the cronium-runtimes and cronium-backend .debs of version $pkgver"
	log "packages $pkgver from $DIST"

	local deps
	mapfile -t deps < <(deb_depends "$agent" "$runtimes" "$backend")
	image "${BASE_PACKAGES[@]}" "${deps[@]}"
	[[ ${1:-} == image ]] && { log "image: $IMG"; return 0; }

	WORK=$(mktemp -d "$CACHE/work.XXXXXX")

	# The next version of the agent package, for the upgrade.
	t=$(now)
	local v2=$WORK/v2 v2ver=$pkgver.1
	mkdir -p "$v2"
	log "building the next agent package ($v2ver, binary vmtest-upgrade) with packaging/build.sh"
	VERSION=vmtest-upgrade PKG_VERSION=$v2ver ARCHES=amd64 PACKAGES=cronium-agent FORMATS=deb DIST=$v2/dist \
		timeout 900 packaging/build.sh 2>"$v2/build.log" || { cat "$v2/build.log" >&2; die "building the next agent package failed"; }
	timed "the next agent package (packaging/build.sh)" "$t"

	# This run's disk: a copy of the image with the test written in.
	t=$(now)
	cp --sparse=always "$IMG/disk.img" "$WORK/disk.img"
	local in=$WORK/in
	mkdir -p "$in"
	cat >"$in/vmtest.env" <<-EOF
		AGENT_DEB=$(basename "$agent")
		RUNTIMES_DEB=$(basename "$runtimes")
		BACKEND_DEB=$(basename "$backend")
		V2_PKG_VERSION=$v2ver
		V2_BIN_VERSION=vmtest-upgrade
		START_BOUND=$START_BOUND
	EOF
	cat >"$in/cronium-vmtest.service" <<-EOF
		# Written by hack/vm-test.sh: the package test, once the VM is up.
		[Unit]
		Description=cronium-agent package test (hack/vm-test.sh)
		After=multi-user.target containerd.service
		# When the test ends, or fails, or runs out of time: power off.
		SuccessAction=poweroff
		FailureAction=poweroff
		[Service]
		Type=simple
		ExecStart=/opt/cronium-vmtest/guest-test.sh
		StandardOutput=journal
		StandardError=journal
		# The guest's own bound, less than the host's.
		RuntimeMaxSec=$((VM_TIMEOUT > 600 ? VM_TIMEOUT - 120 : VM_TIMEOUT * 3 / 4))
		[Install]
		WantedBy=multi-user.target
	EOF
	install -m 0755 hack/vm/guest-test.sh "$in/guest-test.sh"
	chmod 0644 "$in/vmtest.env" "$in/cronium-vmtest.service"
	{
		echo "mkdir /opt/cronium-vmtest"
		echo "mkdir /opt/cronium-vmtest/v2"
		echo "cd /opt/cronium-vmtest"
		local f
		for f in "$in/guest-test.sh" "$in/vmtest.env" "$agent" "$runtimes" "$backend"; do
			echo "write $f $(basename "$f")"
		done
		echo "cd /opt/cronium-vmtest/v2"
		f=$(ls "$v2"/dist/cronium-agent_*_amd64.deb)
		echo "write $f $(basename "$f")"
		echo "cd /etc/systemd/system"
		echo "write $in/cronium-vmtest.service cronium-vmtest.service"
		echo "cd /etc/systemd/system/multi-user.target.wants"
		echo "symlink cronium-vmtest.service /etc/systemd/system/cronium-vmtest.service"
	} >"$in/debugfs.cmds"
	dfs "$WORK/disk.img" "$in/debugfs.cmds" || die "debugfs could not write the test into the image"
	timed "this run's disk: copy, debugfs write" "$t"

	# Boot.
	local console=$WORK/console.log
	: >"$console"
	log "booting: qemu-system-x86_64 -accel tcg -m $VM_MEM -smp $VM_SMP -nic none (bound ${VM_TIMEOUT}s)"
	log "the test's lines: [time since the test began] (time since its step began)"
	local tboot
	tboot=$(now)
	qemu-system-x86_64 -accel tcg -cpu max -m "$VM_MEM" -smp "$VM_SMP" \
		-nographic -nodefaults -no-user-config -nic none \
		-monitor none -serial "file:$console" -no-reboot \
		-kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" \
		-append "root=/dev/vda rw console=ttyS0,115200 loglevel=4 panic=-1" \
		-drive "file=$WORK/disk.img,format=raw,if=virtio,cache=unsafe" \
		-device virtio-rng-pci </dev/null >"$WORK/qemu.out" 2>&1 &
	QEMU_PID=$!
	local started='' timedout=false shown=0
	# show_new: the console's VMTEST lines not printed yet.
	show_new() {
		local lines
		lines=$(tr -d '\r' <"$console" | grep '^VMTEST ' | tail -n "+$((shown + 1))") || true
		[[ -n $lines ]] || return 0
		printf '%s\n' "$lines" | sed 's/^VMTEST /  /'
		shown=$((shown + $(wc -l <<<"$lines")))
	}
	while kill -0 "$QEMU_PID" 2>/dev/null; do
		show_new
		if [[ -z $started ]] && grep -q '^VMTEST STEP .* boot' "$console" 2>/dev/null; then
			started=$(now)
			timed "boot: qemu start to the test's first line" "$tboot"
		fi
		if (($(now) - tboot > VM_TIMEOUT * 1000000000)); then
			log "vm-test: the VM ran past ${VM_TIMEOUT}s: killing it"
			timedout=true
			kill -TERM "$QEMU_PID" 2>/dev/null || true
			sleep 5
			kill -KILL "$QEMU_PID" 2>/dev/null || true
			break
		fi
		sleep 1
	done
	wait "$QEMU_PID" 2>/dev/null || true
	QEMU_PID=
	show_new
	[[ -n $started ]] && timed "the test in the VM, and the poweroff" "$started"
	timed "the VM, qemu start to exit" "$tboot"
	if [[ -s $WORK/qemu.out ]]; then
		log "qemu said:"
		cat "$WORK/qemu.out" >&2
	fi

	# Results, from the disk.
	local last=$CACHE/last-run
	rm -rf "$last"
	mkdir -p "$last"
	cp "$console" "$last/console.log"
	debugfs -R "rdump /var/lib/cronium-vmtest $last" "$WORK/disk.img" >/dev/null 2>&1 || true
	if [[ -d $last/cronium-vmtest ]]; then
		mv "$last"/cronium-vmtest/* "$last/" 2>/dev/null || true
		rmdir "$last/cronium-vmtest" 2>/dev/null || true
	fi
	local results=$last/results src="the disk image"
	if [[ ! -s $results ]]; then
		log "vm-test: no results file in the image: using the console's lines"
		src="the console"
		tr -d '\r' <"$console" | grep '^VMTEST ' >"$results" || true
	fi

	local npass
	npass=$(grep -c '^VMTEST PASS' "$results" || true)
	if tr -d '\r' <"$console" | grep '^VMTEST ' | cmp -s - "$results"; then
		printf '\nresults (from %s, as on the console above): %s PASS, %s FAIL\n' "$src" "$npass" "$(grep -c '^VMTEST FAIL' "$results" || true)"
		grep '^VMTEST FAIL' "$results" | sed 's/^VMTEST /  /' || true
	else
		printf '\nresults (from %s; [time since the test began] (time of its step)):\n' "$src"
		sed 's/^VMTEST /  /' "$results"
	fi
	printf '\ntimings:\n'
	printf '%s\n' "${TIMINGS[@]}"
	printf '%7ss  total\n' "$(secs "$T0")"
	printf '\nlogs: %s (console.log, results, log, journal.txt)\n' "$last"

	local fails
	fails=$(grep -c '^VMTEST FAIL' "$results" || true)
	if $timedout; then
		printf '\nvm-test: FAILED: the VM did not finish within %ss\n' "$VM_TIMEOUT"
		exit 1
	fi
	if ! grep -q '^VMTEST DONE' "$results"; then
		printf '\nvm-test: FAILED: the test in the VM did not finish (see %s/console.log)\n' "$last"
		tail -n 30 "$last/console.log" | tr -d '\r'
		exit 1
	fi
	if ((fails)); then
		printf '\nvm-test: %d check(s) FAILED\n' "$fails"
		exit 1
	fi
	printf '\nvm-test: all checks passed\n'
}

# The whole run under timeout(1), which signals its process group: this
# script (whose trap kills qemu), debootstrap, apt, qemu.
if [[ -z ${VM_TEST_BOUNDED:-} ]]; then
	rc=0
	VM_TEST_BOUNDED=1 timeout -k 30 "$VM_TOTAL_TIMEOUT" "${BASH_SOURCE[0]}" "$@" || rc=$?
	if ((rc == 124 || rc == 137)); then
		log "vm-test: FAILED: the whole run took more than ${VM_TOTAL_TIMEOUT}s (VM_TOTAL_TIMEOUT): stopped"
	fi
	exit "$rc"
fi
main "$@"
