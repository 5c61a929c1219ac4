#!/usr/bin/env bats
# 120-fs-names: the errors of name operations, renames (replacing, across
# directories, RENAME_NOREPLACE, RENAME_EXCHANGE) and a directory of
# 100,000 keys.

load helpers/common
load helpers/mount

setup_file() {
	mount_fresh_store names
}

teardown_file() {
	mmfs_teardown_file
}

teardown() {
	mmfs_teardown
}

setup() {
	# Each test works in its own directory of the mount.
	W=$MNT/${BATS_TEST_NUMBER}
	mkdir "$W"
	RENAME2=$TEST_LANG_DIR/rename2
}

# errno_of CODE: run python CODE with `w` = the work directory; prints the
# errno name of the OSError it raises, or "ok".
errno_of() {
	timeout 60 /usr/bin/python3 -c "
import errno, os, sys
w = sys.argv[1]
try:
    $1
    print('ok')
except OSError as e:
    print(errno.errorcode[e.errno])" "$W"
}

@test "ENOENT for missing names" {
	t cat "$W/missing"
	assert_failure
	assert_output --partial "No such file or directory"
	run errno_of "os.stat(w + '/missing/deeper')"
	assert_output ENOENT
	run errno_of "os.unlink(w + '/missing')"
	assert_output ENOENT
	run errno_of "os.rename(w + '/missing', w + '/other')"
	assert_output ENOENT
	run errno_of "os.rmdir(w + '/missing')"
	assert_output ENOENT
	run errno_of "os.listdir(w + '/missing')"
	assert_output ENOENT
}

@test "EEXIST when a name is taken" {
	echo x >"$W/file"
	mkdir "$W/dir"
	run errno_of "os.mkdir(w + '/dir')"
	assert_output EEXIST
	run errno_of "os.mkdir(w + '/file')"
	assert_output EEXIST
	run errno_of "os.symlink('t', w + '/file')"
	assert_output EEXIST
	run errno_of "os.mknod(w + '/dir')"
	assert_output EEXIST
	t cat "$W/file"
	assert_output x
}

@test "ENOTDIR when a file is used as a directory" {
	echo x >"$W/file"
	t cat "$W/file/inside"
	assert_failure
	assert_output --partial "Not a directory"
	run errno_of "os.mkdir(w + '/file/sub')"
	assert_output ENOTDIR
	run errno_of "os.rmdir(w + '/file')"
	assert_output ENOTDIR
	run errno_of "os.listdir(w + '/file')"
	assert_output ENOTDIR
	mkdir "$W/dir"
	run errno_of "os.rename(w + '/dir', w + '/file')"
	assert_output ENOTDIR
}

@test "EISDIR when a directory is used as a file" {
	mkdir "$W/dir"
	echo x >"$W/file"
	run errno_of "open(w + '/dir', 'w')"
	assert_output EISDIR
	run errno_of "os.unlink(w + '/dir')"
	assert_output EISDIR
	run errno_of "os.rename(w + '/file', w + '/dir')"
	assert_output EISDIR
	run errno_of "os.read(os.open(w + '/dir', os.O_RDONLY), 10)"
	assert_output EISDIR
}

@test "ENOTEMPTY for rmdir and for a rename over a non-empty directory" {
	mkdir -p "$W/full/sub" "$W/other"
	run errno_of "os.rmdir(w + '/full')"
	assert_output ENOTEMPTY
	run errno_of "os.rename(w + '/other', w + '/full')"
	assert_output ENOTEMPTY
	[ -d "$W/full/sub" ]
	[ -d "$W/other" ]
}

@test "ENAMETOOLONG for a 256-byte name; 255 bytes work" {
	local n255 n256
	n255=$(printf 'n%.0s' {1..255})
	n256=${n255}x
	t touch "$W/$n256"
	assert_failure
	assert_output --partial "File name too long"
	run errno_of "os.mkdir(w + '/$n256')"
	assert_output ENAMETOOLONG
	t bash -c "echo long > '$W/$n255'"
	assert_success
	run errno_of "os.rename(w + '/$n255', w + '/$n256')"
	assert_output ENAMETOOLONG
	assert_success
	t ls "$W"
	assert_output "$n255"
	t cat "$W/$n255"
	assert_output long
	# Names are bytes: UTF-8 and odd bytes come back as given.
	t touch "$W/é ☃ tab	end" "$W/$(printf 'raw\xff\x01')"
	assert_success
	t bash -c "ls '$W' | wc -l"
	assert_output 3
	[ -e "$W/$(printf 'raw\xff\x01')" ]
}

@test "rename replaces the target atomically; renaming onto itself changes nothing" {
	echo old >"$W/target"
	echo new >"$W/source"
	t mv "$W/source" "$W/target"
	assert_success
	t cat "$W/target"
	assert_output new
	[ ! -e "$W/source" ]
	mkdir "$W/d1" "$W/d2"
	echo in-d1 >"$W/d1/f"
	t "$RENAME2" "$W/d1" "$W/d2"
	assert_success
	t cat "$W/d2/f"
	assert_output in-d1
	[ ! -e "$W/d1" ]
	t "$RENAME2" "$W/target" "$W/target"
	assert_success
	t cat "$W/target"
	assert_output new
}

