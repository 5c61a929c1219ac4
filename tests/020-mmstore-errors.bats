#!/usr/bin/env bats
# 020-mmstore-errors.bats - mmstore on bad input and damaged stores: every
# error has a clear message naming the store (and the key), the documented
# exit status (1 failed, 2 usage, 3 damaged), and never a crash (>= 128).

# bats sets $stderr, $output, $status; each test runs in its own subshell.
# shellcheck disable=SC2154,SC2030,SC2031

load helpers/common

# mms ARGS...: mmstore under a timeout, stdin/stdout left to the caller.
mms() {
	timeout --kill-after=10 "${TEST_TIMEOUT:-60}" "$MMSTORE" "$@"
}

# flip FILE OFFSET COUNT: invert COUNT bytes of FILE from OFFSET, in place.
flip() {
	/usr/bin/python3 - "$@" <<'EOF'
import sys
path, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(n)
    f.seek(off)
    f.write(bytes(x ^ 0xFF for x in b))
EOF
}

# no_crash: the last `t` ended by itself, not by a signal or the timeout.
no_crash() {
	((status < 124)) || fail "mmstore crashed or hung: status $status, output: $output"
}

# fill_store STORE: replace STORE by a copy of the file's filled store:
# some directories, small (inline) and larger values (extents).
fill_store() {
	cp "$BATS_FILE_TMPDIR/filled.mms" "$1"
}

setup_file() {
	local f=$BATS_FILE_TMPDIR/filled.mms i
	mms create "$f"
	for i in $(seq 1 60); do
		printf 'small value %d' "$i" | mms put "$f" "dir$((i % 4))/small-key-with-a-long-name-$i"
	done
	for i in $(seq 1 30); do
		head -c $((5000 + i * 97)) /dev/urandom | mms put "$f" "big/value-$i"
	done
}

setup() {
	umask 022
	W=$(mk_tmp)
	S=$W/s.mms
	mms create "$S"
	HOLDER=
	RO_DIR=
}

teardown() {
	if [[ -n ${RO_DIR:-} ]]; then
		rm -rf "$RO_DIR"
	fi
	if [[ -n $HOLDER ]]; then
		kill "$HOLDER" 2>/dev/null || true
		wait "$HOLDER" 2>/dev/null || true
	fi
}

# ---- usage errors -----------------------------------------------------------

@test "no arguments, unknown command, unknown option: exit 2, usage on stderr" {
	t --separate-stderr "$MMSTORE"
	assert_failure 2
	assert_equal "$output" ''
	[[ $stderr == *'Usage: mmstore'* ]]

	t --separate-stderr "$MMSTORE" frobnicate "$S"
	assert_failure 2
	assert_equal "$output" ''
	[[ $stderr == "mmstore: unknown command 'frobnicate'"* ]]
	[[ $stderr == *'Usage: mmstore'* ]]

	t --separate-stderr "$MMSTORE" --bogus
	assert_failure 2
	[[ $stderr == "mmstore: unknown option '--bogus'"* ]]

	t --separate-stderr "$MMSTORE" info "$S" --bogus
	assert_failure 2
	assert_equal "$output" ''
	[[ $stderr == "mmstore info: unknown option '--bogus'"* ]]
	[[ $stderr == *'Usage: mmstore info '* ]]

	t --separate-stderr "$MMSTORE" ls -z "$S"
	assert_failure 2
	[[ $stderr == "mmstore ls: unknown option '-z'"* ]]
}

@test "missing and extra arguments, bad sizes: exit 2" {
	local args
	for args in "get $S" "get" "put" "put $S" "rm $S" "mv $S a" "mkdir $S" "info" \
		"check" "vacuum" "dump" "load" "create" \
		"get $S a b" "rm $S a b" "mv $S a b c" "info $S x" "check $S x" "vacuum $S x" \
		"ls $S a b" "dump $S f g" "load $S f g" "create $S x" "put $S k f g" \
		"create $W/n.mms --size 12Q" "create $W/n.mms --size -1" \
		"create $W/n.mms --max-size 99999999999999999999" "create $W/n.mms --size"; do
		# shellcheck disable=SC2086
		t --separate-stderr "$MMSTORE" $args
		[[ $status == 2 ]] || fail "mmstore $args: status $status, want 2"
		[[ $stderr == *'Usage: mmstore '* ]] || fail "mmstore $args: no usage: $stderr"
	done
	[[ ! -e $W/n.mms ]]
}

