/*
 * mms.h - libmms, the mmfs store engine: public API.
 *
 * A store is one file holding a tree of named keys (regular files),
 * directories and symlinks, each with POSIX metadata, extended attributes
 * and byte contents that may be sparse and up to MMS_SIZE_MAX long.  The
 * file is made of 4096-byte pages: two meta pages, copy-on-write B+trees
 * for all metadata, and page-aligned data extents.  The
 * on-disk format and the commit rule are documented in doc/FORMAT.md.
 *
 * Conventions (after LMDB):
 *  - Handles are opaque: mms_env (an open store), mms_cursor (a directory
 *    listing).  Paired verbs: mms_open/mms_close, mms_dir_open/mms_dir_close,
 *    mms_hold/mms_release.
 *  - Every call that can fail returns int: 0 on success, a positive errno
 *    value for a failed system call (EIO, ENOMEM, ENOSPC of the host disk),
 *    or a negative MMS_* code below.  mms_strerror() names every code.
 *  - Out-parameters are written only on success.
 *  - A failed call leaves the store as it was before the call, unless it
 *    failed half-way (mms_txn_failed() says so; it may return MMS_FULL or
 *    EIO, say, with the cause) or returns MMS_BADTXN or MMS_CORRUPT: then
 *    the uncommitted changes must be dropped with mms_rollback() before
 *    anything else is changed.
 *  - Names are (pointer, length) byte strings: no hidden NUL.  A name is 1 to
 *    MMS_NAME_MAX bytes, not "." or "..", without '/' or NUL.
 *
 * Changes are grouped in an implicit transaction that starts with the first
 * modifying call.  mms_commit() makes them reach the file (they survive a
 * crash of the process); mms_sync() also makes them durable (they survive a
 * crash of the machine).  Everything is copy-on-write against the last
 * sync: a data page the last synced state reaches is never overwritten (a
 * change goes to a new page), so after a machine crash every key is exactly
 * as of the last sync.  Pages written since the last sync are written in
 * place: after a crash of the process, an uncommitted write may have left
 * some of its bytes in the value it was writing (doc/FORMAT.md).
 *
 * A store found damaged in a way that a write would make worse (a free list
 * handing out a live page, an extent freeing what is free) makes the env
 * refuse every further change with MMS_CORRUPT; reads go on.
 *
 * Threads: calls that modify the store (or commit, sync, vacuum) must not
 * run concurrently with any other call on the same env; read-only calls
 * (lookup, getattr, read, map, getxattr, listxattr, dir cursors, stats) may
 * run concurrently with each other.  Guard an env with a reader-writer lock.
 *
 * Processes: a read-write opener holds an exclusive lock on the store file,
 * read-only openers a shared one; a conflicting open fails with MMS_LOCKED.
 */
#ifndef MMS_H
#define MMS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMS_VERSION_STRING "0.1.0"

/* Fixed page size of every store, in bytes. */
#define MMS_PAGE_SIZE 4096u
/* Longest name component, in bytes. */
#define MMS_NAME_MAX 255u
/* Longest path given to mms_resolve(), in bytes. */
#define MMS_PATH_MAX 4096u
/* Longest symlink target, in bytes. */
#define MMS_SYMLINK_MAX 4095u
/* Longest extended attribute name and value, in bytes. */
#define MMS_XATTR_NAME_MAX 255u
#define MMS_XATTR_VALUE_MAX 65536u
/* Largest logical size of a value: 4 PiB. */
#define MMS_SIZE_MAX (1ull << 52)
/* Most names one inode may have (hard links). */
#define MMS_NLINK_MAX 65000u
/* Inode number of the root directory.  Inode numbers are never reused. */
#define MMS_ROOT_INO 1ull

