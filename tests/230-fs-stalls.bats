#!/usr/bin/env bats
# 230-fs-stalls: a slow disk holds no other request up.  An LD_PRELOAD
# shim (tests/lang/slowio.c) makes the daemon's large reads or writes of
# the store sleep while a trigger file exists, and says when it is inside
# one; the tests check what other requests can do meanwhile, and that the
# pages a read goes on with are never reused under it.  No timing is
# asserted: each check is of what has finished while the slow call is
# still inside the shim.

load helpers/common
load helpers/mount

teardown_file() {
	mmfs_teardown_file
}

teardown() {
	mmfs_teardown
}

# mount_slow STORE MNT TRIGGER WHAT US [OPTS]: mount with the shim, which
# slows WHAT (read or write) by US microseconds while TRIGGER exists.
mount_slow() {
	local shim=$TEST_LANG_DIR/.libs/slowio.so
	[[ -f $shim ]] || fail "$shim was not built (make check builds it)"
	# (an ASan daemon must be told that a library comes before its runtime)
	MMFS_TEST_SLOW_IO=$3 MMFS_TEST_SLOW_WHAT=$4 MMFS_TEST_SLOW_US=$5 LD_PRELOAD=$shim \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		mount_store "$1" "$2" "sync=0${6:+,$6}"
}

# longest_hold MNT: the longest the daemon held its store lock exclusive
# (user.mmfs.stats), in microseconds; fails if it never did.
longest_hold() {
	/usr/bin/python3 -c 'import json, os, sys
x = json.loads(os.getxattr(sys.argv[1], "user.mmfs.stats"))["exclusive_lock"]
assert x["holds"] > 0, x
print(x["max_us"])' "$1"
}

# wait_file PATH: wait (at most 20 s) until PATH exists.
wait_file() {
	local i
	for ((i = 0; i < 400; i++)); do
		[[ -e $1 ]] && return 0
		sleep 0.05
	done
	echo "$1 did not appear" >&2
	return 1
}

@test "a read waiting for the disk holds no change up: mkdir, create and write finish while it waits, and while a sync waits for it" {
	local d pid spid
	d=$(mk_tmp)
	mkdir "$d/mnt"
	# 64 KiB: one READ (after it, nothing is inside the shim)
	head -c 64K /dev/urandom >"$d/ref"
	mount_store "$d/s.mms" "$d/mnt" create,sync=0
	cp "$d/ref" "$d/mnt/big"
	echo old >"$d/mnt/other"
	unmount_store "$d/mnt"
	# a new mount: nothing of big is in the kernel's cache
	mount_slow "$d/s.mms" "$d/mnt" "$d/slow" read 5000000
	touch "$d/slow"
	cat "$d/mnt/big" >"$d/out" &
	pid=$!
	wait_file "$d/slow.read"
	mkdir "$d/mnt/during"
	echo new >"$d/mnt/during/f"
	echo changed >"$d/mnt/other"
	# an fsync waits for the read (the pages it frees must not be reused
	# under a read that mapped before), but without the lock: changes go
	# on meanwhile (half a second is for it to reach that wait).  (Not
	# user.mmfs.sync: the kernel holds the root's lock across a SETXATTR.)
	sync "$d/mnt/other" &
	spid=$!
	sleep 0.5
	mkdir "$d/mnt/during2"
	echo more >"$d/mnt/during2/g"
	# all that while the read was still inside the slow disk
	[[ -e $d/slow.read ]] || fail "the changes waited for the read"
	rm "$d/slow"
	wait "$pid"
	wait "$spid"
	cmp "$d/out" "$d/ref"
	[[ $(cat "$d/mnt/during/f") == new && $(cat "$d/mnt/other") == changed ]]
	[[ $(cat "$d/mnt/during2/g") == more ]]
	# nothing held the lock exclusive while it waited for the 5 s read
	run longest_hold "$d/mnt"
	assert_success
	((output < 2500000))
	unmount_store "$d/mnt"
	t "$MMSTORE" check "$d/s.mms"
	assert_success
}

# readrace_slow WHAT MIN: readrace for 5 s on a new mount whose WHAT (read
# or write) calls of MIN bytes or more wait 20 ms inside the shim; it must
# find no wrong page, have run enough, and leave a store that checks clean.
readrace_slow() {
	local d
	d=$(mk_tmp)
	mkdir "$d/mnt"
	touch "$d/slow"
	MMFS_TEST_SLOW_MIN=$2 mount_slow "$d/s.mms" "$d/mnt" "$d/slow" "$1" 20000 create
	mkdir "$d/mnt/rr"
	t "$TEST_LANG_DIR/readrace" "$d/mnt" "$d/mnt/rr" 5
	echo "$output"
	assert_success
	[[ $output =~ reads=([0-9]+)\ writes=([0-9]+)\ syncs=([0-9]+) ]]
	((BASH_REMATCH[1] >= 20 && BASH_REMATCH[2] >= 20 && BASH_REMATCH[3] >= 5))
	unmount_store "$d/mnt"
	t "$MMSTORE" check "$d/s.mms"
	assert_success
}

@test "reads that bypass the cache never see pages reused under them, while writers free pages and syncs make them reusable" {
	# every READ of two pages waits 20 ms: long enough for a write and a
	# sync to free its pages and another file to take them
	readrace_slow read 8192
}

@test "reads that bypass the cache never see a file's new pages before a slow write has filled them" {
	# each 64 KiB write of a file waits 20 ms after its change is made
	# (its new pages hold old bytes until then)
	readrace_slow write 32768
}

@test "a write waiting for the disk holds no reader up: listings, getattrs and reads of other keys go on" {
	local d pid
	d=$(mk_tmp)
	mkdir "$d/mnt"
	head -c 1M /dev/urandom >"$d/ref"
	echo other >"$d/other.ref"
	mount_store "$d/s.mms" "$d/mnt" create,sync=0
	cp "$d/other.ref" "$d/mnt/other"
	head -c 100000 /dev/urandom >"$d/mnt/third"
	cp "$d/mnt/third" "$d/third.ref"
	unmount_store "$d/mnt"
	# only copies of 64 KiB or more are slow: the bytes of a big write,
	# not the engine's own page writes
	MMFS_TEST_SLOW_MIN=65536 mount_slow "$d/s.mms" "$d/mnt" "$d/slow" write 5000000
	touch "$d/slow"
	dd if="$d/ref" of="$d/mnt/big" bs=1M count=1 status=none &
	pid=$!
	wait_file "$d/slow.write"
	# a new mount: these all ask the daemon
	ls -l "$d/mnt" >/dev/null
	stat "$d/mnt/other" >/dev/null
	cmp "$d/mnt/other" "$d/other.ref"
	cmp "$d/mnt/third" "$d/third.ref"
	getfattr -n user.mmfs.stats "$d/mnt" >/dev/null
	[[ -e $d/slow.write ]] || fail "the readers waited for the write"
	rm "$d/slow"
	wait "$pid"
	cmp "$d/mnt/big" "$d/ref"
	# the 5 s copy ran without the exclusive lock
	run longest_hold "$d/mnt"
	assert_success
	((output < 2500000))
	# what the write was answered for is committed: it survives a remount
	unmount_store "$d/mnt"
	mount_store "$d/s.mms" "$d/mnt"
	cmp "$d/mnt/big" "$d/ref"
	unmount_store "$d/mnt"
	t "$MMSTORE" check "$d/s.mms"
	assert_success
}
