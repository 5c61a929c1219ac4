/*
 * mmfs.c - the mmfs FUSE daemon: mounts one store file as a filesystem.
 *
 * The daemon translates low-level FUSE requests into libmms calls and the
 * results back; every rule about the data (names, sizes, space, limits)
 * lives in libmms.  FUSE inode numbers are store inode numbers (the root is
 * 1 in both); the only table kept here is the kernel's lookup counts.
 *
 * Invariants:
 *  - One reader-writer lock guards the env: calls that only read the store
 *    run under the shared lock, everything that modifies it (and commit,
 *    vacuum, holds) under the exclusive lock.  A sync commits under the
 *    exclusive lock but flushes the disk under the shared one (mmfs_sync),
 *    so fsync and the timer do not hold readers up for two fdatasyncs.
 *  - A read maps its range under the shared lock.  Pages not written since
 *    the last sync (MMS_MAP_STABLE) are read from the disk without the
 *    lock: the engine never writes them, and reuses them only after a
 *    sync's end, before which the reads in flight that mapped before the
 *    sync's commit are over (mmfs_sync waits for them without the lock;
 *    the engine's reuse hook, mmfs_reads_drain, under the exclusive lock
 *    at any other sync).  So a cold read holds no writer up.  Any other piece
 *    (inline bytes in a tree page, pages written since the last sync, most
 *    likely cached) is read before the shared lock is dropped.
 *  - A write makes its change under the exclusive lock but copies its
 *    bytes into the store file after dropping it (mms_write_deferred,
 *    mmfs_op_write), so readers do not wait for the disk.  While the copy
 *    runs, no exclusive section starts (mmfs_wrlock waits for it): nothing
 *    commits, rolls back or changes the store beside it; and reads of that
 *    inode wait, since its new pages hold old bytes until then.
 *  - Every successful modifying request is committed before it is answered,
 *    so an acknowledged change survives a crash of the daemon; fsync, the
 *    periodic timer and unmount also sync it to the disk.  Requests that
 *    queue behind one another share a commit (group commit, mmfs_done), so
 *    other requests may see a change shortly before it is answered, never
 *    one that a later rollback takes back without its request failing.  A
 *    request that fails half-way (MMS_BADTXN, MMS_CORRUPT) or whose commit
 *    fails is rolled back before the error is returned; the uncommitted
 *    changes of its group go with it, and their requests get EIO.
 *  - Opening and closing a file costs no request: open replies ENOSYS
 *    (FUSE_CAP_NO_OPEN_SUPPORT: the kernel then opens files itself, keeps
 *    their page cache and sends no RELEASE), there is no flush handler, and
 *    O_TRUNC comes as a SETATTR (FUSE_CAP_ATOMIC_O_TRUNC is off, since no
 *    OPEN would carry it).  Directories still get OPENDIR and RELEASEDIR,
 *    for the listing cursor, but take no lock for them.
 *  - So no open handle holds an inode.  What keeps an open file alive is
 *    the kernel's reference: mmfs counts the entries it gives the kernel
 *    (its lookup counts, less what FORGET returns), and an unlink, rmdir or
 *    rename that takes the last name of an inode the kernel still knows
 *    holds the inode (mms_hold) until the kernel forgets it.  The kernel
 *    forgets an inode only after its last open descriptor and mapping are
 *    gone, so an unlinked file stays readable and writable through them,
 *    and its space is freed at the FORGET.
 *  - Each byte is cached once, in the kernel's cache of the mounted file:
 *    the store is opened with MMS_CACHE_ONCE (no readahead on the store
 *    file; after a sync the engine drops the store file's cache of what it
 *    wrote), and a read drops the store file's pages it replied with.  The
 *    store file's cache holds metadata and unsynced writes; -o store_cache
 *    keeps everything there too.
 *  - The daemon is the only writer of the store while it is mounted (the
 *    engine's lock sees to that), so the kernel may cache entries,
 *    attributes, negative look-ups and pages for a long time.
 */
#define FUSE_USE_VERSION 312
#define _GNU_SOURCE

#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "mms.h"

/* Entry and attribute validity: the daemon is the only writer. */
#define MMFS_TIMEOUT 86400.0
/* Largest read and write request. */
#define MMFS_MAX_IO (1u << 20)
/* Default seconds between two periodic syncs. */
#define MMFS_SYNC_DEFAULT 5u
/* Idle worker threads kept by the session loop. */
#define MMFS_IDLE_THREADS 16u
/* Offsets of "." and ".." in a directory listing; entries use mms cookies. */
#define MMFS_OFF_DOT 1
#define MMFS_OFF_DOTDOT 2

/* Prefix of the control names on the root, and the names themselves. */
#define MMFS_CTL_PREFIX "user.mmfs."
#define MMFS_CTL_STATS "user.mmfs.stats"
/* Bytes a size query of user.mmfs.stats adds to the value's length now. */
#define MMFS_STATS_SLACK 512u
#define MMFS_CTL_VACUUM "user.mmfs.vacuum"
#define MMFS_CTL_SYNC "user.mmfs.sync"

/* Exit codes: 1 for a store or mount failure, 2 for bad usage. */
#define MMFS_EXIT_FAIL 1
#define MMFS_EXIT_USAGE 2

/* Requests counted by opcode, for user.mmfs.stats (a test asserts how many
 * requests a user operation costs). */
#define MMFS_REQUESTS(X) X(lookup) X(forget) X(getattr) X(setattr) X(readlink) \
	X(mknod) X(mkdir) X(symlink) X(link) X(unlink) X(rmdir) X(rename) X(open) \
	X(create) X(read) X(write) X(fsync) X(fallocate) X(lseek) X(opendir) \
	X(readdir) X(readdirplus) X(releasedir) X(fsyncdir) X(statfs) X(setxattr) \
	X(getxattr) X(listxattr) X(removexattr) X(copy_file_range) X(ioctl)
