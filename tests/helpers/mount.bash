# shellcheck shell=bash
# mount.bash - mount stores with mmfs for the FUSE suites: `load helpers/mount`
# after `load helpers/common`.
#
#   mount_store STORE MNT [OPTS]  run "$MMFS" -f [-o OPTS] STORE MNT in the
#                                 background, log to mmfs_log MNT, and wait
#                                 (MOUNT_TIMEOUT seconds) for the mount
#   mount_fresh_store NAME [OPTS] for setup_file: DIR/NAME.mms, created and
#                                 mounted at DIR/mnt (exports DIR STORE MNT)
#   mount_shared_store NAME [OPTS] the same in a directory every user may
#                                 enter, with allow_other
#   unmount_store MNT             fusermount3 -u (umount -l as a last resort),
#                                 then wait for the daemon to exit
#   is_mounted MNT                whether MNT is in /proc/mounts
#   mmfs_pid MNT, mmfs_log MNT    the daemon's pid and the path of its log
#   mmfs_status MNT               the daemon's exit status, once it exited
#   assert_not_mounted MNT        fail (after cleaning up) if MNT is mounted
#   mmfs_stat MNT FIELD           one field of getfattr user.mmfs.stats MNT
#   mmfs_teardown                 for teardown(): print the daemon logs when
#                                 the test failed, unmount the test's mounts
#   mmfs_teardown_file            for teardown_file(): unmount everything
#
# Mounts made in setup_file live for the whole file; mounts made inside a
# test are unmounted by mmfs_teardown when the test ends, whatever happened.
# A daemon's pid, log and exit status are kept beside its mount point
# (MNT.mmfs.pid, MNT.mmfs.log, MNT.mmfs.rc).

: "${MOUNT_TIMEOUT:=20}"
# A backstop for the short commands a test runs on the mount without `t`
# (echo >, mkdir, rm): no test may hang on a dead mount.
: "${BATS_TEST_TIMEOUT:=900}"
export BATS_TEST_TIMEOUT

# The registry of mounts to clean up: per test inside a test, else per file.
_mmfs_registry() {
	if [[ -n ${BATS_TEST_TMPDIR:-} && -n ${BATS_TEST_NAME:-} ]]; then
		echo "$BATS_TEST_TMPDIR/mmfs.mounts"
	else
		echo "$BATS_FILE_TMPDIR/mmfs.mounts"
	fi
}

# _mmfs_abs PATH: PATH made absolute without touching the mount (a dead
# FUSE mount makes realpath fail).
_mmfs_abs() {
	local dir base
	dir=$(dirname -- "$1")
	base=$(basename -- "$1")
	dir=$(cd -- "$dir" && pwd -P) || return 1
	echo "$dir/$base"
}

is_mounted() {
	local mnt
	mnt=$(_mmfs_abs "$1") || return 1
	awk -v m="$mnt" '$2 == m { found = 1 } END { exit !found }' /proc/mounts
}

mmfs_log() { echo "$(_mmfs_abs "$1").mmfs.log"; }

mmfs_pid() { cat "$(_mmfs_abs "$1").mmfs.pid" 2>/dev/null; }

mmfs_status() { cat "$(_mmfs_abs "$1").mmfs.rc" 2>/dev/null; }

# _mmfs_alive PID: the process exists and is not a zombie.
_mmfs_alive() {
	local state
	[[ -n $1 ]] || return 1
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z ]]
}

# _mmfs_show_log MNT: the daemon's log on stderr (bats shows it on failure).
_mmfs_show_log() {
	local log
	log=$(mmfs_log "$1")
	[[ -s $log ]] || return 0
	echo "--- mmfs log for $1 ---" >&2
	tail -n 200 "$log" >&2
	echo "--- end of log ---" >&2
}

# mount_shared_store NAME [OPTS]: for setup_file, like mount_fresh_store
# but in a directory under /tmp that every user may enter (bats' own are
# 0700), mounted with allow_other, so that other users reach it;
# mmfs_teardown_file removes the directory.
mount_shared_store() {
	DIR=$(mktemp -d /tmp/mmfs-shared.XXXXXX) || return 1
	chmod 755 "$DIR"
	echo "$DIR" >"$BATS_FILE_TMPDIR/mmfs.shared"
	STORE=$DIR/$1.mms
	MNT=$DIR/mnt
	mkdir "$MNT"
	export DIR STORE MNT
	mount_store "$STORE" "$MNT" "create,allow_other${2:+,$2}"
}

mount_fresh_store() {
	DIR=$(mk_tmp)
	STORE=$DIR/$1.mms
	MNT=$DIR/mnt
	mkdir "$MNT"
	export DIR STORE MNT
	mount_store "$STORE" "$MNT" "create${2:+,$2}"
}

