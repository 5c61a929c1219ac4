#!/usr/bin/env bats
# 190-fs-requests: how many FUSE requests a user operation costs, counted
# by the daemon (user.mmfs.stats "requests"), and the behaviour that
# zero-message opens must keep: O_TRUNC on every path, unlinked and
# replaced files kept alive by open descriptors in other processes, and
# security.* attributes answered without the lock.
#
# The counts do not depend on timing; a later change that brings round
# trips back fails here.

load helpers/common
load helpers/mount

setup_file() {
	mount_fresh_store requests
}

teardown_file() {
	mmfs_teardown_file
}

teardown() {
	mmfs_teardown
}

# t reqs_delta MNT CMD...: run CMD and print the requests it cost, as
# "op=count" pairs sorted by op (what reading the counters costs, measured
# first, is taken off; FORGET is left out).
REQS_DELTA='
import json, os, subprocess, sys
mnt = sys.argv[1]
def counts():
    return json.loads(os.getxattr(mnt, "user.mmfs.stats"))["requests"]
zero = counts()
before = counts()
own = {k: before[k] - zero[k] for k in before}
subprocess.run(sys.argv[2:], check=True)
after = counts()
after = {k: after[k] - own[k] for k in after}
# FORGET comes whenever the kernel evicts an inode, not from CMD
print(" ".join("%s=%d" % (k, after[k] - before[k]) for k in sorted(after)
               if after[k] != before[k] and k != "forget"))'
reqs_delta=(/usr/bin/python3 -c "$REQS_DELTA")

@test "a warm cat of a small key costs no request: no OPEN, READ, FLUSH or RELEASE" {
	head -c 4096 /dev/urandom >"$MNT/small"
	# the first open tells the kernel that opens need no request
	cat "$MNT/small" >/dev/null
	cat "$MNT/small" >/dev/null
	t "${reqs_delta[@]}" "$MNT" bash -c 'for i in $(seq 100); do cat "$1" >/dev/null; done' - "$MNT/small"
	assert_success
	assert_output ""
}

@test "open and close cost no request, read-write too" {
	printf 'x' >"$MNT/oc"
	cat "$MNT/oc" >/dev/null
	t "${reqs_delta[@]}" "$MNT" /usr/bin/python3 -c '
import os, sys
for i in range(200):
    os.close(os.open(sys.argv[1], os.O_RDWR))' "$MNT/oc"
	assert_success
	assert_output ""
}

@test "write(2) costs one WRITE (and the kernel's security.capability question, answered without the lock)" {
	printf 'x' >"$MNT/w"
	t "${reqs_delta[@]}" "$MNT" /usr/bin/python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
for i in range(100):
    os.pwrite(fd, b"y" * 4096, i * 4096)
os.close(fd)' "$MNT/w"
	assert_success
	assert_output "getxattr=100 write=100"
	t stat -c %s "$MNT/w"
	assert_output $((100 * 4096))
}

@test "a key with a security.* attribute: stored, read back, and found again after a remount" {
	printf 'data' >"$MNT/sec"
	t getfattr --absolute-names --only-values -n security.mmfs-test "$MNT/sec"
	assert_failure
	assert_output --partial "No such attribute"
	t setfattr -n security.mmfs-test -v labelled "$MNT/sec"
	assert_success
	t getfattr --absolute-names --only-values -n security.mmfs-test "$MNT/sec"
	assert_success
	assert_output labelled
	local store
	store=$STORE
	unmount_store "$MNT"
	mount_store "$store" "$MNT"
	t getfattr --absolute-names --only-values -n security.mmfs-test "$MNT/sec"
	assert_success
	assert_output labelled
	# ACLs are never stored: asking for one costs no lock and says so
	t getfattr --absolute-names -n system.posix_acl_access "$MNT/sec"
	assert_failure
}

@test "O_TRUNC through the shell, open(2) and cp over a longer key" {
	head -c 100000 /dev/urandom >"$MNT/tr"
	cat "$MNT/tr" >/dev/null
	echo short >"$MNT/tr"
	t cat "$MNT/tr"
	assert_output short
	head -c 100000 /dev/urandom >"$MNT/tr"
	t /usr/bin/python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"ab")
os.close(fd)
print(open(sys.argv[1], "rb").read())' "$MNT/tr"
	assert_output "b'ab'"
	head -c 100000 /dev/urandom >"$MNT/tr"
	printf 'tiny' >"$BATS_TEST_TMPDIR/tiny"
	t cp "$BATS_TEST_TMPDIR/tiny" "$MNT/tr"
	assert_success
	t cat "$MNT/tr"
	assert_output tiny
	t stat -c %s "$MNT/tr"
	assert_output 4
}

