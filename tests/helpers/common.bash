# shellcheck shell=bash
# common.bash - helpers every bats suite loads first: `load helpers/common`.
#
# Provides bats-support and bats-assert, the paths of the programs under
# test (MMSTORE, MMFS, TEST_LANG_DIR, SRCDIR: `make check` exports them; when
# bats runs a file by hand they default to the build tree), `t` (run under
# a timeout) and `mk_tmp` (a fresh temporary directory).

# bats-support and bats-assert, as Debian installs them in /usr/lib/bats.
if declare -F bats_load_library >/dev/null; then
	BATS_LIB_PATH=${BATS_LIB_PATH:-/usr/lib/bats}
	bats_load_library bats-support
	bats_load_library bats-assert
else
	load /usr/lib/bats/bats-support/load
	load /usr/lib/bats/bats-assert/load
fi
# `t -1 cmd` passes -1 to run: that needs bats >= 1.5.
if declare -F bats_require_minimum_version >/dev/null; then
	bats_require_minimum_version 1.5.0
fi

# The programs under test.  Defaults: build/ (scripts/check, scripts/run),
# else an in-tree build.
: "${SRCDIR:=$(cd "$BATS_TEST_DIRNAME/.." && pwd)}"
if [[ -z ${MMSTORE:-} || -z ${MMFS:-} || -z ${TEST_LANG_DIR:-} ]]; then
	_mmfs_build=$SRCDIR
	[[ -x $SRCDIR/build/src/mmstore ]] && _mmfs_build=$SRCDIR/build
	: "${MMSTORE:=$_mmfs_build/src/mmstore}"
	: "${MMFS:=$_mmfs_build/fs/mmfs}"
	: "${TEST_LANG_DIR:=$_mmfs_build/tests/lang}"
	unset _mmfs_build
fi
export SRCDIR MMSTORE MMFS TEST_LANG_DIR

# t [RUN-FLAGS] CMD [ARGS...]: `run` CMD under `timeout ${TEST_TIMEOUT:-60}`
# seconds (then SIGTERM, and SIGKILL 10 s later); a timeout gives status 124.
# Leading flags of `run` (-N, !, --separate-stderr, --keep-empty-lines) are
# passed to it.  CMD is a program, not a shell function: for a pipeline use
# `t bash -c '...'`.  CMD runs with bats' fd 3 closed, so that a daemon it
# starts cannot hold the test's output open (which would hang bats).
t() {
	local flags=()
	while (($#)); do
		case $1 in
		-[0-9]* | '!' | --separate-stderr | --keep-empty-lines)
			flags+=("$1")
			shift
			;;
		--)
			shift
			break
			;;
		*) break ;;
		esac
	done
	# timeout cannot run a function; bats then loses the test's result
	if declare -F "$1" >/dev/null; then
		echo "t: '$1' is a shell function, not a program: use run" >&2
		return 1
	fi
	run "${flags[@]}" timeout --kill-after=10 "${TEST_TIMEOUT:-60}" "$@" 3>&-
}

# mk_tmp: make a fresh directory under this test's (or, in setup_file, this
# file's) temporary directory, which bats removes afterwards; prints its path.
mk_tmp() {
	mktemp -d "${BATS_TEST_TMPDIR:-${BATS_FILE_TMPDIR:-${BATS_RUN_TMPDIR:-${TMPDIR:-/tmp}}}}/mmfs.XXXXXX"
}
