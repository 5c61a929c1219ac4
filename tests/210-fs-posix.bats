#!/usr/bin/env bats
# 210-fs-posix: what POSIX tools expect of a filesystem tree, on a mount:
# hard links (ln, cp -a, tar), device nodes, directory link counts, ".."
# in listings, st_blocks of small keys, an inode that lives while the
# kernel holds it (O_PATH, writeback), and stores of formats 1 and 2 (upgrade).

load helpers/common
load helpers/mount

setup_file() {
	mount_fresh_store posix
}

teardown_file() {
	mmfs_teardown_file
}

teardown() {
	mmfs_teardown
}

@test "ln makes a second name of one inode: shared bytes, nlink, rm of either name" {
	mkdir -p "$MNT/ln/sub"
	echo one >"$MNT/ln/a"
	run ln "$MNT/ln/a" "$MNT/ln/sub/b"
	assert_success
	run stat -c '%i %h' "$MNT/ln/a" "$MNT/ln/sub/b"
	assert_success
	[[ ${lines[0]} == "${lines[1]}" ]]
	[[ ${lines[0]} == *" 2" ]]
	echo two >>"$MNT/ln/sub/b"
	[[ $(cat "$MNT/ln/a") == $'one\ntwo' ]]
	# the kernel's cached attributes follow too
	[[ $(stat -c %s "$MNT/ln/a") == 8 ]]
	rm "$MNT/ln/a"
	[[ $(cat "$MNT/ln/sub/b") == $'one\ntwo' ]]
	[[ $(stat -c %h "$MNT/ln/sub/b") == 1 ]]
	# a linked name can be renamed, and linked again
	mv "$MNT/ln/sub/b" "$MNT/ln/c"
	ln "$MNT/ln/c" "$MNT/ln/d"
	[[ $(stat -c %h "$MNT/ln/c") == 2 ]]
}

@test "link errors: a directory (EPERM), a taken name (EEXIST), a name too long" {
	mkdir -p "$MNT/lnerr/dir"
	echo x >"$MNT/lnerr/f"
	echo y >"$MNT/lnerr/g"
	t /usr/bin/python3 -c 'import os, sys; os.link(sys.argv[1], sys.argv[2])' \
		"$MNT/lnerr/dir" "$MNT/lnerr/dir2"
	assert_failure
	assert_output --partial PermissionError
	t ln "$MNT/lnerr/f" "$MNT/lnerr/g"
	assert_failure
	assert_output --partial "File exists"
	t ln "$MNT/lnerr/f" "$MNT/lnerr/$(printf 'n%.0s' {1..256})"
	assert_failure
	assert_output --partial "File name too long"
	[[ $(cat "$MNT/lnerr/g") == y && $(stat -c %h "$MNT/lnerr/f") == 1 ]]
}

@test "rename between two names of one inode does nothing, as POSIX says" {
	mkdir -p "$MNT/same"
	echo keep >"$MNT/same/a"
	ln "$MNT/same/a" "$MNT/same/b"
	t /usr/bin/python3 -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' \
		"$MNT/same/a" "$MNT/same/b"
	assert_success
	run ls "$MNT/same"
	assert_output $'a\nb'
	[[ $(stat -c %h "$MNT/same/a") == 2 && $(cat "$MNT/same/b") == keep ]]
}

