#!/usr/bin/env bats
# 170-fs-daemon: the daemon's life: signals, a crash (kill -9), the
# periodic sync, daemonizing, and the store lock between mounts.

load helpers/common
load helpers/mount

setup() {
	D=$(mk_tmp)
	STORE=$D/daemon.mms
	MNT=$D/mnt
	MNT2=$D/mnt2
	mkdir "$MNT" "$MNT2"
}

teardown() {
	mmfs_teardown
}

# wait_exit MNT: wait until the daemon of MNT has exited; print its status.
wait_exit() {
	local i
	for ((i = 0; i < 400; i++)); do
		if [[ -s "$1.mmfs.rc" ]]; then
			cat "$1.mmfs.rc"
			return 0
		fi
		sleep 0.05
	done
	echo "mmfs of $1 did not exit" >&2
	return 1
}

# info_field STORE FIELD: a field of `mmstore info --json`.
info_field() {
	timeout 60 "$MMSTORE" info "$1" --json |
		/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# signal_test SIGNAL: the daemon unmounts, syncs and exits 0 on SIGNAL.
signal_test() {
	mount_store "$STORE" "$MNT" create,sync=0
	head -c 300000 /dev/urandom >"$D/ref"
	cp "$D/ref" "$MNT/file"
	mkdir "$MNT/dir"
	kill "-$1" "$(mmfs_pid "$MNT")"
	run wait_exit "$MNT"
	assert_success
	assert_output 0
	assert_not_mounted "$MNT"
	# Synced at exit: the last sync is the last commit.
	t "$MMSTORE" check "$STORE"
	assert_success
	gen=$(info_field "$STORE" generation)
	run info_field "$STORE" synced_generation
	assert_output "$gen"
	mount_store "$STORE" "$MNT"
	t cmp "$D/ref" "$MNT/file"
	assert_success
	[ -d "$MNT/dir" ]
	unmount_store "$MNT"
}

@test "SIGTERM: the daemon syncs, unmounts and exits 0" {
	signal_test TERM
}

@test "SIGINT: the daemon syncs, unmounts and exits 0" {
	signal_test INT
}

@test "kill -9: after fusermount3 -u the store checks clean and has every acknowledged change" {
	mount_store "$STORE" "$MNT" create,sync=0
	head -c 2M /dev/urandom >"$D/ref"
	cp "$D/ref" "$MNT/big"
	mkdir -p "$MNT/a/b"
	echo one >"$MNT/a/b/one"
	echo two >"$MNT/a/two"
	mv "$MNT/a/two" "$MNT/a/b/two"
	ln -s b/one "$MNT/a/link"
	chmod 600 "$MNT/a/b/one"
	setfattr -n user.k -v v "$MNT/a/b/one"
	truncate -s 1G "$MNT/sparse"
	printf 'patch' | dd of="$MNT/big" bs=1 seek=1000 conv=notrunc status=none
	printf 'patch' | dd of="$D/ref" bs=1 seek=1000 conv=notrunc status=none
	rm "$MNT/a/b/two"
	manifest() {
		(cd "$1" && find . -print0 | sort -z | xargs -0 stat -c '%n %F %s %a' &&
			find . -type f -size -10M -print0 | sort -z | xargs -0 sha256sum &&
			getfattr --only-values -n user.k a/b/one && readlink a/link)
	}
	t bash -c "$(declare -f manifest); manifest '$MNT'"
	assert_success
	before=$output
	kill -KILL "$(mmfs_pid "$MNT")"
	run wait_exit "$MNT"
	assert_output 137
	# The kernel keeps a dead mount until it is unmounted.
	t stat "$MNT"
	assert_failure
	assert_output --partial "Transport endpoint is not connected"
	t fusermount3 -u "$MNT"
	assert_success
	assert_not_mounted "$MNT"
	t "$MMSTORE" check "$STORE"
	assert_success
	mount_store "$STORE" "$MNT"
	t bash -c "$(declare -f manifest); manifest '$MNT'"
	assert_output "$before"
	t cmp "$D/ref" "$MNT/big"
	assert_success
	unmount_store "$MNT"
}

@test "kill -9 with a file open and unlinked: the next mount frees it" {
	mount_store "$STORE" "$MNT" create,sync=0
	head -c 4M /dev/urandom >"$MNT/doomed"
	echo keep >"$MNT/keep"
	exec 5<"$MNT/doomed"
	rm "$MNT/doomed"
	run mmfs_stat "$MNT" orphans
	assert_output 1
	kill -KILL "$(mmfs_pid "$MNT")"
	exec 5<&-
	run wait_exit "$MNT"
	t fusermount3 -u "$MNT"
	assert_success
	mount_store "$STORE" "$MNT"
	run mmfs_stat "$MNT" orphans
	assert_output 0
	t cat "$MNT/keep"
	assert_output keep
	run mmfs_stat "$MNT" used
	[ "$output" -lt $((4 * 1024 * 1024)) ]
	unmount_store "$MNT"
	t "$MMSTORE" check "$STORE"
	assert_success
}

@test "the periodic sync makes changes durable without an fsync" {
	mount_store "$STORE" "$MNT" create,sync=1
	echo periodic >"$MNT/p"
	gen=$(mmfs_stat "$MNT" generation)
	for ((i = 0; i < 60; i++)); do
		[ "$(mmfs_stat "$MNT" synced_generation)" -ge "$gen" ] && break
		sleep 0.1
	done
	run mmfs_stat "$MNT" synced_generation
	[ "$output" -ge "$gen" ]
	unmount_store "$MNT"
}

@test "without -f the daemon detaches once mounted and holds the store's lock" {
	echo "$MNT" >>"$BATS_TEST_TMPDIR/mmfs.mounts"
	t "$MMFS" -o create "$STORE" "$MNT"
	assert_success
	is_mounted "$MNT"
	echo detached >"$MNT/f"
	t "$MMFS" -o ro "$STORE" "$MNT2"
	[ "$status" -eq 1 ]
	assert_output --partial "cannot open"
	assert_not_mounted "$MNT2"
	t fusermount3 -u "$MNT"
	assert_success
	# The daemon exits and lets the lock go.
	for ((i = 0; i < 100; i++)); do
		"$MMSTORE" info "$STORE" >/dev/null 2>&1 && break
		sleep 0.1
	done
	t "$MMSTORE" get "$STORE" f
	assert_success
	assert_output detached
}

@test "two read-only mounts of one store at once" {
	mount_store "$STORE" "$MNT" create
	echo shared >"$MNT/f"
	unmount_store "$MNT"
	mount_store "$STORE" "$MNT" ro
	mount_store "$STORE" "$MNT2" ro
	t cat "$MNT/f" "$MNT2/f"
	assert_output $'shared\nshared'
	run mmfs_stat "$MNT2" readonly
	assert_output True
	unmount_store "$MNT"
	t cat "$MNT2/f"
	assert_output shared
	unmount_store "$MNT2"
}

@test "a read-write mount fails clearly while a read-only one is up, and the reverse" {
	mount_store "$STORE" "$MNT" create
	unmount_store "$MNT"
	mount_store "$STORE" "$MNT" ro
	t "$MMFS" "$STORE" "$MNT2"
	[ "$status" -eq 1 ]
	assert_output --partial "$STORE: cannot open: "
	assert_not_mounted "$MNT2"
	unmount_store "$MNT"

	mount_store "$STORE" "$MNT"
	t "$MMFS" -o ro "$STORE" "$MNT2"
	[ "$status" -eq 1 ]
	assert_output --partial "$STORE: cannot open: "
	assert_not_mounted "$MNT2"
	echo still-writable >"$MNT/w"
	t cat "$MNT/w"
	assert_output still-writable
	unmount_store "$MNT"
}

@test "fusermount3 -u, then at once a new mount of the store: 20 times in a row" {
	# The old daemon is still closing the store (sync, trim) when the
	# unmount returns; the new one waits for it to let go of the lock.
	echo "$MNT" >>"$BATS_TEST_TMPDIR/mmfs.mounts"
	t "$MMFS" -o create "$STORE" "$MNT"
	assert_success
	local i opt
	for ((i = 1; i <= 20; i++)); do
		head -c $((i * 5000)) /dev/urandom >"$D/ref$i"
		t cp "$D/ref$i" "$MNT/f$i"
		assert_success
		t fusermount3 -u "$MNT"
		assert_success
		opt=rw
		((i % 4 == 0)) && opt=ro
		t "$MMFS" -o "$opt" "$STORE" "$MNT"
		assert_success
		is_mounted "$MNT"
		if [[ $opt == ro ]]; then
			# the next round writes again
			t fusermount3 -u "$MNT"
			assert_success
			t "$MMFS" "$STORE" "$MNT"
			assert_success
		fi
	done
	for ((i = 1; i <= 20; i++)); do
		t cmp "$D/ref$i" "$MNT/f$i"
		assert_success
	done
	t fusermount3 -u "$MNT"
	assert_success
}

@test "a mounted store: mmstore says where it is mounted and does not wait" {
	mount_store "$STORE" "$MNT" create
	t "$MMSTORE" put "$STORE" k /dev/null
	assert_failure 1
	assert_output --partial "store is locked: it is mounted at $MNT"
	assert_output --partial "fusermount3 -u $MNT"
	refute_output --partial "waiting"
	unmount_store "$MNT"
}