/* ---- Return codes (negative; positive values are errno) ---------------- */
#define MMS_NOTFOUND    (-30700) /* no such key, name or entry          -> ENOENT */
#define MMS_EXISTS      (-30701) /* the name is taken                   -> EEXIST */
#define MMS_FULL        (-30702) /* the store reached its max_size      -> ENOSPC */
#define MMS_CORRUPT     (-30703) /* a damaged page or structure         -> EIO */
#define MMS_LOCKED      (-30704) /* another process has the store open  -> EBUSY */
#define MMS_NAMETOOLONG (-30705) /* a name or path is too long          -> ENAMETOOLONG */
#define MMS_BADNAME     (-30706) /* empty, ".", "..", '/' or NUL inside -> EINVAL */
#define MMS_NOTDIR      (-30707) /* a path component is not a directory -> ENOTDIR */
#define MMS_ISDIR       (-30708) /* the key is a directory              -> EISDIR */
#define MMS_NOTEMPTY    (-30709) /* the directory has entries           -> ENOTEMPTY */
#define MMS_READONLY    (-30710) /* the store is open read-only         -> EROFS */
#define MMS_NOTSTORE    (-30711) /* the file is not a store             -> EINVAL */
#define MMS_VERSION     (-30712) /* a store format this build cannot read */
#define MMS_BADTXN      (-30713) /* an earlier call failed half-way; mms_rollback() */
#define MMS_TOOBIG      (-30714) /* size or value beyond the limits     -> EFBIG/E2BIG */
#define MMS_NODATA      (-30715) /* no such extended attribute          -> ENODATA */
#define MMS_RANGE       (-30716) /* the caller's buffer is too small    -> ERANGE */
#define MMS_INVAL       (-30717) /* invalid argument                    -> EINVAL */
#define MMS_LOOP        (-30718) /* a directory moved into itself       -> EINVAL */
#define MMS_TRUNCATED   (-30719) /* the file is shorter than its meta says */
#define MMS_BUSY        (-30720) /* the operation conflicts with open handles */
#define MMS_NOTLINK     (-30721) /* readlink of something not a symlink -> EINVAL */
#define MMS_NXIO        (-30722) /* no data or hole past the offset     -> ENXIO */
#define MMS_MLINK       (-30723) /* an inode has MMS_NLINK_MAX names    -> EMLINK */
#define MMS_XDEV        (-30724) /* link of a directory                 -> EPERM */

/*
 * Return a static English text for any code this API returns (MMS_* codes
 * and errno values).  Never NULL.
 */
const char *mms_strerror(int err);

/* ---- Opening ------------------------------------------------------------- */
typedef struct mms_env mms_env;

#define MMS_RDONLY 0x1u /* open read-only, with a shared lock */
#define MMS_CREATE 0x2u /* create the store if the file is missing */
#define MMS_EXCL   0x4u /* with MMS_CREATE: fail with MMS_EXISTS if it exists */
/* The caller keeps a cache of the bytes itself (mmfs: the kernel's cache of
 * the mounted files): no readahead on the store file, and after each sync
 * the store file's cache of the data written since the previous sync is
 * dropped, so that each byte is cached once.  See mms_drop_cache(). */
#define MMS_CACHE_ONCE 0x8u
/* Open a store of an older format so that mms_upgrade() can convert it
 * (only that: other changes fail with MMS_VERSION until it did). */
#define MMS_UPGRADE 0x10u

struct mms_options {
	unsigned flags;        /* MMS_RDONLY, MMS_CREATE, MMS_EXCL, MMS_CACHE_ONCE */
	uint64_t initial_size; /* bytes a new store file starts with (sparse); 0: 1 MiB.
	                        * The file grows as needed; close gives an unused
	                        * tail back, so a closed store is no larger than
	                        * what it holds. */
	uint64_t max_size;     /* bytes a new store may grow to; 0: unlimited */
	unsigned mode;         /* permission bits of a new store file; 0: 0644 */
};

/*
 * Open (or create) the store file at `path`.  `opts` may be NULL (read-write,
 * no create).  On success *envp is a new handle, to be closed with
 * mms_close().  O(1): only the meta pages are read, whatever the size.
 * Returns MMS_NOTFOUND (no file and no MMS_CREATE), MMS_NOTSTORE,
 * MMS_VERSION, MMS_CORRUPT (no valid meta page), MMS_TRUNCATED, MMS_LOCKED,
 * MMS_EXISTS (MMS_EXCL), MMS_INVAL (bad sizes) or an errno.  The detail of a
 * failure (which meta, what length) is in mms_open_detail().
 */
int mms_open(const char *path, const struct mms_options *opts, mms_env **envp);

/*
 * Who holds the lock of the store at `path` (after mms_open() returned
 * MMS_LOCKED): *pid gets the process id and, when cmd is not NULL, cmd its
 * command line (arguments separated by spaces, cut to cmdlen - 1 bytes).
 * Found in /proc/locks, so only a process of this machine that the caller
 * may see.  MMS_NOTFOUND if no other process holds it now, or an errno.
 */
int mms_lock_holder(const char *path, long *pid, char *cmd, size_t cmdlen);

/*
 * The mount point of a mount of the store at `path` (a fuse.mmfs mount
 * whose source is that file) into mnt.  MMS_NOTFOUND if it is not mounted.
 */
int mms_mount_of(const char *path, char *mnt, size_t mntlen);

/* Called once by mms_open_wait() when it starts to wait: the pid and
 * command line of the holder (pid 0 if unknown). */
typedef void (*mms_wait_fn)(void *ctx, long pid, const char *cmd);

