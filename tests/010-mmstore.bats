#!/usr/bin/env bats
# 010-mmstore.bats - the mmstore CLI on healthy stores: every command, its
# --help, byte-exact values (text, binary, empty, large), listings, renames,
# directories, info --json, vacuum, and dump/load round trips.
#
# Runs $MMSTORE (see helpers/common.bash).  Values are compared with cmp, so
# commands whose output must stay binary-exact run through `mms` (timeout,
# with the caller's redirections) rather than `t` (bats' run, which keeps
# output in a shell variable).

# bats sets $stderr, $output, $status.
# shellcheck disable=SC2154

load helpers/common

# mms ARGS...: mmstore under a timeout, stdin/stdout left to the caller.
mms() {
	timeout --kill-after=10 "${TEST_TIMEOUT:-60}" "$MMSTORE" "$@"
}

# json_get FILE EXPR: a field of a JSON document (jq, else python).
json_get() {
	if command -v jq >/dev/null; then
		jq -r "$2" <"$1"
	else
		/usr/bin/python3 -c 'import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2].lstrip(".").split("."): v=v[k]
print(v)' "$1" "$2"
	fi
}

# roundtrip STORE KEY FILE: put FILE as KEY and check that get returns exactly FILE's bytes.
roundtrip() {
	mms put "$1" "$2" "$3"
	mms get "$1" "$2" >"$W/got"
	cmp "$3" "$W/got"
}

setup() {
	umask 022
	W=$(mk_tmp)
	S=$W/s.mms
	mms create "$S"
}

@test "mmstore --help lists every command; --version prints the version" {
	t "$MMSTORE" --help
	assert_success
	assert_line --index 0 --partial 'Usage: mmstore'
	for c in create info ls get put rm mv mkdir check vacuum dump load; do
		assert_line --regexp "^  $c "
	done
	t "$MMSTORE" --version
	assert_success
	assert_output --regexp '^mmstore \(mmfs\) [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "every command has --help: usage on stdout, exit 0" {
	for c in create info ls get put rm mv mkdir check vacuum dump load; do
		t --separate-stderr "$MMSTORE" "$c" --help
		assert_success
		assert_line --index 0 --partial "Usage: mmstore $c "
		[[ -z $stderr ]] || fail "$c --help wrote to stderr: $stderr"
		# -h too, and --help wins wherever it is
		t "$MMSTORE" "$c" "$S" -h
		assert_success
		assert_line --index 0 --partial "Usage: mmstore $c "
	done
}

@test "create makes a store that opens; create refuses an existing file" {
	[[ -f $S ]]
	t "$MMSTORE" check "$S"
	assert_success
	t "$MMSTORE" create "$S"
	assert_failure 1
	assert_output --regexp "^mmstore: $S: cannot create: "
	# nothing replaced the existing store
	t "$MMSTORE" check "$S"
	assert_success
}

@test "create --size and --max-size take K/M/G/T suffixes" {
	# (the engine gives a free tail back at close, so --size is not asserted
	# on the file's length; max_size is kept in the store)
	t "$MMSTORE" create "$W/big.mms" --size 4M --max-size 1G
	assert_success
	mms info "$W/big.mms" --json >"$W/info.json"
	[[ $(json_get "$W/info.json" .max_size) == $((1024 ** 3)) ]]
	[[ $(json_get "$W/info.json" .file_size) == $(stat -c %s "$W/big.mms") ]]
	t "$MMSTORE" create "$W/k.mms" --size=2048K --max-size=1t
	assert_success
	mms info "$W/k.mms" --json >"$W/info.json"
	[[ $(json_get "$W/info.json" .max_size) == $((1024 ** 4)) ]]
	t "$MMSTORE" create "$W/m.mms" -m 512KiB
	assert_success
	mms info "$W/m.mms" --json >"$W/info.json"
	[[ $(json_get "$W/info.json" .max_size) == $((512 * 1024)) ]]
	t "$MMSTORE" create "$W/g.mms" --max-size 2g
	assert_success
	mms info "$W/g.mms" --json >"$W/info.json"
	[[ $(json_get "$W/info.json" .max_size) == $((2 * 1024 ** 3)) ]]
}