mount_store() {
	local store=$1 mnt=$2 opts=${3:-} base pid i
	base=$(_mmfs_abs "$mnt") || return 1
	rm -f "$base.mmfs.pid" "$base.mmfs.rc"
	# A file's mount remounted inside a test stays the file's to clean up.
	grep -qxF "$base" "$BATS_FILE_TMPDIR/mmfs.mounts" 2>/dev/null ||
		echo "$base" >>"$(_mmfs_registry)"
	# A waiter subshell reaps the daemon and records its exit status; fd 3
	# is bats' and must not be held by a background process.
	(
		# Background jobs start with SIGINT ignored, and libfuse leaves an
		# ignored signal alone: give the daemon the default back.
		env --default-signal=INT "$MMFS" -f ${opts:+-o "$opts"} "$store" "$base" \
			>>"$base.mmfs.log" 2>&1 &
		echo $! >"$base.mmfs.pid"
		rc=0
		wait $! || rc=$? # bats runs tests under set -e
		echo $rc >"$base.mmfs.rc"
	) 3>&- </dev/null &
	for ((i = 0; i < MOUNT_TIMEOUT * 20; i++)); do
		if is_mounted "$base"; then
			return 0
		fi
		pid=$(mmfs_pid "$base")
		if [[ -s $base.mmfs.rc ]] || { [[ -n $pid ]] && ! _mmfs_alive "$pid"; }; then
			echo "mount_store: mmfs exited before mounting $store on $base" >&2
			_mmfs_show_log "$base"
			return 1
		fi
		sleep 0.05
	done
	echo "mount_store: $base not mounted after ${MOUNT_TIMEOUT}s" >&2
	_mmfs_show_log "$base"
	unmount_store "$base"
	return 1
}

# _mmfs_wait_exit PID SECONDS: wait for a process to end.
_mmfs_wait_exit() {
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		_mmfs_alive "$1" || return 0
		sleep 0.05
	done
	return 1
}

unmount_store() {
	local mnt pid status i rc=0
	mnt=$(_mmfs_abs "$1") || return 1
	pid=$(mmfs_pid "$mnt")
	if is_mounted "$mnt"; then
		if ! timeout 20 fusermount3 -u "$mnt"; then
			echo "unmount_store: fusermount3 -u $mnt failed; umount -l" >&2
			timeout 20 umount -l "$mnt"
			rc=1
		fi
	fi
	if [[ -n $pid ]] && ! _mmfs_wait_exit "$pid" "$MOUNT_TIMEOUT"; then
		echo "unmount_store: mmfs ($pid) still running after unmount; killing it" >&2
		kill -TERM "$pid" 2>/dev/null
		_mmfs_wait_exit "$pid" 5 || kill -KILL "$pid" 2>/dev/null
		rc=1
	fi
	# A daemon that fails at unmount (sync, close, sanitizer report) fails.
	for ((i = 0; i < 40; i++)); do
		[[ -s $mnt.mmfs.rc || ! -f $mnt.mmfs.pid ]] && break
		sleep 0.05
	done
	status=$(mmfs_status "$mnt")
	if [[ -n $status && $status != 0 ]]; then
		echo "unmount_store: mmfs of $mnt exited with status $status" >&2
		_mmfs_show_log "$mnt"
		rc=1
	fi
	if is_mounted "$mnt"; then
		echo "unmount_store: $mnt is still mounted" >&2
		timeout 20 umount -l "$mnt"
		rc=1
	fi
	return $rc
}

assert_not_mounted() {
	if is_mounted "$1"; then
		echo "$1 is mounted but should not be" >&2
		timeout 20 fusermount3 -u "$1" || timeout 20 umount -l "$1"
		return 1
	fi
}

mmfs_stat() {
	timeout 60 getfattr --absolute-names --only-values -n user.mmfs.stats "$1" |
		/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# mmfs_wait_orphans MNT: wait (10 s at most) until the store at MNT has no
# orphan: the kernel forgets an unlinked inode after its last close, then
# mmfs frees it.  Prints the orphans left.
mmfs_wait_orphans() {
	local i
	for ((i = 0; i < 100; i++)); do
		[[ $(mmfs_stat "$1" orphans) == 0 ]] && break
		sleep 0.1
	done
	mmfs_stat "$1" orphans
}

# mmfs_settle MNT: let the store at MNT finish freeing what earlier steps
# left: the kernel forgets the inodes it caches (a file replaced by a rename
# is freed then), then a sync makes pending pages free.  Fails if an orphan
# is still there after 10 s.
mmfs_settle() {
	local i
	sync
	echo 2 >/proc/sys/vm/drop_caches
	for ((i = 0; i < 100; i++)); do
		[[ $(mmfs_stat "$1" orphans) == 0 ]] && break
		sleep 0.1
	done
	[[ $(mmfs_stat "$1" orphans) == 0 ]] || { echo "orphans remain in $1" >&2; return 1; }
	timeout 60 setfattr -n user.mmfs.sync -v 1 "$1"
}

# _mmfs_unmount_registry FILE: unmount every mount listed in FILE.
_mmfs_unmount_registry() {
	local mnt rc=0
	[[ -f $1 ]] || return 0
	while IFS= read -r mnt; do
		if is_mounted "$mnt" || _mmfs_alive "$(mmfs_pid "$mnt")"; then
			unmount_store "$mnt" || { rc=1; _mmfs_show_log "$mnt"; }
		fi
	done < <(sort -u "$1")
	return $rc
}

mmfs_teardown() {
	local mnt reg
	if [[ ${BATS_TEST_COMPLETED:-} != 1 ]]; then
		for reg in "$BATS_FILE_TMPDIR/mmfs.mounts" "${BATS_TEST_TMPDIR:-/nonexistent}/mmfs.mounts"; do
			[[ -f $reg ]] || continue
			while IFS= read -r mnt; do
				_mmfs_show_log "$mnt"
			done < <(sort -u "$reg")
		done
	fi
	_mmfs_unmount_registry "${BATS_TEST_TMPDIR:-/nonexistent}/mmfs.mounts"
}

mmfs_teardown_file() {
	_mmfs_unmount_registry "$BATS_FILE_TMPDIR/mmfs.mounts"
	local shared
	shared=$(cat "$BATS_FILE_TMPDIR/mmfs.shared" 2>/dev/null) || return 0
	[[ $shared == /tmp/mmfs-shared.* ]] && rm -rf "$shared"
	return 0
}