/*
 * mms_open(), but while the store is locked by a process that is letting
 * go of it (a daemon closing after an unmount, another mmstore command),
 * try again for up to wait_ms milliseconds; `waiting` (may be NULL) is
 * told once.  A store that is mounted is not waited for (MMS_LOCKED at
 * once): its daemon keeps it until it is unmounted.
 */
int mms_open_wait(const char *path, const struct mms_options *opts, unsigned wait_ms,
                  mms_wait_fn waiting, void *ctx, mms_env **envp);

/*
 * A human-readable detail of the last failed mms_open() in this thread
 * (e.g. "meta 0: checksum mismatch; meta 1: bad magic").  Static buffer,
 * valid until the next mms_open() in this thread.
 */
const char *mms_open_detail(void);

/*
 * Close the store.  A read-write store is synced first (mms_sync()), then
 * an unused tail of the file is given back and free pages inside it are
 * punched out; the handle is freed even when that fails, and the first
 * failure's code is returned.
 */
int mms_close(mms_env *env);

/*
 * A human-readable detail of the last failure on this env (which page, which
 * key, what was expected), or "" when there is none.  Valid until the next
 * call on the env.
 */
const char *mms_errdetail(mms_env *env);

/* The path the store was opened with; valid until mms_close(). */
const char *mms_path(mms_env *env);

/*
 * The store file's descriptor, for zero-copy reads of the byte ranges that
 * mms_map() returns (splice, sendfile, pread).  Owned by the env; valid
 * until mms_close().  Never write through it.
 */
int mms_fd(mms_env *env);

/*
 * Drop the store file's page cache of the bytes [off, off+len) (len 0: to
 * the end), for a server that hands them on to a cache of its own (mmfs
 * after a read: the kernel caches them for the mounted file), so that each
 * byte is cached once; with MMS_CACHE_ONCE, no readahead brings in more.
 * Meant for data ranges (mms_map()'s extents): tree pages in the range are
 * dropped too and read again when next used.  Clean pages are dropped,
 * dirty ones written back first: nothing is lost.  Returns 0.
 */
int mms_drop_cache(mms_env *env, uint64_t off, uint64_t len);

/* Nonzero if the env was opened read-only. */
int mms_readonly(mms_env *env);

/* ---- Transactions ----------------------------------------------------------- */

/*
 * Write every change since the last commit to the file: pages first, then a
 * new meta page.  After it returns, the changes survive a crash of the
 * process.  No-op when nothing changed.  On failure nothing is lost: the
 * changes stay pending and the file keeps its previous committed state.
 */
int mms_commit(mms_env *env);

/*
 * Commit, then flush the file to the disk and write a synced meta page.
 * After it returns, the changes survive a crash of the machine.  Space freed
 * since the previous sync becomes reusable only after a sync.
 */
int mms_sync(mms_env *env);

/*
 * mms_sync in three steps, for a server that lets readers in while the disk
 * flushes: mms_sync_begin (commits; *needed = 0 when the last sync already
 * holds everything) and mms_sync_end under the caller's exclusive lock,
 * mms_sync_io (the two fdatasyncs) between them under a shared lock, so
 * that no change runs during it.  mms_sync_end returns MMS_BUSY when a
 * change came in between mms_sync_io and it: nothing is lost, the sync just
 * has to be done again.  One sync at a time.
 */
int mms_sync_begin(mms_env *env, int *needed);
int mms_sync_io(mms_env *env);
int mms_sync_end(mms_env *env);

/*
 * mms_sync_end, leaving its slow parts to the caller, who need not hold
 * the exclusive lock for them: with MMS_CACHE_ONCE, mms_sync_drop drops
 * the store file's cache of what the sync made clean (under a shared lock:
 * it uses the map); the runs the sync makes free that are to be punched
 * out of the file (so the disk space comes back) stay unusable until
 * mms_sync_punch has punched them, with no lock at all (no meta a crash
 * recovers reaches those pages, and nothing may take them meanwhile); then
 * mms_sync_release, under the exclusive lock, makes them reusable.  Call
 * them in that order after mms_sync_end_keep returns 0, before the next
 * mms_sync_end_keep; commits, rollbacks and other syncs (vacuum's) may
 * run between them.  A failed punch (an errno) leaves the space allocated
 * on the disk only.
 */
int mms_sync_end_keep(mms_env *env);
void mms_sync_drop(mms_env *env);
int mms_sync_punch(mms_env *env);
void mms_sync_release(mms_env *env);

/*
 * Drop every change since the last commit: metadata and new allocations.
 * Bytes written over data that existed at the last commit stay written.
 */
int mms_rollback(mms_env *env);

/* Whether a call failed half-way since the last commit or rollback: only
 * mms_rollback() may follow (every change fails with MMS_BADTXN). */
int mms_txn_failed(const mms_env *env);

/* ---- Inodes and names --------------------------------------------------- */