@test "put/get: text value is byte-identical" {
	printf 'hello\nworld\n\n' >"$W/text"
	roundtrip "$S" greeting "$W/text"
}

@test "put/get: 1 MiB of random binary is byte-identical" {
	head -c 1M /dev/urandom >"$W/bin"
	roundtrip "$S" blob.bin "$W/bin"
}

@test "put/get: empty value" {
	: >"$W/empty"
	roundtrip "$S" empty "$W/empty"
	[[ ! -s $W/got ]]
	t "$MMSTORE" ls -l "$S" empty
	assert_success
	assert_output --regexp '^-[rwx-]{9} +0 '
}

@test "put/get: 5 MiB value, streamed, byte-identical" {
	head -c 5M /dev/urandom >"$W/big"
	roundtrip "$S" big "$W/big"
	t "$MMSTORE" ls -l "$S" big
	assert_output --regexp "^-[rwx-]{9} +$((5 * 1024 * 1024)) "
}

@test "put reads standard input (redirect, pipe, and '-')" {
	head -c 300000 /dev/urandom >"$W/in"
	mms put "$S" from-redirect <"$W/in"
	mms get "$S" from-redirect >"$W/got"
	cmp "$W/in" "$W/got"
	# shellcheck disable=SC2002
	cat "$W/in" | mms put "$S" from-pipe
	mms get "$S" from-pipe >"$W/got"
	cmp "$W/in" "$W/got"
	mms put "$S" from-dash - <"$W/in"
	mms get "$S" from-dash >"$W/got"
	cmp "$W/in" "$W/got"
	# slow writer: short reads from the pipe still make one whole value
	(printf abc; sleep 0.2; printf def) | mms put "$S" slow
	t "$MMSTORE" get "$S" slow
	assert_output abcdef
}

@test "put replaces an existing value entirely" {
	head -c 200000 /dev/urandom >"$W/long"
	printf short >"$W/short"
	roundtrip "$S" k "$W/long"
	roundtrip "$S" k "$W/short"
	t "$MMSTORE" ls -l "$S" k
	assert_output --regexp '^-[rwx-]{9} +5 '
	roundtrip "$S" k "$W/long"
}

@test "nested keys: put creates parents, get and ls walk them" {
	printf deep >"$W/v"
	roundtrip "$S" a/b/c/d "$W/v"
	roundtrip "$S" a/b/e "$W/v"
	t "$MMSTORE" ls "$S" a
	assert_success
	assert_output b
	t "$MMSTORE" ls "$S" a/b
	assert_output "$(printf 'c\ne')"
	t "$MMSTORE" ls "$S" a/b/c
	assert_output d
	# leading and trailing slashes name the same key
	t "$MMSTORE" get "$S" /a/b/c/d
	assert_output deep
	t "$MMSTORE" ls "$S" /a/b/
	assert_output "$(printf 'c\ne')"
	t "$MMSTORE" ls -l "$S" a
	assert_output --regexp '^d[rwx-]{9} +[0-9]+ [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} b$'
}

@test "ls: sorted by name; ls -l shows mode, size, mtime, name; ls of a file" {
	for k in zeta alpha Mid 'with space' dir/x; do
		printf '%s' "$k" | mms put "$S" "$k"
	done
	t "$MMSTORE" ls "$S"
	assert_success
	assert_output "$(printf 'Mid\nalpha\ndir\nwith space\nzeta')"
	t "$MMSTORE" ls "$S" /
	assert_output "$(printf 'Mid\nalpha\ndir\nwith space\nzeta')"
	t "$MMSTORE" ls -l "$S"
	assert_success
	assert_equal "${#lines[@]}" 5
	assert_line --index 0 --regexp '^-rw-r--r-- +3 [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} Mid$'
	assert_line --index 1 --regexp '^-rw-r--r-- +5 [0-9-]+ [0-9:]+ alpha$'
	assert_line --index 2 --regexp '^drwxr-xr-x +[0-9]+ [0-9-]+ [0-9:]+ dir$'
	assert_line --index 3 --regexp '^-rw-r--r-- +10 [0-9-]+ [0-9:]+ with space$'
	# the mtime is today's (local time)
	assert_line --index 4 --regexp "^-rw-r--r-- +4 $(date +%Y-%m-%d) [0-9:]+ zeta\$"
	# ls of a file path prints that entry, as given
	t "$MMSTORE" ls "$S" dir/x
	assert_success
	assert_output dir/x
	t "$MMSTORE" ls "$S" -l dir/x
	assert_output --regexp '^-rw-r--r-- +5 [0-9-]+ [0-9:]+ dir/x$'
	# an empty directory lists nothing
	mms mkdir "$S" void
	t "$MMSTORE" ls "$S" void
	assert_success
	assert_output ''
}

