#!/usr/bin/env bats
# 200-fs-users: a mount shared between users (-o allow_other).  The kernel
# checks modes and owners for every caller (mmfs always mounts with
# default_permissions), the store-wide controls are for root and the user
# who mounted, and what a refused request tried leaves every key as it was.
#
# The other user is `nobody` (setpriv), so the store lives in a directory
# that everyone may enter.

load helpers/common
load helpers/mount

# as_nobody CMD...: run CMD as nobody:nogroup, no supplementary groups.
AS_NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)

setup_file() {
	mount_shared_store users sync=0
}

teardown_file() {
	mmfs_teardown_file
}

teardown() {
	mmfs_teardown
}

# state PATH...: what must not change: modes, owners, sizes, contents,
# names and attributes.
state() {
	local p
	for p in "$@"; do
		stat -c '%n %a %u %g %s %h' "$p"
		[[ -f $p ]] && sha256sum <"$p"
		[[ -d $p ]] && ls -a "$p"
		getfattr -d -m - "$p" 2>/dev/null
	done
	return 0
}

@test "every mount checks permissions: default_permissions, and an option turning it off is refused" {
	run grep " $MNT " /proc/mounts
	assert_success
	assert_output --partial default_permissions
	assert_output --partial allow_other
	local other=$DIR/other
	mkdir "$other"
	for opt in nodefault_permissions no_default_permissions default_permissions=0; do
		t "$MMFS" -f -o "$opt" "$STORE.x" "$other"
		assert_failure 2
		assert_output --partial "option '$opt' refused"
		assert_output --partial "always checks permissions"
		run is_mounted "$other"
		assert_failure
	done
	[[ ! -e $STORE.x ]]
}

@test "another user cannot read, write, truncate, chmod, chown or retime a 0600 key" {
	mkdir -p "$MNT/priv"
	echo "root's secret" >"$MNT/priv/key"
	chmod 600 "$MNT/priv/key"
	setfattr -n user.tag -v kept "$MNT/priv/key"
	local before
	before=$(state "$MNT/priv" "$MNT/priv/key")
	t "${AS_NOBODY[@]}" cat "$MNT/priv/key"
	assert_failure
	assert_output --partial "Permission denied"
	t "${AS_NOBODY[@]}" bash -c "echo x >>'$MNT/priv/key'"
	assert_output --partial "Permission denied"
	t "${AS_NOBODY[@]}" bash -c "echo x >'$MNT/priv/key'"
	assert_output --partial "Permission denied"
	t "${AS_NOBODY[@]}" truncate -s 0 "$MNT/priv/key"
	assert_failure
	assert_output --partial "Permission denied"
	t "${AS_NOBODY[@]}" chmod 666 "$MNT/priv/key"
	assert_failure
	assert_output --partial "Operation not permitted"
	t "${AS_NOBODY[@]}" chown nobody "$MNT/priv/key"
	assert_failure
	assert_output --partial "Operation not permitted"
	t "${AS_NOBODY[@]}" chgrp nogroup "$MNT/priv/key"
	assert_failure
	assert_output --partial "Operation not permitted"
	# touch opens the key for writing first: EACCES; utimensat with
	# explicit times (not the owner): EPERM
	t "${AS_NOBODY[@]}" touch -d 2001-01-01 "$MNT/priv/key"
	assert_failure
	assert_output --partial "Permission denied"
	t "${AS_NOBODY[@]}" /usr/bin/python3 -c "import os, sys
os.utime(sys.argv[1], (1, 1))" "$MNT/priv/key"
	assert_failure
	assert_output --partial PermissionError
	t "${AS_NOBODY[@]}" /usr/bin/python3 -c "import os, sys
os.open(sys.argv[1], os.O_RDONLY)" "$MNT/priv/key"
	assert_failure
	assert_output --partial PermissionError
	[[ $(state "$MNT/priv" "$MNT/priv/key") == "$before" ]]
}

@test "another user cannot set, remove or read the attributes of a key it may not access" {
	mkdir -p "$MNT/attrs"
	echo data >"$MNT/attrs/key"
	chmod 600 "$MNT/attrs/key"
	setfattr -n user.tag -v kept "$MNT/attrs/key"
	local before
	before=$(state "$MNT/attrs/key")
	t "${AS_NOBODY[@]}" setfattr -n user.tag -v theirs "$MNT/attrs/key"
	assert_failure
	assert_output --partial "Permission denied"
	t "${AS_NOBODY[@]}" setfattr -x user.tag "$MNT/attrs/key"
	assert_failure
	assert_output --partial "Permission denied"
	t "${AS_NOBODY[@]}" getfattr -n user.tag "$MNT/attrs/key"
	assert_failure
	assert_output --partial "Permission denied"
	# a readable key is readable, attributes included; still not writable
	chmod 644 "$MNT/attrs/key"
	before=$(state "$MNT/attrs/key")
	t "${AS_NOBODY[@]}" getfattr --absolute-names --only-values -n user.tag "$MNT/attrs/key"
	assert_success
	assert_output kept
	t "${AS_NOBODY[@]}" setfattr -n user.tag -v theirs "$MNT/attrs/key"
	assert_failure
	assert_output --partial "Permission denied"
	[[ $(state "$MNT/attrs/key") == "$before" ]]
}