# ---- files that are not stores -------------------------------------------------

@test "a file of random bytes is not a store: exit 3, clear message" {
	head -c 65536 /dev/urandom >"$W/random"
	for cmd in info check ls dump; do
		t "$MMSTORE" "$cmd" "$W/random"
		assert_failure 3
		assert_output --regexp "^mmstore: $W/random: cannot open: "
	done
	t "$MMSTORE" get "$W/random" k
	assert_failure 3
	t "$MMSTORE" put "$W/random" k /dev/null
	assert_failure 3
	assert_output --regexp "^mmstore: $W/random: cannot open: "
	# nothing was written to it
	(($(stat -c %s "$W/random") == 65536))
}

@test "a text file and an empty file are not stores: exit 3" {
	seq 1 2000 >"$W/text"
	cp "$W/text" "$W/text.orig"
	: >"$W/empty"
	for f in "$W/text" "$W/empty"; do
		t "$MMSTORE" info "$f"
		assert_failure 3
		assert_output --regexp "^mmstore: $f: cannot open: "
		t "$MMSTORE" check "$f"
		assert_failure 3
		assert_output --regexp "^mmstore: $f: cannot open: "
		t "$MMSTORE" put "$f" k /dev/null
		assert_failure 3
	done
	cmp "$W/text" "$W/text.orig"
	[[ ! -s $W/empty ]]
}

@test "a missing store: exit 1, not found" {
	t "$MMSTORE" info "$W/none.mms"
	assert_failure 1
	assert_output --regexp "^mmstore: $W/none.mms: cannot open: .*([Nn]ot found|[Nn]o such)"
	t "$MMSTORE" put "$W/none.mms" k /dev/null
	assert_failure 1
	[[ ! -e $W/none.mms ]]
}

# ---- damaged stores ------------------------------------------------------------

@test "a store truncated at 0, 100, 4096, 8192 and half its size: clear failure, no crash" {
	fill_store "$S"
	local size len c=$W/cut.mms
	size=$(stat -c %s "$S")
	for len in 0 100 4096 8192 $((size / 2)) $((size - 4096)); do
		cp "$S" "$c"
		truncate -s "$len" "$c"
		t "$MMSTORE" check "$c"
		no_crash
		[[ $status == 3 ]] || fail "check of a store cut at $len: status $status: $output"
		assert_output --partial "$c"
		for cmd in "info $c" "ls $c" "get $c big/value-3" "dump $c" "put $c k /dev/null" \
			"vacuum $c"; do
			# shellcheck disable=SC2086
			t "$MMSTORE" $cmd
			no_crash
			[[ $status == 1 || $status == 3 ]] ||
				fail "$cmd on a store cut at $len: status $status: $output"
			assert_output --regexp "^mmstore: $c: "
		done
	done
}

@test "flipped bytes in meta page 0: the store opens from meta 1, check names meta 0" {
	fill_store "$S"
	flip "$S" 16 48
	t "$MMSTORE" info "$S"
	assert_success
	t "$MMSTORE" ls "$S"
	assert_success
	t "$MMSTORE" check "$S"
	assert_failure 3
	assert_output --partial 'meta 0'
}

@test "flipped bytes in meta page 1 only: check names meta 1" {
	fill_store "$S"
	flip "$S" $((4096 + 16)) 48
	t "$MMSTORE" info "$S"
	assert_success
	t "$MMSTORE" check "$S"
	assert_failure 3
	assert_output --partial 'meta 1'
}