# hold_open FILE READY: a process that maps FILE and keeps a descriptor;
# it prints the file's first 8 bytes (through the map, then through read)
# when it gets a line on stdin, writes "late" at 0 through the descriptor,
# and exits at end of input.
hold_open() {
	/usr/bin/python3 -u -c '
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 0)
open(sys.argv[2], "w").close()
for line in sys.stdin:
    print(bytes(m[:8]).decode(), os.pread(fd, 8, 0).decode())
    os.pwrite(fd, b"late", 0)
    print(bytes(m[:4]).decode())
m.close()
os.close(fd)' "$@"
}

@test "another process keeps an unlinked key readable, writable and mapped until it closes; then the space is freed" {
	local ready=$BATS_TEST_TMPDIR/ready out=$BATS_TEST_TMPDIR/out i used_open used_closed
	{ printf 'ABCDEFGH'; head -c 8M /dev/zero; } >"$MNT/held"
	run mmfs_settle "$MNT"
	assert_success
	coproc HOLD { hold_open "$MNT/held" "$ready" >"$out" 3>&-; }
	# (bash unsets HOLD_PID once the coprocess ends: keep it now)
	local hold_pid=$HOLD_PID
	for ((i = 0; i < 100; i++)); do [[ -e $ready ]] && break; sleep 0.1; done
	[ -e "$ready" ]
	rm "$MNT/held"
	[ ! -e "$MNT/held" ]
	echo 2 >/proc/sys/vm/drop_caches
	run mmfs_stat "$MNT" orphans
	assert_output 1
	used_open=$(mmfs_stat "$MNT" used)
	echo go >&"${HOLD[1]}"
	exec {HOLD[1]}>&-
	wait "$hold_pid"
	run cat "$out"
	assert_output "ABCDEFGH ABCDEFGH
late"
	run mmfs_wait_orphans "$MNT"
	assert_output 0
	used_closed=$(mmfs_stat "$MNT" used)
	echo "used: open $used_open, closed $used_closed"
	[ "$used_closed" -le $((used_open - 8 * 1024 * 1024)) ]
}

@test "rename over a key another process has open: it keeps the old bytes until it closes" {
	local ready=$BATS_TEST_TMPDIR/ready out=$BATS_TEST_TMPDIR/out i
	printf 'OLDBYTES' >"$MNT/target"
	printf 'NEWBYTES' >"$MNT/source"
	coproc HOLD { hold_open "$MNT/target" "$ready" >"$out" 3>&-; }
	# (bash unsets HOLD_PID once the coprocess ends: keep it now)
	local hold_pid=$HOLD_PID
	for ((i = 0; i < 100; i++)); do [[ -e $ready ]] && break; sleep 0.1; done
	[ -e "$ready" ]
	mv "$MNT/source" "$MNT/target"
	echo 2 >/proc/sys/vm/drop_caches
	echo go >&"${HOLD[1]}"
	exec {HOLD[1]}>&-
	wait "$hold_pid"
	run cat "$out"
	assert_output "OLDBYTES OLDBYTES
late"
	t cat "$MNT/target"
	assert_output NEWBYTES
	run mmfs_settle "$MNT"
	assert_success
}

# store_with_big NAME: a store $dir/NAME.mms, not mounted, holding "big",
# 16 MiB of random bytes (also in $dir/ref); sets dir, store and mnt (an
# empty directory) in the caller.
store_with_big() {
	dir=$(mk_tmp)
	store=$dir/$1.mms
	mnt=$dir/mnt
	mkdir "$mnt"
	head -c 16M /dev/urandom >"$dir/ref"
	"$MMSTORE" create "$store" && "$MMSTORE" put "$store" big "$dir/ref"
}

# bdi_read_ahead MNT: the read_ahead_kb of the mount at MNT.
bdi_read_ahead() {
	cat "/sys/class/bdi/$(awk -v m="$1" '$5 == m { print $3 }' /proc/self/mountinfo)/read_ahead_kb"
}