@test "cp -a and tar keep hard links and device nodes" {
	local src=$BATS_TEST_TMPDIR/src
	mkdir -p "$src/d"
	echo data >"$src/f"
	ln "$src/f" "$src/d/f2"
	mknod "$src/null" c 1 3
	mknod "$src/disk" b 8 0
	mkfifo "$src/fifo"
	cp -a "$src" "$MNT/cpa"
	run stat -c '%i %h' "$MNT/cpa/f" "$MNT/cpa/d/f2"
	[[ ${lines[0]} == "${lines[1]}" && ${lines[0]} == *" 2" ]]
	run stat -c '%F %t %T' "$MNT/cpa/null" "$MNT/cpa/disk" "$MNT/cpa/fifo"
	assert_line -n 0 "character special file 1 3"
	assert_line -n 1 "block special file 8 0"
	assert_line -n 2 "fifo 0 0"
	# tar out of the mount and back in
	tar -C "$MNT/cpa" -cf "$BATS_TEST_TMPDIR/t.tar" .
	mkdir "$MNT/untar"
	tar -C "$MNT/untar" -xf "$BATS_TEST_TMPDIR/t.tar"
	run stat -c '%i %h' "$MNT/untar/f" "$MNT/untar/d/f2"
	[[ ${lines[0]} == "${lines[1]}" && ${lines[0]} == *" 2" ]]
	[[ $(stat -c '%F %t %T' "$MNT/untar/null") == "character special file 1 3" ]]
	# the mount is nodev: a device node there opens nothing
	t cat "$MNT/untar/null"
	assert_failure
	assert_output --partial "Permission denied"
}

@test "a directory's link count is 2 + its subdirectories, through mkdir, rmdir and mv" {
	mkdir -p "$MNT/nl/a/b" "$MNT/nl/a/c" "$MNT/nl/x"
	echo f >"$MNT/nl/a/file"
	[[ $(stat -c %h "$MNT/nl/a") == 4 ]]
	[[ $(stat -c %h "$MNT/nl/a/b") == 2 ]]
	mv "$MNT/nl/a/b" "$MNT/nl/x/b"
	[[ $(stat -c %h "$MNT/nl/a") == 3 && $(stat -c %h "$MNT/nl/x") == 3 ]]
	rmdir "$MNT/nl/a/c"
	[[ $(stat -c %h "$MNT/nl/a") == 2 ]]
	# find trusts the counts to skip leaves: it must still find everything
	run find "$MNT/nl" -name b -o -name file
	assert_line "$MNT/nl/x/b"
	assert_line "$MNT/nl/a/file"
}

# dirents DIR: the "ino name" pairs getdents64 returns for DIR, as the
# daemon gave them (ls -i stats ".." instead, hiding the daemon's answer).
DIRENTS='
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
buf = ctypes.create_string_buffer(65536)
while True:
    n = libc.syscall(217, fd, buf, len(buf))  # getdents64
    if n <= 0:
        break
    off = 0
    while off < n:
        ino, _, reclen, _ = struct.unpack_from("QqHB", buf.raw, off)
        name = buf.raw[off + 19:off + reclen].split(b"\0", 1)[0].decode()
        print(ino, name)
        off += reclen
'

@test "readdir reports the real parent as '..'" {
	mkdir -p "$MNT/dd/sub"
	local parent
	parent=$(stat -c %i "$MNT/dd")
	t /usr/bin/python3 -c "$DIRENTS" "$MNT/dd/sub"
	assert_success
	assert_line "$parent .."
	assert_line "$(stat -c %i "$MNT/dd/sub") ."
	# (the mount root's ".." is the directory it is mounted in: the VFS's)
}

@test "a small key reports the blocks its bytes take: du and tar --sparse keep it" {
	mkdir -p "$MNT/blk"
	printf 'not a hole' >"$MNT/blk/small"
	run stat -c %b "$MNT/blk/small"
	(( output >= 1 ))
	(( $(du -B1 "$MNT/blk/small" | cut -f1) > 0 ))
	tar -C "$MNT/blk" --sparse -cf "$BATS_TEST_TMPDIR/s.tar" small
	mkdir "$BATS_TEST_TMPDIR/out"
	tar -C "$BATS_TEST_TMPDIR/out" -xf "$BATS_TEST_TMPDIR/s.tar"
	[[ $(cat "$BATS_TEST_TMPDIR/out/small") == "not a hole" ]]
	# an empty key and a hole still report none
	: >"$MNT/blk/empty"
	truncate -s 1M "$MNT/blk/hole"
	[[ $(stat -c %b "$MNT/blk/empty") == 0 && $(stat -c %b "$MNT/blk/hole") == 0 ]]
}

