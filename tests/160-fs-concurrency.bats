#!/usr/bin/env bats
# 160-fs-concurrency.bats - readers and writers on the same keys at once.
#
# For CONC_SECONDS (default 20) seconds, 2 writers rewrite whole keys of a
# shared set of 12 (both writers pick from all of them) while 4 readers cat
# and dd random keys and a lister runs `ls -l`.  A write is one of: cp over
# the key (O_TRUNC, then write), write to a temporary key and mv it over the
# key (rename replacing it), or dd over the key without truncating, then
# truncate to the new length.  Writes of one key are ordered by a lock on the
# host (not in the mount), so "the last write of a key" is well defined;
# readers take no lock and race with everything.
#
# Content of version V of key K by writer W: the 64-byte line
# "wW vVVVVVVVV kKK xxx...x\n" repeated 1..1500 times (64 B to 96 KB, so both
# inline and extent-backed values).  Every line a reader gets must be a whole
# line of that key (bytes of another key or garbage are a failure), no
# command may fail, and at the end every key holds exactly its last write,
# before and after a remount.
#
# Zeros: a read that races with a truncation of the file (cp's O_TRUNC, or
# truncate after dd) may get whole lines of zero bytes between the new end
# and the end of its page.  The kernel zero-fills that page for a reader that
# still sees the old size; ext4 does the same (truncate zeroes the tail of
# the last page in the page cache while a reader copies it) and so does
# libfuse's passthrough_ll.  So a writer marks each truncating write in the
# key's counter (odd while it runs, a seqlock), and a reader accepts zero
# lines only when that counter moved or was odd around its read; any other
# read must be all lines of the key.

load helpers/common
load helpers/mount

NKEYS=12
NWRITERS=2
NREADERS=4

setup_file() {
	TOP=$(mk_tmp)
	export TOP
	export STORE=$TOP/conc.store MNT=$TOP/mnt
	mkdir -p "$MNT" "$TOP/work"
	mount_store "$STORE" "$MNT" create
}

teardown() {
	if [[ ${BATS_TEST_COMPLETED:-} != 1 ]]; then
		echo "--- mmfs log ($(mmfs_log "$MNT")) ---" >&2
		tail -n 100 "$(mmfs_log "$MNT")" >&2 || true
	fi
	# stop workers a failed test left behind (only the ones we started)
	local pid
	if [[ -f $TOP/pids ]]; then
		while read -r pid; do
			kill "$pid" 2>/dev/null || true
		done <"$TOP/pids"
		rm -f "$TOP/pids"
	fi
}

teardown_file() {
	unmount_store "$MNT"
	mmfs_teardown_file
}

# gen W V K FILE: write version V of key K by writer W to FILE.
gen() {
	local line
	printf -v line 'w%d v%08d k%02d %s' "$1" "$2" "$3" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
	yes "$line" | head -n $((1 + ($2 * 7919 + $3 * 31 + $1 * 101) % 1500)) >"$4"
}

# trunc_mark K: advance key K's truncation counter by one (key lock held);
# written by rename, so a reader never sees the file half-written.
trunc_mark() {
	local t
	t=$(cat "$TOP/work/trunc.$1")
	echo $((t + 1)) >"$TOP/work/trunc.$1.new"
	mv "$TOP/work/trunc.$1.new" "$TOP/work/trunc.$1"
}