@test "flipped bytes in both meta pages: the store is refused (exit 3)" {
	fill_store "$S"
	flip "$S" 16 48
	flip "$S" $((4096 + 16)) 48
	for cmd in info check ls dump; do
		t "$MMSTORE" "$cmd" "$S"
		assert_failure 3
		assert_output --regexp "^mmstore: $S: cannot open: "
	done
	t "$MMSTORE" put "$S" k /dev/null
	assert_failure 3
}

@test "flipped bytes in tree pages (names, inodes, extents): check names the page, no crash" {
	fill_store "$S"
	t "$MMSTORE" check "$S"
	assert_success
	local patch p n=0 detected=0 extent=0
	# info does not expose tree roots: damage every page in use in turn.
	# Data pages carry no checksum (damage there is not detectable); tree
	# pages do, and fill_store makes several, the extent tree's among them.
	# One python run writes, for each page past the metas that is not all
	# zeros, the 24 bytes at offset 40 inverted, as $W/patch.PAGE.
	/usr/bin/python3 - "$S" "$W" <<'EOF'
import sys
store, out = sys.argv[1], sys.argv[2]
data = open(store, "rb").read()
for p in range(2, len(data) // 4096):
    page = data[p * 4096:(p + 1) * 4096]
    if page.count(0) != len(page):
        open("%s/patch.%d" % (out, p), "wb").write(bytes(x ^ 0xFF for x in page[40:64]))
EOF
	for patch in "$W"/patch.*; do
		p=${patch##*.}
		n=$((n + 1))
		cp "$S" "$W/d.mms"
		dd if="$patch" of="$W/d.mms" bs=1 seek=$((p * 4096 + 40)) conv=notrunc status=none
		t "$MMSTORE" check "$W/d.mms"
		no_crash
		case $status in
		0) ;;
		3)
			detected=$((detected + 1))
			# check says which page, as "where: what" lines
			assert_output --regexp "(^|$(printf '\n'))page $p\b[^:]*: "
			[[ $output != *'extent'* ]] || extent=$((extent + 1))
			;;
		*) fail "check with page $p damaged: status $status: $output" ;;
		esac
		# reading the damaged store fails cleanly or succeeds
		for cmd in "get $W/d.mms big/value-7" "dump $W/d.mms"; do
			# shellcheck disable=SC2086
			t "$MMSTORE" $cmd
			no_crash
			[[ $status == 0 || $status == 1 || $status == 3 ]] ||
				fail "$cmd with page $p damaged: status $status: $output"
		done
	done
	echo "# damage detected in $detected of $n pages in use, $extent in the extent tree" >&3
	((detected >= 2)) || fail "check detected only $detected damaged pages"
	((extent >= 1)) || fail "no damaged extent tree page was detected"
}

# ---- locking -----------------------------------------------------------------

# hold MODE: hold a flock(1) lock (-x or -s) on $S in the background; the
# lock lives as long as process $HOLDER (the subshell, become `sleep`).
hold() {
	rm -f "$W/ready"
	(
		exec 9<"$S"
		flock "$1" 9
		: >"$W/ready"
		exec sleep 30
	) 3>&- &
	HOLDER=$!
	for _ in $(seq 1 100); do
		[[ -e $W/ready ]] && return 0
		sleep 0.05
	done
	fail "the lock holder did not start"
}

@test "a second writer gets 'locked', not a damaged store" {
	printf v | mms put "$S" k
	hold -x
	t "$MMSTORE" --wait 0 put "$S" k2 /dev/null
	assert_failure 1
	assert_output --regexp "^mmstore: $S: cannot open: store is locked by process $HOLDER \\(sleep 30\\)"
	# readers are refused too while a writer holds the store
	t "$MMSTORE" --wait 1 get "$S" k
	assert_failure 1
	assert_output --partial "waiting up to 1 s for process $HOLDER"
	assert_output --regexp "mmstore: $S: cannot open: store is locked by process $HOLDER"
	kill "$HOLDER"
	wait "$HOLDER" || true
	HOLDER=
	t "$MMSTORE" get "$S" k
	assert_success
	assert_output v
	t "$MMSTORE" check "$S"
	assert_success
}

