#!/usr/bin/env bats
# 110-fs-data: sparse files, truncation, fallocate, SEEK_DATA/SEEK_HOLE,
# files past 4 GiB, a full store, unlinking a file that is still open, and
# cp inside the mount (copy_file_range shares the pages).

load helpers/common
load helpers/mount

setup_file() {
	mount_fresh_store data
}

teardown_file() {
	mmfs_teardown_file
}

teardown() {
	exec 5>&- 2>/dev/null || true
	mmfs_teardown
}

# disk_kib FILE: the space FILE takes on the host's disk, in KiB.
disk_kib() {
	du -k "$1" | cut -f1
}

@test "truncate up is sparse: the store file does not grow and holes read as zeros" {
	local before after
	t setfattr -n user.mmfs.sync -v 1 "$MNT"
	assert_success
	before=$(disk_kib "$STORE")
	t truncate -s 10G "$MNT/sparse"
	assert_success
	t stat -c %s "$MNT/sparse"
	assert_output 10737418240
	after=$(disk_kib "$STORE")
	echo "store on disk: ${before} KiB -> ${after} KiB"
	[ $((after - before)) -lt 1024 ]
	t bash -c "dd if='$MNT/sparse' bs=1M skip=5000 count=3 status=none | cmp - <(head -c 3M /dev/zero)"
	assert_success
	t bash -c "tail -c 4096 '$MNT/sparse' | cmp - <(head -c 4096 /dev/zero)"
	assert_success
	t stat -c %b "$MNT/sparse"
	[ "$output" -lt 64 ]
}

@test "truncate down drops the tail; growing again reads zeros, not old bytes" {
	local ref=$BATS_TEST_TMPDIR/ref
	head -c 1M /dev/urandom >"$ref"
	t cp "$ref" "$MNT/shrink"
	assert_success
	t truncate -s 1000 "$MNT/shrink"
	assert_success
	t stat -c %s "$MNT/shrink"
	assert_output 1000
	t cmp "$MNT/shrink" <(head -c 1000 "$ref")
	assert_success
	t truncate -s 300000 "$MNT/shrink"
	assert_success
	t cmp "$MNT/shrink" <(head -c 1000 "$ref"; head -c 299000 /dev/zero)
	assert_success
	# And the same after a remount (nothing comes from the page cache).
	unmount_store "$MNT"
	mount_store "$STORE" "$MNT"
	t cmp "$MNT/shrink" <(head -c 1000 "$ref"; head -c 299000 /dev/zero)
	assert_success
}

@test "fallocate -l allocates zeros; -n keeps the size; -p punches a hole" {
	t fallocate -l 8M "$MNT/falloc"
	assert_success
	t stat -c '%s %b' "$MNT/falloc"
	read -r size blocks <<<"$output"
	[ "$size" -eq 8388608 ]
	[ "$blocks" -ge 16384 ]
	t cmp "$MNT/falloc" <(head -c 8M /dev/zero)
	assert_success
	t fallocate -n -o 8M -l 4M "$MNT/falloc"
	assert_success
	t stat -c %s "$MNT/falloc"
	assert_output 8388608

	local ref=$BATS_TEST_TMPDIR/ref
	head -c 65536 /dev/urandom >"$ref"
	t cp "$ref" "$MNT/punch"
	t fallocate -p -o 8192 -l 16384 "$MNT/punch"
	assert_success
	t stat -c %s "$MNT/punch"
	assert_output 65536
	t cmp "$MNT/punch" <(head -c 8192 "$ref"; head -c 16384 /dev/zero; tail -c +24577 "$ref")
	assert_success
	t /usr/bin/python3 -c "
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print(os.lseek(fd, 8192, os.SEEK_HOLE), os.lseek(fd, 8192, os.SEEK_DATA))" "$MNT/punch"
	assert_output "8192 24576"
	# Collapsing a range is not supported: a clear error, the file unchanged
	# (zeroing is: tests/210).
	t fallocate -c -o 0 -l 4096 "$MNT/punch"
	assert_failure
	assert_output --partial "Operation not supported"
	t cmp "$MNT/punch" <(head -c 8192 "$ref"; head -c 16384 /dev/zero; tail -c +24577 "$ref")
	assert_success
}