#define MMFS_REQ_ENUM(name) MMFS_REQ_##name,
enum mmfs_req { MMFS_REQUESTS(MMFS_REQ_ENUM) MMFS_REQ_N };
#define MMFS_REQ_NAME(name) #name,
static const char *const mmfs_req_names[MMFS_REQ_N] = { MMFS_REQUESTS(MMFS_REQ_NAME) };
/* Count one request; `req` must be in scope. */
#define MMFS_COUNT(op) \
	__atomic_add_fetch(&mmfs_of(req)->requests[MMFS_REQ_##op], 1, __ATOMIC_RELAXED)

/* Command-line configuration, filled by fuse_opt_parse(). */
#define MMFS_LOCK_WAIT_DEFAULT 5 /* seconds */
/* Readahead of the mount, KiB: FUSE_INIT can only lower the kernel's
 * default (128 KiB), so it is raised through sysfs after mounting. */
#define MMFS_READ_AHEAD_DEFAULT 1024

struct mmfs_config {
	char *store;        /* STORE argument */
	char *mountpoint;   /* MOUNTPOINT argument */
	int nonopts;        /* non-option arguments seen */
	int ro;             /* -o ro */
	int create;         /* -o create */
	int writeback;      /* -o writeback: kernel writeback cache */
	int has_fsname;     /* the user gave -o fsname= */
	int has_subtype;    /* the user gave -o subtype= */
	int has_max_read;   /* the user gave -o max_read= */
	unsigned max_read;  /* -o max_read=, or MMFS_MAX_IO */
	int bad;            /* a bad value was seen (message printed) */
	uint64_t size;      /* -o size= for a new store */
	uint64_t max_size;  /* -o max_size= */
	int has_max_size;
	unsigned sync_secs; /* -o sync= */
	unsigned lock_wait; /* -o lock_wait=: seconds to wait for a closing holder */
	unsigned read_ahead_kb; /* -o read_ahead_kb=: the mount's readahead (0: kernel's) */
	int has_read_ahead;     /* the user gave -o read_ahead_kb= */
	int store_cache;        /* -o store_cache: keep the store file's cache */
};

/* The daemon's state, shared by every request (fuse_req_userdata()). */
struct mmfs {
	mms_env *env;
	pthread_rwlock_t lock;  /* guards env; see the invariants above */
	pthread_mutex_t sync_mutex; /* one mmfs_sync() at a time */
	struct mmfs_group *group;   /* changes not committed yet (exclusive lock) */
	pthread_mutex_t commit_mutex; /* group commit: see mmfs_done() */
	pthread_cond_t commit_cond;
	int committing;             /* a member is committing (commit_mutex) */
	/* I/O without the lock (io_mutex; io_cond signals each end): reads of
	 * MMS_MAP_STABLE extents in flight, which the engine's reuse hook
	 * waits for, and the inode whose deferred write is running (0: none),
	 * which every exclusive section and that inode's reads wait for. */
	pthread_mutex_t io_mutex;
	pthread_cond_t io_cond;
	unsigned reads_in[2];   /* reads in flight, by the epoch they mapped in */
	unsigned read_epoch;    /* changed under the exclusive lock: mmfs_sync */
	int reads_drained;      /* mmfs_sync waited for the reads the sync's end
	                         * must wait for (exclusive lock) */
	uint64_t io_ino;
	/* The vacuum runs on a thread of its own, one at a time; vacuum_lock
	 * guards the thread's bookkeeping, vacuum_cond signals its end. */
	pthread_mutex_t vacuum_lock;
	pthread_cond_t vacuum_cond;
	pthread_t vac_thread;
	int vac_active;         /* a vacuum thread is running */
	int vac_joinable;       /* vac_thread has not been joined */
	int vac_stop;           /* unmounting: stop at the next batch (atomic) */
	uint64_t vac_ended;     /* vacuums finished so far */
	int vac_last_err;       /* errno of the last one (0: it succeeded) */
	char *mnt;              /* the mount point (absolute), for user.mmfs.stats */
	/* the vacuum under way or the last one, for user.mmfs.stats (written
	 * under the write lock, read under either) */
	int vac_running, vac_incomplete, vac_runs;
	uint64_t vac_done, vac_total, vac_before, vac_after;
	struct mmfs_known *known;    /* the kernel's lookup counts */
	uint64_t requests[MMFS_REQ_N]; /* requests received, by opcode (atomic) */
	/* How long the exclusive lock is held, for user.mmfs.stats (written by
	 * the holder, read under either lock): holds, their total and longest,
	 * and how many took 100 us, 1 ms, 10 ms or more. */
	int wr_held;
	struct timespec wr_since;
	uint64_t wr_holds, wr_total_us, wr_max_us, wr_over[3];
	int no_open;            /* the kernel opens files without a request */
	int drop_cache;         /* drop the store file's cache of bytes read: the
	                         * kernel caches them for the mount (the engine
	                         * drops what was written: MMS_CACHE_ONCE) */
	/* 0: no key has a security.* attribute, so the kernel's questions for
	 * them (one before every write) are answered without the lock; set
	 * (atomic) before the first such attribute is stored */
	int sec_xattrs;
	int readonly;
	int foreground;         /* log to stderr instead of syslog */
	int debug;              /* log every failed request, not only serious ones */
	int writeback;
	unsigned max_read;      /* must repeat the max_read mount option in init */
	uid_t owner;            /* who mounted: with root, may use the controls */
	const char *store;      /* absolute path of the store, for messages */
	unsigned sync_secs;     /* 0: no periodic sync */
	pthread_t timer;
	int timer_running;
	int timer_stop;         /* under timer_mutex */
	pthread_mutex_t timer_mutex;
	pthread_cond_t timer_cond;
};

/* An open directory (fi->fh): a cursor kept between readdir calls. */
struct mmfs_dir {
	pthread_mutex_t mutex;
	mms_cursor *cur;       /* NULL until the first listing */
	uint64_t pos;          /* the offset the cursor continues from */
	int has_pending;       /* `pending` was read but did not fit a reply */
	struct mms_dirent pending;
	char pending_name[MMS_NAME_MAX + 1];
};

/* Zeros sent for holes; never written. */
static const char mmfs_zeros[MMFS_MAX_IO];

/*
 * Map a libmms return code (0, positive errno or negative MMS_* code) to the
 * errno a FUSE reply carries.  The one place where codes become errno.
 */
int mmfs_errno(int code);

int mmfs_errno(int code)
{
	/* ENOSYS would make the kernel stop sending that request for good. */
	if (code == ENOSYS)
		return EOPNOTSUPP;
	if (code >= 0)
		return code;
	switch (code) {
	case MMS_NOTFOUND:    return ENOENT;
	case MMS_EXISTS:      return EEXIST;
	case MMS_FULL:        return ENOSPC;
	case MMS_CORRUPT:     return EIO;
	case MMS_LOCKED:      return EBUSY;
	case MMS_NAMETOOLONG: return ENAMETOOLONG;
	case MMS_BADNAME:     return EINVAL;
	case MMS_NOTDIR:      return ENOTDIR;
	case MMS_ISDIR:       return EISDIR;
	case MMS_NOTEMPTY:    return ENOTEMPTY;
	case MMS_READONLY:    return EROFS;
	case MMS_NOTSTORE:    return EINVAL;
	case MMS_VERSION:     return EINVAL;
	case MMS_BADTXN:      return EIO;
	case MMS_TOOBIG:      return EFBIG;
	case MMS_NODATA:      return ENODATA;
	case MMS_RANGE:       return ERANGE;
	case MMS_INVAL:       return EINVAL;
	case MMS_LOOP:        return EINVAL;
	case MMS_TRUNCATED:   return EIO;
	case MMS_BUSY:        return EBUSY;
	case MMS_NOTLINK:     return EINVAL;
	case MMS_NXIO:        return ENXIO;
	case MMS_MLINK:       return EMLINK;
	case MMS_XDEV:        return EPERM;
	default:              return EIO;
	}
}

/*
 * For requests that name an inode by number: the kernel may still know an
 * inode the store has freed (a stat that raced with a rename replacing the
 * name).  ESTALE, as NFS says it, makes the VFS look the path up again and
 * find what the name holds now; ENOENT would reach the user.
 */
static int mmfs_by_ino(int rc)
{
	return rc == MMS_NOTFOUND ? ESTALE : rc;
}

/* ---- Logging ----------------------------------------------------------- */

/* Set once before the session starts; read by the log functions. */
static int mmfs_log_stderr = 1;

/* Log a message: stderr in the foreground, syslog once daemonized. */
static void mmfs_vlog(int prio, const char *fmt, va_list ap)
{
	if (mmfs_log_stderr) {
		fputs("mmfs: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	} else {
		vsyslog(prio, fmt, ap);
	}
}

/* printf-style mmfs_vlog(). */
static void mmfs_log(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void mmfs_log(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mmfs_vlog(prio, fmt, ap);
	va_end(ap);
}

/* libfuse's own messages go where ours go. */
static void mmfs_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	if (mmfs_log_stderr)
		vfprintf(stderr, fmt, ap);
	else
		vsyslog((int)level, fmt, ap);
}

/*
 * A name as it may go in a log line: control bytes, DEL, the backslash and
 * the quote become \xNN, so that a name cannot forge or break a line.
 * Truncated (with "...") if `out` is too small.
 */
static void mmfs_escape(const char *name, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; *name != '\0'; name++) {
		unsigned char c = (unsigned char)*name;
		int plain = c >= 0x20 && c != 0x7f && c != '\\' && c != '\'';

		if (o + (plain ? 1 : 4) + 4 > size) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

/*
 * Whether a failure is worth a log line without -d: damage, space, system
 * errors.  Ordinary answers (no such name, exists, not empty ...) are not.
 */
static int mmfs_serious(int code)
{
	return code > 0 || code == MMS_CORRUPT || code == MMS_BADTXN ||
	       code == MMS_FULL || code == MMS_TRUNCATED;
}

/*
 * Log a failed request: the operation, the inode, the name inside it (may
 * be NULL), the cause and the engine's detail.
 */
static void mmfs_log_fail(struct mmfs *fs, const char *op, uint64_t ino,
                          const char *name, int code)
{
	char safe[4 * MMS_NAME_MAX + 1];
	const char *detail;

	if (!fs->debug && !mmfs_serious(code))
		return;
	detail = fs->env ? mms_errdetail(fs->env) : "";
	if (name)
		mmfs_escape(name, safe, sizeof(safe));
	mmfs_log(LOG_ERR, "%s: %s: inode %" PRIu64 "%s%s%s: %s%s%s", fs->store, op,
	         ino, name ? " name '" : "", name ? safe : "", name ? "'" : "",
	         mms_strerror(code), *detail ? ": " : "", detail);
}

/* ---- Helpers ------------------------------------------------------------ */

/* The daemon state of a request. */
static struct mmfs *mmfs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Take the env's lock shared (read-only calls). */
static void mmfs_rdlock(struct mmfs *fs)
{
	pthread_rwlock_rdlock(&fs->lock);
}

/* Take the env's lock exclusive (everything else), once no deferred write
 * is running (see mmfs_op_write): so no exclusive section ever runs beside
 * one, and it can be neither committed nor rolled back half-written. */
static void mmfs_wrlock(struct mmfs *fs)
{
	for (;;) {
		pthread_rwlock_wrlock(&fs->lock);
		if (__atomic_load_n(&fs->io_ino, __ATOMIC_ACQUIRE) == 0) {
			fs->wr_held = 1;
			clock_gettime(CLOCK_MONOTONIC, &fs->wr_since);
			return;
		}
		pthread_rwlock_unlock(&fs->lock);
		pthread_mutex_lock(&fs->io_mutex);
		while (fs->io_ino != 0)
			pthread_cond_wait(&fs->io_cond, &fs->io_mutex);
		pthread_mutex_unlock(&fs->io_mutex);
	}
}

/* Drop the env's lock. */
static void mmfs_unlock(struct mmfs *fs)
{
	if (fs->wr_held) {
		/* only the exclusive holder gets here with wr_held set */
		struct timespec now;
		uint64_t us;

		clock_gettime(CLOCK_MONOTONIC, &now);
		us = (uint64_t)((now.tv_sec - fs->wr_since.tv_sec) * 1000000 +
		                (now.tv_nsec - fs->wr_since.tv_nsec) / 1000);
		fs->wr_holds++;
		fs->wr_total_us += us;
		if (us > fs->wr_max_us)
			fs->wr_max_us = us;
		for (int i = 0, limit = 100; i < 3; i++, limit *= 10)
			fs->wr_over[i] += us >= (uint64_t)limit;
		fs->wr_held = 0;
	}
	pthread_rwlock_unlock(&fs->lock);
}

/* ---- Lookup counts --------------------------------------------------------- */

static void mmfs_release_hold(struct mmfs *fs, const char *op, uint64_t ino);

/* One inode the kernel knows: how many entries it got, and whether mmfs
 * holds the inode for it (after a rename replaced its name). */
struct mmfs_known_ent {
	uint64_t ino;
	uint64_t nlookup;
	int held;
	struct mmfs_known_ent *next;
};

/* A hash table of mmfs_known_ent, with its own mutex: entries are counted
 * under the env's shared lock too. */
struct mmfs_known {
	pthread_mutex_t mutex;
	struct mmfs_known_ent **bucket;
	size_t nbuckets, count;
};

static struct mmfs_known_ent **mmfs_known_slot(struct mmfs_known *k, uint64_t ino)
{
	struct mmfs_known_ent **pp = &k->bucket[(ino * 0x9e3779b97f4a7c15ull >> 20) % k->nbuckets];

	while (*pp != NULL && (*pp)->ino != ino)
		pp = &(*pp)->next;
	return pp;
}

/* Double the buckets (mutex held).  Failing to grow only makes chains longer. */
static void mmfs_known_grow(struct mmfs_known *k)
{
	size_t n = k->nbuckets ? k->nbuckets * 2 : 1024, i;
	struct mmfs_known_ent **old = k->bucket, *e, *next;
	size_t oldn = k->nbuckets;

	k->bucket = calloc(n, sizeof(*k->bucket));
	if (k->bucket == NULL) {
		k->bucket = old;
		return;
	}
	k->nbuckets = n;
	for (i = 0; i < oldn; i++)
		for (e = old[i]; e != NULL; e = next) {
			struct mmfs_known_ent **pp = mmfs_known_slot(k, e->ino);

			next = e->next;
			e->next = *pp;
			*pp = e;
		}
	free(old);
}

/*
 * Count an entry about to be sent for `ino` (the env's lock held, shared or
 * exclusive, so that a rename cannot slip in between the look-up and the
 * count).  Nothing is counted on a read-only mount, which never replaces a
 * name.  Out of memory, the entry goes uncounted: a rename may then free
 * the inode early, and requests for it get ESTALE.
 */
static void mmfs_known_add(struct mmfs *fs, uint64_t ino)
{
	struct mmfs_known *k = fs->known;
	struct mmfs_known_ent **pp;

	if (k == NULL)
		return;
	pthread_mutex_lock(&k->mutex);
	if (k->count >= k->nbuckets)
		mmfs_known_grow(k);
	if (k->nbuckets > 0) {
		pp = mmfs_known_slot(k, ino);
		if (*pp == NULL && (*pp = calloc(1, sizeof(**pp))) != NULL) {
			(*pp)->ino = ino;
			k->count++;
		}
		if (*pp != NULL)
			(*pp)->nlookup++;
	}
	pthread_mutex_unlock(&k->mutex);
}

/* The kernel forgot `n` entries of `ino` (or never got them); the last one
 * drops the inode's hold, which frees it if it has no name left. */
static void mmfs_known_forget(struct mmfs *fs, uint64_t ino, uint64_t n)
{
	struct mmfs_known *k = fs->known;
	struct mmfs_known_ent **pp, *e;
	int held = 0;

	if (k == NULL || k->nbuckets == 0)
		return;
	pthread_mutex_lock(&k->mutex);
	pp = mmfs_known_slot(k, ino);
	e = *pp;
	if (e != NULL && e->nlookup > n) {
		e->nlookup -= n;
	} else if (e != NULL) {
		*pp = e->next;
		held = e->held;
		free(e);
		k->count--;
	}
	pthread_mutex_unlock(&k->mutex);
	if (held)
		mmfs_release_hold(fs, "forget", ino);
}

/*
 * A name is about to be replaced (exclusive lock held): if the kernel knows
 * the inode it names, hold the inode until the kernel forgets it.
 */
static void mmfs_known_pin(struct mmfs *fs, uint64_t parent, const char *name)
{
	struct mmfs_known *k = fs->known;
	struct mmfs_known_ent *e;
	struct mms_stat ms;

	if (k == NULL || k->nbuckets == 0 ||
	    mms_lookup(fs->env, parent, name, strlen(name), &ms) != 0)
		return;
	pthread_mutex_lock(&k->mutex);
	e = *mmfs_known_slot(k, ms.ino);
	/* If the hold fails (out of memory), requests for the inode get ESTALE. */
	if (e != NULL && !e->held && mms_hold(fs->env, ms.ino) == 0)
		e->held = 1;
	pthread_mutex_unlock(&k->mutex);
}

static struct mmfs_known *mmfs_known_new(void)
{
	struct mmfs_known *k = calloc(1, sizeof(*k));

	if (k != NULL)
		pthread_mutex_init(&k->mutex, NULL);
	return k;
}

static void mmfs_known_free(struct mmfs_known *k)
{
	struct mmfs_known_ent *e, *next;
	size_t i;

	if (k == NULL)
		return;
	for (i = 0; i < k->nbuckets; i++)
		for (e = k->bucket[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	free(k->bucket);
	pthread_mutex_destroy(&k->mutex);
	free(k);
}

/*
 * Group commit.  A modifying request makes its change under the exclusive
 * lock and joins the current group (fs->group), then drops the lock and
 * waits: the first member to find no commit under way commits for the
 * whole group (every change made so far), and every member replies after
 * that commit, with its result.  So N writers that queue behind one
 * another share one commit, and no request is answered before the commit
 * that holds its change.  A change that fails half-way is rolled back,
 * which drops the uncommitted changes of the group too: its members fail
 * with EIO (their changes are gone, and they were not answered yet).
 *
 * Locks: members join under the exclusive lock (the group's refs are
 * atomic); commit_mutex guards done/err/committing and is never held while
 * waiting for the exclusive lock.
 */
struct mmfs_group {
	int refs;   /* members that have not seen the result yet (atomic) */
	int done;   /* committed or failed (commit_mutex) */
	int err;    /* the errno for the members */
};

/* Roll back after a change failed half-way or a commit failed (exclusive
 * lock held): the current group's uncommitted changes go too. */
static void mmfs_rollback_group(struct mmfs *fs, const char *op)
{
	struct mmfs_group *g = fs->group;
	int rb = mms_rollback(fs->env);

	if (rb != 0)
		mmfs_log(LOG_ERR, "%s: rollback after %s failed: %s", fs->store, op,
		         mms_strerror(rb));
	if (g != NULL) {
		fs->group = NULL;
		pthread_mutex_lock(&fs->commit_mutex);
		g->err = EIO;
		g->done = 1;
		pthread_cond_broadcast(&fs->commit_cond);
		pthread_mutex_unlock(&fs->commit_mutex);
	}
}

/*
 * For tests (tests/160): MMFS_TEST_COMMIT_DELAY_US=N in the daemon's
 * environment makes a group's committer wait N microseconds (at most 0.1 s)
 * before it commits, so that other writers join its group whatever the
 * machine's speed.
 */
static void mmfs_commit_delay(void)
{
	static long us = -1;
	const char *v;

	if (__atomic_load_n(&us, __ATOMIC_RELAXED) < 0) {
		v = getenv("MMFS_TEST_COMMIT_DELAY_US");
		__atomic_store_n(&us, v != NULL ? strtol(v, NULL, 10) : 0, __ATOMIC_RELAXED);
	}
	if (us > 0)
		usleep((useconds_t)(us < 100000 ? us : 100000));
}

/* Commit now (exclusive lock held); a failed commit is logged and rolled
 * back with the current group. */
static int mmfs_commit_now(struct mmfs *fs, uint64_t ino, const char *name)
{
	int rc = mms_commit(fs->env);

	if (rc != 0) {
		mmfs_log_fail(fs, "commit", ino, name, rc);
		mmfs_rollback_group(fs, "commit");
	}
	return rc;
}

/* Leave a group whose result was read (commit_mutex held). */
static void mmfs_group_leave(struct mmfs_group *g)
{
	if (__atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(g);
}

/*
 * Finish a modifying call made under the exclusive lock, and drop the lock.
 * A failed call (nothing changed, or rolled back if it failed half-way) is
 * logged; a successful one waits for the group commit that holds it.
 * Returns the errno to reply with (0 on success).
 */
static struct mmfs_group *mmfs_group_join(struct mmfs *fs);
static int mmfs_group_wait(struct mmfs *fs, struct mmfs_group *g, uint64_t ino,
                           const char *name);

static int mmfs_done(struct mmfs *fs, const char *op, uint64_t ino,
                     const char *name, int rc)
{
	struct mmfs_group *g;

	if (rc != 0) {
		mmfs_log_fail(fs, op, ino, name, rc);
		/* a request that failed half-way leaves nothing behind: its
		 * change goes, with the group's (whose members were not
		 * answered yet) */
		if (rc == MMS_BADTXN || rc == MMS_CORRUPT || mms_txn_failed(fs->env))
			mmfs_rollback_group(fs, op);
		mmfs_unlock(fs);
		return mmfs_errno(rc);
	}
	g = mmfs_group_join(fs);
	if (g == NULL) {
		/* no memory for a group: commit this change on its own */
		rc = mmfs_commit_now(fs, ino, name);
		mmfs_unlock(fs);
		return mmfs_errno(rc);
	}
	mmfs_unlock(fs);
	return mmfs_group_wait(fs, g, ino, name);
}

/* Join the current group with a change just made (exclusive lock held);
 * NULL if there is no memory for a group. */
static struct mmfs_group *mmfs_group_join(struct mmfs *fs)
{
	struct mmfs_group *g = fs->group;

	if (g == NULL && (g = fs->group = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	__atomic_add_fetch(&g->refs, 1, __ATOMIC_ACQ_REL);
	return g;
}

/* Wait for the commit of group g, which holds a change of this request
 * (no lock held), committing it if no other member is; returns the errno
 * to reply with. */
static int mmfs_group_wait(struct mmfs *fs, struct mmfs_group *g, uint64_t ino,
                           const char *name)
{
	struct mmfs_group *cur;
	int rc, err;

	pthread_mutex_lock(&fs->commit_mutex);
	while (!g->done) {
		if (fs->committing) {
			pthread_cond_wait(&fs->commit_cond, &fs->commit_mutex);
			continue;
		}
		fs->committing = 1;
		pthread_mutex_unlock(&fs->commit_mutex);
		mmfs_commit_delay();
		mmfs_wrlock(fs);
		cur = fs->group; /* g, with every member that joined since */
		/* a failed commit fails cur with EIO (the rollback)... */
		rc = cur != NULL ? mmfs_commit_now(fs, ino, name) : 0;
		fs->group = NULL;
		mmfs_unlock(fs);
		pthread_mutex_lock(&fs->commit_mutex);
		if (cur != NULL && !cur->done) {
			cur->err = 0;
			cur->done = 1;
		} else if (cur != NULL && rc != 0) {
			cur->err = mmfs_errno(rc); /* ...with the commit's own error */
		}
		fs->committing = 0;
		pthread_cond_broadcast(&fs->commit_cond);
	}
	err = g->err;
	mmfs_group_leave(g);
	pthread_mutex_unlock(&fs->commit_mutex);
	return err;
}

/* Fill a struct stat from store attributes. */
static void mmfs_stat_of(const struct mms_stat *ms, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ms->ino;
	st->st_mode = ms->mode;
	st->st_nlink = ms->nlink;
	st->st_uid = ms->uid;
	st->st_gid = ms->gid;
	st->st_size = (off_t)ms->size;
	st->st_rdev = (dev_t)ms->rdev;
	st->st_blocks = (blkcnt_t)((ms->blocks + 511) / 512);
	st->st_blksize = MMS_PAGE_SIZE;
	st->st_atim = ms->atime;
	st->st_mtim = ms->mtime;
	st->st_ctim = ms->ctime;
}

/* Fill a FUSE entry from store attributes, with the long timeouts. */
static void mmfs_entry_of(const struct mms_stat *ms, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = ms->ino;
	/* the kernel made the root with generation 0 (NFS handles compare it) */
	e->generation = ms->ino == FUSE_ROOT_ID ? 0 : ms->gen;
	mmfs_stat_of(ms, &e->attr);
	e->attr_timeout = MMFS_TIMEOUT;
	e->entry_timeout = MMFS_TIMEOUT;
}

/* Reply an entry (counted with mmfs_known_add() before the lock was
 * dropped), or an error if `err` is nonzero.  An entry the kernel did not
 * take (the request was interrupted) is not counted. */
static void mmfs_reply_entry(struct mmfs *fs, fuse_req_t req, int err,
                             const struct mms_stat *ms)
{
	struct fuse_entry_param e;

	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	mmfs_entry_of(ms, &e);
	if (fuse_reply_entry(req, &e) != 0)
		mmfs_known_forget(fs, ms->ino, 1);
}

/* Reply attributes, or an error if `err` is nonzero. */
static void mmfs_reply_attr(fuse_req_t req, int err, const struct mms_stat *ms)
{
	struct stat st;

	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	mmfs_stat_of(ms, &st);
	fuse_reply_attr(req, &st, MMFS_TIMEOUT);
}

/* Drop the hold of an inode the kernel forgot and commit what it freed. */
static void mmfs_release_hold(struct mmfs *fs, const char *op, uint64_t ino)
{
	if (fs->readonly)
		return;
	mmfs_wrlock(fs);
	mmfs_done(fs, op, ino, NULL, mms_release(fs->env, ino));
}

/* ---- Session ------------------------------------------------------------ */

static void mmfs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct mmfs *fs = userdata;
	unsigned want_if_capable = FUSE_CAP_SPLICE_WRITE | FUSE_CAP_READDIRPLUS |
	                           FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_PARALLEL_DIROPS |
	                           FUSE_CAP_NO_OPEN_SUPPORT | FUSE_CAP_IOCTL_DIR |
	                           FUSE_CAP_EXPORT_SUPPORT;

	if (fs->writeback)
		want_if_capable |= FUSE_CAP_WRITEBACK_CACHE;
	conn->want |= conn->capable & want_if_capable;
	/*
	 * Requests never arrive through splice in a way mms_write() could use;
	 * the engine does not strip set-uid bits on write (the kernel does it
	 * with a setattr); the page cache stays valid across mtime changes
	 * because nothing else writes the store.
	 */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_MOVE |
	                          FUSE_CAP_HANDLE_KILLPRIV | FUSE_CAP_AUTO_INVAL_DATA);
	/* No OPEN request would carry O_TRUNC: the kernel sends a SETATTR. */
	conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
	fs->no_open = (conn->want & FUSE_CAP_NO_OPEN_SUPPORT) != 0;
	if (!fs->writeback)
		conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	conn->max_write = MMFS_MAX_IO;
	conn->max_read = fs->max_read;
	conn->max_readahead = MMFS_MAX_IO;
	conn->time_gran = 1;
}

static void mmfs_vacuum_stop(struct mmfs *fs);

static void mmfs_op_destroy(void *userdata)
{
	struct mmfs *fs = userdata;
	int rc;

	if (fs->readonly)
		return;
	mmfs_vacuum_stop(fs);
	mmfs_wrlock(fs);
	rc = mms_sync(fs->env);
	mmfs_unlock(fs);
	if (rc != 0)
		mmfs_log(LOG_ERR, "%s: sync at unmount failed: %s", fs->store,
		         mms_strerror(rc));
}

/* ---- Names and attributes ------------------------------------------------ */

static void mmfs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mmfs *fs = mmfs_of(req);
	struct fuse_entry_param e;
	struct mms_stat ms;
	int rc;

	MMFS_COUNT(lookup);
	mmfs_rdlock(fs);
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		/* NFS export (FUSE_CAP_EXPORT_SUPPORT): the kernel finds an
		 * inode it no longer caches by its number ("."), and a
		 * directory's parent (".."); a freed inode is not found, so
		 * the handle goes stale */
		rc = mms_getattr(fs->env, parent, &ms);
		if (rc == 0 && name[1] == '.')
			rc = !S_ISDIR(ms.mode) ? ENOTDIR
			     : mms_getattr(fs->env, ms.parent ? ms.parent : parent, &ms);
	} else {
		rc = mms_lookup(fs->env, parent, name, strlen(name), &ms);
	}
	if (rc == 0)
		mmfs_known_add(fs, ms.ino);
	mmfs_unlock(fs);
	if (rc == MMS_NOTFOUND) {
		/* A negative entry: the kernel sees every creation itself. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = MMFS_TIMEOUT;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc != 0)
		mmfs_log_fail(fs, "lookup", parent, name, rc);
	mmfs_reply_entry(fs, req, mmfs_errno(rc), &ms);
}

static void mmfs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	MMFS_COUNT(forget);
	mmfs_known_forget(mmfs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void mmfs_op_forget_multi(fuse_req_t req, size_t count,
                                 struct fuse_forget_data *forgets)
{
	size_t i;

	MMFS_COUNT(forget);
	for (i = 0; i < count; i++)
		mmfs_known_forget(mmfs_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void mmfs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mmfs *fs = mmfs_of(req);
	struct mms_stat ms;
	int rc;

	MMFS_COUNT(getattr);
	(void)fi;
	mmfs_rdlock(fs);
	rc = mmfs_by_ino(mms_getattr(fs->env, ino, &ms));
	mmfs_unlock(fs);
	if (rc != 0)
		mmfs_log_fail(fs, "getattr", ino, NULL, rc);
	mmfs_reply_attr(req, mmfs_errno(rc), &ms);
}

static void mmfs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                            int to_set, struct fuse_file_info *fi)
{
	struct mmfs *fs = mmfs_of(req);
	struct mms_setattr sa;
	struct mms_stat ms;
	unsigned mask = 0;
	int err;

	MMFS_COUNT(setattr);
	(void)fi;
	memset(&sa, 0, sizeof(sa));
	if (to_set & FUSE_SET_ATTR_MODE) {
		mask |= MMS_SET_MODE;
		sa.mode = attr->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		mask |= MMS_SET_UID;
		sa.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		mask |= MMS_SET_GID;
		sa.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		mask |= MMS_SET_SIZE;
		sa.size = (uint64_t)attr->st_size;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		mask |= MMS_SET_ATIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		mask |= MMS_SET_ATIME;
		sa.atime = attr->st_atim;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		mask |= MMS_SET_MTIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		mask |= MMS_SET_MTIME;
		sa.mtime = attr->st_mtim;
	}
	if (to_set & FUSE_SET_ATTR_CTIME) {
		mask |= MMS_SET_CTIME;
		sa.ctime = attr->st_ctim;
	}
	mmfs_wrlock(fs);
	err = mmfs_done(fs, "setattr", ino, NULL,
	                  mmfs_by_ino(mms_setattr(fs->env, ino, &sa, mask, &ms)));
	mmfs_reply_attr(req, err, &ms);
}

static void mmfs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct mmfs *fs = mmfs_of(req);
	char buf[MMS_SYMLINK_MAX + 1];
	size_t len = 0;
	int rc;

	MMFS_COUNT(readlink);
	mmfs_rdlock(fs);
	rc = mmfs_by_ino(mms_readlink(fs->env, ino, buf, sizeof(buf) - 1, &len));
	mmfs_unlock(fs);
	if (rc != 0) {
		mmfs_log_fail(fs, "readlink", ino, NULL, rc);
		fuse_reply_err(req, mmfs_errno(rc));
		return;
	}
	buf[len] = '\0';
	fuse_reply_readlink(req, buf);
}

static void mmfs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                          mode_t mode, dev_t rdev)
{
	struct mmfs *fs = mmfs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct mms_stat ms;
	int rc, err;

	MMFS_COUNT(mknod);
	/* A device node is stored like any inode; the mount is nodev, so it
	 * is inert here, but cp -a and tar keep it. */
	mmfs_wrlock(fs);
	rc = mms_mkdev(fs->env, parent, name, strlen(name), mode, (uint64_t)rdev, ctx->uid,
	               ctx->gid, &ms);
	if (rc == 0)
		mmfs_known_add(fs, ms.ino); /* under the lock: see mmfs_known_add */
	err = mmfs_done(fs, "mknod", parent, name, rc);
	if (rc == 0 && err != 0)
		mmfs_known_forget(fs, ms.ino, 1); /* never sent */
	mmfs_reply_entry(fs, req, err, &ms);
}

static void mmfs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                          mode_t mode)
{
	struct mmfs *fs = mmfs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct mms_stat ms;
	int rc, err;

	MMFS_COUNT(mkdir);
	mmfs_wrlock(fs);
	rc = mms_mkdir(fs->env, parent, name, strlen(name), mode & 07777, ctx->uid, ctx->gid,
	               &ms);
	if (rc == 0)
		mmfs_known_add(fs, ms.ino); /* under the lock: see mmfs_known_add */
	err = mmfs_done(fs, "mkdir", parent, name, rc);
	if (rc == 0 && err != 0)
		mmfs_known_forget(fs, ms.ino, 1); /* never sent */
	mmfs_reply_entry(fs, req, err, &ms);
}

/* A hard link: the entry it answers is one more look-up of the inode. */
static void mmfs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                         const char *newname)
{
	struct mmfs *fs = mmfs_of(req);
	struct mms_stat ms;
	int rc, err;

	MMFS_COUNT(link);
	mmfs_wrlock(fs);
	rc = mms_link(fs->env, ino, newparent, newname, strlen(newname), &ms);
	if (rc == 0)
		mmfs_known_add(fs, ms.ino); /* under the lock: see mmfs_known_add */
	err = mmfs_done(fs, "link", newparent, newname, rc);
	if (rc == 0 && err != 0)
		mmfs_known_forget(fs, ms.ino, 1); /* never sent */
	mmfs_reply_entry(fs, req, err, &ms);
}

static void mmfs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                            const char *name)
{
	struct mmfs *fs = mmfs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct mms_stat ms;
	int rc, err;

	MMFS_COUNT(symlink);
	mmfs_wrlock(fs);
	rc = mms_symlink(fs->env, parent, name, strlen(name), link, strlen(link), ctx->uid,
	                 ctx->gid, &ms);
	if (rc == 0)
		mmfs_known_add(fs, ms.ino); /* under the lock: see mmfs_known_add */
	err = mmfs_done(fs, "symlink", parent, name, rc);
	if (rc == 0 && err != 0)
		mmfs_known_forget(fs, ms.ino, 1); /* never sent */
	mmfs_reply_entry(fs, req, err, &ms);
}

static void mmfs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mmfs *fs = mmfs_of(req);
	int err;

	MMFS_COUNT(unlink);
	mmfs_wrlock(fs);
	mmfs_known_pin(fs, parent, name); /* open descriptors keep it */
	err = mmfs_done(fs, "unlink", parent, name,
	                  mms_unlink(fs->env, parent, name, strlen(name)));
	fuse_reply_err(req, err);
}

static void mmfs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mmfs *fs = mmfs_of(req);
	int err;

	MMFS_COUNT(rmdir);
	mmfs_wrlock(fs);
	mmfs_known_pin(fs, parent, name);
	err = mmfs_done(fs, "rmdir", parent, name,
	                  mms_rmdir(fs->env, parent, name, strlen(name)));
	fuse_reply_err(req, err);
}

static void mmfs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                           fuse_ino_t newparent, const char *newname,
                           unsigned int flags)
{
	struct mmfs *fs = mmfs_of(req);
	unsigned mflags = 0;
	int err;

	MMFS_COUNT(rename);
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL); /* RENAME_WHITEOUT */
		return;
	}
	if (flags & RENAME_NOREPLACE)
		mflags |= MMS_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		mflags |= MMS_RENAME_EXCHANGE;
	mmfs_wrlock(fs);
	if (!(flags & (RENAME_NOREPLACE | RENAME_EXCHANGE)))
		mmfs_known_pin(fs, newparent, newname);
	err = mmfs_done(fs, "rename", parent, name,
	                  mms_rename(fs->env, parent, name, strlen(name), newparent,
	                             newname, strlen(newname), mflags));
	fuse_reply_err(req, err);
}