@test "while a reader holds the store, readers get in and a writer is refused" {
	printf v | mms put "$S" k
	hold -s
	t "$MMSTORE" get "$S" k
	assert_success
	assert_output v
	t "$MMSTORE" --wait 0 rm "$S" k
	assert_failure 1
	assert_output --regexp "^mmstore: $S: cannot open: .*locked"
}

@test "a command waits for a process that is letting go of the store, and says so" {
	printf v | mms put "$S" k
	hold -x
	( sleep 1; kill "$HOLDER" ) &
	t "$MMSTORE" get "$S" k
	assert_success
	assert_output --partial "mmstore: $S: waiting up to 5 s for process $HOLDER"
	assert_output --partial v
	wait
	HOLDER=
}

@test "--wait takes a number of seconds" {
	t "$MMSTORE" --wait x info "$S"
	assert_failure 2
	assert_output --partial "--wait takes a number of seconds"
}

# ---- names -------------------------------------------------------------------

@test "a 256-byte name is too long; 255 bytes is fine" {
	local n255 n256
	n255=$(printf 'a%.0s' $(seq 1 255))
	n256=${n255}b
	printf ok | mms put "$S" "$n255"
	t "$MMSTORE" get "$S" "$n255"
	assert_output ok
	t "$MMSTORE" put "$S" "$n256" /dev/null
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key '$n256': .*[Tt]oo long"
	t "$MMSTORE" put "$S" "dir/$n256/x" /dev/null
	assert_failure 1
	assert_output --regexp "[Tt]oo long"
	t "$MMSTORE" mkdir "$S" "$n256"
	assert_failure 1
	t "$MMSTORE" get "$S" "$n256"
	assert_failure 1
	assert_output --regexp "[Tt]oo long"
	# nothing half-made: no "dir" left behind by the failed put
	t "$MMSTORE" ls "$S"
	assert_output "$n255"
}

@test "empty components, '.' and '..' are refused" {
	local key
	for key in 'a//b' './x' 'a/./b' '..' 'a/../b' 'x/..' '.'; do
		t "$MMSTORE" put "$S" "$key" /dev/null
		assert_failure 1
		assert_output --regexp "^mmstore: $S: key '${key//./[.]}': "
		t "$MMSTORE" mkdir -p "$S" "$key"
		assert_failure 1
	done
	t "$MMSTORE" get "$S" 'a//b'
	assert_failure 1
	t "$MMSTORE" ls "$S"
	assert_success
	assert_output ''
}

@test "keys that are not where they should be: not found, not a directory, is a directory" {
	printf v | mms put "$S" file
	mms mkdir "$S" dir
	t "$MMSTORE" get "$S" missing
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'missing': .*([Nn]ot found|[Nn]o such)"
	t "$MMSTORE" get "$S" file/x
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'file/x': .*[Nn]ot a directory"
	t "$MMSTORE" put "$S" file/x /dev/null
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'file/x': .*[Nn]ot a directory"
	t "$MMSTORE" get "$S" dir
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'dir': .*[Ii]s a directory"
	t "$MMSTORE" put "$S" dir /dev/null
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'dir': .*[Ii]s a directory"
	t "$MMSTORE" rm "$S" missing
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'missing': "
	t "$MMSTORE" mv "$S" missing other
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'missing': "
	t "$MMSTORE" mv "$S" file nodir/other
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'nodir/other': "
	t "$MMSTORE" ls "$S" missing
	assert_failure 1
	t "$MMSTORE" rm "$S" /
	assert_failure 1
	assert_output "mmstore: $S: key '/': the root directory cannot be removed"
	t "$MMSTORE" mv "$S" / x
	assert_failure 1
	assert_output "mmstore: $S: key '/': the root directory cannot be moved"
	t "$MMSTORE" mv "$S" dir /
	assert_failure 1
	assert_output "mmstore: $S: key '/': the root directory cannot be replaced"
	t "$MMSTORE" put "$S" k "$W/no-such-input"
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'k': cannot read '$W/no-such-input': "
	t "$MMSTORE" get "$S" file
	assert_output v
}