@test "SEEK_DATA and SEEK_HOLE find data and holes; ENXIO past the data" {
	t /usr/bin/python3 -c "
import errno, os, sys
path = sys.argv[1]
fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
M = 1 << 20
os.pwrite(fd, b'a' * 4096, 0)
os.pwrite(fd, b'b' * 4096, M)
os.ftruncate(fd, 2 * M)
def seek(off, whence):
    try:
        return os.lseek(fd, off, whence)
    except OSError as e:
        return errno.errorcode[e.errno]
print(seek(0, os.SEEK_DATA), seek(0, os.SEEK_HOLE))
print(seek(4096, os.SEEK_DATA), seek(M, os.SEEK_HOLE))
print(seek(M + 4096, os.SEEK_DATA), seek(M + 4096, os.SEEK_HOLE))
print(seek(2 * M, os.SEEK_DATA), seek(2 * M, os.SEEK_HOLE))
os.close(fd)" "$MNT/seek"
	assert_success
	assert_output $'0 4096\n1048576 1052672\nENXIO 1052672\nENXIO ENXIO'
}

@test "a sparse file past 4 GiB keeps bytes written beyond 4 GiB" {
	t truncate -s 5G "$MNT/big"
	assert_success
	t bash -c "printf 'beyond-4G' | dd of='$MNT/big' bs=1 seek=$((4 * 1024 * 1024 * 1024 + 123)) conv=notrunc status=none"
	assert_success
	t bash -c "printf 'end' | dd of='$MNT/big' bs=1 seek=$((5 * 1024 * 1024 * 1024 - 3)) conv=notrunc status=none"
	assert_success
	t stat -c %s "$MNT/big"
	assert_output 5368709120
	t bash -c "dd if='$MNT/big' bs=1 skip=$((4 * 1024 * 1024 * 1024 + 123)) count=9 status=none"
	assert_output beyond-4G
	t bash -c "tail -c 3 '$MNT/big'"
	assert_output end
	t bash -c "dd if='$MNT/big' bs=4096 skip=$((1024 * 1024 + 1000)) count=1 status=none | cmp - <(head -c 4096 /dev/zero)"
	assert_success
}

@test "ENOSPC past max_size; earlier files stay intact and the store checks clean" {
	local d store mnt
	d=$(mk_tmp)
	store=$d/small.mms
	mnt=$d/mnt
	mkdir "$mnt"
	mount_store "$store" "$mnt" create,max_size=8M
	head -c 1M /dev/urandom >"$d/one"
	head -c 1M /dev/urandom >"$d/two"
	cp "$d/one" "$mnt/one"
	cp "$d/two" "$mnt/two"
	t bash -c "head -c 20M /dev/zero > '$mnt/huge'"
	assert_failure
	assert_output --partial "No space left on device"
	t cmp "$d/one" "$mnt/one"
	assert_success
	t cmp "$d/two" "$mnt/two"
	assert_success
	t stat -f -c '%S %b' "$mnt"
	read -r bsize blocks <<<"$output"
	[ $((bsize * blocks)) -eq $((8 * 1024 * 1024)) ]
	unmount_store "$mnt"
	t "$MMSTORE" check "$store"
	assert_success
	[ "$(stat -c %s "$store")" -le $((8 * 1024 * 1024)) ]
	mount_store "$store" "$mnt"
	t cmp "$d/one" "$mnt/one"
	assert_success
	unmount_store "$mnt"
}

@test "a full store: rm frees space and new files can be written" {
	local d store mnt
	d=$(mk_tmp)
	store=$d/full.mms
	mnt=$d/mnt
	mkdir "$mnt"
	mount_store "$store" "$mnt" create,max_size=8M
	head -c 1M /dev/urandom >"$d/one"
	cp "$d/one" "$mnt/one"
	t bash -c "head -c 20M /dev/zero > '$mnt/huge'"
	assert_failure
	assert_output --partial "No space left on device"
	t rm "$mnt/huge"
	assert_success
	t bash -c "head -c 2M /dev/urandom > '$mnt/after'"
	assert_success
	t truncate -s 100G "$mnt/sparse"
	assert_success
	t cmp "$d/one" "$mnt/one"
	assert_success
	unmount_store "$mnt"
	t "$MMSTORE" check "$store"
	assert_success
}