/* ---- Files ------------------------------------------------------------- */

/*
 * Open: no hold, no lock.  ENOSYS tells the kernel (FUSE_CAP_NO_OPEN_SUPPORT)
 * to open every file itself from now on, keeping its cache, and to send no
 * RELEASE.  A kernel without that capability gets a plain success; its
 * RELEASE requests are answered by libfuse (no handler).  O_TRUNC came as a
 * SETATTR before this.
 */
static void mmfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mmfs *fs = mmfs_of(req);

	(void)ino;
	MMFS_COUNT(open);
	if (fs->no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void mmfs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                           mode_t mode, struct fuse_file_info *fi)
{
	struct mmfs *fs = mmfs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fuse_entry_param e;
	struct mms_stat ms;
	size_t len = strlen(name);
	int rc, err;

	MMFS_COUNT(create);
	mmfs_wrlock(fs);
	rc = mms_mknod(fs->env, parent, name, len, S_IFREG | (mode & 07777),
	               ctx->uid, ctx->gid, &ms);
	if (rc == MMS_EXISTS && !(fi->flags & O_EXCL)) {
		/* Created by an earlier request the kernel did not see: open it. */
		rc = mms_lookup(fs->env, parent, name, len, &ms);
		if (rc == 0 && S_ISDIR(ms.mode))
			rc = MMS_ISDIR;
		if (rc == 0 && (fi->flags & O_TRUNC))
			rc = mms_setattr(fs->env, ms.ino, &(struct mms_setattr){ .size = 0 },
			                 MMS_SET_SIZE, &ms);
	}
	if (rc == 0)
		mmfs_known_add(fs, ms.ino); /* under the lock: see mmfs_known_add */
	err = mmfs_done(fs, "create", parent, name, rc);
	if (rc == 0 && err != 0)
		mmfs_known_forget(fs, ms.ino, 1); /* never sent */
	if (err != 0) {
		fuse_reply_err(req, err);
		return;
	}
	mmfs_entry_of(&ms, &e);
	fi->keep_cache = 1;
	if (fuse_reply_create(req, &e, fi) != 0)
		mmfs_known_forget(fs, ms.ino, 1);
}

