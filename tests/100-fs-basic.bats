#!/usr/bin/env bats
# 100-fs-basic: mounting, reading and writing keys, metadata, persistence,
# read-only mounts, and the daemon's refusals (bad options, bad stores, bad
# mount points, a store already in use).

load helpers/common
load helpers/mount

setup_file() {
	DIR=$(mk_tmp)
	STORE=$DIR/basic.mms
	MNT=$DIR/mnt
	mkdir "$MNT"
	export DIR STORE MNT
	mount_store "$STORE" "$MNT" create,max_size=64M
}

teardown_file() {
	mmfs_teardown_file
}

teardown() {
	mmfs_teardown
}

@test "the mount is listed with the store as source and type fuse.mmfs" {
	run awk -v m="$MNT" '$2 == m { print $1, $3 }' /proc/mounts
	assert_success
	assert_output "$STORE fuse.mmfs"
}

@test "--version names mmfs, its version and libfuse; --help shows the options" {
	version=$(sed -n 's/^#define MMS_VERSION_STRING "\(.*\)"/\1/p' "$SRCDIR/src/mms.h")
	t "$MMFS" --version
	assert_success
	assert_line "mmfs $version"
	assert_output --partial "FUSE library version 3."
	t "$MMFS" --help
	assert_success
	assert_output --partial "STORE MOUNTPOINT"
	assert_output --partial "max_size="
}

@test "echo > and >> write, cat reads" {
	t bash -c "echo hello > '$MNT/greeting' && echo world >> '$MNT/greeting'"
	assert_success
	t cat "$MNT/greeting"
	assert_success
	assert_output $'hello\nworld'
	t stat -c %s "$MNT/greeting"
	assert_output 12
}

@test "a 3 MiB random file is copied in and read back byte for byte" {
	local src=$BATS_TEST_TMPDIR/random
	head -c $((3 * 1024 * 1024 + 123)) /dev/urandom >"$src"
	t cp "$src" "$MNT/random"
	assert_success
	t cmp "$src" "$MNT/random"
	assert_success
	# Also read it with small unaligned requests.
	t bash -c "dd if='$MNT/random' bs=1000 status=none | cmp - '$src'"
	assert_success
}

@test "overwriting in the middle (dd conv=notrunc) changes only those bytes" {
	local ref=$BATS_TEST_TMPDIR/ref
	head -c 20000 /dev/urandom >"$ref"
	t cp "$ref" "$MNT/middle"
	assert_success
	for f in "$ref" "$MNT/middle"; do
		t bash -c "printf XYZXYZ | dd of='$f' bs=1 seek=5000 conv=notrunc status=none"
		assert_success
		t bash -c "head -c 5000 /dev/zero | dd of='$f' bs=1 seek=9000 conv=notrunc status=none"
		assert_success
	done
	t cmp "$ref" "$MNT/middle"
	assert_success
	t stat -c %s "$MNT/middle"
	assert_output 20000
}

@test "O_TRUNC empties a file; a write after it starts at 0" {
	printf 'long old contents\n' >"$MNT/trunc"
	t bash -c ": > '$MNT/trunc'"
	assert_success
	t stat -c %s "$MNT/trunc"
	assert_output 0
	printf 'long old contents\n' >"$MNT/trunc"
	t /usr/bin/python3 -c "
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b'ab')
os.close(fd)
print(open(sys.argv[1], 'rb').read())" "$MNT/trunc"
	assert_success
	assert_output "b'ab'"
}

