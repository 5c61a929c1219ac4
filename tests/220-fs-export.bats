#!/usr/bin/env bats
# 220-fs-export: a mount exported over NFS.  File handles (the kernel's,
# which an NFS server hands out) resolve after the kernel evicted the
# inode and after the daemon was restarted, a removed file's handle is
# stale; and a real NFS server (nfs-ganesha, FSAL_VFS) exports a mount to
# a real client (libnfs) on loopback in a network namespace of the test's.

load helpers/common
load helpers/mount

setup_file() {
	mount_shared_store export
}

teardown_file() {
	mmfs_teardown_file
}

teardown() {
	mmfs_teardown
}

# handles.py save MNT FILE PATH... | check MNT FILE: name_to_handle_at of
# each PATH saved to FILE; then open_by_handle_at of each, printing
# "PATH ok <sha256 of the bytes>" (a directory: "PATH ok dir <ino> parent
# <ino of its '..'>"), or "PATH error <strerror>".
HANDLES='
import ctypes, hashlib, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class FH(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 128)]
cmd, mnt, store = sys.argv[1:4]
if cmd == "save":
    out = {}
    for p in sys.argv[4:]:
        fh = FH()
        fh.handle_bytes = 128
        mid = ctypes.c_int()
        if libc.name_to_handle_at(-100, os.path.join(mnt, p).encode(), ctypes.byref(fh),
                                  ctypes.byref(mid), 0) != 0:
            sys.exit("name_to_handle_at %s: %s" % (p, os.strerror(ctypes.get_errno())))
        out[p] = [fh.handle_type, bytes(fh.f_handle[:fh.handle_bytes]).hex()]
    json.dump(out, open(store, "w"))
    sys.exit(0)
mfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
for p, (htype, hexh) in sorted(json.load(open(store)).items()):
    raw = bytes.fromhex(hexh)
    fh = FH()
    fh.handle_bytes = len(raw)
    fh.handle_type = htype
    ctypes.memmove(fh.f_handle, raw, len(raw))
    fd = libc.open_by_handle_at(mfd, ctypes.byref(fh), os.O_RDONLY)
    if fd < 0:
        print(p, "error", os.strerror(ctypes.get_errno()))
        continue
    st = os.fstat(fd)
    if os.path.stat.S_ISDIR(st.st_mode):
        up = os.open("..", os.O_RDONLY, dir_fd=fd)
        print(p, "ok dir", st.st_ino, "parent", os.fstat(up).st_ino)
        os.close(up)
    else:
        h = hashlib.sha256()
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            h.update(b)
        print(p, "ok", h.hexdigest())
    os.close(fd)
'

# drop_inodes: make the kernel forget every inode it does not use, so that
# a handle is resolved by the daemon (LOOKUP of ".")
drop_inodes() {
	sync
	echo 2 >/proc/sys/vm/drop_caches
}

@test "file handles resolve after the kernel evicts the inodes; a removed file's handle is stale" {
	mkdir -p "$MNT/h/sub/deeper"
	head -c 300000 /dev/urandom >"$MNT/h/sub/data"
	echo doomed >"$MNT/h/doomed"
	ln "$MNT/h/sub/data" "$MNT/h/linked"
	local want parent
	want=$(sha256sum <"$MNT/h/sub/data" | cut -d' ' -f1)
	parent=$(stat -c %i "$MNT/h/sub")
	t /usr/bin/python3 -c "$HANDLES" save "$MNT" "$DIR/h.json" h/sub/data h/doomed h/sub/deeper h/linked h
	assert_success
	rm "$MNT/h/doomed"
	local before
	before=$(mmfs_stat "$MNT" requests | /usr/bin/python3 -c 'import ast, sys; print(ast.literal_eval(sys.stdin.read())["lookup"])')
	drop_inodes
	t /usr/bin/python3 -c "$HANDLES" check "$MNT" "$DIR/h.json"
	assert_success
	assert_line "h/sub/data ok $want"
	assert_line "h/linked ok $want"
	assert_line "h/doomed error Stale file handle"
	assert_line "h/sub/deeper ok dir $(stat -c %i "$MNT/h/sub/deeper") parent $parent"
	assert_line "h ok dir $(stat -c %i "$MNT/h") parent 1"
	# the kernel asked the daemon (LOOKUP ".", and ".." for the parents)
	local after
	after=$(mmfs_stat "$MNT" requests | /usr/bin/python3 -c 'import ast, sys; print(ast.literal_eval(sys.stdin.read())["lookup"])')
	((after > before))
}