/*
 * Describe [off, off+size) of `ino` as extents, growing *extp as needed.
 * *countp gets the number of pieces.  Shared lock held.
 */
static int mmfs_map_range(struct mmfs *fs, fuse_ino_t ino, uint64_t off, size_t size,
                          struct mms_extent **extp, size_t *countp)
{
	struct mms_extent *ext = NULL, *grown;
	size_t count = 0, cap = 0, got;
	uint64_t pos = off, end = off + size;
	int rc = 0;

	while (pos < end) {
		if (count == cap) {
			cap = cap ? cap * 2 : 32;
			grown = realloc(ext, cap * sizeof(*ext));
			if (grown == NULL) {
				rc = ENOMEM;
				goto fail;
			}
			ext = grown;
		}
		rc = mms_map(fs->env, ino, pos, end - pos, ext + count, cap - count, &got);
		if (rc != 0)
			goto fail;
		if (got == 0)
			break;
		count += got;
		pos = ext[count - 1].logical + ext[count - 1].length;
		if (count < cap)
			break; /* not cut short by `max`: reached the end */
	}
	*extp = ext;
	*countp = count;
	return 0;
fail:
	free(ext);
	return rc;
}

/* Wait until no read that mapped in epoch slot `e` (0 or 1; 2: either)
 * is in flight. */
static void mmfs_reads_wait(struct mmfs *fs, unsigned e)
{
	pthread_mutex_lock(&fs->io_mutex);
	while (e == 2 ? fs->reads_in[0] + fs->reads_in[1] > 0 : fs->reads_in[e] > 0)
		pthread_cond_wait(&fs->io_cond, &fs->io_mutex);
	pthread_mutex_unlock(&fs->io_mutex);
}

/* The engine's reuse hook (exclusive lock held, so no read maps
 * meanwhile): wait for the reads in flight, unless mmfs_sync already
 * waited for the ones that may still use the pages now reused. */
static void mmfs_reads_drain(void *ctx)
{
	struct mmfs *fs = ctx;

	if (!fs->reads_drained)
		mmfs_reads_wait(fs, 2);
}

/*
 * Read: map the range and reply with a vector of buffers pointing into the
 * store file (spliced by libfuse, no copy here), inline bytes, and zeros for
 * holes.  The shared lock is held until the reply is sent, unless every
 * piece from the file is MMS_MAP_STABLE (see the invariants at the top).
 */
static void mmfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                         struct fuse_file_info *fi)
{
	struct mmfs *fs = mmfs_of(req);
	struct mms_extent *ext = NULL;
	struct fuse_bufvec *bv = NULL;
	size_t count = 0, nbufs = 0, i, b = 0;
	uint64_t done;
	int rc, unlocked = 1;
	unsigned epoch = 0;

	MMFS_COUNT(read);
	(void)fi;
	mmfs_rdlock(fs);
	/* a deferred write of this inode is running: its new pages hold old
	 * bytes until it is done (it can start only under the exclusive lock) */
	while (__atomic_load_n(&fs->io_ino, __ATOMIC_ACQUIRE) == ino) {
		mmfs_unlock(fs);
		pthread_mutex_lock(&fs->io_mutex);
		while (fs->io_ino == ino)
			pthread_cond_wait(&fs->io_cond, &fs->io_mutex);
		pthread_mutex_unlock(&fs->io_mutex);
		mmfs_rdlock(fs);
	}
	rc = mmfs_map_range(fs, ino, (uint64_t)off, size, &ext, &count);
	if (rc != 0)
		goto fail;
	for (i = 0; i < count; i++) {
		nbufs += (ext[i].flags & MMS_MAP_HOLE) ?
		         (size_t)((ext[i].length + sizeof(mmfs_zeros) - 1) / sizeof(mmfs_zeros)) : 1;
		if (!(ext[i].flags & (MMS_MAP_HOLE | MMS_MAP_STABLE)))
			unlocked = 0;
	}
	if (nbufs == 0) {
		fuse_reply_buf(req, NULL, 0);
		goto out;
	}
	bv = calloc(1, sizeof(*bv) + nbufs * sizeof(struct fuse_buf));
	if (bv == NULL) {
		rc = ENOMEM;
		goto fail;
	}
	bv->count = nbufs;
	for (i = 0; i < count; i++) {
		if (ext[i].flags & MMS_MAP_HOLE) {
			for (done = 0; done < ext[i].length; done += sizeof(mmfs_zeros)) {
				bv->buf[b].mem = (void *)mmfs_zeros;
				bv->buf[b].size = ext[i].length - done < sizeof(mmfs_zeros) ?
				                  (size_t)(ext[i].length - done) : sizeof(mmfs_zeros);
				b++;
			}
		} else if (ext[i].flags & MMS_MAP_INLINE) {
			bv->buf[b].mem = (void *)ext[i].data;
			bv->buf[b].size = (size_t)ext[i].length;
			b++;
		} else {
			bv->buf[b].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
			bv->buf[b].fd = mms_fd(fs->env);
			bv->buf[b].pos = (off_t)ext[i].physical;
			bv->buf[b].size = (size_t)ext[i].length;
			b++;
		}
	}
	if (unlocked) {
		pthread_mutex_lock(&fs->io_mutex);
		epoch = fs->read_epoch & 1;
		fs->reads_in[epoch]++;
		pthread_mutex_unlock(&fs->io_mutex);
		mmfs_unlock(fs);
	}
	rc = fuse_reply_data(req, bv, 0);
	if (rc != 0 && rc != -ENOENT)
		mmfs_log(LOG_ERR, "%s: read: inode %" PRIu64 ": reply failed: %s",
		         fs->store, (uint64_t)ino, strerror(-rc));
	if (unlocked) {
		pthread_mutex_lock(&fs->io_mutex);
		if (--fs->reads_in[epoch] == 0)
			pthread_cond_broadcast(&fs->io_cond);
		pthread_mutex_unlock(&fs->io_mutex);
		if (!fs->drop_cache)
			goto done;
		/* the drop uses the engine's map, which a change may move */
		mmfs_rdlock(fs);
	}
	/* the kernel now caches these bytes for the mounted file: the store
	 * file's copy would be a second one (pages reused meanwhile are only
	 * dropped from the cache: nothing is lost) */
	for (i = 0; fs->drop_cache && i < count; i++)
		if (!(ext[i].flags & (MMS_MAP_HOLE | MMS_MAP_INLINE)))
			mms_drop_cache(fs->env, ext[i].physical, ext[i].length);
	goto out;
fail:
	mmfs_log_fail(fs, "read", ino, NULL, rc);
	fuse_reply_err(req, mmfs_errno(rc));
out:
	mmfs_unlock(fs);
done:
	free(bv);
	free(ext);
}

/*
 * Write: the change is made under the exclusive lock, but the big copies of
 * its bytes into the store file (mms_write_deferred) run after the lock is
 * dropped, so that look-ups, getattrs and reads of other inodes go on while
 * the bytes go to the disk.  Meanwhile fs->io_ino names the inode: no
 * exclusive section runs (mmfs_wrlock waits), so nothing commits, rolls
 * back or changes the store beside the copy, and reads of that inode wait
 * (its new pages hold old bytes until the copy is done).  Then the request
 * waits for its group's commit as every change does.  A copy that fails
 * rolls the group back: its members, this one too, get EIO.
 */
static void mmfs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                          size_t size, off_t off, struct fuse_file_info *fi)
{
	struct mmfs *fs = mmfs_of(req);
	struct mms_deferred d;
	struct mmfs_group *g;
	int err, rc;

	MMFS_COUNT(write);
	(void)fi;
	mmfs_wrlock(fs);
	rc = mms_write_deferred(fs->env, ino, buf, size, (uint64_t)off, &d);
	if (rc == 0 && d.n > 0 && (g = mmfs_group_join(fs)) != NULL) {
		pthread_mutex_lock(&fs->io_mutex);
		__atomic_store_n(&fs->io_ino, (uint64_t)ino, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&fs->io_mutex);
		mmfs_unlock(fs);
		rc = mms_deferred_run(fs->env, &d);
		pthread_mutex_lock(&fs->io_mutex);
		__atomic_store_n(&fs->io_ino, 0, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&fs->io_cond);
		pthread_mutex_unlock(&fs->io_mutex);
		if (rc != 0) {
			mmfs_log_fail(fs, "write", ino, NULL, rc);
			mmfs_wrlock(fs);
			/* nothing committed g meanwhile (no exclusive section ran
			 * beside the copy); a rollback may have ended it already */
			if (fs->group == g)
				mmfs_rollback_group(fs, "write");
			mmfs_unlock(fs);
		}
		err = mmfs_group_wait(fs, g, ino, NULL);
	} else {
		/* failed, or nothing deferred, or no memory for a group: the
		 * copies (if any) are made under the lock */
		if (rc == 0 && d.n > 0 && (rc = mms_deferred_run(fs->env, &d)) != 0)
			mmfs_rollback_group(fs, "write"); /* bytes never written */
		err = mmfs_done(fs, "write", ino, NULL, rc);
	}
	if (err != 0)
		fuse_reply_err(req, err);
	else
		fuse_reply_write(req, size);
}

/* Most bytes one COPY_FILE_RANGE copies (the caller loops for the rest):
 * it holds the exclusive lock throughout. */
#define MMFS_COPY_MAX (64u << 20)

/* copy_file_range(2) inside the mount: one engine call, one request,
 * instead of a READ and a WRITE per 1 MiB.  The kernel drops its cached
 * pages of the destination range itself. */