@test "ls of a directory with many entries is complete and sorted" {
	# more names than one tree page holds
	for i in $(seq 1 150); do
		printf '%s' "$i" | mms put "$S" "many/a-rather-long-key-name-$i"
	done
	t "$MMSTORE" ls "$S" many
	assert_success
	assert_equal "${#lines[@]}" 150
	assert_equal "$output" \
		"$(for i in $(seq 1 150); do echo "a-rather-long-key-name-$i"; done | LC_ALL=C sort)"
}

@test "mv renames and replaces an existing target" {
	printf one >"$W/1"
	printf two >"$W/2"
	mms put "$S" a "$W/1"
	mms put "$S" b "$W/2"
	t "$MMSTORE" mv "$S" a b
	assert_success
	t "$MMSTORE" get "$S" b
	assert_output one
	t "$MMSTORE" get "$S" a
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'a': .*([Nn]ot found|[Nn]o such)"
	# into another directory
	mms mkdir "$S" d
	t "$MMSTORE" mv "$S" b d/c
	assert_success
	t "$MMSTORE" ls "$S"
	assert_output d
	t "$MMSTORE" get "$S" d/c
	assert_output one
	# a directory moves with its contents
	t "$MMSTORE" mv "$S" d e
	assert_success
	t "$MMSTORE" get "$S" e/c
	assert_output one
	t "$MMSTORE" check "$S"
	assert_success
}

@test "cp shares the value's pages: no space, the copies stay apart, errors name the key" {
	head -c 20000000 /dev/urandom >"$W/big"
	mms put "$S" a/big "$W/big"
	t "$MMSTORE" info --json "$S"
	echo "$output" >"$W/before.json"
	t "$MMSTORE" cp "$S" a/big b/copy
	assert_success
	t "$MMSTORE" info --json "$S"
	echo "$output" >"$W/after.json"
	# the data pages are the same: only tree pages may have been added
	local before after
	before=$(json_get "$W/before.json" .data)
	after=$(json_get "$W/after.json" .data)
	echo "data bytes: $before -> $after"
	((before >= 20000000 && after == before))
	mms get "$S" b/copy >"$W/got"
	cmp "$W/big" "$W/got"
	# a new value for the copy leaves the source as it was
	printf small >"$W/small"
	mms put "$S" b/copy "$W/small"
	mms get "$S" a/big >"$W/got"
	cmp "$W/big" "$W/got"
	# cp over an existing key replaces its value
	t "$MMSTORE" cp "$S" a/big b/copy
	assert_success
	mms get "$S" b/copy >"$W/got"
	cmp "$W/big" "$W/got"
	t "$MMSTORE" cp "$S" a/big a/big
	assert_failure 1
	assert_output "mmstore: $S: key 'a/big': is 'a/big' itself (or another name of it)"
	t "$MMSTORE" cp "$S" a b/x
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'a': .*[Ii]s a directory"
	t "$MMSTORE" cp "$S" a/big b
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'b': .*[Ii]s a directory"
	t "$MMSTORE" cp "$S" nope x
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'nope': .*[Nn]ot found"
	t "$MMSTORE" check "$S"
	assert_success
	# the source goes; the copy keeps the pages
	t "$MMSTORE" rm "$S" a/big
	assert_success
	mms get "$S" b/copy >"$W/got"
	cmp "$W/big" "$W/got"
	t "$MMSTORE" check "$S"
	assert_success
}

@test "rm removes a key and an empty directory, not a full one" {
	printf x | mms put "$S" d/k
	printf y | mms put "$S" top
	t "$MMSTORE" rm "$S" top
	assert_success
	t "$MMSTORE" get "$S" top
	assert_failure 1
	t "$MMSTORE" rm "$S" d
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'd': "
	t "$MMSTORE" rm "$S" d/k
	assert_success
	t "$MMSTORE" rm "$S" d
	assert_success
	t "$MMSTORE" ls "$S"
	assert_output ''
	mms info --json "$S" >"$W/i.json"
	[[ $(json_get "$W/i.json" .keys) == 0 ]]
	[[ $(json_get "$W/i.json" .dirs) == 1 ]]
}

