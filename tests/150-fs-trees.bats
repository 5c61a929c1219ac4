#!/usr/bin/env bats
# 150-fs-trees.bats - real trees copied in with cp -a, rsync -a and tar -x.
#
# The tree is all of /usr/share/doc (about 6,000 entries, 130 MB, with
# symlinks; it takes seconds, so the full tree is used, not a part of it).
# TREE_SRC=DIR runs the suite on another tree.  After a remount, `diff -r`
# finds no difference, and the type, mode, owner, size, mtime (to the
# nanosecond) and symlink target of every entry match the source.

load helpers/common
load helpers/mount

setup_file() {
	TOP=$(mk_tmp)
	export TOP
	export STORE=$TOP/trees.store MNT=$TOP/mnt
	export SRC=${TREE_SRC:-/usr/share/doc}
	mkdir -p "$MNT"
	# the archive is made on the host, before anything is mounted; the pax
	# format keeps mtimes to the nanosecond (ustar/gnu keep whole seconds)
	tar -C "$SRC" --format=posix -cf "$TOP/tree.tar" .
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

# The listing compared: one line per entry (path, tab, fields), sorted.  Directory sizes are
# left out (they differ between filesystems by nature); for the rest the
# size, and for symlinks the target, are in.
listing() {
	(
		cd "$1" &&
			find . -mindepth 1 ! -type d -printf '%P\t%y %m %U:%G %s %T@ -> %l\n' &&
			find . -type d -printf '%P/\t%y %m %U:%G %T@\n'
	) | LC_ALL=C sort
}

# compare_tree DIR: DIR under the mount is an exact copy of $SRC.
compare_tree() {
	local dir=$1
	TEST_TIMEOUT=600 t diff -r --no-dereference "$SRC" "$dir"
	assert_success
	assert_output ''
	listing "$SRC" >"$TOP/want.list"
	TEST_TIMEOUT=300 t bash -c "$(declare -f listing); listing '$dir'"
	assert_success
	printf '%s\n' "$output" >"$TOP/got.list"
	if ! cmp -s "$TOP/want.list" "$TOP/got.list"; then
		# one line per differing entry: path, then source and copy fields
		awk -F '\t' 'NR == FNR { want[$1] = $2; next }
		     { got[$1] = $2 }
		     END {
			for (p in want) if (want[p] != got[p]) print p ": source [" want[p] "] copy [" got[p] "]"
			for (p in got) if (!(p in want)) print p ": only in the copy [" got[p] "]"
		     }' "$TOP/want.list" "$TOP/got.list" | LC_ALL=C sort >"$TOP/differ"
		echo "$(wc -l <"$TOP/differ") entries of $dir differ from $SRC; the first ones:"
		head -n 20 "$TOP/differ"
		return 1
	fi
	# the listing is not trivially empty: every entry of the source is in it
	assert_equal "$(wc -l <"$TOP/got.list")" "$(cd "$SRC" && find . | wc -l)"
}

# Remount once, before the first comparison: the copies are then read back
# from the store file, not from the daemon's or the kernel's memory.
remount_once() {
	[[ -e $TOP/remounted ]] && return 0
	unmount_store "$MNT"
	mount_store "$STORE" "$MNT"
	touch "$TOP/remounted"
}

@test "cp -a of a real tree into the mount" {
	TEST_TIMEOUT=600 t cp -a "$SRC" "$MNT/cp"
	assert_success
	assert_output ''
}

@test "rsync -a of a real tree into the mount" {
	TEST_TIMEOUT=600 t rsync -a "$SRC/" "$MNT/rsync/"
	assert_success
	assert_output ''
}

@test "tar -x of a real tree into the mount" {
	t mkdir "$MNT/tar"
	assert_success
	TEST_TIMEOUT=600 t tar -C "$MNT/tar" -xpf "$TOP/tree.tar"
	assert_success
	assert_output ''
}

@test "after remount, the cp -a copy equals the source: bytes, modes, owners, mtimes, symlinks" {
	t test -d "$MNT/cp" # made by the copy test above
	assert_success
	remount_once
	compare_tree "$MNT/cp"
}

@test "after remount, the rsync -a copy equals the source" {
	t test -d "$MNT/rsync" # made by the copy test above
	assert_success
	remount_once
	compare_tree "$MNT/rsync"
}

@test "after remount, the tar -x copy equals the source" {
	t test -d "$MNT/tar" # made by the copy test above
	assert_success
	remount_once
	compare_tree "$MNT/tar"
}

@test "rsync -a again finds nothing to transfer (sizes and mtimes match)" {
	remount_once
	TEST_TIMEOUT=600 t rsync -a --itemize-changes "$SRC/" "$MNT/rsync/"
	assert_success
	assert_output ''
}

@test "rm -r of the copies leaves an empty mount" {
	TEST_TIMEOUT=300 t rm -r "$MNT/cp" "$MNT/rsync" "$MNT/tar"
	assert_success
	t ls -A "$MNT"
	assert_success
	assert_output ''
}

@test "after unmount, mmstore check finds no problem in the store" {
	unmount_store "$MNT"
	TEST_TIMEOUT=300 t "$MMSTORE" check "$STORE"
	assert_success
}