static void mmfs_op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                                    struct fuse_file_info *fi_in, fuse_ino_t ino_out,
                                    off_t off_out, struct fuse_file_info *fi_out,
                                    size_t len, int flags)
{
	struct mmfs *fs = mmfs_of(req);
	uint64_t copied = 0;
	int err;

	(void)fi_in;
	(void)fi_out;
	MMFS_COUNT(copy_file_range);
	if (flags != 0 || off_in < 0 || off_out < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (len > MMFS_COPY_MAX)
		len = MMFS_COPY_MAX;
	mmfs_wrlock(fs);
	err = mmfs_done(fs, "copy_file_range", ino_out, NULL,
	                  mmfs_by_ino(mms_copy_range(fs->env, ino_in, (uint64_t)off_in, ino_out,
	                                             (uint64_t)off_out, len, &copied)));
	if (err != 0)
		fuse_reply_err(req, err);
	else
		fuse_reply_write(req, (size_t)copied);
}

/* No flush or release handler: every write was committed when it was
 * answered, so there is nothing to do at close.  libfuse answers FLUSH with
 * ENOSYS (the kernel then stops sending it) and RELEASE with success. */

/*
 * Sync without holding readers up: commit under the exclusive lock, the two
 * fdatasyncs under the shared lock (no change can run; lookups, getattrs and
 * reads can), then finish under the exclusive lock.  A change that slips in
 * between the last two steps makes the sync run again (mms_sync_end says
 * MMS_BUSY); after three tries it is done in one piece under the exclusive
 * lock.  One sync at a time.
 *
 * The end of a sync makes the pages that commits up to mms_sync_begin
 * freed reusable, so the reads without the lock that mapped before that
 * commit must be over (mmfs_reads_drain).  Reads count in two epoch slots,
 * and the slot flips right after mms_sync_begin, under the same exclusive
 * hold: reads that map after it cannot reach those pages.  So the sync
 * waits for the old slot's reads without the lock, and its end need not
 * wait at all (reads_drained), unless the new slot still held reads of an
 * earlier epoch at the flip (a sync that stopped early): then the end
 * waits for every read, as at any other sync (vacuum's, the last try).
 */
static int mmfs_sync(struct mmfs *fs)
{
	int rc = 0, needed = 0, fast;
	unsigned old;

	pthread_mutex_lock(&fs->sync_mutex);
	for (int tries = 0;; tries++) {
		mmfs_wrlock(fs);
		if (tries == 3) {
			rc = mms_sync(fs->env);
			mmfs_unlock(fs);
			break;
		}
		rc = mms_sync_begin(fs->env, &needed);
		pthread_mutex_lock(&fs->io_mutex);
		old = fs->read_epoch & 1;
		fs->read_epoch++;
		fast = fs->reads_in[old ^ 1] == 0;
		pthread_mutex_unlock(&fs->io_mutex);
		mmfs_unlock(fs);
		if (rc != 0 || !needed)
			break;
		mmfs_rdlock(fs);
		rc = mms_sync_io(fs->env);
		mmfs_unlock(fs);
		if (rc != 0)
			break;
		if (fast)
			mmfs_reads_wait(fs, old);
		mmfs_wrlock(fs);
		fs->reads_drained = fast;
		rc = mms_sync_end_keep(fs->env);
		fs->reads_drained = 0;
		mmfs_unlock(fs);
		if (rc == 0) {
			/* the cache of what the sync wrote goes under the shared
			 * lock, the space it freed back to the disk without the
			 * lock (an ext4 punch of 1 MiB takes ~0.3 ms) */
			int prc;

			mmfs_rdlock(fs);
			mms_sync_drop(fs->env);
			mmfs_unlock(fs);
			prc = mms_sync_punch(fs->env);

			if (prc != 0)
				mmfs_log_fail(fs, "sync", FUSE_ROOT_ID, NULL, prc);
			mmfs_wrlock(fs);
			mms_sync_release(fs->env);
			mmfs_unlock(fs);
		}
		if (rc != MMS_BUSY)
			break;
	}
	pthread_mutex_unlock(&fs->sync_mutex);
	return rc;
}

/* fsync and fsyncdir: make every committed change durable. */
static void mmfs_sync_reply(fuse_req_t req, const char *op, fuse_ino_t ino)
{
	struct mmfs *fs = mmfs_of(req);
	int rc;

	if (fs->readonly) {
		fuse_reply_err(req, 0);
		return;
	}
	rc = mmfs_sync(fs);
	if (rc != 0)
		mmfs_log_fail(fs, op, ino, NULL, rc);
	fuse_reply_err(req, mmfs_errno(rc));
}

static void mmfs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                          struct fuse_file_info *fi)
{
	MMFS_COUNT(fsync);
	(void)datasync;
	(void)fi;
	mmfs_sync_reply(req, "fsync", ino);
}

static void mmfs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
                              off_t offset, off_t length, struct fuse_file_info *fi)
{
	struct mmfs *fs = mmfs_of(req);
	unsigned mmode;
	int err;

	MMFS_COUNT(fallocate);
	(void)fi;
	if (mode == 0)
		mmode = 0;
	else if (mode == FALLOC_FL_KEEP_SIZE)
		mmode = MMS_FALLOC_KEEP_SIZE;
	else if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE))
		mmode = MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_KEEP_SIZE;
	else if (mode == FALLOC_FL_ZERO_RANGE)
		mmode = MMS_FALLOC_ZERO_RANGE;
	else if (mode == (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE))
		mmode = MMS_FALLOC_ZERO_RANGE | MMS_FALLOC_KEEP_SIZE;
	else {
		/* COLLAPSE_RANGE, INSERT_RANGE: the extent map would move */
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	mmfs_wrlock(fs);
	err = mmfs_done(fs, "fallocate", ino, NULL,
	                  mms_fallocate(fs->env, ino, mmode, (uint64_t)offset,
	                                (uint64_t)length));
	fuse_reply_err(req, err);
}

/*
 * ioctl: the inode flags of lsattr/chattr (FS_IOC_GETFLAGS, and the
 * FS_IOC_FSGETXATTR the kernel asks before it sets flags).  mmfs keeps
 * none, so the getters answer zeros and the setters take only zeros; any
 * other command is not one of ours (ENOTTY).
 */
static void mmfs_op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
                          struct fuse_file_info *fi, unsigned flags, const void *in_buf,
                          size_t in_bufsz, size_t out_bufsz)
{
	unsigned int none = 0;

	(void)ino;
	(void)arg;
	(void)fi;
	MMFS_COUNT(ioctl);
	if (flags & FUSE_IOCTL_COMPAT) {
		fuse_reply_err(req, ENOTTY);
		return;
	}
	switch (cmd) {
	case FS_IOC_GETFLAGS:
		if (out_bufsz < sizeof(int)) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		fuse_reply_ioctl(req, 0, &none, sizeof(int));
		return;
	case FS_IOC_SETFLAGS:
		if (in_bufsz < sizeof(int)) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		memcpy(&none, in_buf, sizeof(int));
		if (none != 0) {
			fuse_reply_err(req, EOPNOTSUPP);
			return;
		}
		fuse_reply_ioctl(req, 0, NULL, 0);
		return;
	case FS_IOC_FSGETXATTR: {
		struct fsxattr fx;

		if (out_bufsz < sizeof(fx)) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		memset(&fx, 0, sizeof(fx));
		fuse_reply_ioctl(req, 0, &fx, sizeof(fx));
		return;
	}
	case FS_IOC_FSSETXATTR: {
		struct fsxattr fx;

		if (in_bufsz < sizeof(fx)) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		memcpy(&fx, in_buf, sizeof(fx));
		if (fx.fsx_xflags != 0 || fx.fsx_projid != 0 || fx.fsx_extsize != 0 ||
		    fx.fsx_cowextsize != 0) {
			fuse_reply_err(req, EOPNOTSUPP);
			return;
		}
		fuse_reply_ioctl(req, 0, NULL, 0);
		return;
	}
	default:
		fuse_reply_err(req, ENOTTY);
	}
}

static void mmfs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                          struct fuse_file_info *fi)
{
	struct mmfs *fs = mmfs_of(req);
	uint64_t result = 0;
	int rc;

	MMFS_COUNT(lseek);
	(void)fi;
	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL); /* the kernel does the others itself */
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	mmfs_rdlock(fs);
	rc = mms_seek(fs->env, ino, (uint64_t)off,
	              whence == SEEK_DATA ? MMS_SEEK_DATA : MMS_SEEK_HOLE, &result);
	mmfs_unlock(fs);
	if (rc != 0) {
		if (rc != MMS_NXIO)
			mmfs_log_fail(fs, "lseek", ino, NULL, rc);
		fuse_reply_err(req, mmfs_errno(rc));
		return;
	}
	fuse_reply_lseek(req, (off_t)result);
}

/* ---- Directories --------------------------------------------------------- */

/* Open a directory: a cursor for its listing; no lock, no hold (see the
 * invariants at the top). */
static void mmfs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mmfs_dir *d;

	(void)ino;
	MMFS_COUNT(opendir);
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_init(&d->mutex, NULL);
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->keep_cache = 1;
	fi->cache_readdir = 1;
	if (fuse_reply_open(req, fi) != 0) {
		pthread_mutex_destroy(&d->mutex);
		free(d);
	}
}

/*
 * Add one entry to a readdir(plus) reply buffer.  Returns the bytes it
 * takes; if that is more than `room`, nothing was added.
 */
static size_t mmfs_add_dirent(fuse_req_t req, int plus, char *buf, size_t room,
                              const char *name, const struct mms_stat *ms,
                              uint64_t ino, uint32_t mode, off_t next)
{
	struct fuse_entry_param e;

	if (plus) {
		if (ms != NULL) {
			mmfs_entry_of(ms, &e);
		} else {
			/* "." and "..": no look-up is counted for them. */
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = ino;
			e.attr.st_mode = mode;
		}
		return fuse_add_direntry_plus(req, buf, room, name, &e, next);
	}
	{
		struct stat st;

		memset(&st, 0, sizeof(st));
		st.st_ino = ino;
		st.st_mode = mode;
		return fuse_add_direntry(req, buf, room, name, &st, next);
	}
}

/*
 * readdir and readdirplus.  Offsets: 1 after ".", 2 after "..", then the
 * cookie of each entry.  The handle's cursor is reused when the kernel asks
 * for the offset where the last reply ended; an entry read from the cursor
 * that did not fit is kept for the next reply.
 */
static void mmfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                         struct fuse_file_info *fi, int plus)
{
	struct mmfs *fs = mmfs_of(req);
	struct mmfs_dir *d = (struct mmfs_dir *)(uintptr_t)fi->fh;
	struct mms_dirent ent;
	struct mms_stat ms;
	char name[MMS_NAME_MAX + 1];
	char *buf;
	size_t used = 0, need, nsent = 0;
	uint64_t want, *sent = NULL;
	int rc = 0;

	buf = malloc(size);
	/* room for the inode numbers of as many entries as the reply can hold
	 * (the shortest entry has a one-byte name) */
	if (plus)
		sent = malloc((size / fuse_add_direntry_plus(req, NULL, 0, "x", NULL, 0) + 1) *
		              sizeof(*sent));
	if (buf == NULL || (plus && sent == NULL)) {
		free(sent);
		free(buf);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&d->mutex);
	mmfs_rdlock(fs);
	if (off < MMFS_OFF_DOT) {
		need = mmfs_add_dirent(req, plus, buf + used, size - used, ".", NULL,
		                       ino, S_IFDIR, MMFS_OFF_DOT);
		if (need > size - used)
			goto reply;
		used += need;
	}
	if (off < MMFS_OFF_DOTDOT) {
		/* The parent's number only shows in getdents (an unlinked
		 * directory still open lists itself). */
		rc = mms_getattr(fs->env, ino, &ms);
		if (rc != 0)
			goto reply;
		need = mmfs_add_dirent(req, plus, buf + used, size - used, "..", NULL,
		                       ms.parent ? ms.parent : ino, S_IFDIR, MMFS_OFF_DOTDOT);
		if (need > size - used)
			goto reply;
		used += need;
	}
	want = off <= MMFS_OFF_DOTDOT ? 0 : (uint64_t)off;
	if (d->cur == NULL || d->pos != want) {
		if (d->cur != NULL)
			mms_dir_close(d->cur);
		d->cur = NULL;
		d->has_pending = 0;
		rc = mms_dir_open(fs->env, ino, want, &d->cur);
		if (rc != 0)
			goto reply;
		d->pos = want;
	}
	for (;;) {
		if (d->has_pending) {
			ent = d->pending;
			ent.name = d->pending_name;
		} else {
			rc = mms_dir_next(d->cur, &ent);
			if (rc == MMS_NOTFOUND) {
				rc = 0;
				break;
			}
			if (rc != 0)
				break;
		}
		memcpy(name, ent.name, ent.namelen);
		name[ent.namelen] = '\0';
		if (plus) {
			rc = mms_getattr(fs->env, ent.ino, &ms);
			if (rc != 0)
				break;
		}
		need = mmfs_add_dirent(req, plus, buf + used, size - used, name,
		                       plus ? &ms : NULL, ent.ino, ent.mode, (off_t)ent.cookie);
		if (need > size - used) {
			if (!d->has_pending) {
				d->pending = ent;
				memcpy(d->pending_name, ent.name, ent.namelen);
				d->pending.name = d->pending_name;
				d->has_pending = 1;
			}
			break;
		}
		if (plus) {
			/* the kernel counts a look-up for each entry it gets */
			sent[nsent++] = ent.ino;
			mmfs_known_add(fs, ent.ino);
		}
		d->has_pending = 0;
		used += need;
		d->pos = ent.cookie;
	}
reply:
	mmfs_unlock(fs);
	pthread_mutex_unlock(&d->mutex);
	if (rc != 0 && used == 0) {
		mmfs_log_fail(fs, plus ? "readdirplus" : "readdir", ino, NULL, rc);
		fuse_reply_err(req, mmfs_errno(rc));
	} else if (fuse_reply_buf(req, buf, used) != 0) {
		while (nsent > 0)
			mmfs_known_forget(fs, sent[--nsent], 1);
	}
	free(sent);
	free(buf);
}

static void mmfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                            struct fuse_file_info *fi)
{
	MMFS_COUNT(readdir);
	mmfs_readdir(req, ino, size, off, fi, 0);
}

static void mmfs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
                                off_t off, struct fuse_file_info *fi)
{
	MMFS_COUNT(readdirplus);
	mmfs_readdir(req, ino, size, off, fi, 1);
}

static void mmfs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mmfs *fs = mmfs_of(req);
	struct mmfs_dir *d = (struct mmfs_dir *)(uintptr_t)fi->fh;

	(void)ino;
	MMFS_COUNT(releasedir);
	if (d->cur != NULL) {
		mmfs_rdlock(fs);
		mms_dir_close(d->cur);
		mmfs_unlock(fs);
	}
	pthread_mutex_destroy(&d->mutex);
	free(d);
	fuse_reply_err(req, 0);
}

static void mmfs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                             struct fuse_file_info *fi)
{
	MMFS_COUNT(fsyncdir);
	(void)datasync;
	(void)fi;
	mmfs_sync_reply(req, "fsyncdir", ino);
}

/* ---- Store-wide ----------------------------------------------------------- */

static void mmfs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct mmfs *fs = mmfs_of(req);
	struct mms_info info;
	struct statvfs st;
	int rc;

	MMFS_COUNT(statfs);
	mmfs_rdlock(fs);
	rc = mms_stats(fs->env, &info);
	mmfs_unlock(fs);
	if (rc != 0) {
		mmfs_log_fail(fs, "statfs", ino, NULL, rc);
		fuse_reply_err(req, mmfs_errno(rc));
		return;
	}
	/* the engine's figures: available is the smaller of what max_size
	 * and the host's disk leave */
	memset(&st, 0, sizeof(st));
	st.f_bsize = MMS_PAGE_SIZE;
	st.f_frsize = MMS_PAGE_SIZE;
	st.f_blocks = info.capacity_bytes / MMS_PAGE_SIZE;
	st.f_bfree = info.avail_bytes / MMS_PAGE_SIZE;
	if (st.f_bfree > st.f_blocks)
		st.f_bfree = st.f_blocks;
	st.f_bavail = st.f_bfree;
	/* Inodes cost no fixed space: report as many free as free pages. */
	st.f_ffree = st.f_bfree;
	st.f_favail = st.f_bfree;
	st.f_files = info.keys + info.dirs + st.f_ffree;
	st.f_namemax = MMS_NAME_MAX;
	fuse_reply_statfs(req, &st);
}