@test "an unlinked file lives while an O_PATH descriptor holds it: fstat, reopen" {
	mkdir -p "$MNT/opath"
	t /usr/bin/python3 -c '
import os, sys
p = sys.argv[1] + "/f"
with open(p, "w") as f:
    f.write("still here")
fd = os.open(p, os.O_PATH)
os.unlink(p)
st = os.fstat(fd)
assert st.st_nlink == 0, st.st_nlink
with open("/proc/self/fd/%d" % fd) as f:
    print(f.read())
' "$MNT/opath"
	assert_success
	assert_output "still here"
	# once the descriptor is gone, the kernel forgets it and it is freed
	run mmfs_wait_orphans "$MNT"
	assert_output 0
}

@test "with -o writeback, write, close, delete and syncfs never meet a freed inode" {
	local d
	d=$(mk_tmp)
	mkdir "$d/mnt"
	mount_store "$d/wb.mms" "$d/mnt" create,writeback
	t /usr/bin/python3 -c '
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1]
fails = 0
for i in range(300):
    p = "%s/f%d" % (d, i)
    with open(p, "wb") as f:
        f.write(b"x" * (i * 37 % 9000))
    os.utime(p, None)
    os.unlink(p)
    if i % 10 == 0:
        fd = os.open(d, os.O_RDONLY)
        if libc.syncfs(fd) != 0:
            fails += 1
            print("syncfs:", os.strerror(ctypes.get_errno()))
        os.close(fd)
print("failed syncfs:", fails)
' "$d/mnt"
	assert_success
	assert_output "failed syncfs: 0"
	run grep -c "Stale file handle" "$(mmfs_log "$d/mnt")"
	assert_output 0
	unmount_store "$d/mnt"
	run "$MMSTORE" check "$d/wb.mms"
	assert_success
}

@test "mmstore dump and load keep hard links and devices; check counts the names" {
	local d
	d=$(mk_tmp)
	mkdir "$d/mnt"
	mount_store "$d/l.mms" "$d/mnt" create
	mkdir "$d/mnt/x"
	echo linked >"$d/mnt/a"
	ln "$d/mnt/a" "$d/mnt/x/b"
	ln "$d/mnt/a" "$d/mnt/c"
	mknod "$d/mnt/x/tty" c 4 1
	unmount_store "$d/mnt"
	run "$MMSTORE" check "$d/l.mms"
	assert_success
	run "$MMSTORE" dump "$d/l.mms" "$d/l.dump"
	assert_success
	run grep -c '"type":"hardlink"' "$d/l.dump"
	assert_output 2
	run "$MMSTORE" load "$d/l2.mms" "$d/l.dump" --create
	assert_success
	mount_store "$d/l2.mms" "$d/mnt"
	run stat -c '%i %h' "$d/mnt/a" "$d/mnt/x/b" "$d/mnt/c"
	[[ ${lines[0]} == "${lines[1]}" && ${lines[1]} == "${lines[2]}" && ${lines[0]} == *" 3" ]]
	[[ $(cat "$d/mnt/c") == linked ]]
	[[ $(stat -c '%F %t %T' "$d/mnt/x/tty") == "character special file 4 1" ]]
	unmount_store "$d/mnt"
}

@test "a store of format 1 is refused with how to move it; mmstore upgrade converts it in place" {
	local d
	d=$(mk_tmp)
	mkdir "$d/mnt"
	cp "$SRCDIR/tests/data/format1.mms" "$d/old.mms"
	t "$MMFS" -f "$d/old.mms" "$d/mnt"
	assert_failure
	assert_output --partial "$d/old.mms"
	assert_output --partial "format version 1"
	assert_output --partial "mmstore upgrade"
	run is_mounted "$d/mnt"
	assert_failure
	t "$MMSTORE" ls "$d/old.mms"
	assert_failure 3
	assert_output --partial "mmstore upgrade"
	cmp "$d/old.mms" "$SRCDIR/tests/data/format1.mms"
	t "$MMSTORE" upgrade "$d/old.mms"
	assert_success
	assert_output "$d/old.mms: upgraded from format version 1 to 5"
	t "$MMSTORE" check "$d/old.mms"
	assert_success
	t "$MMSTORE" upgrade "$d/old.mms"
	assert_success
	assert_output --partial "already format version 5"
	mount_store "$d/old.mms" "$d/mnt"
	[[ $(sha256sum <"$d/mnt/a/b/big") == "6251e5743b6fd6a7d606130bdf7c15077ce85ebd3a0fdee284d15a46df199e38  -" ]]
	[[ $(cat "$d/mnt/a/hello") == hello ]]
	# directories got their link counts: a holds b and d, b holds c
	run stat -c '%n %h' "$d/mnt" "$d/mnt/a" "$d/mnt/a/b" "$d/mnt/a/b/c"
	assert_output "$d/mnt 4
$d/mnt/a 4
$d/mnt/a/b 3
$d/mnt/a/b/c 2"
	unmount_store "$d/mnt"
}

