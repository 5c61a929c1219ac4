#!/usr/bin/env bats
# 030-layers.bats - the engine is layered: each module of libmms uses only
# the modules beneath it.  Read from the built objects (nm), so that the
# test sees every call the compiler kept, not what the code seems to say.
#
# The order, bottom first (src/mms_int.h describes each module):
#   crc32c runset err io node file alloc pager btree share txn record data inode
#   vacuum check env json
# err (the transaction's error state) and io (the store file's I/O, which
# the crash simulator records) are beneath the allocator and the tree; the
# allocator never commits, and no module below txn knows how a commit is
# made.  A new module must be placed in LAYERS.

load helpers/common

LAYERS=(crc32c runset err io node file alloc pager btree share txn record data inode vacuum check env json)

# objdir: where the build keeps libmms's objects (libtool's .libs, else
# the objects beside the library).
objdir() {
	local d
	d=$(dirname "$MMSTORE")
	if [[ -f $d/.libs/alloc.o ]]; then
		echo "$d/.libs"
	elif [[ -f $d/alloc.o ]]; then
		echo "$d"
	else
		echo "no libmms objects next to $MMSTORE" >&2
		return 1
	fi
}

@test "layers: every source module of libmms has a place in the order" {
	local f m found
	for f in "$SRCDIR"/src/*.c; do
		m=$(basename "$f" .c)
		[[ $m == mmstore ]] && continue # the CLI, not the library
		found=0
		for l in "${LAYERS[@]}"; do [[ $l == "$m" ]] && found=1; done
		((found)) || fail "src/$m.c is not in LAYERS of $BATS_TEST_FILENAME"
	done
}

@test "layers: no module uses a symbol of a module above it" {
	command -v nm >/dev/null || fail "nm (binutils) is missing"
	local dir m s i j bad=()
	dir=$(objdir)
	declare -A rank owner
	for i in "${!LAYERS[@]}"; do
		m=${LAYERS[$i]}
		[[ -f $dir/$m.o ]] || fail "no object $dir/$m.o"
		rank[$m]=$i
		while read -r s; do
			owner[$s]=$m
		done < <(nm --defined-only "$dir/$m.o" | awk '$2 ~ /^[TDBRC]$/ {print $3}')
	done
	((${#owner[@]} > 100)) || fail "only ${#owner[@]} symbols found in $dir: not libmms's objects?"
	local uses=0
	for i in "${!LAYERS[@]}"; do
		m=${LAYERS[$i]}
		while read -r s; do
			[[ -n ${owner[$s]:-} && ${owner[$s]} != "$m" ]] || continue
			uses=$((uses + 1))
			j=${rank[${owner[$s]}]}
			((j < i)) || bad+=("$m uses $s of ${owner[$s]}")
		done < <(nm -u "$dir/$m.o" | awk '{print $2}')
	done
	((uses > 100)) || fail "only $uses calls between modules found: the objects are not what this test expects"
	if ((${#bad[@]})); then
		printf '%s\n' "${bad[@]}" >&2
		fail "${#bad[@]} upward uses (above)"
	fi
}