@test "mkdir, and mkdir -p creates parents and accepts an existing directory" {
	t "$MMSTORE" mkdir "$S" x
	assert_success
	t "$MMSTORE" mkdir "$S" x
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'x': "
	t "$MMSTORE" mkdir "$S" p/q/r
	assert_failure 1
	assert_output --regexp "^mmstore: $S: key 'p/q/r': .*([Nn]ot found|[Nn]o such)"
	t "$MMSTORE" mkdir "$S" p/q/r -p
	assert_success
	t "$MMSTORE" mkdir -p "$S" p/q/r
	assert_success
	t "$MMSTORE" mkdir --parents "$S" p/q/s
	assert_success
	t "$MMSTORE" ls "$S" p/q
	assert_output "$(printf 'r\ns')"
	t "$MMSTORE" ls -l "$S"
	assert_line --regexp '^drwxr-xr-x +[0-9]+ [0-9-]+ [0-9:]+ p$'
	assert_line --regexp '^drwxr-xr-x +[0-9]+ [0-9-]+ [0-9:]+ x$'
}

@test "info: human text, and --json that parses with the counters" {
	printf 1 | mms put "$S" k1
	printf 2 | mms put "$S" d/k2
	head -c 100000 /dev/urandom | mms put "$S" d/e/k3
	t "$MMSTORE" info "$S"
	assert_success
	assert_line --regexp "^store: +$S\$"
	assert_line --regexp '^page size: +4096$'
	assert_line --regexp '^keys: +3$'
	assert_line --regexp '^directories: +3$'
	mms info "$S" --json >"$W/info.json"
	if command -v jq >/dev/null; then
		jq -e . "$W/info.json" >/dev/null
	fi
	/usr/bin/python3 -c 'import json,sys; json.load(sys.stdin)' <"$W/info.json"
	[[ $(json_get "$W/info.json" .keys) == 3 ]]
	[[ $(json_get "$W/info.json" .dirs) == 3 ]]
	[[ $(json_get "$W/info.json" .page_size) == 4096 ]]
	[[ $(json_get "$W/info.json" .file_size) == $(stat -c %s "$S") ]]
	[[ $(json_get "$W/info.json" .store) == "$S" ]]
	(($(json_get "$W/info.json" .data) >= 100000))
}

@test "check: a healthy store has no problems" {
	head -c 70000 /dev/urandom | mms put "$S" a/b
	t "$MMSTORE" check "$S"
	assert_success
	assert_output "$S: no problems found"
}

@test "vacuum after deleting most keys makes the file smaller and keeps the rest" {
	for i in $(seq 1 20); do
		head -c 524288 /dev/urandom >"$W/v$i"
		mms put "$S" "k$i" "$W/v$i"
	done
	for i in $(seq 1 20); do
		((i % 5 == 0)) || mms rm "$S" "k$i"
	done
	before=$(stat -c %s "$S")
	((before >= 20 * 524288))
	t --separate-stderr "$MMSTORE" vacuum "$S"
	assert_success
	assert_output --regexp "^$S: size before: [0-9]+ .*after: [0-9]+ "
	# stderr is not a terminal: no progress bar
	assert_equal "$stderr" ''
	after=$(stat -c %s "$S")
	((after < before))
	((after < 10 * 524288))
	for i in 5 10 15 20; do
		mms get "$S" "k$i" >"$W/got"
		cmp "$W/v$i" "$W/got"
	done
	t "$MMSTORE" ls "$S"
	assert_output "$(printf 'k10\nk15\nk20\nk5')"
	t "$MMSTORE" check "$S"
	assert_success
}