struct mms_stat {
	uint64_t ino;     /* never reused within a store */
	uint32_t gen;     /* generation, for NFS file handles */
	uint32_t mode;    /* S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR,
	                   * S_IFBLK | perms */
	uint32_t uid, gid;
	uint32_t nlink;   /* names of the inode (0 once unlinked); a directory:
	                   * 2 + its subdirectories */
	uint64_t size;    /* logical size in bytes */
	uint64_t blocks;  /* bytes of store space the value occupies (a value
	                   * stored in the inode: its size) */
	struct timespec atime, mtime, ctime;
	uint64_t rdev;    /* device number (S_IFCHR, S_IFBLK), else 0 */
	uint64_t parent;  /* a directory holding a name of the inode (the root:
	                   * itself; 0 once unlinked), for NFS's ".." */
};

/*
 * Find `name` in directory `parent`.  MMS_NOTFOUND, MMS_NOTDIR (parent is
 * not a directory), MMS_BADNAME, MMS_NAMETOOLONG.
 */
int mms_lookup(mms_env *env, uint64_t parent, const char *name, size_t len,
               struct mms_stat *st);

/* Attributes of inode `ino` (also of an unlinked inode still held). */
int mms_getattr(mms_env *env, uint64_t ino, struct mms_stat *st);

/*
 * Resolve a '/'-separated path from the root (leading, trailing and doubled
 * slashes are ignored; "" is the root).  Symlinks are not followed.
 */
int mms_resolve(mms_env *env, const char *path, size_t len, struct mms_stat *st);

/*
 * Create a node named `name` in directory `parent`: `mode` holds the type
 * (S_IFREG, S_IFDIR, S_IFIFO or S_IFSOCK) and the permission bits.  Times
 * are set to now.  MMS_EXISTS if the name is taken, MMS_INVAL for another
 * type, MMS_FULL.  *st (may be NULL) receives the new node's attributes.
 */
int mms_mknod(mms_env *env, uint64_t parent, const char *name, size_t len,
              uint32_t mode, uint32_t uid, uint32_t gid, struct mms_stat *st);

/* mms_mknod() of a character (S_IFCHR) or block (S_IFBLK) device too,
 * with device number `rdev` (stored, never opened by the engine). */
int mms_mkdev(mms_env *env, uint64_t parent, const char *name, size_t len,
              uint32_t mode, uint64_t rdev, uint32_t uid, uint32_t gid, struct mms_stat *st);

/*
 * Give inode `ino` (not a directory: MMS_XDEV) one more name, `name` in
 * directory `parent`: a hard link.  MMS_EXISTS if the name is taken,
 * MMS_MLINK at MMS_NLINK_MAX names, MMS_NOTFOUND if `ino` has no name left.
 * The inode's ctime and the directory's times are set to now; *st (may be
 * NULL) gets the inode's attributes.
 */
int mms_link(mms_env *env, uint64_t ino, uint64_t parent, const char *name, size_t len,
             struct mms_stat *st);

/* mms_mknod() of a directory: `mode` holds the permission bits only. */
int mms_mkdir(mms_env *env, uint64_t parent, const char *name, size_t len,
              uint32_t mode, uint32_t uid, uint32_t gid, struct mms_stat *st);

/* Create a symlink to `target` (1..MMS_SYMLINK_MAX bytes). */
int mms_symlink(mms_env *env, uint64_t parent, const char *name, size_t len,
                const char *target, size_t tlen, uint32_t uid, uint32_t gid,
                struct mms_stat *st);

/*
 * Store `data` (dlen bytes) as the regular file `name` in directory
 * `parent`, as one call: create it (permission bits `mode`, owner uid/gid)
 * if the name is free, or replace the bytes of the regular file there
 * (its other attributes stay).  Small values go straight into the inode.
 * MMS_ISDIR if the name is a directory, MMS_INVAL for another type,
 * MMS_FULL (nothing changed) when the store cannot hold the bytes.
 */
int mms_put(mms_env *env, uint64_t parent, const char *name, size_t len, const void *data,
            size_t dlen, uint32_t mode, uint32_t uid, uint32_t gid, struct mms_stat *st);

/*
 * The value of the regular file `name` in directory `parent`, in one call
 * (one look-up of the name and one of the inode): its first
 * min(bufsize, size) bytes are copied into buf, *vlen (may be NULL) gets
 * the whole size (more than bufsize: the value did not fit), *st (may be
 * NULL) its attributes.  MMS_NOTFOUND, MMS_ISDIR, MMS_INVAL for another type.
 */
int mms_get(mms_env *env, uint64_t parent, const char *name, size_t len, void *buf,
            size_t bufsize, size_t *vlen, struct mms_stat *st);