@test "file handles resolve after the daemon is restarted on the same store" {
	mkdir -p "$MNT/r/d"
	echo persistent >"$MNT/r/d/f"
	local want
	want=$(sha256sum <"$MNT/r/d/f" | cut -d' ' -f1)
	t /usr/bin/python3 -c "$HANDLES" save "$MNT" "$DIR/r.json" r/d/f r/d
	assert_success
	unmount_store "$MNT"
	mount_store "$STORE" "$MNT" allow_other
	drop_inodes
	t /usr/bin/python3 -c "$HANDLES" check "$MNT" "$DIR/r.json"
	assert_success
	assert_line "r/d/f ok $want"
	assert_line --partial "r/d ok dir"
}

# unshare -n -m bash -c "$GANESHA_RUN" ganesha DIR CLIENT ARGS...: in the
# network and mount namespaces the caller made, bring loopback up, give
# rpcbind a /run of its own, start rpcbind and nfs-ganesha exporting $MNT
# (NFSv3 at its path, NFSv4 as /mmfs; state in DIR), and source the shell
# script CLIENT with ARGS; it may call `url3 NAME` and `url4 NAME` (the URLs
# of a path in the export) and `nfs_restart`.
GANESHA_RUN='
set -u
dir=$1
client=$2
shift 2
ip link set lo up
mount --make-rprivate /
mount -t tmpfs tmpfs /run
conf=$dir/ganesha.conf
mkdir -p "$dir/recovery"
cat >"$conf" <<EOF
NFS_CORE_PARAM { Protocols = 3, 4; NFS_Port = 2049; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }
NFSv4 { Graceless = true; RecoveryBackend = fs; RecoveryRoot = $dir/recovery; }
NFS_KRB5 { Active_krb5 = false; }
EXPORT { Export_Id = 1; Path = $MNT; Pseudo = /mmfs; Access_Type = RW; Squash = No_Root_Squash;
         Protocols = 3, 4; Transports = TCP; SecType = sys; FSAL { Name = VFS; } }
LOG { Default_Log_Level = WARN; }
EOF
url3() { echo "nfs://127.0.0.1$MNT/$1"; }
url4() { echo "nfs://127.0.0.1/mmfs/$1?version=4"; }
rpcbind -f -w &
rpid=$!
nfs_start() {
	ganesha.nfsd -F -f "$conf" -L "$dir/ganesha.log" -p "$dir/ganesha.pid" &
	gpid=$!
	for i in $(seq 100); do
		nfs-ls "$(url3 "")" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "ganesha did not answer" >&2
	return 1
}
nfs_stop() {
	kill "$gpid" 2>/dev/null
	wait "$gpid" 2>/dev/null
	return 0
}
nfs_restart() { nfs_stop; nfs_start; }
trap "nfs_stop; kill $rpid; wait $rpid" EXIT
nfs_start || exit 1
source "$client" "$@"
'