@test "vacuum, check and load draw a progress bar when stderr is a terminal" {
	command -v script >/dev/null || skip "script(1) is not installed"
	for i in $(seq 1 20); do
		head -c 65536 /dev/urandom | mms put "$S" "k$i"
	done
	for i in $(seq 1 15); do mms rm "$S" "k$i"; done
	mms dump "$S" "$W/d.jsonl"
	# script gives the command a terminal; its output is the terminal's
	t script -qec "$MMSTORE vacuum $S" /dev/null
	assert_success
	assert_output --partial '100%'
	t script -qec "$MMSTORE check $S" /dev/null
	assert_success
	assert_output --partial '100%'
	t script -qec "$MMSTORE load --create $W/new.mms $W/d.jsonl" /dev/null
	assert_success
	assert_output --partial '100%'
}

@test "dump | load into a new store gives a byte-identical dump and identical keys" {
	printf 'text value\n' >"$W/text"
	head -c 1M /dev/urandom >"$W/bin"
	head -c 3000 /dev/urandom >"$W/small"
	: >"$W/empty"
	mms put "$S" text "$W/text"
	mms put "$S" dir/bin "$W/bin"
	mms put "$S" dir/sub/small "$W/small"
	mms put "$S" dir/sub/empty "$W/empty"
	mms put "$S" 'odd name with spaces & "quotes"' "$W/text"
	mms mkdir "$S" emptydir

	mms dump "$S" >"$W/d1"
	[[ -s $W/d1 ]]
	mms create "$W/copy.mms"
	mms load "$W/copy.mms" <"$W/d1"
	mms dump "$W/copy.mms" >"$W/d2"
	cmp "$W/d1" "$W/d2"

	# the FILE arguments of dump and load, and load --create
	mms dump "$S" "$W/d3"
	cmp "$W/d1" "$W/d3"
	t "$MMSTORE" load "$W/created.mms" "$W/d3"
	assert_failure 1
	assert_output --regexp "^mmstore: $W/created.mms: cannot open: "
	mms load --create "$W/created.mms" "$W/d3"
	mms dump "$W/created.mms" >"$W/d4"
	cmp "$W/d1" "$W/d4"

	for st in "$W/copy.mms" "$W/created.mms"; do
		for pair in text:text dir/bin:bin dir/sub/small:small dir/sub/empty:empty \
			'odd name with spaces & "quotes":text'; do
			mms get "$st" "${pair%:*}" >"$W/got"
			cmp "$W/${pair##*:}" "$W/got"
		done
		t "$MMSTORE" ls "$st"
		assert_output "$(printf 'dir\nemptydir\nodd name with spaces & "quotes"\ntext')"
		t "$MMSTORE" check "$st"
		assert_success
	done
}

@test "load replaces keys that exist and keeps the others" {
	printf old | mms put "$S" k
	printf keep | mms put "$S" other
	mms create "$W/src.mms"
	printf new | mms put "$W/src.mms" k
	mms dump "$W/src.mms" >"$W/d"
	mms load "$S" "$W/d"
	t "$MMSTORE" get "$S" k
	assert_output new
	t "$MMSTORE" get "$S" other
	assert_output keep
}


@test "a sparse 8 TiB store opens as cheaply as a 1 GiB one" {
	mms create "$W/small.mms" --size 1G
	mms create "$W/big.mms" --size 8T
	# opening maps the file and makes no per-page state up front: the peak
	# memory of an open does not grow with the file's size
	small=$(/usr/bin/time -f %M "$MMSTORE" info "$W/small.mms" 2>&1 >/dev/null | tail -1)
	big=$(/usr/bin/time -f %M "$MMSTORE" info "$W/big.mms" 2>&1 >/dev/null | tail -1)
	echo "peak RSS: 1 GiB store ${small} KB, 8 TiB store ${big} KB"
	((big < small + 2048))
}

@test "a store works under a 4 GiB address-space limit (ulimit -v)" {
	# AddressSanitizer reserves terabytes of address space for its shadow
	# memory: no instrumented program runs under such a limit
	if [[ -n ${ASAN_OPTIONS:-} ]]; then
		skip "the sanitizer build cannot run under ulimit -v"
	fi
	# the map reserves room to grow, and falls back to the file's size
	run bash -c 'ulimit -v 4000000 && "$0" create "$1" && "$0" put "$1" k /etc/hostname && "$0" get "$1" k' \
		"$MMSTORE" "$W/limited.mms"
	[ "$status" -eq 0 ]
	[ "$output" = "$(cat /etc/hostname)" ]
}