@test "a store of format 2 is refused with how to move it; mmstore upgrade converts it in place" {
	local d
	d=$(mk_tmp)
	mkdir "$d/mnt"
	# tests/data/format2.mms: a/hello (xattr user.color), a/b/big (20,000
	# bytes, also a/d/big2), a/sym, a/null (1,3), a/x1500; made by the last
	# build of format 2 (cfdefc2)
	cp "$SRCDIR/tests/data/format2.mms" "$d/old.mms"
	t "$MMFS" -f "$d/old.mms" "$d/mnt"
	assert_failure
	assert_output --partial "$d/old.mms"
	assert_output --partial "format version 2"
	assert_output --partial "mmstore upgrade"
	run is_mounted "$d/mnt"
	assert_failure
	t "$MMSTORE" put "$d/old.mms" new </dev/null
	assert_failure 3
	assert_output --partial "mmstore upgrade"
	cmp "$d/old.mms" "$SRCDIR/tests/data/format2.mms"
	t "$MMSTORE" upgrade "$d/old.mms"
	assert_success
	assert_output "$d/old.mms: upgraded from format version 2 to 5"
	t "$MMSTORE" check "$d/old.mms"
	assert_success
	t "$MMSTORE" info "$d/old.mms"
	assert_output --partial "format version:    5"
	mount_store "$d/old.mms" "$d/mnt"
	[[ $(sha256sum <"$d/mnt/a/b/big") == "36448423706f2615337e33296446b27a5f945e8074bddc8fdd8956da61dcca89  -" ]]
	[[ $(stat -c %h:%i "$d/mnt/a/b/big") == "2:$(stat -c %i "$d/mnt/a/d/big2")" ]]
	[[ $(cat "$d/mnt/a/hello") == hello ]]
	[[ $(getfattr --only-values -n user.color "$d/mnt/a/hello") == blue ]]
	[[ $(readlink "$d/mnt/a/sym") == hello ]]
	[[ $(stat -c %t,%T "$d/mnt/a/null") == 1,3 ]]
	[[ $(tr -d x <"$d/mnt/a/x1500" | wc -c) == 0 && $(stat -c %s "$d/mnt/a/x1500") == 1500 ]]
	# the upgraded store shares pages
	cp --reflink=never "$d/mnt/a/b/big" "$d/mnt/a/copy"
	cmp "$d/mnt/a/b/big" "$d/mnt/a/copy"
	unmount_store "$d/mnt"
	t "$MMSTORE" check "$d/old.mms"
	assert_success
}

# Writes and removes on an upgraded store of 4 KiB keys a/kN ('yes kN',
# a/k2copy a shared copy of a/k2) mounted at $1/mnt: new a/k1..a/k9 (odd),
# a/k2 and a/k4 removed; then unmount, check and read back.
write_on_upgraded() {
	local d=$1
	for i in 1 3 5 7 9; do yes "new$i" | head -c 5000 >"$d/mnt/a/k$i"; done
	rm "$d/mnt/a/k2" "$d/mnt/a/k4"
	unmount_store "$d/mnt"
	t "$MMSTORE" check "$d/old.mms"
	assert_success
	t "$MMSTORE" get "$d/old.mms" a/k5
	[[ "$output" == "$(yes new5 | head -c 5000)" ]]
	t "$MMSTORE" get "$d/old.mms" a/k2copy
	[[ "$output" == "$(yes k2 | head -c 4096)" ]]
}