@test "O_EXCL: creating an existing name fails with EEXIST, a new one works" {
	echo first >"$MNT/excl"
	t bash -c "set -C; echo second > '$MNT/excl'"
	assert_failure
	assert_output --partial "cannot overwrite existing file"
	t cat "$MNT/excl"
	assert_output first
	t /usr/bin/python3 -c "
import os, sys, errno
try:
    os.open(sys.argv[1] + '/excl', os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    print('created?')
except OSError as e:
    print(errno.errorcode[e.errno])
fd = os.open(sys.argv[1] + '/excl-new', os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
os.close(fd)
print(oct(os.stat(sys.argv[1] + '/excl-new').st_mode & 0o777))" "$MNT"
	assert_success
	assert_output $'EEXIST\n0o600'
}

@test "stat sizes follow writes at page boundaries" {
	for n in 0 1 4095 4096 4097 65536 1048577; do
		t bash -c "head -c $n /dev/urandom > '$MNT/size-$n'"
		assert_success
		t stat -c %s "$MNT/size-$n"
		assert_output "$n"
	done
	t stat -c %F "$MNT/size-0"
	assert_output "regular empty file"
}

@test "mkdir, nested mkdir -p, rmdir, and ENOTEMPTY" {
	t mkdir "$MNT/d"
	assert_success
	t mkdir -p "$MNT/a/b/c"
	assert_success
	t stat -c %F "$MNT/a/b/c"
	assert_output directory
	echo x >"$MNT/d/x"
	t rmdir "$MNT/d"
	assert_failure
	assert_output --partial "Directory not empty"
	t rm "$MNT/d/x"
	assert_success
	t rmdir "$MNT/d"
	assert_success
	t ls "$MNT/d"
	assert_failure
	assert_output --partial "No such file or directory"
	t rm -r "$MNT/a"
	assert_success
}

@test "symlinks: readlink, following, dangling" {
	echo target-bytes >"$MNT/target"
	t ln -s target "$MNT/link"
	assert_success
	t readlink "$MNT/link"
	assert_output target
	t cat "$MNT/link"
	assert_output target-bytes
	t stat -c %F "$MNT/link"
	assert_output "symbolic link"
	t ln -s /nonexistent/elsewhere "$MNT/dangling"
	assert_success
	t readlink "$MNT/dangling"
	assert_output /nonexistent/elsewhere
	t cat "$MNT/dangling"
	assert_failure
	long=$(printf 'p%.0s' {1..4000})
	t ln -s "$long" "$MNT/longlink"
	assert_success
	t readlink "$MNT/longlink"
	assert_output "$long"
}

@test "chmod, chown and touch -d are stored with nanoseconds" {
	echo x >"$MNT/meta"
	t chmod 640 "$MNT/meta"
	assert_success
	t chown 1234:5678 "$MNT/meta"
	assert_success
	t touch -m -d "2001-02-03 04:05:06.123456789 UTC" "$MNT/meta"
	assert_success
	t touch -a -d "1999-12-31 23:59:59.5 UTC" "$MNT/meta"
	assert_success
	t stat -c '%a %u %g %.9Y %X' "$MNT/meta"
	assert_output "640 1234 5678 981173106.123456789 946684799"
	t env TZ=UTC stat -c '%y' "$MNT/meta"
	assert_output "2001-02-03 04:05:06.123456789 +0000"
	t chmod 4755 "$MNT/meta"
	t stat -c %a "$MNT/meta"
	assert_output 4755
}

@test "statfs (df) reports the max_size capacity and the space used" {
	t stat -f -c '%S %b %l' "$MNT"
	assert_success
	read -r bsize blocks namemax <<<"$output"
	[ "$bsize" -eq 4096 ]
	[ $((bsize * blocks)) -eq $((64 * 1024 * 1024)) ]
	[ "$namemax" -eq 255 ]
	# what earlier tests left to free must not be freed while we count
	run mmfs_settle "$MNT"
	assert_success
	t stat -f -c %f "$MNT"
	free_before=$output
	t bash -c "head -c 8M /dev/urandom > '$MNT/eight-mib'"
	assert_success
	t stat -f -c %f "$MNT"
	free_after=$output
	echo "free blocks: $free_before -> $free_after"
	[ $((free_before - free_after)) -ge 2048 ]
	t df -P "$MNT"
	assert_success
	assert_output --partial "$STORE"
	rm "$MNT/eight-mib"
}

@test "a max_size beyond the host's free space: df, mmstore info and the stats say what the disk can take" {
	local d host
	d=$(mk_tmp)
	mkdir "$d/mnt"
	mount_store "$d/huge.mms" "$d/mnt" create,max_size=1000T
	host=$(($(stat -f -c '%a * %S' "$d") ))
	t stat -f -c '%a %b %S' "$d/mnt"
	read -r avail blocks bsize <<<"$output"
	echo "host free $host, mount avail $((avail * bsize)) of $((blocks * bsize))"
	# the host's free space moves a little while we look: 1% slack
	(( avail * bsize <= host + host / 100 ))
	(( blocks * bsize <= host + host / 100 + 16 * 1024 * 1024 ))
	(( avail * bsize >= host - host / 100 ))
	local stats
	stats=$(mmfs_stat "$d/mnt" available)
	(( stats <= host + host / 100 ))
	unmount_store "$d/mnt"
	t "$MMSTORE" info --json "$d/huge.mms"
	assert_success
	run /usr/bin/python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["available"], d["max_size"])' "$output"
	read -r ia imax <<<"$output"
	(( ia <= host + host / 100 && imax == 1000 * 1024 ** 4 ))
}

@test "contents, modes and times persist across a remount" {
	mkdir -p "$MNT/persist/sub"
	head -c 100000 /dev/urandom >"$MNT/persist/data"
	echo small >"$MNT/persist/sub/small"
	: >"$MNT/persist/empty"
	ln -s sub/small "$MNT/persist/link"
	chmod 600 "$MNT/persist/data"
	chmod 711 "$MNT/persist/sub"
	chown 42:43 "$MNT/persist/sub/small"
	touch -d "2010-10-10 10:10:10.987654321 UTC" "$MNT/persist/data" "$MNT/persist/sub/small"
	manifest() {
		(cd "$1" && find . -print0 | sort -z |
			xargs -0 stat -c '%n %F %s %a %u %g %.9X %.9Y' &&
			find . -type f -print0 | sort -z | xargs -0 sha256sum &&
			readlink link)
	}
	t bash -c "$(declare -f manifest); manifest '$MNT/persist'"
	assert_success
	before=$output
	unmount_store "$MNT"
	assert_not_mounted "$MNT"
	mount_store "$STORE" "$MNT"
	t bash -c "$(declare -f manifest); manifest '$MNT/persist'"
	assert_success
	assert_output "$before"
}

@test "-o ro: contents readable, every change fails with EROFS" {
	local d store mnt
	d=$(mk_tmp)
	store=$d/ro.mms
	mnt=$d/mnt
	mkdir "$mnt"
	mount_store "$store" "$mnt" create
	echo kept >"$mnt/file"
	mkdir "$mnt/dir"
	unmount_store "$mnt"
	mount_store "$store" "$mnt" ro
	run awk -v m="$mnt" '$2 == m { print $4 }' /proc/mounts
	assert_output --regexp '^ro,'
	t cat "$mnt/file"
	assert_output kept
	t bash -c "echo x > '$mnt/file'"
	assert_failure
	assert_output --partial "Read-only file system"
	t touch "$mnt/new"
	assert_failure
	assert_output --partial "Read-only file system"
	t mkdir "$mnt/newdir"
	assert_output --partial "Read-only file system"
	t rm "$mnt/file"
	assert_output --partial "Read-only file system"
	t chmod 600 "$mnt/file"
	assert_output --partial "Read-only file system"
	t setfattr -n user.x -v y "$mnt/file"
	assert_output --partial "Read-only file system"
	t getfattr --only-values -n user.mmfs.stats "$mnt"
	assert_success
	assert_output --partial '"readonly": true'
	unmount_store "$mnt"
}

@test "a bad option: message, exit status 2, no mount" {
	local mnt=$BATS_TEST_TMPDIR/mnt
	mkdir "$mnt"
	t "$MMFS" -o no_such_option "$STORE.other" "$mnt"
	[ "$status" -eq 2 ]
	assert_output --partial "no_such_option"
	assert_not_mounted "$mnt"
	t "$MMFS" -o create,max_size=12Q "$STORE.other" "$mnt"
	[ "$status" -eq 2 ]
	assert_output --partial "max_size=12Q"
	t "$MMFS" -o sync=soon "$STORE.other" "$mnt"
	[ "$status" -eq 2 ]
	assert_not_mounted "$mnt"
	t "$MMFS" "$STORE.other"
	[ "$status" -eq 2 ]
	assert_output --partial "usage"
	[ ! -e "$STORE.other" ]
}

@test "a missing store: clear message, exit status 1, no mount" {
	local mnt=$BATS_TEST_TMPDIR/mnt
	mkdir "$mnt"
	t "$MMFS" "$BATS_TEST_TMPDIR/missing.mms" "$mnt"
	[ "$status" -eq 1 ]
	assert_output --partial "$BATS_TEST_TMPDIR/missing.mms: cannot open"
	assert_not_mounted "$mnt"
	[ ! -e "$BATS_TEST_TMPDIR/missing.mms" ]
}

@test "a damaged or foreign store: clear message, exit status 1, no mount" {
	local mnt=$BATS_TEST_TMPDIR/mnt bad
	mkdir "$mnt"
	bad=$BATS_TEST_TMPDIR/zeros.mms
	head -c 65536 /dev/zero >"$bad"
	t "$MMFS" "$bad" "$mnt"
	[ "$status" -eq 1 ]
	assert_output --partial "$bad: cannot open: "
	assert_not_mounted "$mnt"
	bad=$BATS_TEST_TMPDIR/text.mms
	seq 1 20000 >"$bad"
	t "$MMFS" "$bad" "$mnt"
	[ "$status" -eq 1 ]
	assert_output --partial "$bad: cannot open: "
	assert_not_mounted "$mnt"
	# A real store cut short.
	bad=$BATS_TEST_TMPDIR/cut.mms
	mount_store "$bad" "$mnt" create,size=4M
	unmount_store "$mnt"
	truncate -s 8192 "$bad"
	t "$MMFS" "$bad" "$mnt"
	[ "$status" -eq 1 ]
	assert_output --partial "$bad: cannot open: "
	assert_not_mounted "$mnt"
	t "$MMFS" -o create "$BATS_TEST_TMPDIR/nodir/x.mms" "$mnt"
	[ "$status" -eq 1 ]
	assert_output --partial "cannot open"
	assert_not_mounted "$mnt"
}

@test "a bad mount point (missing, a file, not empty): message, exit status 1" {
	local mnt=$BATS_TEST_TMPDIR/mnt
	t "$MMFS" -o create "$BATS_TEST_TMPDIR/s.mms" "$mnt"
	[ "$status" -eq 1 ]
	assert_output --partial "$mnt: bad mountpoint"
	: >"$mnt"
	t "$MMFS" -o create "$BATS_TEST_TMPDIR/s.mms" "$mnt"
	[ "$status" -eq 1 ]
	assert_output --partial "not a directory"
	assert_not_mounted "$mnt"
	rm "$mnt"
	mkdir "$mnt"
	: >"$mnt/occupied"
	t "$MMFS" -o create "$BATS_TEST_TMPDIR/s.mms" "$mnt"
	[ "$status" -eq 1 ]
	assert_output --partial "not empty"
	assert_not_mounted "$mnt"
	# Nothing was created for a mount that could not happen.
	[ ! -e "$BATS_TEST_TMPDIR/s.mms" ]
}

@test "a store mounted read-write cannot be mounted a second time" {
	local mnt=$BATS_TEST_TMPDIR/mnt2
	mkdir "$mnt"
	t "$MMFS" "$STORE" "$mnt"
	[ "$status" -eq 1 ]
	assert_output --partial "$STORE: cannot open: "
	assert_not_mounted "$mnt"
	t "$MMFS" -o ro "$STORE" "$mnt"
	[ "$status" -eq 1 ]
	assert_not_mounted "$mnt"
	# The first mount is unharmed.
	t cat "$MNT/greeting"
	assert_output $'hello\nworld'
}

@test "mount.fuse3 (mount -t fuse.mmfs, fstab) runs mmfs from PATH" {
	local d store mnt
	command -v mount.fuse3 || skip "mount.fuse3 is not installed"
	d=$(mk_tmp)
	store=$d/fstab.mms
	mnt=$d/mnt
	mkdir "$mnt" "$d/bin"
	# mount(8) runs mount.fuse3 with a clean PATH, where mmfs is not
	# installed during tests; mount.fuse3 itself runs the program named
	# after "fuse." from PATH with "STORE MNT -o OPTS".
	printf '#!/bin/sh\nexec "%s" "$@"\n' "$MMFS" >"$d/bin/mmfs"
	chmod +x "$d/bin/mmfs"
	echo "$mnt" >>"$BATS_TEST_TMPDIR/mmfs.mounts"
	t env PATH="$d/bin:$PATH" mount.fuse3 "$store" "$mnt" -t fuse.mmfs \
		-o defaults,rw,nosuid,nodev,create,max_size=16M,sync=1
	assert_success
	run awk -v m="$mnt" '$2 == m { print $1, $3 }' /proc/mounts
	assert_output "$store fuse.mmfs"
	echo via-mount >"$mnt/f"
	t cat "$mnt/f"
	assert_output via-mount
	t umount "$mnt"
	assert_success
	assert_not_mounted "$mnt"
}