@test "readahead is 1 MiB: a cold 16 MiB read or mmap of it takes 16 to 40 READs, not 64 or 128" {
	local dir store mnt
	store_with_big ra
	# a new mount has nothing of the key in its page cache
	mount_store "$store" "$mnt"
	run bdi_read_ahead "$mnt"
	assert_output 1024
	t "${reqs_delta[@]}" "$mnt" cmp "$mnt/big" "$dir/ref"
	assert_success
	echo "cold read: $output"
	[[ $output =~ (^| )read=([0-9]+) ]]
	# An idle machine takes 16 to 24.  Under load the kernel sometimes
	# starts the next window before the last one came back and splits it
	# (27 seen once, with a heavy build beside the test), so the bound is
	# the mmap's: what it must catch is a smaller window, and 256 KiB
	# would take at least 64 READs, 128 KiB at least 128.
	((BASH_REMATCH[2] >= 16 && BASH_REMATCH[2] <= 40))
	unmount_store "$mnt"
	mount_store "$store" "$mnt"
	t "${reqs_delta[@]}" "$mnt" /usr/bin/python3 -c '
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
assert m[:] == open(sys.argv[2], "rb").read()' "$mnt/big" "$dir/ref"
	assert_success
	echo "cold mmap: $output"
	[[ $output =~ (^| )read=([0-9]+) ]]
	# A fault reads around itself (a window of read_ahead_kb starting half a
	# window before the faulting page), so a READ can bring as little as
	# half a window of new pages: Linux 6.18 takes 31 READs here, earlier
	# kernels 16-24.  A 128 KiB readahead would take 128 to 256.
	((BASH_REMATCH[2] >= 16 && BASH_REMATCH[2] <= 40))
	unmount_store "$mnt"
	# the option chooses another value; 0 leaves the kernel's
	mount_store "$store" "$mnt" read_ahead_kb=256
	run bdi_read_ahead "$mnt"
	assert_output 256
	unmount_store "$mnt"
	t "$MMSTORE" check "$store"
	assert_success
}

@test "cp inside the mount is one COPY_FILE_RANGE, no READ or WRITE; the copy and its cached pages are right" {
	head -c 4M /dev/urandom >"$BATS_TEST_TMPDIR/src"
	cp "$BATS_TEST_TMPDIR/src" "$MNT/cfr-src"
	# the destination exists and its old bytes are in the page cache
	head -c 5M /dev/zero >"$MNT/cfr-dst"
	cat "$MNT/cfr-dst" >/dev/null
	t "${reqs_delta[@]}" "$MNT" cp "$MNT/cfr-src" "$MNT/cfr-dst"
	assert_success
	echo "cp: $output"
	[[ $output =~ (^| )copy_file_range=1( |$) ]]
	! [[ $output =~ (^| )(read|write)= ]]
	t cmp "$MNT/cfr-dst" "$BATS_TEST_TMPDIR/src"
	assert_success
	# a range into the middle of another key, through copy_file_range(2)
	t /usr/bin/python3 -c '
import os, sys
src = os.open(sys.argv[1], os.O_RDONLY)
dst = os.open(sys.argv[2], os.O_RDWR | os.O_CREAT)
os.write(dst, b"x" * 10000)
n = os.copy_file_range(src, dst, 5000, 100, 2000)
os.close(src); os.close(dst)
want = b"x" * 2000 + open(sys.argv[3], "rb").read()[100:5100] + b"x" * 3000
print(n, open(sys.argv[2], "rb").read() == want)' "$MNT/cfr-src" "$MNT/cfr-mid" "$BATS_TEST_TMPDIR/src"
	assert_success
	assert_output "5000 True"
}

# store_res STORE: bytes of STORE in the page cache.
store_res() {
	fincore --bytes --noheadings --output RES "$1" | tr -d ' '
}

@test "a byte read or synced through the mount is cached once: the store file keeps only metadata" {
	local dir store mnt res
	store_with_big once
	# the put left the bytes in the store file's cache: drop them
	t /usr/bin/python3 -c 'import os, sys; os.posix_fadvise(os.open(sys.argv[1], os.O_RDONLY), 0, 0, os.POSIX_FADV_DONTNEED)' "$store"
	mount_store "$store" "$mnt"
	t cmp "$mnt/big" "$dir/ref"
	assert_success
	res=$(store_res "$store")
	echo "store file cached after a 16 MiB read: $res bytes"
	((res < 1024 * 1024))
	# written and synced: the mount caches it, the store file does not
	t cp "$dir/ref" "$mnt/copy"
	assert_success
	t setfattr -n user.mmfs.sync -v 1 "$mnt"
	assert_success
	res=$(store_res "$store")
	echo "store file cached after a 16 MiB write and a sync: $res bytes"
	((res < 1024 * 1024))
	t cmp "$mnt/copy" "$dir/ref"
	assert_success
	unmount_store "$mnt"
	# -o store_cache keeps both copies
	t /usr/bin/python3 -c 'import os, sys; os.posix_fadvise(os.open(sys.argv[1], os.O_RDONLY), 0, 0, os.POSIX_FADV_DONTNEED)' "$store"
	mount_store "$store" "$mnt" store_cache
	t cmp "$mnt/big" "$dir/ref"
	assert_success
	res=$(store_res "$store")
	echo "with store_cache: $res bytes"
	((res >= 16 * 1024 * 1024))
	unmount_store "$mnt"
}