/*
 * mms_get() without the copy: *data points at the value's *vlen bytes where
 * the store keeps them (the engine's read-only map of the store file, or
 * the tree page holding a small value).  The pointer stays valid until the
 * next call that changes the store, or commits, syncs, rolls back, vacuums
 * or closes it; the bytes must not be written.  MMS_RANGE when the value is
 * not in one piece (holes, or more than one extent): read it with mms_get().
 */
int mms_get_ref(mms_env *env, uint64_t parent, const char *name, size_t len,
                const void **data, size_t *vlen, struct mms_stat *st);

/*
 * Copy a symlink's target into buf (no NUL added); *lenp gets its length.
 * MMS_NOTLINK, MMS_RANGE if bufsize is smaller than the target.
 */
int mms_readlink(mms_env *env, uint64_t ino, char *buf, size_t bufsize, size_t *lenp);

/*
 * Remove a name that is not a directory (MMS_ISDIR).  The inode lives on
 * while it has other names; at its last name, if it is held (mms_hold), it
 * lives on unnamed until its last mms_release(); otherwise its space is
 * freed.
 */
int mms_unlink(mms_env *env, uint64_t parent, const char *name, size_t len);

/* Remove an empty directory: MMS_NOTEMPTY, MMS_NOTDIR, MMS_BUSY (the root). */
int mms_rmdir(mms_env *env, uint64_t parent, const char *name, size_t len);

#define MMS_RENAME_NOREPLACE 0x1u /* fail with MMS_EXISTS if the target exists */
#define MMS_RENAME_EXCHANGE  0x2u /* swap the two names atomically (both must exist) */

/*
 * Move a name, atomically replacing an existing target (a file by a file, a
 * directory by an empty directory; MMS_ISDIR, MMS_NOTDIR, MMS_NOTEMPTY
 * otherwise).  A replaced inode is unlinked as by mms_unlink().  Moving a
 * directory below itself fails with MMS_LOOP.  Renaming a name onto itself
 * succeeds and changes nothing.
 */
int mms_rename(mms_env *env, uint64_t oldparent, const char *oldname, size_t oldlen,
               uint64_t newparent, const char *newname, size_t newlen, unsigned flags);

/*
 * Hold an inode open: while held, an unlinked inode keeps its data.  Holds
 * are counted and live in memory only; inodes left unlinked by a crash are
 * freed at the next read-write open.
 */
int mms_hold(mms_env *env, uint64_t ino);

/* Drop one hold; the last drop of an unlinked inode frees it. */
int mms_release(mms_env *env, uint64_t ino);

/* Attribute changes for mms_setattr(); bits of `mask`. */
#define MMS_SET_MODE      0x001u
#define MMS_SET_UID       0x002u
#define MMS_SET_GID       0x004u
#define MMS_SET_SIZE      0x008u /* truncate or extend (sparse) */
#define MMS_SET_ATIME     0x010u
#define MMS_SET_MTIME     0x020u
#define MMS_SET_ATIME_NOW 0x040u
#define MMS_SET_MTIME_NOW 0x080u
#define MMS_SET_CTIME     0x100u

struct mms_setattr {
	uint32_t mode; /* permission bits (type bits are ignored) */
	uint32_t uid, gid;
	uint64_t size;
	struct timespec atime, mtime, ctime;
};

/*
 * Change the attributes named by `mask`; ctime becomes now unless
 * MMS_SET_CTIME gives it.  A size change of a directory is MMS_ISDIR; past
 * MMS_SIZE_MAX, MMS_TOOBIG.  *st (may be NULL) receives the new attributes.
 */
int mms_setattr(mms_env *env, uint64_t ino, const struct mms_setattr *attr,
                unsigned mask, struct mms_stat *st);

/* ---- Directory listing -------------------------------------------------- */
typedef struct mms_cursor mms_cursor;

struct mms_dirent {
	uint64_t ino;
	uint32_t mode;    /* type bits of the entry (S_IFMT part) */
	uint64_t cookie;  /* position just after this entry, >= MMS_COOKIE_MIN */
	const char *name; /* not NUL-terminated; valid until the next call on the cursor */
	size_t namelen;
};

/* Cookies below this value are never returned: callers may use them (".", ".."). */
#define MMS_COOKIE_MIN 16u

/*
 * Open a listing of directory `dir`, starting after position `cookie` (0:
 * from the start).  The order is that of a hash of the names, stable for the
 * life of an entry.  The cursor stays valid while entries are added and
 * removed: each entry present for the whole listing is returned exactly
 * once.  Close with mms_dir_close().
 */
int mms_dir_open(mms_env *env, uint64_t dir, uint64_t cookie, mms_cursor **curp);

/* Next entry, or MMS_NOTFOUND at the end. */
int mms_dir_next(mms_cursor *cur, struct mms_dirent *ent);