@test "a store of format 3 is refused with how to move it; mmstore upgrade keeps its free list" {
	local d
	d=$(mk_tmp)
	mkdir "$d/mnt"
	# tests/data/format3.mms: a/hello, a/k1..a/k800 of 4,096 bytes ('yes kN'),
	# the odd ones removed, a/k2copy a shared copy of a/k2: 344 free runs,
	# so the free list is a blob; made by the last build of format 3 (4988073)
	cp "$SRCDIR/tests/data/format3.mms" "$d/old.mms"
	t "$MMFS" -f "$d/old.mms" "$d/mnt"
	assert_failure
	assert_output --partial "$d/old.mms"
	assert_output --partial "format version 3"
	assert_output --partial "mmstore upgrade"
	cmp "$d/old.mms" "$SRCDIR/tests/data/format3.mms"
	t "$MMSTORE" upgrade "$d/old.mms"
	assert_success
	assert_output "$d/old.mms: upgraded from format version 3 to 5"
	t "$MMSTORE" check "$d/old.mms"
	assert_success
	t "$MMSTORE" info "$d/old.mms"
	assert_output --partial "format version:    5"
	local runs
	runs=$(sed -n 's/^free: .* in \([0-9]*\) runs$/\1/p' <<<"$output")
	[[ $runs -gt 321 ]]
	mount_store "$d/old.mms" "$d/mnt"
	[[ $(cat "$d/mnt/a/hello") == hello ]]
	[[ $(ls "$d/mnt/a" | wc -l) == 402 ]]
	cmp "$d/mnt/a/k2" <(yes k2 | head -c 4096)
	cmp "$d/mnt/a/k2copy" <(yes k2 | head -c 4096)
	cmp "$d/mnt/a/k800" <(yes k800 | head -c 4096)
	[[ ! -e "$d/mnt/a/k1" ]]
	# writes on top of the old free list: small commits go to its log
	write_on_upgraded "$d"
}

@test "a store of format 4 is refused with how to move it; mmstore upgrade keeps its free-list log" {
	local d
	d=$(mk_tmp)
	mkdir "$d/mnt"
	# tests/data/format4.mms: a/hello, a/k2..a/k800 (even) of 4,096 bytes
	# ('yes kN'), but a/k10 removed and a/k12 'changed', a/k2copy a shared
	# copy of a/k2: 340 free runs in a base and a log of 2 and 3 pages (the
	# two metas); made by the last build of format 4 (eb6cde0)
	cp "$SRCDIR/tests/data/format4.mms" "$d/old.mms"
	t "$MMFS" -f "$d/old.mms" "$d/mnt"
	assert_failure
	assert_output --partial "$d/old.mms"
	assert_output --partial "format version 4"
	assert_output --partial "mmstore upgrade"
	cmp "$d/old.mms" "$SRCDIR/tests/data/format4.mms"
	t "$MMSTORE" upgrade "$d/old.mms"
	assert_success
	assert_output "$d/old.mms: upgraded from format version 4 to 5"
	t "$MMSTORE" check "$d/old.mms"
	assert_success
	t "$MMSTORE" info "$d/old.mms"
	assert_output --partial "format version:    5"
	assert_output --partial "in 340 runs"
	mount_store "$d/old.mms" "$d/mnt"
	[[ $(cat "$d/mnt/a/hello") == hello && $(cat "$d/mnt/a/k12") == changed ]]
	[[ $(ls "$d/mnt/a" | wc -l) == 401 ]]
	cmp "$d/mnt/a/k2copy" <(yes k2 | head -c 4096)
	cmp "$d/mnt/a/k800" <(yes k800 | head -c 4096)
	[[ ! -e "$d/mnt/a/k10" && ! -e "$d/mnt/a/k1" ]]
	# small commits on top of the old log: their changes go to the meta
	write_on_upgraded "$d"
	t "$MMSTORE" get "$d/old.mms" a/k6
	[[ "$output" == "$(yes k6 | head -c 4096)" ]]
}