@test "another user cannot create, unlink, rename or link names in a 0755 directory of root's" {
	mkdir -p "$MNT/tree/sub"
	echo a >"$MNT/tree/a"
	chmod 755 "$MNT/tree"
	local before
	before=$(state "$MNT/tree" "$MNT/tree/a" "$MNT/tree/sub")
	for cmd in "touch '$MNT/tree/new'" "mkdir '$MNT/tree/newdir'" "rm -f '$MNT/tree/a'" \
		"rmdir '$MNT/tree/sub'" "mv '$MNT/tree/a' '$MNT/tree/b'" \
		"mv '$MNT/tree/a' '$MNT/tree/sub/a'" "ln -s a '$MNT/tree/sym'" \
		"mkfifo '$MNT/tree/fifo'" "ln '$MNT/tree/a' '$MNT/tree/hard'"; do
		t "${AS_NOBODY[@]}" bash -c "$cmd"
		assert_failure
		[[ $output == *"Permission denied"* || $output == *"Operation not permitted"* ]]
	done
	[[ $(state "$MNT/tree" "$MNT/tree/a" "$MNT/tree/sub") == "$before" ]]
	# in a directory it owns, the other user works as anywhere
	install -d -o nobody -g nogroup "$MNT/tree/theirs"
	t "${AS_NOBODY[@]}" bash -c "echo mine >'$MNT/tree/theirs/f' && mv '$MNT/tree/theirs/f' '$MNT/tree/theirs/g' && cat '$MNT/tree/theirs/g'"
	assert_success
	assert_output mine
	run stat -c '%U %G' "$MNT/tree/theirs/g"
	assert_output "nobody nogroup"
}

@test "a sticky world-writable directory keeps other users from removing root's names" {
	mkdir -p "$MNT/tmp"
	chmod 1777 "$MNT/tmp"
	echo r >"$MNT/tmp/roots"
	t "${AS_NOBODY[@]}" rm -f "$MNT/tmp/roots"
	assert_failure
	assert_output --partial "Operation not permitted"
	t "${AS_NOBODY[@]}" mv "$MNT/tmp/roots" "$MNT/tmp/moved"
	assert_failure
	[[ $(cat "$MNT/tmp/roots") == r ]]
	t "${AS_NOBODY[@]}" bash -c "echo n >'$MNT/tmp/nobodys' && rm '$MNT/tmp/nobodys'"
	assert_success
}

@test "the store-wide controls are for root and the user who mounted, even on a 0777 root" {
	chmod 777 "$MNT"
	echo dirty >"$MNT/unsynced"
	local gen
	gen=$(mmfs_stat "$MNT" generation)
	(($(mmfs_stat "$MNT" synced_generation) < gen))
	t "${AS_NOBODY[@]}" setfattr -n user.mmfs.sync -v 1 "$MNT"
	assert_failure
	assert_output --partial "Operation not permitted"
	t "${AS_NOBODY[@]}" setfattr -n user.mmfs.vacuum -v 1 "$MNT"
	assert_failure
	assert_output --partial "Operation not permitted"
	t "${AS_NOBODY[@]}" setfattr -n user.mmfs.vacuum -v wait "$MNT"
	assert_failure
	(($(mmfs_stat "$MNT" synced_generation) < gen))
	run bash -c "getfattr --absolute-names --only-values -n user.mmfs.stats '$MNT' |
		/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)[\"vacuum\"][\"runs\"])'"
	assert_output 0
	# reading the stats is allowed
	t "${AS_NOBODY[@]}" getfattr -n user.mmfs.stats "$MNT"
	assert_success
	# root may
	run setfattr -n user.mmfs.sync -v 1 "$MNT"
	assert_success
	(($(mmfs_stat "$MNT" synced_generation) >= gen))
	chmod 755 "$MNT"
}

@test "names in the daemon's log are escaped: a name cannot forge a log line" {
	local d
	d=$(mk_tmp)
	mkdir "$d/mnt"
	mount_store "$d/s.mms" "$d/mnt" create,max_size=1M
	# fill the store, then fail a create whose name holds a newline
	head -c 2M /dev/zero >"$d/mnt/fill" 2>/dev/null || true
	local i
	for ((i = 0; i < 300; i++)); do
		mkdir "$d/mnt/d$i" 2>/dev/null || break
	done
	run touch "$d/mnt/"$'evil\nFORGED LINE\e[31m'
	assert_failure
	local log
	log=$(mmfs_log "$d/mnt")
	run grep -c '^FORGED' "$log"
	assert_output 0
	run grep -F "evil\\x0aFORGED LINE\\x1b[31m" "$log"
	assert_success
	unmount_store "$d/mnt"
}
