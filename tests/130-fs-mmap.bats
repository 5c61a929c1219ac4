#!/usr/bin/env bats
# 130-fs-mmap.bats - keys used through mmap() and from other languages.
#
# MAP_SHARED writes (tests/lang/mmap_rw) must reach read() in other processes
# and the store (after msync, unmount and remount); a numpy array mapped with
# np.memmap and described by user.dtype / user.shape xattrs must come back
# equal after a remount; Node's fs API must read back exactly what it wrote.
# Every expected content is built on the host with the same tool and the
# same steps, then compared byte for byte.

load helpers/common
load helpers/mount

setup_file() {
	TOP=$(mk_tmp)
	export TOP
	export STORE=$TOP/mmap.store MNT=$TOP/mnt REF=$TOP/ref
	mkdir -p "$MNT" "$REF"
	mount_store "$STORE" "$MNT" create
}

teardown() {
	show_log_on_failure
}

teardown_file() {
	unmount_store "$MNT"
	mmfs_teardown_file
}

# The daemon's log, when a test failed (its mount lives for the whole file).
show_log_on_failure() {
	[[ ${BATS_TEST_COMPLETED:-} == 1 ]] && return 0
	echo "--- mmfs log ($(mmfs_log "$MNT")) ---" >&2
	tail -n 100 "$(mmfs_log "$MNT")" >&2 || true
}

# Unmount and mount the same store again: what follows reads the file.
remount() {
	unmount_store "$MNT"
	mount_store "$STORE" "$MNT"
}

mmap_rw() {
	"$TEST_LANG_DIR/mmap_rw" "$@"
}

# make_bytes FILE N: N bytes of a repeating text (not zeros: a lost write shows).
make_bytes() {
	yes 'the quick brown fox jumps over the lazy dog 0123456789' | head -c "$2" >"$1"
}

@test "a MAP_SHARED write is seen by read() in another process" {
	make_bytes "$REF/seen" 10000
	t cp "$REF/seen" "$MNT/seen"
	assert_success
	t "$TEST_LANG_DIR/mmap_rw" write "$MNT/seen" 100 HELLO-MAPPED
	assert_success
	mmap_rw write "$REF/seen" 100 HELLO-MAPPED

	t dd if="$MNT/seen" bs=1 skip=100 count=12 status=none
	assert_success
	assert_output HELLO-MAPPED
	t cmp "$REF/seen" "$MNT/seen"
	assert_success
	t stat -c %s "$MNT/seen"
	assert_output 10000
}

@test "bytes written by write() are seen through a read-only mapping" {
	printf 'written by printf, read by mmap\n' >"$REF/printf"
	t cp "$REF/printf" "$MNT/printf"
	assert_success
	t "$TEST_LANG_DIR/mmap_rw" read "$MNT/printf" 11 6
	assert_success
	assert_output printf
	t "$TEST_LANG_DIR/mmap_rw" read "$MNT/printf" 0 32
	assert_output "written by printf, read by mmap"
}

@test "mmap writes across pages and past the end persist after msync, unmount and remount" {
	make_bytes "$REF/persist" 9000
	t cp "$REF/persist" "$MNT/persist"
	assert_success
	# one page, a page boundary (4096), a second boundary, and past the end
	# (mmap_rw extends the file with ftruncate first, then maps)
	local args
	for args in "10 first" "4090 across-the-boundary" "8190 second-boundary" "20000 past-the-end"; do
		# shellcheck disable=SC2086
		t "$TEST_LANG_DIR/mmap_rw" write "$MNT/persist" $args
		assert_success
		# shellcheck disable=SC2086
		mmap_rw write "$REF/persist" $args
	done
	t cmp "$REF/persist" "$MNT/persist"
	assert_success

	remount
	t cmp "$REF/persist" "$MNT/persist"
	assert_success
	t stat -c %s "$MNT/persist"
	assert_output "$(stat -c %s "$REF/persist")"
	t "$TEST_LANG_DIR/mmap_rw" read "$MNT/persist" 4090 19
	assert_output across-the-boundary
}

@test "a long-held mapping sees another process's write() and its own write persists" {
	make_bytes "$REF/held" 65536
	t cp "$REF/held" "$MNT/held"
	assert_success
	run mmap_rw sum "$REF/held"
	local before=${output#sum }
	printf 'OTHER-WRITER' >"$TOP/other"

	# hold the mapping for 3 s; meanwhile another process writes into the file
	timeout 60 "$TEST_LANG_DIR/mmap_rw" hold "$MNT/held" 3 30000 MARK-OF-HOLD \
		>"$TOP/hold.out" 2>"$TOP/hold.err" 3>&- &
	local pid=$!
	sleep 1
	t dd if="$TOP/other" of="$MNT/held" bs=1 seek=50000 conv=notrunc status=none
	assert_success
	dd if="$TOP/other" of="$REF/held" bs=1 seek=50000 conv=notrunc status=none
	local rc=0
	wait "$pid" || rc=$?
	assert_equal "$rc" 0
	run cat "$TOP/hold.err"
	assert_output ''
	mmap_rw write "$REF/held" 30000 MARK-OF-HOLD
	run mmap_rw sum "$REF/held"
	local after=${output#sum }

	# the mapping started from the original bytes and ended with both writes
	run cat "$TOP/hold.out"
	assert_line --index 0 "start $before"
	assert_line --index 1 "end $after"
	# read() in another process sees the mapping's write
	t "$TEST_LANG_DIR/mmap_rw" sum "$MNT/held"
	assert_output "sum $after"
	remount
	t cmp "$REF/held" "$MNT/held"
	assert_success
}

@test "numpy: an np.memmap float64 array with dtype/shape xattrs survives a remount" {
	/usr/bin/python3 -c 'import numpy' 2>/dev/null ||
		skip "numpy for /usr/bin/python3 is not installed (Debian: python3-numpy)"
	t /usr/bin/python3 "$SRCDIR/tests/lang/np_memmap.py" write "$MNT/array.f64"
	assert_success
	t /usr/bin/python3 "$SRCDIR/tests/lang/np_memmap.py" check "$MNT/array.f64"
	assert_success
	t stat -c %s "$MNT/array.f64"
	assert_output 8000000

	remount
	t getfattr --absolute-names --only-values -n user.dtype "$MNT/array.f64"
	assert_output '<f8'
	t getfattr --absolute-names --only-values -n user.shape "$MNT/array.f64"
	assert_output '1000,1000'
	t /usr/bin/python3 "$SRCDIR/tests/lang/np_memmap.py" check "$MNT/array.f64"
	assert_success
	assert_output --partial 'checked'
}

@test "node: writeFileSync, appendFileSync, readFileSync and positional reads" {
	command -v node >/dev/null || skip "node is not installed (Debian: nodejs)"
	t mkdir "$MNT/node"
	assert_success
	t node "$SRCDIR/tests/lang/node_rw.js" write "$MNT/node"
	assert_success
	remount
	t node "$SRCDIR/tests/lang/node_rw.js" check "$MNT/node"
	assert_success
	assert_output --partial 'checked'
}

@test "after unmount, mmstore check finds no problem and mmstore get reads the mapped writes" {
	unmount_store "$MNT"
	TEST_TIMEOUT=120 t "$MMSTORE" check "$STORE"
	assert_success
	"$MMSTORE" get "$STORE" persist >"$TOP/persist.got"
	cmp "$REF/persist" "$TOP/persist.got"
	"$MMSTORE" get "$STORE" held >"$TOP/held.got"
	cmp "$REF/held" "$TOP/held.got"
}
