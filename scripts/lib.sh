# shellcheck shell=bash
# scripts/lib.sh - shared by scripts/check and scripts/run (sourced, not run).

# Debian packages to build mmfs, and to run every test.
# shellcheck disable=SC2034 # used by the scripts that source this file
MMFS_BUILD_PACKAGES=(build-essential autoconf automake libtool pkg-config
	libfuse3-dev fuse3 libjansson-dev)
MMFS_TEST_PACKAGES=(liblmdb-dev bats bats-support bats-assert python3-numpy
	nodejs attr rsync clang libfuzzer-14-dev libclang-rt-14-dev tar diffutils time man-db
	util-linux e2fsprogs iproute2 stress-ng fio nfs-ganesha nfs-ganesha-vfs libnfs-utils
	libnfs-dev rpcbind)

# mmfs_log MESSAGE...: a progress line on stderr.
mmfs_log() {
	printf '==> %s\n' "$*" >&2
}

# mmfs_missing_packages PKG...: print those of PKG not installed (dpkg).
# nodejs counts as installed when a `node` command exists (it may come from
# elsewhere than Debian).
mmfs_missing_packages() {
	local pkg
	for pkg in "$@"; do
		if [[ $pkg == nodejs ]] && command -v node >/dev/null 2>&1; then
			continue
		fi
		if [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) != installed ]]; then
			printf '%s\n' "$pkg"
		fi
	done
}

# mmfs_install_packages PKG...: apt-get install those of PKG that are
# missing (apt-get update first, once), as root or through sudo.  Does
# nothing when all are installed.  Returns non-zero when it cannot install.
mmfs_install_packages() {
	if ! command -v dpkg-query >/dev/null 2>&1; then
		mmfs_log "not a Debian system: install by hand the equivalents of: $*"
		return 0
	fi
	local missing
	mapfile -t missing < <(mmfs_missing_packages "$@")
	((${#missing[@]})) || return 0
	local sudo=()
	if ((EUID != 0)); then
		if ! command -v sudo >/dev/null 2>&1; then
			mmfs_log "missing packages (${missing[*]}) and not root, no sudo: install them as root"
			return 1
		fi
		sudo=(sudo)
	fi
	mmfs_log "installing: ${missing[*]}"
	if [[ -z ${MMFS_APT_UPDATED:-} ]]; then
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
		MMFS_APT_UPDATED=1
	fi
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}" </dev/null
}

# mmfs_unmount DIR: unmount a FUSE mount at DIR (fusermount3 -u, then a lazy
# umount as a last resort).  Returns non-zero if DIR is still mounted.
mmfs_unmount() {
	fusermount3 -u "$1" 2>/dev/null || umount -l "$1" 2>/dev/null || true
	! mmfs_is_mounted "$1"
}

# mmfs_is_mounted DIR: true if DIR is a mount point.
mmfs_is_mounted() {
	local dir
	dir=$(realpath -m "$1") || return 1
	mmfs_mounts_under "$dir" | grep -qxF -- "$dir"
}

# mmfs_mounts_under DIR: print the mount points at or below DIR (absolute).
mmfs_mounts_under() {
	local dir
	dir=$(realpath -m "$1") || return 1
	# /proc/self/mounts escapes space, tab, newline and backslash as \ooo.
	awk -v d="$dir" '{
		m = $2
		while (match(m, /\\[0-7][0-7][0-7]/)) {
			c = sprintf("%c", (substr(m, RSTART + 1, 1) * 64) + (substr(m, RSTART + 2, 1) * 8) + substr(m, RSTART + 3, 1))
			m = substr(m, 1, RSTART - 1) c substr(m, RSTART + 4)
		}
		if (m == d || index(m, d "/") == 1)
			print m
	}' /proc/self/mounts
}

# mmfs_nproc: the number of CPUs to build with.
mmfs_nproc() {
	nproc 2>/dev/null || echo 2
}