@test "fallocate --zero-range zeroes and allocates; collapse and insert say EOPNOTSUPP" {
	mkdir -p "$MNT/zr"
	head -c 20000 /dev/urandom >"$MNT/zr/f"
	cp "$MNT/zr/f" "$BATS_TEST_TMPDIR/want"
	# the same on a local copy: dd of zeros over the range
	dd if=/dev/zero of="$BATS_TEST_TMPDIR/want" bs=1 seek=100 count=5000 conv=notrunc status=none
	run fallocate --zero-range --offset 100 --length 5000 "$MNT/zr/f"
	assert_success
	cmp "$MNT/zr/f" "$BATS_TEST_TMPDIR/want"
	# past the end: the size grows, unless --keep-size
	run fallocate --zero-range --offset 18000 --length 6000 "$MNT/zr/f"
	assert_success
	[[ $(stat -c %s "$MNT/zr/f") == 24000 ]]
	[[ $(tail -c 6000 "$MNT/zr/f" | tr -d '\0' | wc -c) == 0 ]]
	run fallocate --zero-range --keep-size --offset 30000 --length 5000 "$MNT/zr/f"
	assert_success
	[[ $(stat -c %s "$MNT/zr/f") == 24000 ]]
	t fallocate --collapse-range --offset 0 --length 4096 "$MNT/zr/f"
	assert_failure
	assert_output --partial "Operation not supported"
	t fallocate --insert-range --offset 0 --length 4096 "$MNT/zr/f"
	assert_failure
	assert_output --partial "Operation not supported"
	[[ $(stat -c %s "$MNT/zr/f") == 24000 ]]
}

@test "lsattr works on files and directories; chattr can set no flag" {
	mkdir -p "$MNT/attr/d"
	echo x >"$MNT/attr/f"
	run lsattr "$MNT/attr/f"
	assert_success
	assert_output "---------------------- $MNT/attr/f"
	run lsattr -d "$MNT/attr/d"
	assert_success
	run chattr -i "$MNT/attr/f"
	assert_success
	t chattr +i "$MNT/attr/f"
	assert_failure
	assert_output --partial "Operation not supported"
	echo still writable >>"$MNT/attr/f"
}

@test "a write that fails half-way (the disk refuses a write) changes nothing, and the next request works" {
	local shim=$TEST_LANG_DIR/.libs/failwrite.so
	[[ -f $shim ]] || fail "$shim was not built (make check builds it)"
	local d
	d=$(mk_tmp)
	mkdir "$d/mnt"
	# sync=0: only the test syncs.  (An ASan daemon needs to be told that a
	# library comes before its runtime.)
	MMFS_TEST_FAIL_WRITES=$d/fail LD_PRELOAD=$shim \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
		mount_store "$d/s.mms" "$d/mnt" create,sync=0
	# two extents with a hole between them, synced: an overwrite of the
	# whole range copies the first (a change) before it writes the hole
	head -c 4096 /dev/urandom >"$d/want"
	cp "$d/want" "$d/mnt/f"
	head -c 4096 /dev/urandom | dd of="$d/mnt/f" bs=4096 seek=16 conv=notrunc status=none
	cp "$d/mnt/f" "$d/want"
	setfattr -n user.mmfs.sync -v 1 "$d/mnt"
	touch "$d/fail"
	t dd if=/dev/zero of="$d/mnt/f" bs=69632 count=1 conv=notrunc status=none
	assert_failure
	assert_output --partial "Input/output error"
	rm "$d/fail"
	# the next change is not taken down by the failed one
	t mkdir "$d/mnt/after"
	assert_success
	echo later >"$d/mnt/later"
	cmp "$d/mnt/f" "$d/want"
	unmount_store "$d/mnt"
	mount_store "$d/s.mms" "$d/mnt"
	cmp "$d/mnt/f" "$d/want"
	[[ -d $d/mnt/after && $(cat "$d/mnt/later") == later ]]
	unmount_store "$d/mnt"
	run "$MMSTORE" check "$d/s.mms"
	assert_success
}