void mms_dir_close(mms_cursor *cur);

/* ---- Data ------------------------------------------------------------- */

/*
 * Read up to `len` bytes at `off`; *nread gets the count (short only at the
 * end of the value).  Holes read as zeros.  MMS_ISDIR for a directory.
 */
int mms_read(mms_env *env, uint64_t ino, void *buf, size_t len, uint64_t off,
             size_t *nread);

/*
 * Write `len` bytes at `off`, allocating space as needed and extending the
 * size; mtime and ctime become now.  MMS_FULL when the store cannot grow:
 * then nothing was written.  MMS_TOOBIG past MMS_SIZE_MAX.
 */
int mms_write(mms_env *env, uint64_t ino, const void *buf, size_t len, uint64_t off);

/*
 * A write whose bytes go to the disk after the caller drops its lock.
 * mms_write_deferred makes the whole change of mms_write (extent map,
 * size, times, the copies of partial pages), except that copies of at
 * least MMS_DEFER_MIN bytes from buf into the store file are left in *d
 * (at most MMS_DEFER_MAX; more are made at once).  mms_deferred_run then
 * writes them; it touches nothing of the env but its file, so it runs
 * without the caller's lock, while reads and look-ups go on.  Until it has
 * returned, the caller must see to it that the change is neither committed
 * nor rolled back, that no other change runs, and that nobody reads the
 * written range of `ino` (its new pages hold old bytes until then): mmfs
 * holds writers and that inode's reads back meanwhile.  buf must stay
 * valid until then too.  If mms_deferred_run fails (an errno, with
 * mms_errdetail), the change holds bytes that were never written: roll
 * the transaction back.  d->n == 0 after mms_write_deferred: nothing left
 * to run.
 */
#define MMS_DEFER_MIN (32u * 1024u)
#define MMS_DEFER_MAX 8u
struct mms_deferred {
	unsigned n;
	struct {
		const void *buf;
		uint64_t len, pos;
		uint64_t ino;
	} w[MMS_DEFER_MAX];
};
int mms_write_deferred(mms_env *env, uint64_t ino, const void *buf, size_t len, uint64_t off,
                       struct mms_deferred *d);
int mms_deferred_run(mms_env *env, struct mms_deferred *d);

/* Set the size: shrinking frees the tail, growing adds a hole. */
int mms_truncate(mms_env *env, uint64_t ino, uint64_t size);

/*
 * Copy up to `len` bytes of `src` from `soff` to `dst` at `doff`
 * (copy_file_range(2)): as many as the source has past `soff`, in one
 * transaction of the caller's.  Holes of the source stay holes (the
 * destination's bytes there are punched out).  *copied gets the count; an
 * error is returned only when nothing was copied (else the count is short).
 * MMS_INVAL for overlapping ranges of one file, MMS_ISDIR for a directory.
 * When soff and doff are multiples of the page size, whole pages are not
 * copied but shared (format 3): the destination's extents point at the
 * source's pages, which takes no data space and a time that depends on the
 * number of extents, not on len; a later write to either side copies the
 * pages it changes.  So is the last partial page when the copy ends both
 * values.  The rest is copied byte by byte.
 */
int mms_copy_range(mms_env *env, uint64_t src, uint64_t soff, uint64_t dst, uint64_t doff,
                   uint64_t len, uint64_t *copied);

#define MMS_FALLOC_KEEP_SIZE  0x1u /* do not change the size */
#define MMS_FALLOC_PUNCH_HOLE 0x2u /* free the range (with KEEP_SIZE) */
#define MMS_FALLOC_ZERO_RANGE 0x4u /* zero the range and allocate it */

/*
 * Allocate the range [off, off+len) so later writes there cannot fail for
 * space (it reads as zeros where it was a hole), extending the size unless
 * KEEP_SIZE; with PUNCH_HOLE|KEEP_SIZE, turn the range into a hole (reads
 * as zeros); with ZERO_RANGE (KEEP_SIZE optional), make the range read as
 * zeros and allocate it, as one change.
 */
int mms_fallocate(mms_env *env, uint64_t ino, unsigned mode, uint64_t off, uint64_t len);

#define MMS_SEEK_DATA 3
#define MMS_SEEK_HOLE 4

/*
 * lseek(SEEK_DATA / SEEK_HOLE) semantics: *result gets the first offset >=
 * off in data (or in a hole; the end of the value counts as a hole).
 * MMS_NXIO if off >= size, or no data follows off.
 */
int mms_seek(mms_env *env, uint64_t ino, uint64_t off, int whence, uint64_t *result);

