/*
 * env.c - opening and closing a store, the lock, store-wide figures: the
 * top of the engine.
 *
 * Open picks the newest valid meta that can be trusted (txn.c decodes and
 * writes metas; doc/FORMAT.md says which is trusted), maps the file
 * (file.c), then recovers: a read-write open reclaims orphans (inode.c),
 * and syncs a crashed process's last commit.  Close syncs, and gives the
 * free tail of the file back (vacuum.c).  Nothing below calls up here.
 */
#define _GNU_SOURCE
#include "mms_int.h"
#include "io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>


static __thread char mms_open_msg[512];

const char *mms_open_detail(void)
{
	return mms_open_msg;
}

static int mms_open_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int mms_open_fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(mms_open_msg, sizeof(mms_open_msg), fmt, ap);
	va_end(ap);
	return err;
}

const char *mms_path(mms_env *env) { return env->path; }
int mms_fd(mms_env *env) { return env->fd; }

int mms_drop_cache(mms_env *env, uint64_t off, uint64_t len)
{
	uint64_t first = off / MMS_PAGE_SIZE, end;
	if (len == 0)
		end = env->file_pages;
	else
		end = (off + len + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE;
	if (end > first)
		mms_file_drop(env, first, end - first);
	return 0;
}
int mms_readonly(mms_env *env) { return (env->flags & MMS_RDONLY) != 0; }


/* ---- open and close ---------------------------------------------------------- */

static void mms_env_free(mms_env *env)
{
	mms_holds_free(env);
	mms_bt_cache_free(env);
	mms_alloc_close(env);
	mms_pager_close(env);
	mms_file_close(env);
	if (env->fd >= 0)
		close(env->fd);
	pthread_mutex_destroy(&env->detail_lock);
	free(env->meta_page);
	free(env->sync_page);
	free(env->commit_page);
	free(env->path);
	free(env);
}

/* Initialize a new, empty store in env->fd. */
static int mms_create_store(mms_env *env, const struct mms_options *o)
{
	uint64_t init = o->initial_size ? o->initial_size : (1u << 20);
	uint64_t pages = (init + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE;
	uint64_t maxp = o->max_size / MMS_PAGE_SIZE;
	if (pages < 16)
		pages = 16;
	if (o->max_size && maxp < 16)
		return mms_open_fail(MMS_INVAL, "max_size %llu is below the minimum of 64 KiB",
		                     (unsigned long long)o->max_size);
	if (maxp && pages > maxp)
		pages = maxp;
	int trc = mms_io_truncate(env->fd, pages * MMS_PAGE_SIZE);
	if (trc)
		return mms_open_fail(trc, "cannot size the new store: %s", strerror(trc));
	struct mms_meta *m = &env->meta;
	memset(m, 0, sizeof(*m));
	m->file_pages = pages;
	env->file_pages = env->synced_pages = pages;
	m->max_pages = maxp;
	m->version = MMS_FORMAT_VERSION;
	m->next_ino = MMS_ROOT_INO + 1;
	m->created_ns = (uint64_t)mms_now_ns();
	if (getrandom(m->uuid, sizeof(m->uuid), 0) != (ssize_t)sizeof(m->uuid)) {
		uint64_t t = m->created_ns ^ (uint64_t)getpid();
		memcpy(m->uuid, &t, 8);
	}
	env->committed = *m;
	uint8_t *pg = env->meta_page;
	memset(pg, 0, MMS_PAGE_SIZE);
	mms_put_le32(pg + 208, 1);
	mms_put_le64(pg + 224, MMS_META_PAGES);
	mms_put_le32(pg + 232, (uint32_t)(pages - MMS_META_PAGES));
	int rc = mms_alloc_open(env, pg, 1);
	if (!rc)
		rc = mms_file_open(env);
	if (!rc)
		rc = mms_pager_open(env);
	if (!rc)
		rc = mms_txn_enter(env);
	if (!rc)
		rc = mms_inode_create_root(env);
	if (!rc)
		rc = mms_sync(env);
	if (rc)
		return mms_open_fail(rc, "cannot initialize the store: %s", env->detail);
	/* the other slot gets the same synced meta, so either can be lost */
	rc = mms_pwrite_page(env, env->meta_page, (uint64_t)env->commit_slot);
	if (!rc)
		rc = mms_datasync(env);
	if (rc)
		return mms_open_fail(rc, "cannot initialize the store: %s", env->detail);
	return 0;
}

/* Read both metas and choose one.  Fills env->meta, env->meta_page, commit_slot. */
static int mms_choose_meta(mms_env *env, uint64_t file_bytes, int *synced)
{
	uint8_t *pgs = NULL;
	struct mms_meta m[2];
	int ok[2] = { 0, 0 }, trusted[2] = { 0, 0 }, rcs[2] = { MMS_NOTSTORE, MMS_NOTSTORE };
	int rc;

	if (posix_memalign((void **)&pgs, MMS_PAGE_SIZE, 2 * MMS_PAGE_SIZE))
		return ENOMEM;
	memset(pgs, 0, 2 * MMS_PAGE_SIZE);
	size_t got = 0;
	rc = mms_io_pread(env->fd, pgs, 2 * MMS_PAGE_SIZE, 0, &got);
	if (rc) {
		rc = mms_open_fail(rc, "cannot read: %s", strerror(rc));
		goto out;
	}
	ssize_t r = (ssize_t)got;
	for (int s = 0; s < 2; s++) {
		char why[160];
		if ((uint64_t)r < (uint64_t)(s + 1) * MMS_PAGE_SIZE) {
			snprintf(env->meta_problem[s], sizeof(env->meta_problem[s]),
			         "missing (the file has only %zd bytes)", r);
			rcs[s] = s == 0 && r < 8 ? MMS_NOTSTORE : MMS_TRUNCATED;
			if (r >= 8 && memcmp(pgs, mms_magic, 8))
				rcs[s] = MMS_NOTSTORE;
			continue;
		}
		rcs[s] = mms_meta_decode(pgs + s * MMS_PAGE_SIZE, &m[s],
		                         (env->flags & MMS_UPGRADE) != 0, why, sizeof(why));
		if (rcs[s]) {
			snprintf(env->meta_problem[s], sizeof(env->meta_problem[s]), "%s", why);
			continue;
		}
		ok[s] = 1;
		uint32_t flags = mms_get_le32(pgs + s * MMS_PAGE_SIZE + 20);
		trusted[s] = (flags & MMS_META_SYNCED) ||
		             !memcmp(pgs + s * MMS_PAGE_SIZE + 40, env->boot_id, 16);
		/* an untrusted meta is not damage: it is the expected state after
		 * a machine crash, and check does not report it */
	}
	int c = -1;
	for (int s = 0; s < 2; s++)
		if (ok[s] && trusted[s] && (c < 0 || m[s].generation > m[c].generation))
			c = s;
	if (c < 0) {
		rc = rcs[0] == MMS_NOTSTORE && rcs[1] == MMS_NOTSTORE ? MMS_NOTSTORE
		   : (rcs[0] == MMS_VERSION || rcs[1] == MMS_VERSION) ? MMS_VERSION
		   : (rcs[0] == MMS_TRUNCATED || rcs[1] == MMS_TRUNCATED) && file_bytes < 2 * MMS_PAGE_SIZE
		         ? MMS_TRUNCATED : MMS_CORRUPT;
		if (file_bytes == 0)
			rc = mms_open_fail(MMS_NOTSTORE, "the file is empty");
		else if ((ok[0] && !trusted[0]) || (ok[1] && !trusted[1]))
			rc = mms_open_fail(MMS_CORRUPT, "no meta page was synced before the last reboot");
		else if (rcs[0] == MMS_VERSION && (rcs[1] == MMS_VERSION || rcs[1] == MMS_CORRUPT))
			rc = mms_open_fail(rc, "%s", env->meta_problem[0]);
		else if (rcs[1] == MMS_VERSION && rcs[0] == MMS_CORRUPT)
			rc = mms_open_fail(rc, "%s", env->meta_problem[1]);
		else
			rc = mms_open_fail(rc, "meta 0: %s; meta 1: %s", env->meta_problem[0][0] ? env->meta_problem[0] : "ok",
			                   env->meta_problem[1][0] ? env->meta_problem[1] : "ok");
		goto out;
	}
	if (m[c].file_pages * MMS_PAGE_SIZE > file_bytes) {
		rc = mms_open_fail(MMS_TRUNCATED, "the file has %llu bytes but meta %d records %llu",
		                   (unsigned long long)file_bytes, c,
		                   (unsigned long long)(m[c].file_pages * MMS_PAGE_SIZE));
		goto out;
	}
	env->meta = m[c];
	env->committed = m[c];
	env->file_pages = file_bytes / MMS_PAGE_SIZE;
	/* until a sync, the file must keep what any valid meta records */
	env->synced_pages = m[c].file_pages;
	for (int s = 0; s < 2; s++)
		if (ok[s] && trusted[s] && m[s].file_pages > env->synced_pages &&
		    m[s].file_pages <= env->file_pages)
			env->synced_pages = m[s].file_pages;
	memcpy(env->meta_page, pgs + c * MMS_PAGE_SIZE, MMS_PAGE_SIZE);
	*synced = (mms_get_le32(env->meta_page + 20) & MMS_META_SYNCED) != 0;
	/* commits go to the slot that does not hold the last synced meta */
	env->commit_slot = *synced ? 1 - c : c;
	rc = 0;
out:
	free(pgs);
	return rc;
}

int mms_open(const char *path, const struct mms_options *opts, mms_env **envp)
{
	static const struct mms_options defaults = { 0, 0, 0, 0 };
	const struct mms_options *o = opts ? opts : &defaults;
	int rdonly = (o->flags & MMS_RDONLY) != 0, created = 0, rc, synced = 0;
	struct stat st;

	mms_open_msg[0] = 0;
	if (!path || !*path)
		return mms_open_fail(MMS_INVAL, "no path given");
	if (rdonly && (o->flags & MMS_CREATE))
		return mms_open_fail(MMS_INVAL, "cannot create a store read-only");
	mms_env *env = calloc(1, sizeof(*env));
	if (!env)
		return ENOMEM;
	env->fd = -1;
	/* epochs never repeat across envs: a leaf cached for an earlier env
	 * at the same address must not look valid (btree.c) */
	static uint64_t serial;
	env->epoch = __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED) << 40;
	pthread_mutex_init(&env->detail_lock, NULL);
	env->flags = o->flags;
	env->path = strdup(path);
	if (!env->path || posix_memalign((void **)&env->meta_page, MMS_PAGE_SIZE, MMS_PAGE_SIZE)) {
		rc = ENOMEM;
		goto fail;
	}
	mms_io_boot_id(env->boot_id);

	int oflags = (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	if (o->flags & MMS_CREATE) {
		env->fd = open(path, oflags | O_CREAT | O_EXCL, o->mode ? o->mode : 0644);
		if (env->fd >= 0)
			created = 1;
		else if (errno == EEXIST && (o->flags & MMS_EXCL)) {
			rc = mms_open_fail(MMS_EXISTS, "the file already exists");
			goto fail;
		}
	}
	if (env->fd < 0)
		env->fd = open(path, oflags);
	if (env->fd < 0) {
		rc = errno == ENOENT ? MMS_NOTFOUND : errno;
		mms_open_fail(rc, "%s", strerror(errno));
		goto fail;
	}
	if (o->flags & MMS_CACHE_ONCE)
		mms_io_no_readahead(env->fd);
	if (flock(env->fd, (rdonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? MMS_LOCKED : errno;
		if (rc == MMS_LOCKED)
			mms_open_fail(rc, rdonly ? "another process has it open read-write"
			                         : "another process has it open");
		else
			mms_open_fail(rc, "cannot lock it: %s", strerror(errno));
		if (created)
			unlink(path);
		goto fail;
	}
	if (fstat(env->fd, &st) < 0) {
		rc = mms_open_fail(errno, "cannot stat: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = mms_open_fail(MMS_NOTSTORE, "not a regular file");
		goto fail;
	}
	if (created) {
		rc = mms_create_store(env, o);
		if (rc) {
			unlink(path);
			goto fail;
		}
		*envp = env;
		return 0;
	}
	rc = mms_choose_meta(env, (uint64_t)st.st_size, &synced);
	if (rc)
		goto fail;
	rc = mms_file_open(env);
	if (!rc)
		rc = mms_pager_open(env);
	if (!rc)
		rc = mms_alloc_open(env, env->meta_page, synced);
	if (rc) {
		mms_open_fail(rc, "%s", env->detail[0] ? env->detail : mms_strerror(rc));
		goto fail;
	}
	if (!rdonly) {
		/* A meta left by a crashed process: make it the synced state, so
		 * what it freed becomes reusable and nothing older is needed. */
		env->upgrading = 1; /* recovery keeps an older format as it is */
		if (!synced)
			rc = mms_sync(env);
		if (!rc && env->meta.orphans) {
			rc = mms_orphans_reclaim(env);
			if (!rc)
				rc = mms_sync(env);
		}
		env->upgrading = 0;
		/* The slot commits go to holds a torn or damaged meta (a power
		 * loss during its write): give it a copy of the synced meta, so
		 * that both slots are valid again.  The synced one stays put. */
		if (!rc && env->meta_problem[env->commit_slot][0] &&
		    (mms_get_le32(env->meta_page + 20) & MMS_META_SYNCED)) {
			rc = mms_pwrite_page(env, env->meta_page, (uint64_t)env->commit_slot);
			if (!rc)
				rc = mms_datasync(env);
			if (!rc)
				env->meta_problem[env->commit_slot][0] = 0;
		}
		if (rc) {
			mms_open_fail(rc, "cannot recover: %s", env->detail);
			goto fail;
		}
		/* Only now that the chosen meta is the synced one may the file
		 * lose a tail that an older synced meta still counted on. */
		if (env->file_pages > env->meta.file_pages &&
		    (rc = mms_file_shrink(env, env->meta.file_pages))) {
			mms_open_fail(rc, "cannot drop the unused tail: %s", env->detail);
			goto fail;
		}
	}
	*envp = env;
	return 0;
fail:
	mms_env_free(env);
	return rc;
}

/* A close punches this many free runs or more: it writes one more meta,
 * saying they are holes (MMS_META_HOLES), so that the next close of the
 * store, if nothing changed, punches none of them again. */
#define MMS_CLOSE_HOLES_RUNS 64u

int mms_close(mms_env *env)
{
	int rc = 0;
	if (!env)
		return 0;
	if (!(env->flags & MMS_RDONLY) && env->damaged) {
		/* nothing more is written to a damaged store: not even the
		 * punching of free space, which a damaged free list misplaces */
		if (env->txn_active || env->txn_bad)
			mms_rollback(env);
	} else if (!(env->flags & MMS_RDONLY)) {
		if (env->txn_bad)
			mms_rollback(env);
		rc = mms_sync(env);
		/* a closed store keeps no slack from segment growth, and no disk
		 * for the free pages inside it */
		uint64_t end = mms_alloc_used_end(env);
		if (!rc && env->meta.file_pages - end >= 64 && env->meta.file_pages - end >= env->meta.file_pages / 16)
			rc = mms_trim(env);
		/* Punch what may still hold bytes: every free run, or (the meta
		 * said they were holes) what became free since.  With many runs,
		 * one more sync writes a meta that says they are all holes now,
		 * so that the next close (of a store that did not change: none)
		 * need not punch them again. */
		int clean = (mms_get_le32(env->meta_page + 20) & MMS_META_HOLES) &&
		            mms_alloc_free_punched(env) && !mms_alloc_loaded_pending(env);
		uint64_t runs = 0;
		if (!rc) {
			mms_alloc_punch_free(env);
			mms_alloc_totals(env, NULL, NULL, &runs, NULL);
		}
		/* (that sync's commit may free pages itself, a free-list blob it
		 * replaces: they are punched, and one more sync says so; three
		 * rounds at most, else the next close punches every run again) */
		for (int round = 0; !rc && !clean && round < 3 && runs >= MMS_CLOSE_HOLES_RUNS &&
		                    env->meta.version == MMS_FORMAT_VERSION && mms_alloc_free_punched(env);
		     round++) {
			env->closing = 1;
			rc = mms_txn_enter(env);
			if (!rc)
				rc = mms_sync(env);
			env->closing = 0;
			clean = (mms_get_le32(env->meta_page + 20) & MMS_META_HOLES) != 0;
			if (!rc && !clean)
				mms_alloc_punch_free(env);
		}
	}
	mms_env_free(env);
	return rc;
}

/* ---- who holds the lock -------------------------------------------------------- */

int mms_lock_holder(const char *path, long *pidp, char *cmd, size_t cmdlen)
{
	struct stat st;
	char line[512];
	long found = 0;
	if (stat(path, &st) != 0)
		return errno;
	FILE *f = fopen("/proc/locks", "r");
	if (!f)
		return errno;
	while (!found && fgets(line, sizeof line, f)) {
		/* "1: FLOCK  ADVISORY  WRITE 1234 08:02:131 0 EOF" ("->" for a waiter) */
		char kind[16], type[16], mode[16];
		long pid;
		unsigned maj, min;
		unsigned long long ino;
		const char *p = strchr(line, ':');
		if (!p || strstr(line, "->"))
			continue;
		if (sscanf(p + 1, "%15s %15s %15s %ld %x:%x:%llu", kind, type, mode, &pid, &maj, &min, &ino) != 7)
			continue;
		if (strcmp(kind, "FLOCK") || ino != (unsigned long long)st.st_ino ||
		    makedev(maj, min) != st.st_dev || pid == getpid())
			continue;
		found = pid;
	}
	fclose(f);
	if (!found)
		return MMS_NOTFOUND;
	/* /proc/locks names the process that took the lock, which may be gone
	 * (a daemon that forked after opening, flock(1)): the holder is a
	 * process that has the file open */
	long holder = 0;
	DIR *proc = opendir("/proc");
	struct dirent *de;
	while (proc && !holder && (de = readdir(proc))) {
		char fdpath[300];
		long pid = strtol(de->d_name, NULL, 10);
		if (pid <= 0 || pid == getpid())
			continue;
		snprintf(fdpath, sizeof fdpath, "/proc/%ld/fd", pid);
		DIR *fds = opendir(fdpath);
		struct dirent *fe;
		while (fds && (fe = readdir(fds))) {
			char one[600];
			struct stat fst;
			if (fe->d_name[0] == '.')
				continue;
			snprintf(one, sizeof one, "%s/%s", fdpath, fe->d_name);
			if (stat(one, &fst) == 0 && fst.st_ino == st.st_ino && fst.st_dev == st.st_dev) {
				holder = pid;
				break;
			}
		}
		if (fds)
			closedir(fds);
	}
	if (proc)
		closedir(proc);
	if (holder)
		found = holder;
	*pidp = found;
	if (cmd && cmdlen) {
		char cpath[64];
		cmd[0] = 0;
		snprintf(cpath, sizeof cpath, "/proc/%ld/cmdline", found);
		int fd = open(cpath, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, cmd, cmdlen - 1);
			close(fd);
			if (n < 0)
				n = 0;
			cmd[n] = 0;
			for (ssize_t i = 0; i + 1 < n; i++)
				if (cmd[i] == 0)
					cmd[i] = ' ';
		}
	}
	return 0;
}

int mms_mount_of(const char *path, char *mnt, size_t mntlen)
{
	char *real = realpath(path, NULL), line[8192];
	int rc = MMS_NOTFOUND;
	if (!real)
		return errno;
	FILE *f = fopen("/proc/self/mounts", "r");
	if (!f) {
		rc = errno;
		free(real);
		return rc;
	}
	while (rc == MMS_NOTFOUND && fgets(line, sizeof line, f)) {
		char src[4096], dir[4096], type[64];
		if (sscanf(line, "%4095s %4095s %63s", src, dir, type) != 3 || strcmp(type, "fuse.mmfs"))
			continue;
		/* /proc/self/mounts escapes space, tab, newline and backslash */
		for (char *q = src, *w = src;; q++, w++) {
			if (q[0] == '\\' && q[1] >= '0' && q[1] <= '3' && q[2] && q[3]) {
				*w = (char)((q[1] - '0') * 64 + (q[2] - '0') * 8 + (q[3] - '0'));
				q += 3;
			} else if (!(*w = *q)) {
				break;
			}
		}
		if (strcmp(src, real))
			continue;
		if (mnt && mntlen)
			snprintf(mnt, mntlen, "%s", dir);
		rc = 0;
	}
	fclose(f);
	free(real);
	return rc;
}

int mms_open_wait(const char *path, const struct mms_options *opts, unsigned wait_ms,
                  mms_wait_fn waiting, void *ctx, mms_env **envp)
{
	struct timespec start, now;
	int told = 0;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int rc = mms_open(path, opts, envp);
		if (rc != MMS_LOCKED || wait_ms == 0)
			return rc;
		/* a live mount does not let go: waiting would not help */
		if (mms_mount_of(path, NULL, 0) == 0)
			return rc;
		clock_gettime(CLOCK_MONOTONIC, &now);
		int64_t ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (ms >= wait_ms) {
			/* keep the detail of the last attempt */
			return rc;
		}
		if (!told && waiting) {
			long pid = 0;
			char cmd[256] = "";
			if (mms_lock_holder(path, &pid, cmd, sizeof cmd) != 0)
				pid = 0;
			waiting(ctx, pid, cmd);
			told = 1;
		}
		struct timespec nap = { 0, 50 * 1000 * 1000 };
		nanosleep(&nap, NULL);
	}
}

/* ---- store-wide ---------------------------------------------------------------- */

int mms_stats(mms_env *env, struct mms_info *info)
{
	struct stat st;
	uint64_t freep, pend, nruns, largest;
	memset(info, 0, sizeof(*info));
	mms_alloc_totals(env, &freep, &pend, &nruns, &largest);
	info->page_size = MMS_PAGE_SIZE;
	info->format_version = env->meta.version;
	info->file_size = env->meta.file_pages * MMS_PAGE_SIZE;
	if (fstat(env->fd, &st) == 0)
		info->disk_size = (uint64_t)st.st_blocks * 512;
	info->max_size = env->meta.max_pages * MMS_PAGE_SIZE;
	info->tree_bytes = env->meta.tree_pages * MMS_PAGE_SIZE;
	info->data_bytes = env->meta.data_pages * MMS_PAGE_SIZE;
	info->used_bytes = (MMS_META_PAGES + env->meta.tree_pages + env->meta.data_pages +
	                    env->meta.blob_pages) * MMS_PAGE_SIZE;
	info->free_bytes = freep * MMS_PAGE_SIZE;
	info->pending_bytes = pend * MMS_PAGE_SIZE;
	info->free_extents = nruns;
	/* growth room: the host's free space, capped by max_size */
	struct statvfs host;
	uint64_t grow = UINT64_MAX;
	if (fstatvfs(env->fd, &host) == 0)
		grow = (uint64_t)host.f_bavail * host.f_frsize;
	if (env->meta.max_pages) {
		uint64_t cap = env->meta.max_pages * MMS_PAGE_SIZE;
		uint64_t left = cap > info->file_size ? cap - info->file_size : 0;
		grow = grow < left ? grow : left;
	}
	info->capacity_bytes = grow == UINT64_MAX ? UINT64_MAX : info->file_size + grow;
	info->avail_bytes = grow == UINT64_MAX ? UINT64_MAX : info->free_bytes + grow;
	info->fragmentation = freep ? 1.0 - (double)largest / (double)freep : 0.0;
	info->keys = env->meta.keys;
	info->dirs = env->meta.dirs;
	info->orphans = env->meta.orphans;
	info->generation = env->meta.generation;
	info->synced_generation = env->meta.synced_generation;
	info->next_ino = env->meta.next_ino;
	return 0;
}

int mms_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return MMS_INVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return MMS_INVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
		end += strlen(end);
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return MMS_INVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int mms_set_max_size(mms_env *env, uint64_t max_size)
{
	int rc = mms_txn_enter(env);
	if (rc)
		return rc;
	uint64_t pages = max_size / MMS_PAGE_SIZE;
	if (max_size && pages < env->meta.file_pages)
		return mms_fail(env, MMS_INVAL, "max_size %llu is below the file's size of %llu bytes",
		                (unsigned long long)max_size,
		                (unsigned long long)(env->meta.file_pages * MMS_PAGE_SIZE));
	env->meta.max_pages = pages;
	return 0;
}