/* Whether `name` on inode `ino` is a control name (user.mmfs.* on the root). */
static int mmfs_is_control(fuse_ino_t ino, const char *name)
{
	return ino == FUSE_ROOT_ID &&
	       strncmp(name, MMFS_CTL_PREFIX, sizeof(MMFS_CTL_PREFIX) - 1) == 0;
}

/*
 * Whether `name` is a POSIX ACL.  The kernel passes ACLs to a FUSE server
 * that does not claim them as plain xattrs; storing one would hide that the
 * mode did not change (cp -a sets modes through the ACL, falling back to
 * chmod only on EOPNOTSUPP), so mmfs, which has no ACLs, refuses them.
 */
static int mmfs_is_acl(const char *name)
{
	return strcmp(name, "system.posix_acl_access") == 0 ||
	       strcmp(name, "system.posix_acl_default") == 0;
}

/* Whether `name` is in the security namespace, which the kernel asks
 * about (security.capability before every write, security.selinux for ls). */
static int mmfs_is_security(const char *name)
{
	return strncmp(name, "security.", 9) == 0;
}

/*
 * The stats JSON text (malloc'd, NUL-terminated) in *textp.  Shared lock
 * held.
 */
static int mmfs_stats_json(struct mmfs *fs, char **textp)
{
	json_t *x = json_pack("{s:s?, s:{s:b, s:I, s:I, s:I, s:b, s:I, s:I}}",
	                      "mount", fs->mnt,
	                      "vacuum",
	                      "running", __atomic_load_n(&fs->vac_running, __ATOMIC_RELAXED),
	                      "done_bytes", (json_int_t)(fs->vac_done * 4096),
	                      "total_bytes", (json_int_t)(fs->vac_total * 4096),
	                      "runs", (json_int_t)fs->vac_runs,
	                      "last_incomplete", fs->vac_incomplete,
	                      "last_size_before", (json_int_t)fs->vac_before,
	                      "last_size_after", (json_int_t)fs->vac_after);

	if (x != NULL)
		json_object_set_new(json_object_get(x, "vacuum"), "last_error",
		                    fs->vac_last_err ? json_string(strerror(fs->vac_last_err)) :
		                                       json_null());
	if (x != NULL)
		json_object_set_new(x, "exclusive_lock",
		                    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
		                              "holds", (json_int_t)fs->wr_holds,
		                              "total_us", (json_int_t)fs->wr_total_us,
		                              "max_us", (json_int_t)fs->wr_max_us,
		                              "over_100us", (json_int_t)fs->wr_over[0],
		                              "over_1ms", (json_int_t)fs->wr_over[1],
		                              "over_10ms", (json_int_t)fs->wr_over[2]));
	json_t *reqs = json_object();
	char *extra;
	int rc;

	for (int i = 0; reqs != NULL && i < MMFS_REQ_N; i++)
		json_object_set_new(reqs, mmfs_req_names[i],
		                    json_integer((json_int_t)__atomic_load_n(&fs->requests[i],
		                                                             __ATOMIC_RELAXED)));
	if (x != NULL && reqs != NULL)
		json_object_set_new(x, "requests", reqs);
	else
		json_decref(reqs);
	extra = x ? json_dumps(x, JSON_COMPACT) : NULL;

	json_decref(x);
	if (extra == NULL)
		return ENOMEM;
	rc = mms_stats_json(fs->env, extra, textp);
	free(extra);
	return rc;
}

/*
 * For tests (tests/140): with MMFS_TEST_VACUUM_GATE=FILE in the daemon's
 * environment, a vacuum waits between batches (without the lock) while
 * FILE exists, at most 60 s, so that a test can act while it runs whatever
 * the machine's speed.  Unmounting opens the gate.
 */
static void mmfs_vacuum_gate(struct mmfs *fs)
{
	const char *gate = getenv("MMFS_TEST_VACUUM_GATE");

	for (int i = 0; gate != NULL && i < 6000 && access(gate, F_OK) == 0 &&
	                !__atomic_load_n(&fs->vac_stop, __ATOMIC_ACQUIRE); i++)
		usleep(10000);
}

/* Progress of an online vacuum, logged with -d.  Nonzero stops it. */
static int mmfs_vacuum_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct mmfs *fs = ctx;

	if (fs->debug)
		mmfs_log(LOG_INFO, "%s: vacuum: %" PRIu64 " of %" PRIu64, fs->store,
		         done, total);
	fs->vac_done = done;
	fs->vac_total = total;
	/* between batches everything is committed: let waiting requests run,
	 * so clients are held up by one batch at most, not the whole vacuum */
	mmfs_unlock(fs);
	sched_yield();
	mmfs_vacuum_gate(fs);
	mmfs_wrlock(fs);
	/* requests that ran meanwhile may wait for their group's commit: make
	 * it now, so that the vacuum goes on from a committed store (a rollback
	 * of its next batch must not take their changes with it) */
	if (fs->group != NULL)
		mmfs_commit_now(fs, FUSE_ROOT_ID, NULL);
	return __atomic_load_n(&fs->vac_stop, __ATOMIC_ACQUIRE);
}

/* The vacuum thread: one vacuum, then its result for user.mmfs.stats and
 * for a waiting `wait`. */
static void *mmfs_vacuum_main(void *arg)
{
	struct mmfs *fs = arg;
	struct mms_vacuum_result res;
	int rc;

	mmfs_wrlock(fs);
	fs->vac_done = fs->vac_total = 0;
	rc = mms_vacuum(fs->env, mmfs_vacuum_progress, fs, &res);
	__atomic_store_n(&fs->vac_running, 0, __ATOMIC_RELAXED);
	fs->vac_runs++;
	if (rc == 0) {
		fs->vac_incomplete = res.incomplete;
		fs->vac_before = res.size_before;
		fs->vac_after = res.size_after;
		mmfs_log(LOG_INFO, "%s: vacuum: %" PRIu64 " -> %" PRIu64 " bytes, %" PRIu64
		         " moved%s", fs->store, res.size_before, res.size_after, res.moved_bytes,
		         res.incomplete ? " (stopped early: writers used the free space "
		                          "below its target; run it again)" : "");
	} else {
		mmfs_log_fail(fs, MMFS_CTL_VACUUM, FUSE_ROOT_ID, NULL, rc);
		if (rc == MMS_BADTXN || rc == MMS_CORRUPT)
			mms_rollback(fs->env);
	}
	fs->vac_last_err = mmfs_errno(rc);
	mmfs_unlock(fs);
	pthread_mutex_lock(&fs->vacuum_lock);
	fs->vac_active = 0;
	fs->vac_ended++;
	pthread_cond_broadcast(&fs->vacuum_cond);
	pthread_mutex_unlock(&fs->vacuum_lock);
	return NULL;
}

/*
 * user.mmfs.vacuum: "1" starts a vacuum on its own thread and returns at
 * once (EBUSY if one is running); "wait" waits for the running one, or runs
 * one, and returns its result.  A vacuum never runs inside the request,
 * which would hold the kernel's lock on the root directory all along.
 */
static int mmfs_vacuum_control(struct mmfs *fs, int wait)
{
	uint64_t target;
	int rc = 0;

	pthread_mutex_lock(&fs->vacuum_lock);
	if (__atomic_load_n(&fs->vac_stop, __ATOMIC_ACQUIRE)) {
		pthread_mutex_unlock(&fs->vacuum_lock);
		return ESHUTDOWN;
	}
	if (fs->vac_active && !wait) {
		pthread_mutex_unlock(&fs->vacuum_lock);
		return EBUSY;
	}
	target = fs->vac_ended + 1;
	if (!fs->vac_active) {
		if (fs->vac_joinable)
			pthread_join(fs->vac_thread, NULL); /* it has ended */
		fs->vac_joinable = 0;
		/* running from the start: a stats read right after "1" says so */
		__atomic_store_n(&fs->vac_running, 1, __ATOMIC_RELAXED);
		rc = pthread_create(&fs->vac_thread, NULL, mmfs_vacuum_main, fs);
		if (rc != 0)
			__atomic_store_n(&fs->vac_running, 0, __ATOMIC_RELAXED);
		if (rc == 0) {
			fs->vac_active = 1;
			fs->vac_joinable = 1;
		}
	}
	while (rc == 0 && wait && fs->vac_ended < target)
		pthread_cond_wait(&fs->vacuum_cond, &fs->vacuum_lock);
	if (rc == 0 && wait)
		rc = fs->vac_last_err;
	pthread_mutex_unlock(&fs->vacuum_lock);
	return rc;
}

/* Unmounting: stop a running vacuum at its next batch and wait for it. */
static void mmfs_vacuum_stop(struct mmfs *fs)
{
	pthread_mutex_lock(&fs->vacuum_lock);
	__atomic_store_n(&fs->vac_stop, 1, __ATOMIC_RELEASE);
	if (fs->vac_joinable) {
		pthread_mutex_unlock(&fs->vacuum_lock);
		pthread_join(fs->vac_thread, NULL);
		pthread_mutex_lock(&fs->vacuum_lock);
		fs->vac_joinable = 0;
	}
	pthread_mutex_unlock(&fs->vacuum_lock);
}

/* setxattr of a control name on the root: vacuum or sync. */
static int mmfs_control_set(struct mmfs *fs, const char *name, const char *value,
                            size_t size)
{
	int rc;

	if (strcmp(name, MMFS_CTL_VACUUM) == 0) {
		if (size == 1 && value[0] == '1')
			return mmfs_vacuum_control(fs, 0);
		if (size == 4 && memcmp(value, "wait", 4) == 0)
			return mmfs_vacuum_control(fs, 1);
		return EINVAL;
	}
	if (strcmp(name, MMFS_CTL_SYNC) != 0)
		return EOPNOTSUPP;
	if (size != 1 || value[0] != '1')
		return EINVAL;
	rc = mmfs_sync(fs);
	if (rc != 0)
		mmfs_log_fail(fs, name, FUSE_ROOT_ID, NULL, rc);
	return mmfs_errno(rc);
}