# writer W END: rewrite random keys until the time END (seconds); log each
# completed write as "TIME SEQ KEY W V" (SEQ: the key's write counter, taken
# under the key's lock).
writer() {
	local w=$1 end=$2 v=0 k fd seq rc src=$TOP/work/w$1.src
	local log=$TOP/work/writer$1.log err=$TOP/work/errors.writer$1
	while ((SECONDS < end)); do
		v=$((v + 1))
		k=$((RANDOM % NKEYS))
		gen "$w" "$v" "$k" "$src"
		exec {fd}>"$TOP/work/lock.$k"
		flock -x "$fd"
		rc=0
		# writes 0 and 2 truncate the key: odd counter while they run
		((v % 3 == 1)) || trunc_mark "$k"
		case $((v % 3)) in
		0) timeout 30 cp "$src" "$MNT/conc/k$k" || rc=$? ;;
		1) timeout 30 cp "$src" "$MNT/tmp/w$w" &&
			timeout 30 mv -f "$MNT/tmp/w$w" "$MNT/conc/k$k" || rc=$? ;;
		2) timeout 30 dd if="$src" of="$MNT/conc/k$k" bs=64k conv=notrunc status=none &&
			timeout 30 truncate -s "$(stat -c %s "$src")" "$MNT/conc/k$k" || rc=$? ;;
		esac
		((v % 3 == 1)) || trunc_mark "$k"
		if ((rc != 0)); then
			echo "writer $w: write $((v % 3)) of k$k version $v failed with status $rc" >>"$err"
			flock -u "$fd"
			exec {fd}>&-
			return 1
		fi
		seq=$(($(cat "$TOP/work/seq.$k") + 1))
		echo "$seq" >"$TOP/work/seq.$k"
		echo "$EPOCHREALTIME $seq $k $w $v" >>"$log"
		flock -u "$fd"
		exec {fd}>&-
	done
}

# reader R END: read random keys (whole with cat, or one 4 KiB block with
# dd) until END, checking every line; count the reads, and the reads that
# raced with a truncation and got zero lines.
reader() {
	local r=$1 end=$2 n=0 k bad rc t0 t1 zeros buf=$TOP/work/r$1.buf err=$TOP/work/errors.reader$1
	local zeroed=0
	while ((SECONDS < end)); do
		k=$((RANDOM % NKEYS))
		rc=0
		t0=$(cat "$TOP/work/trunc.$k")
		if ((n % 2)); then
			timeout 30 cat "$MNT/conc/k$k" >"$buf" 2>>"$err" || rc=$?
		else
			timeout 30 dd if="$MNT/conc/k$k" of="$buf" bs=4k skip=$((RANDOM % 24)) count=1 \
				status=none 2>>"$err" || rc=$?
		fi
		if ((rc != 0)); then
			echo "reader $r: read of k$k failed with status $rc" >>"$err"
			return 1
		fi
		t1=$(cat "$TOP/work/trunc.$k")
		zeros=
		((t0 == t1 && t0 % 2 == 0)) || zeros=zeros
		bad=$("$TEST_LANG_DIR/linecheck" "$buf" "$k" $zeros 2>>"$err")
		if ((bad != 0)); then
			echo "reader $r: k$k: $bad records of $(stat -c %s "$buf") bytes that are not lines of k$k" \
				"(${zeros:-no truncation raced}; $( ((n % 2)) && echo cat || echo dd))" >>"$err"
			return 1
		fi
		if [[ -n $zeros ]] && ! "$TEST_LANG_DIR/linecheck" "$buf" "$k" >/dev/null 2>&1; then
			zeroed=$((zeroed + 1))
		fi
		n=$((n + 1))
		echo "$n $zeroed" >"$TOP/work/reads.$r"
	done
}

# lister END: ls -l the keys' directory until END.
lister() {
	local n=0 err=$TOP/work/errors.lister
	while ((SECONDS < $1)); do
		if ! timeout 30 ls -l "$MNT/conc" >"$TOP/work/ls.out" 2>>"$err"; then
			echo "lister: ls -l failed" >>"$err"
			return 1
		fi
		if (($(grep -c ' k[0-9]*$' "$TOP/work/ls.out") != NKEYS)); then
			{ echo "lister: ls -l shows a wrong set of keys:"; cat "$TOP/work/ls.out"; } >>"$err"
			return 1
		fi
		n=$((n + 1))
		echo "$n" >"$TOP/work/lists"
	done
}

# check_final: every key holds the content of its last logged write.
check_final() {
	local k last seq w v
	for ((k = 0; k < NKEYS; k++)); do
		last=$(cat "$TOP"/work/writer*.log | awk -v k="$k" '$3 == k' | sort -n -k2 | tail -1)
		[[ -n $last ]] || { echo "no write of k$k was logged"; return 1; }
		read -r _ seq _ w v <<<"$last"
		gen "$w" "$v" "$k" "$TOP/work/want"
		if ! timeout 30 cmp "$TOP/work/want" "$MNT/conc/k$k"; then
			echo "k$k differs from its last write (write $seq: writer $w version $v)"
			return 1
		fi
	done
}

