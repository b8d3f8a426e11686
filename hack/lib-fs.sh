# Shell functions the hack/ scripts share; source it.

# unmount_under DIR: unmount anything mounted at or below DIR, deepest
# first (debootstrap and chroots leave /proc, /sys, /dev mounts behind).
unmount_under() {
	local m
	findmnt -rn -o TARGET | awk -v d="$1/" 'index($0 "/", d) == 1' | LC_ALL=C sort -r | while read -r m; do
		umount -l "$m" || true
	done
}

# remove_tree DIR: DIR gone, never crossing into a file system mounted
# below it.
remove_tree() {
	[[ -e $1 ]] || return 0
	unmount_under "$1"
	rm -rf --one-file-system "$1"
}
