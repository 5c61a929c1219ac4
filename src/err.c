/*
 * err.c - the transaction's error state, below every other module.
 *
 * An env records the detail of its last failure (mms_fail, read back with
 * mms_errdetail), whether the open transaction is poisoned (a modifying
 * call failed after its first change: later calls get MMS_BADTXN until a
 * rollback), and whether damage was met (mms_damaged: the env takes no
 * more changes).  mms_txn_enter() is the gate every modifying call passes
 * first.  None of this knows how a commit is made: txn.c (commit, sync,
 * rollback) clears the state; the pager, the allocator, the tree and the
 * data and inode layers only set it and test it.  The engine's clock is
 * here too, for the same reason: every layer reads it, none owns it.
 */
#define _GNU_SOURCE
#include "mms_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- errors --------------------------------------------------------------- */

const char *mms_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case MMS_NOTFOUND: return "not found";
	case MMS_EXISTS: return "already exists";
	case MMS_FULL: return "store is full (max_size reached)";
	case MMS_CORRUPT: return "store is damaged";
	case MMS_LOCKED: return "store is locked by another process";
	case MMS_NAMETOOLONG: return "name too long";
	case MMS_BADNAME: return "invalid name";
	case MMS_NOTDIR: return "not a directory";
	case MMS_ISDIR: return "is a directory";
	case MMS_NOTEMPTY: return "directory not empty";
	case MMS_READONLY: return "store is open read-only";
	case MMS_NOTSTORE: return "not a store file";
	case MMS_VERSION: return "unsupported store format version";
	case MMS_BADTXN: return "an earlier change failed; roll back first";
	case MMS_TOOBIG: return "too large";
	case MMS_NODATA: return "no such attribute";
	case MMS_RANGE: return "buffer too small";
	case MMS_INVAL: return "invalid argument";
	case MMS_LOOP: return "cannot move a directory into itself";
	case MMS_TRUNCATED: return "store file is truncated";
	case MMS_BUSY: return "in use";
	case MMS_NOTLINK: return "not a symlink";
	case MMS_NXIO: return "no data or hole past the offset";
	case MMS_MLINK: return "too many links";
	case MMS_XDEV: return "directories cannot have hard links";
	}
	if (err > 0)
		return strerror(err);
	return "unknown error";
}

int mms_fail(mms_env *env, int err, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&env->detail_lock);
	va_start(ap, fmt);
	vsnprintf(env->detail, sizeof(env->detail), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&env->detail_lock);
	return err;
}

int mms_damaged(mms_env *env, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&env->detail_lock);
	va_start(ap, fmt);
	vsnprintf(env->detail, sizeof(env->detail), fmt, ap);
	va_end(ap);
	if (!env->damaged)
		snprintf(env->damage, sizeof env->damage, "%s", env->detail);
	pthread_mutex_unlock(&env->detail_lock);
	__atomic_store_n(&env->damaged, 1, __ATOMIC_RELEASE);
	mms_txn_poison(env);
	return MMS_CORRUPT;
}

const char *mms_errdetail(mms_env *env)
{
	return env->detail;
}

#ifdef MMS_TEST_HOOKS
int64_t mms_test_clock_ns;
int64_t mms_test_clock_step_ns = 1000;
#endif

int64_t mms_now_ns(void)
{
#ifdef MMS_TEST_HOOKS
	if (mms_test_clock_ns)
		return __atomic_add_fetch(&mms_test_clock_ns, mms_test_clock_step_ns, __ATOMIC_RELAXED);
#endif
	/* The clock the kernel stamps its own files with: the time of the last
	 * tick (1-4 ms old), not a fresh reading.  A run of creates in one
	 * directory within a tick then leaves the directory's record as it
	 * was, and a commit per create writes no page for it (mms_create). */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mms_txn_enter(mms_env *env)
{
	if (env->flags & MMS_RDONLY)
		return mms_fail(env, MMS_READONLY, "the store is open read-only");
	if (env->txn_bad)
		return mms_fail(env, MMS_BADTXN, "an earlier change failed half-way (%s); roll back first",
		                env->poison_why[0] ? env->poison_why : "no detail");
	if (__atomic_load_n(&env->damaged, __ATOMIC_ACQUIRE))
		return mms_fail(env, MMS_CORRUPT,
		                "the store is damaged (%s): it takes no changes; mmstore check names the damage",
		                env->damage);
	if (env->meta.version != MMS_FORMAT_VERSION && !env->upgrading)
		return mms_fail(env, MMS_VERSION, "the store has format version %u: it takes no "
		                "changes until mms_upgrade() ('mmstore upgrade') converted it",
		                env->meta.version);
	env->op_fresh_txn = !env->txn_active;
	env->txn_active = 1;
	env->op_mods = env->mods;
	return 0;
}

int mms_txn_failed(const mms_env *env) { return env->txn_bad; }

void mms_txn_poison(mms_env *env)
{
	if (!env->txn_bad) {
		pthread_mutex_lock(&env->detail_lock);
		snprintf(env->poison_why, sizeof env->poison_why, "%s", env->detail);
		pthread_mutex_unlock(&env->detail_lock);
	}
	env->txn_bad = 1;
}