@test "4 readers, 2 writers and a lister on overlapping keys run without an error" {
	local k end dur=${CONC_SECONDS:-20}
	t mkdir "$MNT/conc" "$MNT/tmp"
	assert_success
	# version 0 of every key, by "writer 0"
	for ((k = 0; k < NKEYS; k++)); do
		gen 0 0 "$k" "$TOP/work/init"
		t cp "$TOP/work/init" "$MNT/conc/k$k"
		assert_success
		echo 1 >"$TOP/work/seq.$k"
		echo 0 >"$TOP/work/trunc.$k"
		echo "$EPOCHREALTIME 1 $k 0 0" >>"$TOP/work/writer0.log"
	done

	end=$((SECONDS + dur))
	: >"$TOP/pids"
	local i pids=()
	for ((i = 1; i <= NWRITERS; i++)); do
		writer "$i" "$end" >>"$TOP/work/errors.writer$i" 2>&1 3>&- &
		pids+=($!)
	done
	for ((i = 1; i <= NREADERS; i++)); do
		reader "$i" "$end" >>"$TOP/work/errors.reader$i" 2>&1 3>&- &
		pids+=($!)
	done
	lister "$end" >>"$TOP/work/errors.lister" 2>&1 3>&- &
	pids+=($!)
	printf '%s\n' "${pids[@]}" >"$TOP/pids"

	local failed=0 pid
	for pid in "${pids[@]}"; do
		wait "$pid" || failed=$((failed + 1))
	done
	rm -f "$TOP/pids"

	# no errors anywhere
	run bash -c "cat '$TOP'/work/errors.* 2>/dev/null"
	assert_output ''
	assert_equal "$failed" 0

	# and real work was done: every worker ran many times
	for ((i = 1; i <= NWRITERS; i++)); do
		run wc -l <"$TOP/work/writer$i.log"
		echo "# writer $i: $output writes" >&3
		((output >= 10))
	done
	local reads zeroed
	for ((i = 1; i <= NREADERS; i++)); do
		read -r reads zeroed <"$TOP/work/reads.$i"
		echo "# reader $i: $reads reads ($zeroed raced with a truncation and got zero lines)" >&3
		((reads >= 50))
	done
	run cat "$TOP/work/lists"
	echo "# lister: $output listings" >&3
	((output >= 5))
	# both writers wrote some of the same keys
	run bash -c "comm -12 <(awk '{print \$3}' '$TOP/work/writer1.log' | sort -u) \
	                      <(awk '{print \$3}' '$TOP/work/writer2.log' | sort -u) | wc -l"
	((output >= 2))
}

@test "every key holds the bytes of its last completed write" {
	[[ -f $TOP/work/writer1.log ]] # written by the test above
	run check_final
	assert_success
}

@test "after a remount, every key still holds its last completed write" {
	[[ -f $TOP/work/writer1.log ]] # written by the first test
	unmount_store "$MNT"
	mount_store "$STORE" "$MNT"
	run check_final
	assert_success
	t ls -A "$MNT/tmp"
	assert_success
	assert_output ''
}

@test "after unmount, mmstore check finds no problem and mmstore get reads every last write" {
	[[ -f $TOP/work/writer1.log ]] # written by the first test
	unmount_store "$MNT"
	TEST_TIMEOUT=300 t "$MMSTORE" check "$STORE"
	assert_success
	local k last w v
	for ((k = 0; k < NKEYS; k++)); do
		last=$(cat "$TOP"/work/writer*.log | awk -v k="$k" '$3 == k' | sort -n -k2 | tail -1)
		read -r _ _ _ w v <<<"$last"
		gen "$w" "$v" "$k" "$TOP/work/want"
		"$MMSTORE" get "$STORE" "conc/k$k" >"$TOP/work/got"
		cmp "$TOP/work/want" "$TOP/work/got"
	done
}
