#!/usr/bin/env bats
# 140-fs-control: the control interface on the mount root (user.mmfs.stats,
# user.mmfs.sync, user.mmfs.vacuum, unknown names) and user xattrs on keys.

load helpers/common
load helpers/mount

setup_file() {
	# every daemon of this file: a vacuum waits while this file exists
	export VACUUM_GATE=$BATS_FILE_TMPDIR/vacuum-gate
	export MMFS_TEST_VACUUM_GATE=$VACUUM_GATE
	mount_fresh_store control
}

teardown_file() {
	mmfs_teardown_file
}

teardown() {
	if [[ -n ${MAPPER_PID:-} ]]; then
		kill "$MAPPER_PID" 2>/dev/null || true
		wait "$MAPPER_PID" 2>/dev/null || true
	fi
	mmfs_teardown
}

# stats_json MNT: the stats text.
stats_json() {
	timeout 60 getfattr --absolute-names --only-values -n user.mmfs.stats "$1"
}

# keys_with_holes DIR REF N: N keys of 4 MiB of random bytes in $MNT/DIR,
# copies in REF; then every key but each third one is removed (in both),
# and the store is synced: the holes a vacuum fills.
keys_with_holes() {
	local dir=$1 ref=$2 n=$3 i
	mkdir -p "$MNT/$dir" "$ref"
	for i in $(seq -w 1 "$n"); do
		head -c 4M /dev/urandom >"$ref/f$i"
		cp "$ref/f$i" "$MNT/$dir/f$i"
	done
	for i in $(seq -w 1 "$n"); do
		((10#$i % 3 == 0)) || rm "$MNT/$dir/f$i" "$ref/f$i"
	done
	timeout 60 setfattr -n user.mmfs.sync -v 1 "$MNT"
}

# vacuum_field NAME: a field of the stats' "vacuum" object ($MNT).
vacuum_field() {
	stats_json "$MNT" | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["vacuum"][sys.argv[1]])' "$1"
}

@test "user.mmfs.stats is JSON with every field, and counts keys and directories" {
	local fields="file_size disk_size max_size used free pending keys dirs generation synced_generation fragmentation free_extents orphans"
	t bash -c "getfattr --absolute-names --only-values -n user.mmfs.stats '$MNT' | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
for f in sys.argv[1].split():
    assert isinstance(s[f], (int, float)) and not isinstance(s[f], bool), f
    assert s[f] >= 0, f
print(\"fields ok\")' '$fields'"
	assert_success
	assert_output "fields ok"
	keys=$(mmfs_stat "$MNT" keys)
	dirs=$(mmfs_stat "$MNT" dirs)
	mkdir "$MNT/stats-dir"
	echo 1 >"$MNT/stats-dir/a"
	echo 2 >"$MNT/stats-dir/b"
	ln -s a "$MNT/stats-dir/c"
	run mmfs_stat "$MNT" keys
	assert_output $((keys + 3))
	run mmfs_stat "$MNT" dirs
	assert_output $((dirs + 1))
	file_size=$(mmfs_stat "$MNT" file_size)
	[ "$file_size" -eq "$(stat -c %s "$STORE")" ]
	# The root lists the control name beside its own attributes.
	t getfattr --absolute-names -d -m - "$MNT"
	assert_success
	assert_output --partial "user.mmfs.stats"
}

@test "user.mmfs.stats reads with the size a query gave, after its counters grew" {
	# getfattr asks for the size, then reads with it: the counters (requests,
	# lock holds) must not outgrow that between the two calls
	t /usr/bin/python3 -c '
import ctypes, ctypes.util, os, sys
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
mnt, name = sys.argv[1].encode(), b"user.mmfs.stats"
size = libc.getxattr(mnt, name, None, 0)
assert size > 0, os.strerror(ctypes.get_errno())
for i in range(300):
    with open(os.path.join(sys.argv[1], "grow%d" % i), "wb") as f:
        f.write(b"x" * 5000)
buf = ctypes.create_string_buffer(size)
got = libc.getxattr(mnt, name, buf, size)
assert got > 0, "read with the queried size %d: %s" % (size, os.strerror(ctypes.get_errno()))
import json
json.loads(buf.raw[:got])
print("ok", size, got)' "$MNT"
	echo "$output"
	assert_success
	assert_output --partial "ok "
	rm -f "$MNT"/grow*
}

@test "user.mmfs.sync makes every commit durable" {
	echo change >"$MNT/sync-me"
	t setfattr -n user.mmfs.sync -v 1 "$MNT"
	assert_success
	gen=$(mmfs_stat "$MNT" generation)
	run mmfs_stat "$MNT" synced_generation
	assert_output "$gen"
}

@test "unknown control names: EOPNOTSUPP to set, ENODATA to get; bad values EINVAL" {
	t setfattr -n user.mmfs.bogus -v 1 "$MNT"
	assert_failure
	assert_output --partial "Operation not supported"
	t getfattr -n user.mmfs.bogus "$MNT"
	assert_failure
	assert_output --partial "No such attribute"
	t getfattr -n user.mmfs.vacuum "$MNT"
	assert_failure
	assert_output --partial "No such attribute"
	t setfattr -n user.mmfs.vacuum -v 2 "$MNT"
	assert_failure
	assert_output --partial "Invalid argument"
	t setfattr -n user.mmfs.stats -v 1 "$MNT"
	assert_failure
	assert_output --partial "Operation not supported"
	t setfattr -x user.mmfs.stats "$MNT"
	assert_failure
	assert_output --partial "Operation not supported"
	# On a key, user.mmfs.* is an ordinary attribute.
	echo x >"$MNT/plain"
	t setfattr -n user.mmfs.bogus -v on-a-key "$MNT/plain"
	assert_success
	t getfattr --absolute-names --only-values -n user.mmfs.bogus "$MNT/plain"
	assert_output on-a-key
}

@test "vacuum shrinks the store online; a key mapped by another process keeps its bytes and stays writable" {
	local ref=$BATS_TEST_TMPDIR/kept size_before du_before size_after du_after i
	mkdir "$MNT/vac"
	for i in $(seq -w 1 40); do
		head -c 1M /dev/urandom >"$MNT/vac/filler-$i"
	done
	head -c 1M /dev/urandom >"$ref"
	cp "$ref" "$MNT/vac/kept"
	rm "$MNT"/vac/filler-*
	t setfattr -n user.mmfs.sync -v 1 "$MNT"
	assert_success

	# Another process maps the key and holds the map during the vacuum.
	/usr/bin/python3 - "$MNT/vac/kept" "$ref" "$BATS_TEST_TMPDIR" 3>&- <<'EOF' &
import hashlib, mmap, os, sys, time
path, ref, tmp = sys.argv[1:4]
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
os.close(fd)
want = hashlib.sha256(open(ref, 'rb').read()).hexdigest()
before = hashlib.sha256(m[:]).hexdigest()
open(tmp + '/mapped', 'w').write(before == want and 'ready' or 'bad')
while not os.path.exists(tmp + '/go'):
    time.sleep(0.05)
after = hashlib.sha256(m[:]).hexdigest()
m[100:107] = b'WRITTEN'
m.flush()
m.close()
open(tmp + '/result', 'w').write(after == want and 'same' or 'changed')
EOF
	MAPPER_PID=$!
	for ((i = 0; i < 200; i++)); do
		[ -s "$BATS_TEST_TMPDIR/mapped" ] && break
		sleep 0.05
	done
	run cat "$BATS_TEST_TMPDIR/mapped"
	assert_output ready

	size_before=$(stat -c %s "$STORE")
	du_before=$(du -k "$STORE" | cut -f1)
	t setfattr -n user.mmfs.vacuum -v wait "$MNT"
	assert_success
	size_after=$(stat -c %s "$STORE")
	du_after=$(du -k "$STORE" | cut -f1)
	echo "store size $size_before -> $size_after, disk $du_before KiB -> $du_after KiB"
	[ "$size_after" -lt "$size_before" ]
	[ "$size_after" -lt $((20 * 1024 * 1024)) ]
	[ "$du_after" -le "$du_before" ]
	[ "$du_after" -lt $((20 * 1024)) ]

	touch "$BATS_TEST_TMPDIR/go"
	t timeout 30 bash -c "while [ ! -s '$BATS_TEST_TMPDIR/result' ]; do sleep 0.05; done"
	run cat "$BATS_TEST_TMPDIR/result"
	assert_output same
	wait "$MAPPER_PID"
	MAPPER_PID=

	# The write through the map reached the store: check from a fresh mount.
	unmount_store "$MNT"
	mount_store "$STORE" "$MNT"
	t cmp "$MNT/vac/kept" <(head -c 100 "$ref"; printf WRITTEN; tail -c +108 "$ref")
	assert_success
}

@test "a long vacuum lets readers and writers in between its batches; their bytes are right" {
	# The vacuum moves data in 64 MiB batches and releases the daemon's lock
	# between them: other requests run during the vacuum, not after it.
	local i ref=$BATS_TEST_TMPDIR/vw
	mkdir "$MNT/vac2"
	# 128 MiB of live data spread over 512 MiB: more than one batch to move
	for i in $(seq -w 1 128); do
		head -c 4M /dev/zero | tr '\0' "x" >"$MNT/vac2/f$i"
	done
	for i in $(seq -w 1 128); do
		((10#$i % 4 == 0)) || rm "$MNT/vac2/f$i"
	done
	t setfattr -n user.mmfs.sync -v 1 "$MNT"
	assert_success
	# "1" starts the vacuum on the daemon's own thread and returns at once;
	# the gate (mmfs.c: MMFS_TEST_VACUUM_GATE) holds it after its first
	# batch until the checks below are done
	touch "$VACUUM_GATE"
	t setfattr -n user.mmfs.vacuum -v 1 "$MNT"
	assert_success
	run vacuum_field running
	assert_output True
	# a second start while it runs is refused
	t setfattr -n user.mmfs.vacuum -v 1 "$MNT"
	assert_failure
	assert_output --partial "Device or resource busy"
	# the request has returned, so the kernel no longer holds the root's
	# lock: creates there go ahead while the vacuum runs
	for i in $(seq 20); do
		t touch "$MNT/during-vacuum-$i"
		assert_success
	done
	run vacuum_field running
	assert_output True
	# a write and its read-back while the gate holds the vacuum: the loop
	# below may see none, when the batches left finish before its first look
	printf 'round 0\n' >"$ref"
	t cp "$ref" "$MNT/vac2/live"
	assert_success
	t cmp "$ref" "$MNT/vac2/live"
	assert_success
	rm "$VACUUM_GATE"
	local n=0
	while [[ $(vacuum_field running) == True ]]; do
		n=$((n + 1))
		printf 'round %d\n' "$n" >"$ref"
		t cp "$ref" "$MNT/vac2/live"
		assert_success
		t cmp "$ref" "$MNT/vac2/live"
		assert_success
		t cat "$MNT/vac2/f004" >/dev/null
		assert_success
	done
	echo "rounds during the vacuum: $n"
	t cmp "$ref" "$MNT/vac2/live"
	assert_success
	# user.mmfs.stats tells how the vacuum went
	run bash -c "getfattr --absolute-names --only-values -n user.mmfs.stats '$MNT' |
		/usr/bin/python3 -c 'import json, sys; v = json.load(sys.stdin)[\"vacuum\"]; print(v[\"running\"], v[\"runs\"] >= 1, v[\"last_size_after\"] < v[\"last_size_before\"], v[\"done_bytes\"] <= v[\"total_bytes\"], v[\"last_error\"])'"
	assert_success
	assert_output "False True True True None"
	for i in 004 008 016 032 064 128; do
		[ "$(t tr -d x <"$MNT/vac2/f$i" | wc -c)" = 0 ]
		[ "$(stat -c %s "$MNT/vac2/f$i")" = $((4 * 1024 * 1024)) ]
	done
}

@test "writers that fill the space a vacuum moves into: the vacuum stops early or finishes, no byte is lost" {
	# Writers take the free space below the vacuum's target between its
	# batches; an extent cut at the target must keep its tail (it used to
	# read as zeros), and the vacuum must not fail with ENOSPC.
	local ref=$BATS_TEST_TMPDIR/vr
	run keys_with_holes vac3 "$ref" 48
	assert_success
	t setfattr -n user.mmfs.vacuum -v wait "$MNT" &
	local vac=$! n=0
	while kill -0 "$vac" 2>/dev/null && ((n < 40)); do
		n=$((n + 1))
		head -c 3M /dev/urandom >"$ref/w$n"
		t cp "$ref/w$n" "$MNT/vac3/w$n"
		assert_success
	done
	wait "$vac"
	echo "files written during the vacuum: $n"
	for f in "$ref"/*; do
		t cmp "$f" "$MNT/vac3/$(basename "$f")"
		assert_success
	done
}

@test "unmounting during a vacuum stops it at its next batch; the store checks clean and keeps every byte" {
	local ref=$BATS_TEST_TMPDIR/vu
	run keys_with_holes vac4 "$ref" 24
	assert_success
	touch "$VACUUM_GATE"
	t setfattr -n user.mmfs.vacuum -v 1 "$MNT"
	assert_success
	run vacuum_field running
	assert_output True
	# the gate stays shut: only the unmount can end the vacuum
	unmount_store "$MNT"
	rm "$VACUUM_GATE"
	t "$MMSTORE" check "$STORE"
	assert_success
	mount_store "$STORE" "$MNT"
	for f in "$ref"/*; do
		t cmp "$f" "$MNT/vac4/$(basename "$f")"
		assert_success
	done
}

@test "user xattrs on keys: set, list, replace, remove; they persist across a remount" {
	echo data >"$MNT/array"
	mkdir "$MNT/xdir"
	t setfattr -n user.dtype -v float32 "$MNT/array"
	assert_success
	t setfattr -n user.shape -v "[3, 4]" "$MNT/array"
	assert_success
	t setfattr -n user.blob -v 0x00ff10 "$MNT/array"
	assert_success
	t setfattr -n user.empty "$MNT/array"
	assert_success
	t setfattr -n user.note -v "on a directory" "$MNT/xdir"
	assert_success
	big=$(head -c 30000 /dev/zero | tr '\0' 'v')
	t setfattr -n user.big -v "$big" "$MNT/array"
	assert_success
	t /usr/bin/python3 -c "
import errno, os, sys
p = sys.argv[1]
for flags, name in ((os.XATTR_CREATE, 'user.dtype'), (os.XATTR_REPLACE, 'user.absent')):
    try:
        os.setxattr(p, name, b'x', flags)
        print('ok')
    except OSError as e:
        print(errno.errorcode[e.errno])
try:
    os.getxattr(p, 'user.absent')
except OSError as e:
    print(errno.errorcode[e.errno])" "$MNT/array"
	assert_output $'EEXIST\nENODATA\nENODATA'
	t setfattr -n user.dtype -v int64 "$MNT/array"
	assert_success
	t setfattr -n user.gone -v x "$MNT/array"
	t setfattr -x user.gone "$MNT/array"
	assert_success
	t setfattr -x user.gone "$MNT/array"
	assert_failure
	assert_output --partial "No such attribute"
	listing() {
		getfattr --absolute-names -d -e hex "$1/array" "$1/xdir" | sed "s|$1|MNT|"
	}
	t bash -c "$(declare -f listing); listing '$MNT'"
	assert_success
	before=$output
	assert_output --partial "user.dtype=0x696e743634"
	assert_output --partial "user.blob=0x00ff10"
	assert_output --partial "user.shape="
	refute_output --partial "user.gone"
	unmount_store "$MNT"
	mount_store "$STORE" "$MNT"
	t bash -c "$(declare -f listing); listing '$MNT'"
	assert_output "$before"
	t getfattr --absolute-names --only-values -n user.big "$MNT/array"
	assert_output "$big"
}

@test "POSIX ACLs are refused, so cp -a keeps modes through chmod" {
	echo x >"$MNT/acl"
	t setfattr -n system.posix_acl_access -v 0x0200000001000600ffffffff04000400ffffffff10000400ffffffff20000400ffffffff "$MNT/acl"
	assert_failure
	assert_output --partial "Operation not supported"
	local src=$BATS_TEST_TMPDIR/tree
	mkdir -p "$src/sub"
	echo f >"$src/sub/file"
	chmod 751 "$src/sub"
	chmod 640 "$src/sub/file"
	t cp -a "$src" "$MNT/acl-copy"
	assert_success
	t stat -c %a "$MNT/acl-copy/sub" "$MNT/acl-copy/sub/file"
	assert_output $'751\n640'
}