static void mmfs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                             const char *value, size_t size, int flags)
{
	struct mmfs *fs = mmfs_of(req);
	unsigned mflags = 0;
	int rc, err;

	MMFS_COUNT(setxattr);
	if (mmfs_is_control(ino, name)) {
		/* Store-wide controls: for root and whoever mounted, whatever
		 * the root directory's mode says. */
		uid_t uid = fuse_req_ctx(req)->uid;

		fuse_reply_err(req, uid != 0 && uid != fs->owner ? EPERM
		               : mmfs_control_set(fs, name, value, size));
		return;
	}
	if (mmfs_is_acl(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (mmfs_is_security(name))
		__atomic_store_n(&fs->sec_xattrs, 1, __ATOMIC_SEQ_CST);
	if (flags & XATTR_CREATE)
		mflags |= MMS_XATTR_CREATE;
	if (flags & XATTR_REPLACE)
		mflags |= MMS_XATTR_REPLACE;
	mmfs_wrlock(fs);
	rc = mmfs_by_ino(mms_setxattr(fs->env, ino, name, strlen(name), value, size, mflags));
	err = mmfs_done(fs, "setxattr", ino, name, rc);
	/* An attribute too large is E2BIG, as setxattr(2) says, not EFBIG. */
	fuse_reply_err(req, rc == MMS_TOOBIG ? E2BIG : err);
}

static void mmfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                             size_t size)
{
	struct mmfs *fs = mmfs_of(req);
	char *buf = NULL;
	size_t vlen = 0;
	int rc;

	MMFS_COUNT(getxattr);
	if (mmfs_is_control(ino, name)) {
		if (strcmp(name, MMFS_CTL_STATS) != 0) {
			fuse_reply_err(req, ENODATA);
			return;
		}
		mmfs_rdlock(fs);
		rc = mmfs_stats_json(fs, &buf);
		mmfs_unlock(fs);
		if (rc == 0) {
			vlen = strlen(buf);
			/* a size query gets room to spare: the counters move
			 * (and their text grows) before the read that follows */
			if (size == 0)
				fuse_reply_xattr(req, vlen + MMFS_STATS_SLACK);
			else if (size < vlen)
				fuse_reply_err(req, ERANGE);
			else
				fuse_reply_buf(req, buf, vlen);
		}
		goto out;
	}
	/* No key has one: answered without waiting for the lock.  ACLs are
	 * never stored (mmfs_is_acl). */
	if (mmfs_is_acl(name) ||
	    (mmfs_is_security(name) && !__atomic_load_n(&fs->sec_xattrs, __ATOMIC_SEQ_CST))) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (size > 0) {
		buf = malloc(size);
		if (buf == NULL) {
			rc = ENOMEM;
			goto out;
		}
	}
	mmfs_rdlock(fs);
	rc = mmfs_by_ino(mms_getxattr(fs->env, ino, name, strlen(name), buf, size, &vlen));
	mmfs_unlock(fs);
	if (rc == 0) {
		if (size == 0)
			fuse_reply_xattr(req, vlen);
		else
			fuse_reply_buf(req, buf, vlen);
	}
out:
	if (rc != 0) {
		if (rc != MMS_NODATA && rc != MMS_RANGE)
			mmfs_log_fail(fs, "getxattr", ino, name, rc);
		fuse_reply_err(req, mmfs_errno(rc));
	}
	free(buf);
}

static void mmfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mmfs *fs = mmfs_of(req);
	MMFS_COUNT(listxattr);

	/* The root also lists its control name. */
	size_t extra = ino == FUSE_ROOT_ID ? sizeof(MMFS_CTL_STATS) : 0;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if (size > 0) {
		buf = malloc(size);
		if (buf == NULL) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	mmfs_rdlock(fs);
	if (size == 0)
		rc = mmfs_by_ino(mms_listxattr(fs->env, ino, NULL, 0, &len));
	else if (size < extra)
		rc = MMS_RANGE;
	else
		rc = mmfs_by_ino(mms_listxattr(fs->env, ino, buf, size - extra, &len));
	mmfs_unlock(fs);
	if (rc != 0) {
		if (rc != MMS_RANGE)
			mmfs_log_fail(fs, "listxattr", ino, NULL, rc);
		fuse_reply_err(req, mmfs_errno(rc));
	} else if (size == 0) {
		fuse_reply_xattr(req, len + extra);
	} else {
		memcpy(buf + len, MMFS_CTL_STATS, extra);
		fuse_reply_buf(req, buf, len + extra);
	}
	free(buf);
}

static void mmfs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct mmfs *fs = mmfs_of(req);
	int err;

	MMFS_COUNT(removexattr);
	if (mmfs_is_control(ino, name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	mmfs_wrlock(fs);
	err = mmfs_done(fs, "removexattr", ino, name,
	                  mmfs_by_ino(mms_removexattr(fs->env, ino, name, strlen(name))));
	fuse_reply_err(req, err);
}

static const struct fuse_lowlevel_ops mmfs_ops = {
	.init = mmfs_op_init,
	.destroy = mmfs_op_destroy,
	.lookup = mmfs_op_lookup,
	.forget = mmfs_op_forget,
	.forget_multi = mmfs_op_forget_multi,
	.getattr = mmfs_op_getattr,
	.setattr = mmfs_op_setattr,
	.readlink = mmfs_op_readlink,
	.mknod = mmfs_op_mknod,
	.mkdir = mmfs_op_mkdir,
	.symlink = mmfs_op_symlink,
	.link = mmfs_op_link,
	.unlink = mmfs_op_unlink,
	.rmdir = mmfs_op_rmdir,
	.rename = mmfs_op_rename,
	.open = mmfs_op_open,
	.create = mmfs_op_create,
	.read = mmfs_op_read,
	.write = mmfs_op_write,
	.fsync = mmfs_op_fsync,
	.fallocate = mmfs_op_fallocate,
	.copy_file_range = mmfs_op_copy_file_range,
	.lseek = mmfs_op_lseek,
	.opendir = mmfs_op_opendir,
	.readdir = mmfs_op_readdir,
	.readdirplus = mmfs_op_readdirplus,
	.releasedir = mmfs_op_releasedir,
	.fsyncdir = mmfs_op_fsyncdir,
	.statfs = mmfs_op_statfs,
	.setxattr = mmfs_op_setxattr,
	.getxattr = mmfs_op_getxattr,
	.listxattr = mmfs_op_listxattr,
	.removexattr = mmfs_op_removexattr,
	.ioctl = mmfs_op_ioctl,
};

/* ---- Periodic sync ---------------------------------------------------------- */

/* Timer thread: sync every sync_secs seconds when something was committed. */
static void *mmfs_timer_main(void *arg)
{
	struct mmfs *fs = arg;
	struct timespec when;
	int rc;

	pthread_mutex_lock(&fs->timer_mutex);
	while (!fs->timer_stop) {
		clock_gettime(CLOCK_MONOTONIC, &when);
		when.tv_sec += fs->sync_secs;
		while (!fs->timer_stop &&
		       pthread_cond_timedwait(&fs->timer_cond, &fs->timer_mutex, &when) != ETIMEDOUT)
			;
		if (fs->timer_stop)
			break;
		pthread_mutex_unlock(&fs->timer_mutex);
		rc = mmfs_sync(fs);
		if (rc != 0)
			mmfs_log(LOG_ERR, "%s: periodic sync failed: %s", fs->store,
			         mms_strerror(rc));
		pthread_mutex_lock(&fs->timer_mutex);
	}
	pthread_mutex_unlock(&fs->timer_mutex);
	return NULL;
}

/* Start the timer thread (after daemonizing: fork keeps no threads). */
static int mmfs_timer_start(struct mmfs *fs)
{
	pthread_condattr_t attr;
	int rc;

	if (fs->readonly || fs->sync_secs == 0)
		return 0;
	pthread_mutex_init(&fs->timer_mutex, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->timer_cond, &attr);
	pthread_condattr_destroy(&attr);
	rc = pthread_create(&fs->timer, NULL, mmfs_timer_main, fs);
	if (rc != 0) {
		pthread_cond_destroy(&fs->timer_cond);
		pthread_mutex_destroy(&fs->timer_mutex);
		return rc;
	}
	fs->timer_running = 1;
	return 0;
}

/* Stop and join the timer thread. */
static void mmfs_timer_stop(struct mmfs *fs)
{
	if (!fs->timer_running)
		return;
	pthread_mutex_lock(&fs->timer_mutex);
	fs->timer_stop = 1;
	pthread_cond_signal(&fs->timer_cond);
	pthread_mutex_unlock(&fs->timer_mutex);
	pthread_join(fs->timer, NULL);
	pthread_cond_destroy(&fs->timer_cond);
	pthread_mutex_destroy(&fs->timer_mutex);
	fs->timer_running = 0;
}

/* ---- Command line ------------------------------------------------------------ */

enum {
	MMFS_KEY_RO,
	MMFS_KEY_SIZE,
	MMFS_KEY_MAX_SIZE,
	MMFS_KEY_FSNAME,
	MMFS_KEY_SUBTYPE,
	MMFS_KEY_MAX_READ,
	MMFS_KEY_READ_AHEAD,
	MMFS_KEY_NO_PERMS,
};

#define MMFS_OPT(t, p, v) { t, offsetof(struct mmfs_config, p), v }

static const struct fuse_opt mmfs_opts[] = {
	MMFS_OPT("create", create, 1),
	MMFS_OPT("writeback", writeback, 1),
	MMFS_OPT("sync=%u", sync_secs, 0),
	MMFS_OPT("lock_wait=%u", lock_wait, 0),
	MMFS_OPT("store_cache", store_cache, 1),
	FUSE_OPT_KEY("ro", MMFS_KEY_RO),
	/* An fstab line's "defaults" reaches us through mount.fuse3. */
	FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("size=", MMFS_KEY_SIZE),
	FUSE_OPT_KEY("max_size=", MMFS_KEY_MAX_SIZE),
	FUSE_OPT_KEY("fsname=", MMFS_KEY_FSNAME),
	FUSE_OPT_KEY("subtype=", MMFS_KEY_SUBTYPE),
	FUSE_OPT_KEY("max_read=", MMFS_KEY_MAX_READ),
	FUSE_OPT_KEY("read_ahead_kb=", MMFS_KEY_READ_AHEAD),
	/* Permission checks are always on: mmfs adds default_permissions. */
	FUSE_OPT_KEY("default_permissions", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nodefault_permissions", MMFS_KEY_NO_PERMS),
	FUSE_OPT_KEY("no_default_permissions", MMFS_KEY_NO_PERMS),
	FUSE_OPT_KEY("default_permissions=", MMFS_KEY_NO_PERMS),
	FUSE_OPT_END
};

/* fuse_opt_parse() callback: our keyed options and the two arguments. */
static int mmfs_opt_proc(void *data, const char *arg, int key, struct fuse_args *out)
{
	struct mmfs_config *cfg = data;
	const char *val = strchr(arg, '=');

	(void)out;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (cfg->nonopts == 0)
			cfg->store = strdup(arg);
		else if (cfg->nonopts == 1)
			cfg->mountpoint = strdup(arg);
		else {
			fprintf(stderr, "mmfs: unexpected argument '%s'\n", arg);
			cfg->bad = 1;
		}
		cfg->nonopts++;
		return 0;
	case MMFS_KEY_RO:
		cfg->ro = 1;
		return 1; /* the kernel mounts read-only too */
	case MMFS_KEY_SIZE:
	case MMFS_KEY_MAX_SIZE:
		if (mms_parse_size(val + 1, key == MMFS_KEY_SIZE ? &cfg->size
		                                                   : &cfg->max_size) != 0) {
			fprintf(stderr, "mmfs: bad size in option '%s' (a number with "
			        "an optional K, M, G or T suffix)\n", arg);
			cfg->bad = 1;
		}
		if (key == MMFS_KEY_MAX_SIZE)
			cfg->has_max_size = 1;
		return 0;
	case MMFS_KEY_FSNAME:
		cfg->has_fsname = 1;
		return 1;
	case MMFS_KEY_SUBTYPE:
		cfg->has_subtype = 1;
		return 1;
	case MMFS_KEY_MAX_READ:
		if (sscanf(val + 1, "%u", &cfg->max_read) != 1) {
			fprintf(stderr, "mmfs: bad number in option '%s'\n", arg);
			cfg->bad = 1;
		}
		cfg->has_max_read = 1;
		return 1;
	case MMFS_KEY_READ_AHEAD:
		if (sscanf(val + 1, "%u", &cfg->read_ahead_kb) != 1 ||
		    cfg->read_ahead_kb > 1024 * 1024) {
			fprintf(stderr, "mmfs: bad number in option '%s' (KiB, 0 to 1048576)\n",
			        arg);
			cfg->bad = 1;
		}
		cfg->has_read_ahead = 1;
		return 0;
	case MMFS_KEY_NO_PERMS:
		fprintf(stderr, "mmfs: option '%s' refused: the kernel always checks "
		        "permissions on an mmfs mount (default_permissions)\n", arg);
		cfg->bad = 1;
		return 0;
	default:
		return 1; /* libfuse's options */
	}
}

/* Print the usage text. */
static void mmfs_usage(const char *prog)
{
	printf("usage: %s [options] STORE MOUNTPOINT\n\n"
	       "Mount the mmfs store file STORE on MOUNTPOINT.\n\n"
	       "mmfs options:\n"
	       "    -o ro                  mount read-only (the store is opened read-only)\n"
	       "    -o create              create STORE if it does not exist\n"
	       "    -o size=N              initial size of a created store (K/M/G/T)\n"
	       "    -o max_size=N          maximum store size (K/M/G/T; 0: unlimited)\n"
	       "    -o sync=SECONDS        sync to disk every SECONDS (default %u; 0: only\n"
	       "                           on fsync and unmount)\n"
	       "    -o writeback           use the kernel's writeback cache\n"
	       "    -o lock_wait=SECONDS   wait this long for a process letting go of the\n"
	       "                           store (a daemon closing after an unmount;\n"
	       "                           default 5; 0: fail at once)\n"
	       "    -o read_ahead_kb=N     the mount's readahead in KiB (default %u, set\n"
	       "                           through sysfs, as root; 0: the kernel's)\n"
	       "    -o store_cache         keep bytes read or synced in the store file's\n"
	       "                           page cache too (by default they are cached once,\n"
	       "                           for the mount)\n\n"
	       "The kernel checks every caller's permissions (default_permissions is always\n"
	       "on); other users reach the mount with -o allow_other.\n\n",
	       prog, MMFS_SYNC_DEFAULT, MMFS_READ_AHEAD_DEFAULT);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

/*
 * Check that `path` is an empty directory we can mount on.  Prints the
 * reason and returns -1 if not.
 */
static int mmfs_check_mountpoint(const char *path)
{
	struct stat st;
	struct dirent *de;
	DIR *dir;
	int n = 0;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "mmfs: %s: bad mountpoint: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "mmfs: %s: bad mountpoint: not a directory\n", path);
		return -1;
	}
	dir = opendir(path);
	if (dir == NULL) {
		fprintf(stderr, "mmfs: %s: bad mountpoint: %s\n", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(dir)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(dir);
	if (n > 0) {
		fprintf(stderr, "mmfs: %s: bad mountpoint: directory not empty\n", path);
		return -1;
	}
	return 0;
}

/* An absolute form of `path` (malloc'd); the daemon changes to "/". */
static char *mmfs_abspath(const char *path)
{
	char cwd[PATH_MAX];
	char *abs;

	if (path[0] == '/')
		return strdup(path);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return NULL;
	if (asprintf(&abs, "%s/%s", cwd, path) < 0)
		return NULL;
	return abs;
}

/* Open the store as the options say; prints the reason on failure. */
/* mms_open_wait() callback: say that we wait. */
static void mmfs_waiting(void *ctx, long pid, const char *cmd)
{
	const struct mmfs_config *cfg = ctx;

	fprintf(stderr, "mmfs: %s: waiting up to %u s for process %ld (%s) to let go of the store\n",
	        cfg->store, cfg->lock_wait, pid, cmd[0] ? cmd : "?");
}

static int mmfs_open_store(struct mmfs *fs, const struct mmfs_config *cfg)
{
	struct mms_options mo;
	const char *what = "";
	int rc;

	memset(&mo, 0, sizeof(mo));
	mo.flags = (cfg->ro ? MMS_RDONLY : 0) | (cfg->create ? MMS_CREATE : 0) |
	           (cfg->store_cache ? 0 : MMS_CACHE_ONCE);
	mo.initial_size = cfg->size;
	mo.max_size = cfg->max_size;
	rc = mms_open_wait(fs->store, &mo, cfg->lock_wait * 1000u, mmfs_waiting, (void *)cfg,
	                   &fs->env);
	if (rc == MMS_LOCKED) {
		char mnt[4096], cmd[256] = "";
		long pid = 0;

		if (mms_lock_holder(fs->store, &pid, cmd, sizeof cmd) != 0)
			pid = 0;
		if (mms_mount_of(fs->store, mnt, sizeof mnt) == 0)
			fprintf(stderr, "mmfs: %s: cannot open: store is locked: it is mounted at %s; "
			        "unmount it first (fusermount3 -u %s)\n", fs->store, mnt, mnt);
		else if (pid)
			fprintf(stderr, "mmfs: %s: cannot open: store is locked by process %ld (%s)\n",
			        fs->store, pid, cmd[0] ? cmd : "?");
		else
			fprintf(stderr, "mmfs: %s: cannot open: %s\n", fs->store, mms_strerror(rc));
		fs->env = NULL;
		return rc;
	}
	if (rc != 0) {
		const char *detail = mms_open_detail();

		fprintf(stderr, "mmfs: %s: cannot open: %s%s%s\n", fs->store,
		        mms_strerror(rc), *detail ? ": " : "", detail);
		fs->env = NULL;
		return rc;
	}
	mms_set_reuse_hook(fs->env, mmfs_reads_drain, fs);
	if (cfg->has_max_size && !cfg->ro) {
		rc = mms_set_max_size(fs->env, cfg->max_size);
		if (rc == 0)
			rc = mms_commit(fs->env);
		if (rc != 0)
			what = "cannot set max_size";
	}
	if (rc == 0 && (rc = mms_xattr_prefix_used(fs->env, "security.", 9, &fs->sec_xattrs)) != 0)
		what = "cannot read the attributes";
	if (rc != 0) {
		fprintf(stderr, "mmfs: %s: %s: %s\n", fs->store, what, mms_strerror(rc));
		mms_close(fs->env);
		fs->env = NULL;
	}
	return rc;
}

/*
 * Set the readahead of the mount at `mnt` (just mounted): its device
 * number is in /proc/self/mountinfo (a stat of the mount point would wait
 * for FUSE_INIT, which the session loop has not answered yet), and the
 * value in /sys/class/bdi/MAJ:MIN/read_ahead_kb.  Only root may write it:
 * a failure is reported when the user asked for a value, else ignored.
 */
static void mmfs_set_read_ahead(const char *mnt, unsigned kb, int asked)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192], path[128], *dev = NULL;
	int found = 0, ok = 0, err = 0;

	while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL) {
		char *save = NULL, *fields[5];
		int n = 0;

		for (char *tok = strtok_r(line, " ", &save); tok && n < 5;
		     tok = strtok_r(NULL, " ", &save))
			fields[n++] = tok;
		/* mount points with spaces are escaped (\040): compared as is,
		 * such a mount is not found and keeps the kernel's readahead */
		if (n == 5 && strcmp(fields[4], mnt) == 0) {
			dev = fields[2];
			found = 1;
		}
	}
	if (found) {
		snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
		FILE *ra = fopen(path, "w");
		ok = ra != NULL && fprintf(ra, "%u\n", kb) > 0;
		err = errno;
		if (ra != NULL && fclose(ra) != 0) {
			ok = 0;
			err = errno;
		}
	}
	if (f != NULL)
		fclose(f);
	if (!ok && asked)
		mmfs_log(LOG_WARNING, "%s: cannot set read_ahead_kb=%u: %s", mnt, kb,
		         found ? strerror(err) : "the mount is not in /proc/self/mountinfo");
}

/*
 * Called by mount(8) as /sbin/mount.mmfs or /sbin/mount.fuse.mmfs (links to
 * this program, installed by make install), the arguments are mount's:
 *   SPEC DIR [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]
 * Rewrite them to mmfs's own, dropping the options that are mount(8)'s and
 * not the filesystem's (defaults, auto, noauto, nofail, user, users, owner,
 * _netdev, x-*, comment=...).  -f (mount's "fake") exits 0 at once.
 * Returns 0, or an exit status to leave with.
 */
static int mmfs_mount_helper_args(int *argcp, char ***argvp)
{
	static const char *const drop[] = { "defaults", "auto", "noauto", "nofail", "user", "users",
	                                    "nouser", "owner", "group", "_netdev", "rw", NULL };
	int argc = *argcp;
	char **argv = *argvp;
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	if (strcmp(base, "mount.mmfs") != 0 && strcmp(base, "mount.fuse.mmfs") != 0)
		return 0;
	if (argc < 3 || argv[1][0] == '-') {
		fprintf(stderr, "usage: %s STORE MOUNTPOINT [-sfnv] [-o OPTIONS]\n", base);
		return MMFS_EXIT_USAGE;
	}
	char *opts = calloc(1, 1);
	size_t olen = 0;
	int fake = 0;
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-o") || !strcmp(a, "-t") || !strcmp(a, "-N")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s: option %s needs a value\n", base, a);
				free(opts);
				return MMFS_EXIT_USAGE;
			}
			if (a[1] == 'N') {
				fprintf(stderr, "%s: mount namespaces (-N) are not supported\n", base);
				free(opts);
				return MMFS_EXIT_USAGE;
			}
			if (a[1] == 'o') {
				char *list = strdup(argv[i + 1]), *save = NULL;
				for (char *o = strtok_r(list, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
					int skip = !strncmp(o, "x-", 2) || !strncmp(o, "comment=", 8);
					for (int d = 0; drop[d] && !skip; d++)
						skip = !strcmp(o, drop[d]);
					if (skip)
						continue;
					char *n = realloc(opts, olen + strlen(o) + 2);
					if (!n)
						break;
					opts = n;
					olen += (size_t)sprintf(opts + olen, "%s%s", olen ? "," : "", o);
				}
				free(list);
			}
			i++;
		} else if (a[0] == '-' && a[1] && strspn(a + 1, "sfnv") == strlen(a + 1)) {
			fake |= strchr(a, 'f') != NULL;
		} else {
			fprintf(stderr, "%s: unknown argument '%s'\n", base, a);
			free(opts);
			return MMFS_EXIT_USAGE;
		}
	}
	if (fake) {
		free(opts);
		return -1; /* exit 0: nothing to do */
	}
	char **nv = calloc(6, sizeof *nv);
	int n = 0;
	nv[n++] = argv[0];
	nv[n++] = argv[1];
	nv[n++] = argv[2];
	if (olen) {
		nv[n++] = "-o";
		nv[n++] = opts;
	} else {
		free(opts);
	}
	nv[n] = NULL;
	*argcp = n;
	*argvp = nv;
	return 0;
}

