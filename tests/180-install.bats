#!/usr/bin/env bats
# 180-install: what `make install` puts in place works with nothing else:
# the programs, the mount helpers (mount.mmfs, mount.fuse.mmfs), the man
# pages (rendered without a warning), libmms with its header and pkg-config
# file (the README's C example builds and runs against them), mount -t
# mmfs / fuse.mmfs and an fstab line.  Installs into a DESTDIR under the
# test's temporary directory; runs in make check and in make distcheck.

load helpers/common
load helpers/mount

setup_file() {
	ROOT=$(mktemp -d "${BATS_FILE_TMPDIR}/root.XXXXXX")
	export ROOT
	timeout 300 make -C "$BUILDDIR" install DESTDIR="$ROOT" >"$BATS_FILE_TMPDIR/install.log" 2>&1 ||
		{ cat "$BATS_FILE_TMPDIR/install.log" >&2; return 1; }
	PREFIX=$(sed -n 's/^prefix=//p' "$BUILDDIR/mms.pc")
	export PREFIX
	export P=$ROOT$PREFIX
	export LD_LIBRARY_PATH=$P/lib
}

teardown() {
	local l
	for l in ${SYS_LINKS:-}; do
		rm -f "$l"
	done
	mmfs_teardown
}

@test "make install puts the programs, mount helpers, library, header, pkg-config file and man pages" {
	local f
	for f in bin/mmfs bin/mmstore include/mms.h lib/pkgconfig/mms.pc share/man/man1/mmfs.1 \
		share/man/man1/mmstore.1 share/man/man3/libmms.3; do
		[ -e "$P/$f" ] || fail "$P/$f is missing"
	done
	ls "$P"/lib/libmms.so*
	for f in mount.mmfs mount.fuse.mmfs; do
		[ -L "$P/sbin/$f" ] || fail "$P/sbin/$f is not a link"
		[ "$(readlink -f "$P/sbin/$f")" = "$(readlink -f "$P/bin/mmfs")" ] ||
			fail "$f does not lead to mmfs: $(readlink "$P/sbin/$f")"
	done
	t "$P/bin/mmfs" --version
	assert_success
	assert_output --partial "mmfs 0.1"
}

@test "the man pages render without a warning, and man finds them" {
	local page out
	for page in man1/mmfs.1 man1/mmstore.1 man3/libmms.3; do
		out=$(MANWIDTH=80 man --warnings -l "$P/share/man/$page" 2>&1 >/dev/null)
		[ -z "$out" ] || fail "$page: $out"
	done
	t env MANWIDTH=80 MANPAGER=cat man -M "$P/share/man" mmfs
	assert_success
	assert_output --partial "user.mmfs.vacuum"
	t env MANWIDTH=80 MANPAGER=cat man -M "$P/share/man" 3 libmms
	assert_success
	assert_output --partial "pkg-config"
}

@test "the README's libmms example builds with pkg-config against the installed files only, and runs" {
	local d=$BATS_TEST_TMPDIR
	# the example is the ```c block of the README's libmms section
	awk '/^### libmms/ { s = 1 } s && /^```c$/ { c = 1; next } c && /^```$/ { exit } c' \
		"$SRCDIR/README.md" >"$d/body.c"
	[ -s "$d/body.c" ] || fail "no C example in README.md"
	{
		printf '#include <mms.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <unistd.h>\n'
		printf 'int main(void)\n{\n'
		cat "$d/body.c"
		printf 'printf("%%.*s\\n", (int)n, buf);\nreturn 0;\n}\n'
	} >"$d/example.c"
	run env PKG_CONFIG_PATH="$P/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$ROOT" \
		pkg-config --cflags --libs mms
	assert_success
	local flags=$output
	[[ $flags == *"-I$P/include"* ]] || fail "pkg-config gave no -I for the installed header: $flags"
	# the compiler and its flags of this build (a sanitizer build's library
	# needs a sanitizer program); paths come from pkg-config only
	# shellcheck disable=SC2086 # the flags are words
	t ${BUILD_CC:-cc} ${BUILD_CFLAGS:-} -Wall -Wextra -o "$d/example" "$d/example.c" $flags ${BUILD_LDFLAGS:-}
	assert_success
	cd "$d"
	t ./example
	assert_success
	assert_output hello
	t "$P/bin/mmstore" get "$d/data.mms" greeting
	assert_output hello
}