@test "group commit: writers that queue behind a commit share it, and every answered write is there" {
	local dir store mnt
	dir=$(mk_tmp)
	store=$dir/group.mms
	mnt=$dir/mnt
	mkdir "$mnt"
	# the committer of each group waits 5 ms (mmfs.c: MMFS_TEST_COMMIT_DELAY_US),
	# so that the other writers join its group whatever the machine's speed
	MMFS_TEST_COMMIT_DELAY_US=5000 mount_store "$store" "$mnt" create
	local check='
import json, multiprocessing as mp, os, sys
mnt, mode = sys.argv[1], sys.argv[2]
def body(k, i): return (b"%d-%d;" % (k, i)) * (100 + i)
def work(k):
    os.mkdir("%s/w%d" % (mnt, k))
    for i in range(100):
        with open("%s/w%d/f%d" % (mnt, k, i), "wb") as f:
            f.write(body(k, i))
if mode == "write":
    st = lambda: json.loads(os.getxattr(mnt, "user.mmfs.stats"))["generation"]
    g0 = st()
    ps = [mp.Process(target=work, args=(k,)) for k in range(4)]
    [p.start() for p in ps]
    [p.join() for p in ps]
    assert all(p.exitcode == 0 for p in ps)
    # a create and a write per file, a mkdir per writer
    print("commits per change %.2f" % ((st() - g0) / (4 * 201.0)))
bad = sum(open("%s/w%d/f%d" % (mnt, k, i), "rb").read() != body(k, i)
          for k in range(4) for i in range(100))
print("files wrong:", bad)'
	t /usr/bin/python3 -c "$check" "$mnt" write
	assert_success
	echo "$output"
	assert_line "files wrong: 0"
	[[ $output =~ commits\ per\ change\ (0\.[0-9]+) ]]
	awk -v r="${BASH_REMATCH[1]}" 'BEGIN { exit !(r < 0.6) }'
	unmount_store "$mnt"
	t "$MMSTORE" check "$store"
	assert_success
	mount_store "$store" "$mnt"
	t /usr/bin/python3 -c "$check" "$mnt" verify
	assert_success
	assert_output "files wrong: 0"
	unmount_store "$mnt"
}

@test "group commit: kill -9 of the daemon while 4 writers run loses no answered write" {
	local dir store mnt i
	dir=$(mk_tmp)
	store=$dir/kill.mms
	mnt=$dir/mnt
	mkdir "$mnt"
	MMFS_TEST_COMMIT_DELAY_US=2000 mount_store "$store" "$mnt" create,sync=0
	# each writer notes a file on the host once its write and close returned
	local writers='
import os, sys
mnt, log, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs("%s/w%d" % (mnt, k), exist_ok=True)
with open("%s.%d" % (log, k), "a", buffering=1) as notes:
    for i in range(100000):
        try:
            with open("%s/w%d/f%d" % (mnt, k, i), "wb") as f:
                f.write((b"%d-%d;" % (k, i)) * (50 + i % 200))
        except OSError:
            break
        notes.write("%d\n" % i)'
	local pids=()
	for i in 0 1 2 3; do
		/usr/bin/python3 -c "$writers" "$mnt" "$dir/answered" "$i" 3>&- &
		pids+=($!)
	done
	sleep 1.5
	kill -KILL "$(mmfs_pid "$mnt")"
	wait "${pids[@]}" || true # they stop at the first error: the mount is gone
	t fusermount3 -u "$mnt"
	assert_success
	t "$MMSTORE" check "$store"
	assert_success
	mount_store "$store" "$mnt"
	t /usr/bin/python3 -c '
import sys
mnt, log = sys.argv[1], sys.argv[2]
n = bad = 0
for k in range(4):
    for line in open("%s.%d" % (log, k)):
        i = int(line)
        n += 1
        want = (b"%d-%d;" % (k, i)) * (50 + i % 200)
        try:
            bad += open("%s/w%d/f%d" % (mnt, k, i), "rb").read() != want
        except OSError:
            bad += 1
print("answered", n, "lost", bad)' "$mnt" "$dir/answered"
	assert_success
	echo "$output"
	[[ $output =~ ^answered\ ([0-9]+)\ lost\ 0$ ]]
	((BASH_REMATCH[1] > 100))
	unmount_store "$mnt"
}