int main(int argc, char *argv[])
{
	int hrc = mmfs_mount_helper_args(&argc, &argv);
	if (hrc)
		return hrc < 0 ? 0 : hrc;
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct mmfs_config cfg;
	struct fuse_cmdline_opts opts;
	struct fuse_loop_config *loop = NULL;
	struct fuse_session *se = NULL;
	pthread_rwlockattr_t lattr;
	struct mmfs fs;
	char *mnt = NULL;
	int ret = MMFS_EXIT_USAGE, rc;
	int mounted = 0, handlers = 0;

	memset(&cfg, 0, sizeof(cfg));
	memset(&opts, 0, sizeof(opts));
	memset(&fs, 0, sizeof(fs));
	cfg.sync_secs = MMFS_SYNC_DEFAULT;
	cfg.lock_wait = MMFS_LOCK_WAIT_DEFAULT;
	cfg.read_ahead_kb = MMFS_READ_AHEAD_DEFAULT;
	cfg.max_read = MMFS_MAX_IO;
	fuse_set_log_func(mmfs_fuse_log);
	pthread_rwlockattr_init(&lattr);
	/* Writers must not starve behind a stream of reads. */
	pthread_rwlockattr_setkind_np(&lattr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&fs.lock, &lattr);
	pthread_mutex_init(&fs.vacuum_lock, NULL);
	pthread_mutex_init(&fs.sync_mutex, NULL);
	pthread_mutex_init(&fs.commit_mutex, NULL);
	pthread_cond_init(&fs.commit_cond, NULL);
	pthread_cond_init(&fs.vacuum_cond, NULL);
	pthread_mutex_init(&fs.io_mutex, NULL);
	pthread_cond_init(&fs.io_cond, NULL);
	pthread_rwlockattr_destroy(&lattr);

	if (fuse_opt_parse(&args, &cfg, mmfs_opts, mmfs_opt_proc) != 0 || cfg.bad)
		goto out;
	if (fuse_parse_cmdline(&args, &opts) != 0)
		goto out;
	if (opts.show_help) {
		mmfs_usage(argv[0]);
		ret = 0;
		goto out;
	}
	if (opts.show_version) {
		printf("mmfs %s\n", MMS_VERSION_STRING);
		printf("FUSE library version %s\n", fuse_pkgversion());
		fuse_lowlevel_version();
		ret = 0;
		goto out;
	}
	if (cfg.nonopts != 2) {
		fprintf(stderr, "usage: %s [options] STORE MOUNTPOINT\n"
		        "       %s --help\n", argv[0], argv[0]);
		goto out;
	}
	if (cfg.create && cfg.ro) {
		fprintf(stderr, "mmfs: options 'create' and 'ro' exclude each other\n");
		goto out;
	}
	fs.store = mmfs_abspath(cfg.store);
	if (fs.store == NULL) {
		fprintf(stderr, "mmfs: %s: %s\n", cfg.store, strerror(errno));
		ret = MMFS_EXIT_FAIL;
		goto out;
	}
	if (!cfg.has_fsname) {
		char *fsname = NULL, *opt = NULL;

		rc = fuse_opt_add_opt_escaped(&fsname, fs.store);
		if (rc == 0 && asprintf(&opt, "-ofsname=%s", fsname) < 0)
			rc = -1;
		if (rc == 0)
			rc = fuse_opt_add_arg(&args, opt);
		free(fsname);
		free(opt);
		if (rc != 0) {
			fprintf(stderr, "mmfs: out of memory\n");
			goto out;
		}
	}
	if (!cfg.has_subtype && fuse_opt_add_arg(&args, "-osubtype=mmfs") != 0)
		goto out;
	if (!cfg.has_max_read && fuse_opt_add_arg(&args, "-omax_read=1048576") != 0)
		goto out;
	/* The kernel checks modes and owners for every caller (with
	 * allow_other, users other than the one who mounted). */
	if (fuse_opt_add_arg(&args, "-odefault_permissions") != 0)
		goto out;

	fs.readonly = cfg.ro;
	fs.foreground = opts.foreground;
	fs.debug = opts.debug;
	fs.writeback = cfg.writeback;
	fs.sync_secs = cfg.sync_secs;
	fs.max_read = cfg.max_read;
	fs.owner = getuid();
	fs.drop_cache = !cfg.store_cache;
	if (!fs.readonly && (fs.known = mmfs_known_new()) == NULL) {
		fprintf(stderr, "mmfs: out of memory\n");
		goto out;
	}

	se = fuse_session_new(&args, &mmfs_ops, sizeof(mmfs_ops), &fs);
	if (se == NULL) {
		fprintf(stderr, "mmfs: bad options (see %s --help)\n", argv[0]);
		goto out;
	}
	ret = MMFS_EXIT_FAIL;
	if (mmfs_check_mountpoint(cfg.mountpoint) != 0)
		goto out;
	mnt = realpath(cfg.mountpoint, NULL);
	if (mnt == NULL) {
		fprintf(stderr, "mmfs: %s: bad mountpoint: %s\n", cfg.mountpoint,
		        strerror(errno));
		goto out;
	}
	fs.mnt = mnt;
	if (mmfs_open_store(&fs, &cfg) != 0)
		goto out;
	if (fuse_set_signal_handlers(se) != 0) {
		fprintf(stderr, "mmfs: cannot set signal handlers\n");
		goto out;
	}
	handlers = 1;
	if (fuse_session_mount(se, mnt) != 0) {
		fprintf(stderr, "mmfs: %s: cannot mount %s\n", mnt, fs.store);
		goto out;
	}
	mounted = 1;
	if (cfg.read_ahead_kb != 0)
		mmfs_set_read_ahead(mnt, cfg.read_ahead_kb, cfg.has_read_ahead);
	/* The store's lock lives in its open file description: fork keeps it. */
	if (fuse_daemonize(opts.foreground) != 0)
		goto out;
	if (!opts.foreground) {
		openlog("mmfs", LOG_PID, LOG_DAEMON);
		mmfs_log_stderr = 0;
	}
	rc = mmfs_timer_start(&fs);
	if (rc != 0) {
		mmfs_log(LOG_ERR, "%s: cannot start the sync timer: %s", fs.store,
		         strerror(rc));
		goto out;
	}

	loop = fuse_loop_cfg_create();
	if (loop == NULL)
		goto out;
	fuse_loop_cfg_set_clone_fd(loop, 1);
	fuse_loop_cfg_set_idle_threads(loop, opts.max_idle_threads != UINT_MAX &&
	                               opts.max_idle_threads != 0 ?
	                               opts.max_idle_threads : MMFS_IDLE_THREADS);
	fuse_loop_cfg_set_max_threads(loop, opts.max_threads);
	if (opts.singlethread)
		rc = fuse_session_loop(se);
	else
		rc = fuse_session_loop_mt(se, loop);
	/* 0, or the number of the signal that ended the loop: a clean exit. */
	ret = rc >= 0 ? 0 : MMFS_EXIT_FAIL;
	if (rc < 0)
		mmfs_log(LOG_ERR, "%s: session loop failed: %s", fs.store, strerror(-rc));

out:
	mmfs_vacuum_stop(&fs);
	mmfs_timer_stop(&fs);
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se != NULL)
		fuse_session_destroy(se); /* runs mmfs_op_destroy if still due */
	if (fs.env != NULL) {
		rc = mms_close(fs.env);
		if (rc != 0) {
			mmfs_log(LOG_ERR, "%s: close failed: %s", fs.store, mms_strerror(rc));
			ret = MMFS_EXIT_FAIL;
		}
	}
	if (loop != NULL)
		fuse_loop_cfg_destroy(loop);
	pthread_rwlock_destroy(&fs.lock);
	pthread_mutex_destroy(&fs.vacuum_lock);
	pthread_mutex_destroy(&fs.sync_mutex);
	pthread_mutex_destroy(&fs.commit_mutex);
	pthread_cond_destroy(&fs.commit_cond);
	pthread_mutex_destroy(&fs.io_mutex);
	pthread_cond_destroy(&fs.io_cond);
	pthread_cond_destroy(&fs.vacuum_cond);
	mmfs_known_free(fs.known);
	free(mnt);
	free(opts.mountpoint);
	free(cfg.store);
	free(cfg.mountpoint);
	free((char *)fs.store);
	fuse_opt_free_args(&args);
	return ret;
}