@test "the installed mount helper takes mount(8)'s arguments and returns once the mount is live" {
	local d=$BATS_TEST_TMPDIR
	mkdir "$d/mnt"
	echo "$d/mnt" >>"$BATS_TEST_TMPDIR/mmfs.mounts"
	# -f is mount's "fake": nothing happens
	t "$P/sbin/mount.mmfs" "$d/s.mms" "$d/mnt" -f -o create
	assert_success
	assert_not_mounted "$d/mnt"
	t "$P/sbin/mount.mmfs" "$d/s.mms" "$d/mnt" -n -o rw,defaults,nofail,noauto,x-systemd.after=x,create,max_size=64M
	assert_success
	is_mounted "$d/mnt"
	echo helper >"$d/mnt/f"
	t cat "$d/mnt/f"
	assert_output helper
	t fusermount3 -u "$d/mnt"
	assert_success
	t "$P/sbin/mount.fuse.mmfs" "$d/s.mms" "$d/mnt" -o ro
	assert_success
	t cat "$d/mnt/f"
	assert_output helper
	t fusermount3 -u "$d/mnt"
	assert_success
	t "$P/sbin/mount.mmfs" "$d/s.mms"
	assert_failure 2
	assert_output --partial "usage: mount.mmfs STORE MOUNTPOINT"
}

@test "mount(8) with type mmfs or fuse.mmfs, and an fstab line, run the installed helper" {
	((EUID == 0)) || skip "mount(8) runs helpers from /sbin only for root"
	local d=$BATS_TEST_TMPDIR l
	# mount(8) looks for mount.TYPE in /sbin (= /usr/sbin here): link the
	# DESTDIR's helpers there for this test (teardown removes them), unless
	# the system has its own
	SYS_LINKS=
	for l in mount.mmfs mount.fuse.mmfs; do
		if [[ -e /usr/sbin/$l ]]; then
			skip "/usr/sbin/$l exists (a system install): not replaced"
		fi
	done
	# mount(8) clears the environment: a wrapper points the DESTDIR's
	# mmfs at the DESTDIR's library, under the helper's own name
	for l in mount.mmfs mount.fuse.mmfs; do
		printf '#!/bin/bash\nLD_LIBRARY_PATH=%q exec -a %q %q "$@"\n' "$P/lib" "$l" "$P/sbin/$l" \
			>"/usr/sbin/$l"
		chmod +x "/usr/sbin/$l"
		SYS_LINKS+=" /usr/sbin/$l"
	done
	mkdir "$d/mnt"
	echo "$d/mnt" >>"$BATS_TEST_TMPDIR/mmfs.mounts"
	t mount -t mmfs "$d/s.mms" "$d/mnt" -o create,max_size=32M
	assert_success
	echo typed >"$d/mnt/f"
	t umount "$d/mnt"
	assert_success
	t mount -t fuse.mmfs "$d/s.mms" "$d/mnt" -o ro
	assert_success
	t cat "$d/mnt/f"
	assert_output typed
	t umount "$d/mnt"
	assert_success
	printf '%s %s mmfs defaults,nofail,sync=1 0 0\n' "$d/s.mms" "$d/mnt" >"$d/fstab"
	t mount -T "$d/fstab" "$d/mnt"
	assert_success
	run awk -v m="$d/mnt" '$2 == m { print $1, $3 }' /proc/mounts
	assert_output "$d/s.mms fuse.mmfs"
	t cat "$d/mnt/f"
	assert_output typed
	t umount "$d/mnt"
	assert_success
}