/* Where a byte range of a value lives, as returned by mms_map(). */
#define MMS_MAP_HOLE   0x1u /* reads as zeros; `physical` unused */
#define MMS_MAP_INLINE 0x2u /* bytes at `data`, stored in a tree page */
/* The pages were not written since the last sync: the store never writes
 * them again, and once a change frees them they are reused only after the
 * next sync ends, which first calls the reuse hook (mms_set_reuse_hook).
 * So a caller may read them after dropping its lock if its hook waits for
 * such reads.  Not set for holes, inline bytes, or pages written since. */
#define MMS_MAP_STABLE 0x4u
struct mms_extent {
	uint64_t logical;  /* byte offset in the value */
	uint64_t length;   /* bytes */
	uint64_t physical; /* byte offset in the store file (mms_fd()) */
	const void *data;  /* MMS_MAP_INLINE: the bytes */
	unsigned flags;
};

/*
 * Describe [off, min(off+len, size)) as consecutive pieces, at most `max`,
 * in order; *count gets how many were filled (the last may end before
 * off+len when `max` runs out).  The ranges and `data` pointers stay valid
 * until the next modifying call on the env.  Lets a caller read without a
 * copy (splice from mms_fd()).
 */
int mms_map(mms_env *env, uint64_t ino, uint64_t off, uint64_t len,
            struct mms_extent *ext, size_t max, size_t *count);

/*
 * Called when pages that the last synced state reached are about to become
 * reusable: at the end of every sync (mms_sync, mms_sync_end,
 * mms_sync_end_keep, and the syncs of a vacuum), from the thread that
 * syncs, with the caller's own locks held.  A server that reads MMS_MAP_STABLE extents without its lock waits
 * here for the reads in flight (mmfs does).  NULL: no hook (the default).
 */
void mms_set_reuse_hook(mms_env *env, void (*fn)(void *ctx), void *ctx);

/* ---- Extended attributes ------------------------------------------------ */
#define MMS_XATTR_CREATE  0x1u /* fail with MMS_EXISTS if present */
#define MMS_XATTR_REPLACE 0x2u /* fail with MMS_NODATA if absent */

/*
 * Set attribute `name` (1..MMS_XATTR_NAME_MAX bytes, no NUL) to `value`
 * (0..MMS_XATTR_VALUE_MAX bytes; larger: MMS_TOOBIG).
 */
int mms_setxattr(mms_env *env, uint64_t ino, const char *name, size_t namelen,
                 const void *value, size_t vlen, unsigned flags);

/*
 * Copy the value into buf; *vlen gets its length.  With bufsize 0, only the
 * length is returned.  MMS_NODATA if absent, MMS_RANGE if buf is too small.
 */
int mms_getxattr(mms_env *env, uint64_t ino, const char *name, size_t namelen,
                 void *buf, size_t bufsize, size_t *vlen);

/*
 * Write the names, each followed by a NUL, into buf (as listxattr(2));
 * *len gets the total.  bufsize 0: only the length.  MMS_RANGE if too small.
 */
int mms_listxattr(mms_env *env, uint64_t ino, char *buf, size_t bufsize, size_t *len);

/* Remove attribute `name`: MMS_NODATA if absent. */
int mms_removexattr(mms_env *env, uint64_t ino, const char *name, size_t namelen);

/*
 * *found = 1 if any inode has an attribute whose name starts with `prefix`
 * (say "security."), else 0.  Reads every attribute name once: a daemon
 * asks at mount, to answer the kernel's questions for names no key has.
 */
int mms_xattr_prefix_used(mms_env *env, const char *prefix, size_t len, int *found);

/* ---- Store-wide --------------------------------------------------------- */

struct mms_info {
	uint32_t page_size;
	uint32_t format_version;
	uint64_t file_size;        /* bytes of the store file */
	uint64_t disk_size;        /* bytes the file occupies on disk (st_blocks) */
	uint64_t max_size;         /* 0: unlimited */
	uint64_t used_bytes;       /* live pages: meta, trees, data, xattr values */
	uint64_t tree_bytes;       /* of which B+tree pages */
	uint64_t data_bytes;       /* of which data extents */
	uint64_t free_bytes;       /* reusable space inside the file */
	uint64_t pending_bytes;    /* freed, reusable after the next sync */
	uint64_t capacity_bytes;   /* what the store can reach now: its file and
	                            * what the file can still grow by (the smaller
	                            * of max_size and the host's free space) */
	uint64_t avail_bytes;      /* what more it can take now: free space inside
	                            * the file, and what the file can still grow by,
	                            * the smaller of max_size and the host's free
	                            * space */
	uint64_t free_extents;     /* number of free runs */
	double fragmentation;      /* 0: all free space in one run; ->1: scattered */
	uint64_t keys;             /* regular files, symlinks and special files */
	uint64_t dirs;             /* directories, the root included */
	uint64_t orphans;          /* unlinked inodes still held */
	uint64_t generation;       /* of the last commit */
	uint64_t synced_generation;/* of the last sync */
	uint64_t next_ino;
};