@test "mv between directories keeps contents; a directory cannot move below itself" {
	mkdir -p "$W/a/deep" "$W/b"
	head -c 100000 /dev/urandom >"$BATS_TEST_TMPDIR/ref"
	cp "$BATS_TEST_TMPDIR/ref" "$W/a/deep/file"
	t mv "$W/a/deep/file" "$W/b/file"
	assert_success
	t cmp "$BATS_TEST_TMPDIR/ref" "$W/b/file"
	assert_success
	t mv "$W/a/deep" "$W/b/"
	assert_success
	[ -d "$W/b/deep" ]
	[ ! -e "$W/a/deep" ]
	t "$RENAME2" "$W/b" "$W/b/deep/b"
	assert_failure
	assert_output --partial "Invalid argument"
	# The names survive a remount in their new places.
	unmount_store "$MNT"
	mount_store "$STORE" "$MNT"
	t cmp "$BATS_TEST_TMPDIR/ref" "$W/b/file"
	assert_success
	[ -d "$W/b/deep" ]
}

@test "RENAME_NOREPLACE fails with EEXIST and leaves both; works onto a free name" {
	echo a >"$W/a"
	echo b >"$W/b"
	t "$RENAME2" --noreplace "$W/a" "$W/b"
	assert_failure
	assert_output --partial "File exists"
	t cat "$W/a" "$W/b"
	assert_output $'a\nb'
	t "$RENAME2" --noreplace "$W/a" "$W/c"
	assert_success
	[ ! -e "$W/a" ]
	t cat "$W/c"
	assert_output a
}

@test "RENAME_EXCHANGE swaps two names, a file and a directory too" {
	echo a >"$W/a"
	echo b >"$W/b"
	mkdir "$W/dir"
	echo inside >"$W/dir/f"
	t "$RENAME2" --exchange "$W/a" "$W/b"
	assert_success
	t cat "$W/a" "$W/b"
	assert_output $'b\na'
	t "$RENAME2" --exchange "$W/a" "$W/dir"
	assert_success
	t cat "$W/dir" "$W/a/f"
	assert_output $'b\ninside'
	t "$RENAME2" --exchange "$W/a" "$W/missing"
	assert_failure
	assert_output --partial "No such file or directory"
}

@test "a hard link of a directory is refused with EPERM; of a file it is made" {
	mkdir "$W/hd"
	run errno_of "os.link(w + '/hd', w + '/hd2')"
	assert_output EPERM
	[[ ! -e $W/hd2 ]]
	echo data >"$W/f"
	run errno_of "os.link(w + '/f', w + '/g')"
	assert_output ok
	assert_equal "$(cat "$W/g")" data
}

@test "stat and open racing with a rename over the name never see ENOENT" {
	# A renamed-over inode is freed while the kernel may still hold its
	# number; the daemon answers ESTALE so the VFS looks the name up again.
	mkdir "$W/d" "$W/t"
	echo x >"$W/d/k"
	local end=$((SECONDS + 5)) n=0
	(
		while ((SECONDS < end)); do
			echo y >"$W/t/w"
			echo z >>"$W/d/k"
			mv -f "$W/t/w" "$W/d/k"
		done
	) &
	local pid=$!
	while ((SECONDS < end)); do
		timeout 30 ls -l "$W/d" >/dev/null 2>>"$W/errors" || true
		timeout 30 cat "$W/d/k" >/dev/null 2>>"$W/errors" || true
		n=$((n + 1))
	done
	wait "$pid"
	((n > 20)) || fail "only $n rounds ran"
	run cat "$W/errors"
	assert_output ''
}

@test "open racing with renames over the name never fails (ESTALE)" {
	# Two threads rename new files over d/key as fast as they can while
	# three open it: the kernel may send OPEN for the inode a rename has
	# just replaced.  mmfs keeps such an inode until the kernel forgets it.
	mkdir "$W/d"
	TEST_TIMEOUT=60 t "$TEST_LANG_DIR/rename_race" "$W/d" 5
	assert_success
	echo "# $output" >&3
	local renames
	renames=$(sed -n 's/.* renames \([0-9]*\) .*/\1/p' <<<"$output")
	((renames > 1000)) || fail "only $renames renames: the threads did not race"
	t ls -A "$W/d"
	assert_output key
	# every replaced inode is freed once the kernel forgets it (dropping
	# the kernel's inode cache makes it forget them now)
	run mmfs_settle "$MNT"
	assert_success
}

@test "100,000 keys in one directory: ls and find both count them all" {
	TEST_TIMEOUT=600 t /usr/bin/python3 -c "
import os, stat, sys
d = sys.argv[1]
for i in range(100000):
    os.mknod('%s/key-%06d' % (d, i), stat.S_IFREG | 0o644)
with open(d + '/key-000007', 'w') as f:
    f.write('seven')" "$W"
	assert_success
	TEST_TIMEOUT=300 t bash -c "ls '$W' | wc -l"
	assert_output 100000
	TEST_TIMEOUT=300 t bash -c "find '$W' -type f | wc -l"
	assert_output 100000
	# Each name exactly once, and the right ones.
	TEST_TIMEOUT=300 t bash -c "ls -f '$W' | grep -v '^\.\.\?$' | sort | cmp - <(seq -f 'key-%06g' 0 99999)"
	assert_success
	t cat "$W/key-000007"
	assert_output seven
	t bash -c "rm '$W'/key-0000*"
	assert_success
	TEST_TIMEOUT=300 t bash -c "ls -f '$W' | wc -l"
	assert_output 99902
}