# ---- space -------------------------------------------------------------------

@test "growing past --max-size fails with 'full' and keeps every earlier key" {
	mms create "$W/small.mms" --max-size 1M
	local i ok=0
	for i in $(seq 1 40); do
		head -c 65536 /dev/urandom >"$W/v$i"
		t "$MMSTORE" put "$W/small.mms" "k$i" "$W/v$i"
		no_crash
		[[ $status == 0 ]] || break
		ok=$i
	done
	((ok < 40)) || fail "40 x 64 KiB fitted in a 1 MiB store"
	((ok >= 1)) || fail "not even one 64 KiB value fitted: $output"
	assert_failure 1
	assert_output --regexp "^mmstore: $W/small.mms: key 'k$i': .*([Ff]ull|[Nn]o space)"
	# the failed put left nothing behind
	t "$MMSTORE" get "$W/small.mms" "k$i"
	assert_failure 1
	assert_output --regexp "([Nn]ot found|[Nn]o such)"
	for ((i = 1; i <= ok; i++)); do
		mms get "$W/small.mms" "k$i" >"$W/got"
		cmp "$W/v$i" "$W/got"
	done
	(($(stat -c %s "$W/small.mms") <= 1024 * 1024))
	t "$MMSTORE" check "$W/small.mms"
	assert_success
	# a failed replacement keeps the old value
	head -c 2M /dev/urandom >"$W/huge"
	t "$MMSTORE" put "$W/small.mms" k1 "$W/huge"
	assert_failure 1
	mms get "$W/small.mms" k1 >"$W/got"
	cmp "$W/v1" "$W/got"
}

# ---- read-only ---------------------------------------------------------------

@test "a store file that is read-only to its user: writes fail, reads work" {
	command -v setpriv >/dev/null || skip "setpriv is not installed"
	# bats' temporary directories are private to root: use one nobody can enter
	RO_DIR=$(mktemp -d /tmp/mmstore-ro.XXXXXX)
	chmod 0755 "$RO_DIR"
	S=$RO_DIR/s.mms
	mms create "$S"
	printf v | mms put "$S" k
	chmod 0444 "$S"
	# root ignores file modes: act as nobody (the build tree must be readable)
	local nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	t "${nobody[@]}" "$MMSTORE" --version
	[[ $status == 0 ]] || skip "mmstore cannot run as nobody here: $output"
	t "${nobody[@]}" "$MMSTORE" put "$S" k2 /dev/null
	assert_failure 1
	assert_output --regexp "^mmstore: $S: cannot open: .*[Pp]ermission denied"
	t "${nobody[@]}" "$MMSTORE" get "$S" k
	assert_success
	assert_output v
	t "$MMSTORE" ls "$S"
	assert_output k
	t "${nobody[@]}" "$MMSTORE" check "$S"
	assert_success
}

# ---- malformed dumps -----------------------------------------------------------

@test "load of a malformed dump fails, names the line, and loads nothing" {
	printf v | mms put "$S" keep
	mms create "$W/src.mms"
	printf a | mms put "$W/src.mms" a
	printf b | mms put "$W/src.mms" b
	mms dump "$W/src.mms" >"$W/d"
	# a good dump followed by garbage
	{ cat "$W/d"; echo '{"this is": not json'; } >"$W/bad"
	local n
	n=$(wc -l <"$W/bad")
	t "$MMSTORE" load "$S" "$W/bad"
	assert_failure 1
	assert_output --regexp "^mmstore: $S: loading '$W/bad': .*line $n"
	t "$MMSTORE" ls "$S"
	assert_output keep
	t "$MMSTORE" load "$S" <"$W/bad"
	assert_failure 1
	assert_output --regexp "^mmstore: $S: loading 'standard input': "
	t "$MMSTORE" load "$S" "$W/missing-dump"
	assert_failure 1
	assert_output --regexp "^mmstore: $S: cannot read '$W/missing-dump': "
}