@test "nfs-ganesha exports the mount: a client writes a tree, reads it back, and again after a server restart" {
	command -v ganesha.nfsd >/dev/null || fail "nfs-ganesha is not installed (scripts/check installs it)"
	command -v nfs-cp >/dev/null || fail "libnfs-utils is not installed (scripts/check installs it)"
	local src=$DIR/src
	mkdir -p "$src" "$MNT/nfs"
	for i in $(seq 1 12); do
		head -c $((i * i * 7919)) /dev/urandom >"$src/f$i"
	done
	head -c 20M /dev/urandom >"$src/big"
	# the client: copy in, list, read back; then after a restart of the
	# server (with the kernel's inodes dropped), read back again
	# (writes go over NFSv3: libnfs 5.0's NFSv4 client fails every write
	# past a few bytes, against any export; reads are checked over both)
	cat >"$DIR/client.sh" <<'EOF'
set -e
src=$1
for f in "$src"/*; do
	n=$(basename "$f")
	nfs-cp "$f" "$(url3 "nfs/$n")" >/dev/null
done
nfs-ls "$(url4 nfs)" | awk '{ print $NF }' | sort | tr '\n' ' '
echo
readback() {
	for f in "$src"/*; do
		n=$(basename "$f")
		for u in "$(url3 "nfs/$n")" "$(url4 "nfs/$n")"; do
			if [ "$(nfs-cat "$u" | sha256sum)" != "$(sha256sum <"$f")" ]; then
				echo "MISMATCH $u"
			fi
		done
	done
	echo "read back $1"
}
readback "first"
sync
echo 2 >/proc/sys/vm/drop_caches
nfs_restart
readback "after restart"
EOF
	TEST_TIMEOUT=300 t unshare -n -m bash -c "$GANESHA_RUN" ganesha "$DIR" "$DIR/client.sh" "$src"
	echo "$output"
	[[ -s $DIR/ganesha.log ]] && grep -E 'CRIT|MAJ|FATAL' "$DIR/ganesha.log" | grep -v -e DBUS -e krb5 -e keytab -e gssd >&2 || true
	assert_success
	refute_output --partial MISMATCH
	assert_line "big f1 f10 f11 f12 f2 f3 f4 f5 f6 f7 f8 f9 "
	assert_line "read back first"
	assert_line "read back after restart"
	# and the bytes are in the store, as written
	for i in 1 7 12; do
		cmp "$src/f$i" "$MNT/nfs/f$i"
	done
	cmp "$src/big" "$MNT/nfs/big"
}

@test "an NFS client's kept handles resolve after a server restart and dropped caches; a removed file's is stale" {
	local handles=$TEST_LANG_DIR/nfs_handles
	[[ -x $handles ]] || fail "$handles was not built: configure found no libnfs (apt-get install libnfs-dev; scripts/check installs it)"
	mkdir -p "$MNT/kept/sub"
	head -c 3000000 /dev/urandom >"$MNT/kept/a"
	echo "in a subdirectory" >"$MNT/kept/sub/b"
	echo "to be removed" >"$MNT/kept/doomed"
	ln "$MNT/kept/a" "$MNT/kept/sub/a-too"
	mkdir "$DIR/out"
	# the client opens the files (and keeps their handles) before the
	# server restarts, and reads through the handles after
	cat >"$DIR/keep.sh" <<'EOF2'
set -e
handles=$1 out=$2
mkfifo "$dir/go"
"$handles" 127.0.0.1 "$MNT" "$out" /kept/a /kept/sub/b /kept/doomed /kept/sub/a-too \
	<"$dir/go" >"$dir/handles.out" &
hp=$!
exec 9>"$dir/go"
for i in $(seq 100); do
	grep -q ready "$dir/handles.out" 2>/dev/null && break
	sleep 0.1
done
rm "$MNT/kept/doomed"
sync
echo 2 >/proc/sys/vm/drop_caches
nfs_restart
echo go >&9
exec 9>&-
wait "$hp"
cat "$dir/handles.out"
EOF2
	TEST_TIMEOUT=300 t unshare -n -m bash -c "$GANESHA_RUN" ganesha "$DIR" "$DIR/keep.sh" "$handles" "$DIR/out"
	echo "$output"
	assert_success
	assert_line "ready"
	assert_line "/kept/a ok 3000000"
	assert_line "/kept/sub/b ok 18"
	assert_line --partial "/kept/doomed error Stale file handle"
	assert_line "/kept/sub/a-too ok 3000000"
	cmp "$DIR/out/0" "$MNT/kept/a"
	cmp "$DIR/out/1" "$MNT/kept/sub/b"
	cmp "$DIR/out/3" "$MNT/kept/a"
}