/* Fill *info.  Cheap: counters kept in the meta, and an fstat and an
 * fstatvfs of the store file (disk use, the host's free space). */
int mms_stats(mms_env *env, struct mms_info *info);

/*
 * The store's figures as one JSON object, the form `mmstore info --json`,
 * the mount's user.mmfs.stats and `scripts/bench --json` share (fields:
 * store, page_size, format_version, file_size, disk_size, max_size, used,
 * tree, data, free, pending, free_extents, keys, fragmentation, dirs,
 * orphans, generation, synced_generation, next_ino, damaged, readonly; sizes
 * in bytes; documented in mmstore(1)).  `extra` (may be NULL) is the text of
 * a JSON object whose fields are added (a mount adds "mount" and "vacuum").
 * *text is malloc'd, NUL-terminated; the caller frees it.  MMS_INVAL if
 * extra is not an object, ENOMEM.
 */
int mms_stats_json(mms_env *env, const char *extra, char **text);

/*
 * Parse a size as mmfs and mmstore take it: decimal digits, then an optional
 * K, M, G or T (powers of 1024), then an optional "B" or "iB" ("64M",
 * "1GiB").  0, or MMS_INVAL if malformed or past 2^64.
 */
int mms_parse_size(const char *s, uint64_t *out);

/* Change the maximum size (0: unlimited).  MMS_INVAL below the file's size. */
int mms_set_max_size(mms_env *env, uint64_t max_size);

/*
 * Progress callback: `done` of `total` units of work.  Return nonzero to
 * stop early; the store is consistent and committed at every call, so a
 * caller that guards the env with a lock may release it inside the
 * callback to let other calls run (mms_vacuum carries on after them).
 */
typedef int (*mms_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct mms_vacuum_result {
	uint64_t size_before, size_after;   /* file bytes */
	uint64_t moved_bytes;               /* data and tree bytes relocated */
	int incomplete;                     /* 1: stopped early, as the space below
	                                     * the target ran out (other calls used
	                                     * it during an online vacuum); what
	                                     * moved stays moved, nothing is lost:
	                                     * run it again to go further */
};

/*
 * Compact the store: move live extents and tree pages from the tail into
 * free space nearer the front, sync, and truncate the file.  Works in
 * batches, each committed and synced, so a crash at any point leaves a
 * consistent store and extra space stays bounded (it never grows the file).
 * Between batches `progress` runs with everything committed, and the caller
 * may let other calls change the store there; if they use the free space
 * vacuum was moving into, it stops early and says so (res->incomplete), it
 * does not fail.  `progress` and `res` may be NULL.
 */
int mms_vacuum(mms_env *env, mms_progress_fn progress, void *ctx,
               struct mms_vacuum_result *res);

/*
 * Convert a store of an older format (opened with MMS_UPGRADE) to this
 * build's, in place and in one commit, then sync: format 1 gains the link
 * counts of its directories (a walk of the names); formats 1 and 2 gain an
 * (empty) SHARE tree; formats 1 to 3 an (empty) free-list log.  0 if the
 * store already has this build's format.  A crash during it leaves the old
 * store whole.
 */
int mms_upgrade(mms_env *env);

/*
 * Problem callback of mms_check(): `where` names the place (e.g. "page 812
 * (name tree leaf)", "key 'a/b'", "meta 1"), `what` the problem.
 */
typedef void (*mms_problem_fn)(void *ctx, const char *where, const char *what);

/*
 * Walk every structure of the store: meta pages, every tree page (checksum,
 * bounds, order), every extent, xattr value and free range (bounds,
 * overlaps), reachability of every inode, and the space accounting.  Each
 * problem is passed to `report`.  *nproblems gets the count.  Returns 0 when
 * the walk completed (problems or not), or an errno.
 */
int mms_check(mms_env *env, mms_problem_fn report, void *rctx,
              mms_progress_fn progress, void *pctx, uint64_t *nproblems);

/*
 * Write every key below the root, with metadata, xattrs and bytes, as the
 * JSON Lines form documented in doc/DUMP.md.  Deterministic: two dumps of
 * equal stores are byte-identical.
 */
int mms_dump(mms_env *env, FILE *out, mms_progress_fn progress, void *ctx);

/*
 * Read a dump and create what it describes below the root (keys that exist
 * are replaced).  On a malformed input, MMS_INVAL with the line number and
 * cause in mms_errdetail(); what was loaded before stays (uncommitted).
 */
int mms_load(mms_env *env, FILE *in, mms_progress_fn progress, void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* MMS_H */