@test "an unlinked open file stays readable and writable; its space is freed at close" {
	local ref=$BATS_TEST_TMPDIR/ref used_open used_closed i
	head -c 4M /dev/urandom >"$ref"
	cp "$ref" "$MNT/open-unlinked"
	run mmfs_settle "$MNT"
	assert_success
	exec 5<>"$MNT/open-unlinked"
	rm "$MNT/open-unlinked"
	[ ! -e "$MNT/open-unlinked" ]
	run mmfs_stat "$MNT" orphans
	assert_output 1
	used_open=$(mmfs_stat "$MNT" used)
	# Read through the descriptor, then append through it.
	t cmp /proc/self/fd/5 "$ref"
	assert_success
	t bash -c "cat <&5 | cmp - '$ref'"
	assert_success
	printf 'appended' >&5
	t stat -L -c '%s %h' /proc/self/fd/5
	assert_output "$((4 * 1024 * 1024 + 8)) 0"
	t bash -c "tail -c 8 /proc/self/fd/5"
	assert_output appended
	exec 5>&-
	# The kernel forgets the inode after close returns: wait for it.
	run mmfs_wait_orphans "$MNT"
	assert_output 0
	used_closed=$(mmfs_stat "$MNT" used)
	echo "used: open $used_open, closed $used_closed"
	[ "$used_closed" -le $((used_open - 4 * 1024 * 1024)) ]
}

# used_kib MNT: the store's used space as the mount reports it (statfs).
used_kib() {
	df -k --output=used "$1" | tail -1 | tr -d ' '
}

@test "cp inside the mount shares pages: 256 MiB copy at once, in no space, and the copies stay apart" {
	local d before after
	d=$(mk_tmp)
	mkdir "$d/mnt"
	mount_store "$d/s.mms" "$d/mnt" create
	# a file without holes: cp copies it with copy_file_range (a sparse
	# one it reads and writes: coreutils 9.1 looks for holes itself)
	head -c 256M /dev/urandom >"$d/ref"
	t cp "$d/ref" "$d/mnt/big"
	t sync "$d/mnt/big"
	before=$(used_kib "$d/mnt")
	# 20 s would copy 256 MiB many times over
	t timeout 20 cp "$d/mnt/big" "$d/mnt/copy"
	assert_success
	after=$(used_kib "$d/mnt")
	echo "used: ${before} KiB -> ${after} KiB"
	[ $((after - before)) -lt 1024 ]
	t cmp "$d/mnt/copy" "$d/ref"
	assert_success
	# a write to the copy leaves the original; a write to the original, the copy
	t dd if=/dev/zero of="$d/mnt/copy" bs=4096 seek=3 count=2 conv=notrunc status=none
	t dd if=/dev/zero of="$d/mnt/big" bs=1M seek=100 count=1 conv=notrunc status=none
	t cmp -n 100M "$d/mnt/big" "$d/ref"
	assert_success
	t cmp -i 20480 "$d/mnt/copy" "$d/ref"
	assert_success
	[[ $(dd if="$d/mnt/copy" bs=4096 skip=3 count=2 status=none | tr -d '\0' | wc -c) == 0 ]]
	# the original goes; the copy keeps the pages
	t rm "$d/mnt/big"
	t cmp -i 20480 "$d/mnt/copy" "$d/ref"
	assert_success
	# they survive a remount, and the store checks clean
	unmount_store "$d/mnt"
	t "$MMSTORE" check "$d/s.mms"
	assert_success
	mount_store "$d/s.mms" "$d/mnt"
	t cmp -n 12288 "$d/mnt/copy" "$d/ref"
	assert_success
	unmount_store "$d/mnt"
}
