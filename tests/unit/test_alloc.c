/*
 * test_alloc.c - free space: reuse rules around commit and sync, growth,
 * max_size, persistence of the free list (inline and blob), rollback.
 */
#define _GNU_SOURCE /* SEEK_DATA */
#define MMS_TEST_HOOKS 1 /* links tests/libmms_test.la: mms_alloc_test_tail_max */
#include "mms_int.h"
#include "io.h"
#include "tap.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

static mms_env *open_new(const char *dir, const char *name, uint64_t max)
{
	char path[512];
	mms_env *env = NULL;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int rc = mms_open(path, &(struct mms_options){ .flags = MMS_CREATE, .max_size = max }, &env);
	if (!ok(rc == 0, "create %s: %s", name, mms_strerror(rc)))
		exit(1);
	return env;
}

static uint64_t free_pages(mms_env *env)
{
	uint64_t f;
	mms_alloc_totals(env, &f, NULL, NULL, NULL);
	return f;
}

static void test_reuse_rules(const char *dir)
{
	mms_env *env = open_new(dir, "reuse.mms", 0);
	uint64_t a, b, c;

	/* freed in the transaction that allocated it: reusable at once */
	mms_txn_enter(env);
	is_int(mms_alloc(env, 4, MMS_ALLOC_DATA, &a), 0, "alloc 4 pages");
	mms_free(env, a, 4, MMS_ALLOC_DATA);
	is_int(mms_alloc(env, 4, MMS_ALLOC_DATA, &b), 0, "alloc again");
	is_int(b, a, "a run freed in its own transaction is reused at once");

	/* committed and synced, then freed: not reused until the next sync */
	is_int(mms_sync(env), 0, "sync");
	mms_txn_enter(env);
	mms_free(env, b, 4, MMS_ALLOC_DATA);
	is_int(mms_commit(env), 0, "commit the free");
	mms_txn_enter(env);
	is_int(mms_alloc(env, 4, MMS_ALLOC_DATA, &c), 0, "alloc after commit");
	ok(c + 4 <= b || c >= b + 4, "a run the synced meta reaches is not reused before a sync (%llu vs %llu)",
	   (unsigned long long)c, (unsigned long long)b);
	mms_free(env, c, 4, MMS_ALLOC_DATA);
	is_int(mms_sync(env), 0, "sync");
	mms_txn_enter(env);
	is_int(mms_alloc(env, 4, MMS_ALLOC_DATA, &c), 0, "alloc after sync");
	is_int(c, b, "after the sync the run is reused");

	/* allocated after the sync, committed, freed: reusable after the next commit */
	is_int(mms_commit(env), 0, "commit the allocation");
	mms_txn_enter(env);
	mms_free(env, c, 4, MMS_ALLOC_DATA);
	is_int(mms_alloc(env, 4, MMS_ALLOC_DATA, &a), 0, "alloc in the same transaction");
	ok(a != c, "not reused while the last committed meta reaches it");
	mms_free(env, a, 4, MMS_ALLOC_DATA);
	is_int(mms_commit(env), 0, "commit");
	mms_txn_enter(env);
	is_int(mms_alloc(env, 4, MMS_ALLOC_DATA, &a), 0, "alloc after the commit");
	is_int(a, c, "a fresh run is reused once the commit that freed it landed");
	mms_free(env, a, 4, MMS_ALLOC_DATA);
	is_int(mms_close(env), 0, "close");
}

static void test_growth_and_full(const char *dir)
{
	mms_env *env = open_new(dir, "full.mms", 4u << 20);
	uint64_t pg, total = 0;
	int rc = 0;
	mms_txn_enter(env);
	uint64_t before = env->meta.file_pages;
	while (!(rc = mms_alloc(env, 16, MMS_ALLOC_DATA, &pg)))
		total += 16;
	is_int(rc, MMS_FULL, "allocation past max_size fails with MMS_FULL");
	ok(env->meta.file_pages > before, "the file grew (%llu -> %llu pages)", (unsigned long long)before,
	   (unsigned long long)env->meta.file_pages);
	ok(env->meta.file_pages <= 1024, "never past max_size (%llu pages)", (unsigned long long)env->meta.file_pages);
	ok(total >= 900, "most of the 4 MiB was handed out (%llu pages)", (unsigned long long)total);
	is_int(mms_reserve(env, 64), MMS_FULL, "reserve says full");
	ok(strstr(mms_errdetail(env), "full") != NULL, "detail explains: %s", mms_errdetail(env));
	is_int(mms_rollback(env), 0, "rollback");
	is_int(free_pages(env) + MMS_META_PAGES + env->meta.tree_pages, env->meta.file_pages,
	       "rollback returned every allocation");
	is_int(mms_close(env), 0, "close");
}

static void test_persistence(const char *dir)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/persist.mms", dir);
	mms_env *env = open_new(dir, "persist.mms", 0);
	uint64_t pg[2000];
	mms_txn_enter(env);
	for (int i = 0; i < 2000; i++)
		if (mms_alloc(env, 1, MMS_ALLOC_DATA, &pg[i]))
			break;
	is_int(mms_sync(env), 0, "sync 2000 allocations");
	mms_txn_enter(env);
	for (int i = 0; i < 2000; i += 2)
		mms_free(env, pg[i], 1, MMS_ALLOC_DATA); /* 1000 separate runs */
	is_int(mms_sync(env), 0, "sync the frees");
	uint64_t f1, runs1, pages1 = env->meta.file_pages;
	mms_alloc_totals(env, &f1, NULL, &runs1, NULL);
	ok(runs1 > 900, "fragmented free space: %llu runs", (unsigned long long)runs1);
	ok(env->meta.free_blob != 0, "the free list went to a blob");
	is_int(mms_close(env), 0, "close");
	int rc = mms_open(path, NULL, &env);
	is_int(rc, 0, "reopen");
	uint64_t f2, runs2;
	mms_alloc_totals(env, &f2, NULL, &runs2, NULL);
	/* close may give the free tail back and rewrites the free-list blob,
	 * so compare the accounting, not the totals */
	(void)pages1;
	is_int(f2 + MMS_META_PAGES + env->meta.tree_pages + env->meta.data_pages + env->meta.blob_pages,
	       env->meta.file_pages, "after a reopen every page is free or in use");
	ok(f2 + 16 >= f1 - (pages1 - env->meta.file_pages), "the free pages came back (%llu of %llu)",
	   (unsigned long long)f2, (unsigned long long)f1);
	ok(runs2 + 4 >= runs1 && runs2 >= 990, "the free runs came back (%llu of %llu)",
	   (unsigned long long)runs2, (unsigned long long)runs1);
	is_int(mms_close(env), 0, "close");
}

/* ---- the free-list log (format 4) ------------------------------------------ */

struct runs {
	uint64_t v[3 * 8192];
	size_t n;
	int over;
};

static int note_run(void *ctx, uint64_t pg, uint64_t n, int pending)
{
	struct runs *r = ctx;
	if (r->n + 3 > sizeof r->v / sizeof r->v[0]) {
		r->over = 1;
		return 0;
	}
	r->v[r->n++] = pg;
	r->v[r->n++] = n;
	r->v[r->n++] = (uint64_t)pending;
	return 0;
}

static int count_log(void *ctx, uint64_t pg, uint64_t n, int log)
{
	(void)pg;
	if (log)
		*(uint64_t *)ctx += n;
	return 0;
}

static uint64_t log_pages(mms_env *env)
{
	uint64_t n = 0;
	mms_alloc_list_pages(env, count_log, &n);
	return n;
}

/* The sets a reload of the committed meta (base + log replayed) gives
 * equal the ones in memory. */
static int reload_same(mms_env *env, const char *what)
{
	static struct runs a, b;
	a.n = b.n = 0;
	a.over = b.over = 0;
	mms_alloc_walk(env, note_run, &a);
	int rc = mms_alloc_rollback(env, env->meta_page);
	mms_alloc_walk(env, note_run, &b);
	if (rc || a.over || a.n != b.n || memcmp(a.v, b.v, a.n * sizeof a.v[0])) {
		ok(0, "%s: the reloaded free list is the one in memory (rc %d, %zu vs %zu words): %s", what, rc,
		   a.n, b.n, mms_errdetail(env));
		return 0;
	}
	return 1;
}

static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
	return tap_xorshift(&rnd_state);
}

/* tail_max: the changes a commit keeps in the meta's tail at most (1: a
 * commit of more than one change writes a log page; 0: as many as fit). */
static void test_log(const char *dir, unsigned tail_max)
{
	char path[512], name[32];
	snprintf(name, sizeof name, "log-%u.mms", tail_max);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	mms_alloc_test_tail_max = tail_max;
	tap_diag("free-list log, a tail of %u changes at most in the meta", tail_max ? tail_max : 319);
	mms_env *env = open_new(dir, name, 0);
	enum { N = 4000 };
	static uint64_t pg[N];
	static int live[N];
	mms_txn_enter(env);
	for (int i = 0; i < N; i++) {
		if (mms_alloc(env, 1, MMS_ALLOC_DATA, &pg[i]))
			break;
		live[i] = 1;
	}
	is_int(mms_sync(env), 0, "log: sync 4000 one-page allocations");
	mms_txn_enter(env);
	for (int i = 0; i < N; i += 2) {
		mms_free(env, pg[i], 1, MMS_ALLOC_DATA);
		live[i] = 0;
	}
	is_int(mms_commit(env), 0, "log: commit 2000 frees, 2000 runs");
	uint64_t base = env->meta.free_blob, base_pages = env->meta.free_blob_pages;
	ok(base && log_pages(env) == 0, "log: a new base of %llu pages, no log",
	   (unsigned long long)base_pages);

	/* small commits (a log page each with a tail of 1, one in many with a
	 * whole tail); frees, allocations, syncs and rolled-back transactions
	 * between them */
	int same = 1, one_page = 1, rebased = 0, paged = 0, commits = 0;
	uint64_t max_log = 0;
	for (int c = 0; c < 400 && same; c++) {
		uint64_t before = log_pages(env), b0 = env->meta.free_blob;
		mms_txn_enter(env);
		for (int k = 0; k < 3; k++) {
			int i = (int)(rnd() % N);
			if (live[i]) {
				mms_free(env, pg[i], 1, MMS_ALLOC_DATA);
				live[i] = 0;
			} else if (mms_alloc(env, 1, MMS_ALLOC_DATA, &pg[i]) == 0) {
				live[i] = 1;
			}
		}
		if (c % 37 == 5) {
			/* a transaction rolled back: its changes leave no trace */
			uint64_t p;
			mms_rollback(env);
			mms_txn_enter(env);
			if (mms_alloc(env, 2, MMS_ALLOC_DATA, &p) == 0)
				mms_free(env, p, 2, MMS_ALLOC_DATA);
			mms_rollback(env);
			/* the rollback forgot the allocations above: redo the live set */
			for (int i = 0; i < N; i++)
				live[i] = 0;
			static struct runs fr;
			fr.n = 0;
			mms_alloc_walk(env, note_run, &fr);
			static uint8_t taken[1 << 16];
			memset(taken, 0, sizeof taken);
			/* nor is a page of the free list itself */
			static struct runs lp;
			lp.n = 0;
			mms_alloc_list_pages(env, note_run, &lp);
			for (size_t j = 0; j < lp.n; j += 3)
				for (uint64_t q = lp.v[j]; q < lp.v[j] + lp.v[j + 1] && q < sizeof taken; q++)
					taken[q] = 1;
			for (int i = 0; i < N; i++) {
				/* a stale number of a freed slot may equal a live one's */
				live[i] = pg[i] < sizeof taken && !taken[pg[i]];
				for (size_t j = 0; j < fr.n && live[i]; j += 3)
					if (pg[i] >= fr.v[j] && pg[i] < fr.v[j] + fr.v[j + 1])
						live[i] = 0;
				if (live[i])
					taken[pg[i]] = 1;
			}
			continue;
		}
		int rc = (c % 11 == 3) ? mms_sync(env) : mms_commit(env);
		if (rc) {
			ok(0, "log: commit %d: %s", c, mms_errdetail(env));
			same = 0;
			break;
		}
		uint64_t after = log_pages(env);
		commits++;
		if (env->meta.free_blob != b0 || after < before)
			rebased++;
		else if (after > before + 1)
			one_page = 0;
		else
			paged += after > before;
		if (after > max_log)
			max_log = after;
		char what[64];
		snprintf(what, sizeof what, "log: commit %d", c);
		same = reload_same(env, what);
	}
	ok(same, "log: after each of 400 commits the reloaded free list equals the one in memory");
	ok(one_page, "log: a commit of a few changes adds at most one log page");
	if (tail_max == 1) {
		ok(rebased > 0 && max_log <= base_pages + 4, "log: the base was rewritten %d times; the log "
		   "never outgrew it (at most %llu pages over a base of %llu)", rebased,
		   (unsigned long long)max_log, (unsigned long long)base_pages);
	} else {
		/* a commit here makes about 6 changes: one in ~50 fills the tail */
		ok(paged * 10 < commits, "log: %d of %d commits wrote a log page (the rest only the meta)",
		   paged, commits);
		ok(max_log <= base_pages + 4, "log: the log never outgrew the base (at most %llu pages "
		   "over a base of %llu)", (unsigned long long)max_log, (unsigned long long)base_pages);
	}
	ok(log_pages(env) > 0 || env->meta.free_blob != base, "log: the store ends with a log or a new base");

	/* one commit of more changes than a log commit takes (2,704): a new base */
	mms_txn_enter(env);
	int changes = 0;
	for (int i = 0; i < N; i++) {
		if (live[i]) {
			mms_free(env, pg[i], 1, MMS_ALLOC_DATA);
			live[i] = 0;
			changes++;
		}
	}
	for (int i = 0; i < N && changes < 3000; i += 2) {
		if (mms_alloc(env, 1, MMS_ALLOC_DATA, &pg[i]) == 0) {
			live[i] = 1;
			changes++;
		}
	}
	ok(mms_commit(env) == 0, "log: commit %d changes", changes);
	ok(log_pages(env) == 0, "log: they went to a new base, not the log");
	ok(reload_same(env, "log: after the big commit"), "log: after it the reloaded free list equals the "
	   "one in memory");
	/* (no mms_check: these data pages belong to no key) */
	uint64_t f, p;
	mms_alloc_totals(env, &f, &p, NULL, NULL);
	is_int(f + p + MMS_META_PAGES + env->meta.tree_pages + env->meta.data_pages + env->meta.blob_pages,
	       env->meta.file_pages, "log: every page is free, pending or counted in use (the log's as blob)");
	is_int(mms_close(env), 0, "log: close");
	int rc = mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env);
	ok(rc == 0, "log: reopen read-only: %s", rc ? mms_open_detail() : "done");
	if (!rc) {
		mms_alloc_totals(env, &f, &p, NULL, NULL);
		is_int(f + p + MMS_META_PAGES + env->meta.tree_pages + env->meta.data_pages +
		       env->meta.blob_pages, env->meta.file_pages, "log: so after a reopen");
		is_int(mms_close(env), 0, "log: close");
	}
}

/*
 * A trim of the file's free end (vacuum, close) commits the shorter size;
 * that commit's free-list pages come first fit.  With nothing free below
 * the new end, they must not grow the file again by a whole segment: the
 * trim leaves them room at the end.  (A vacuum once left a store 22 pages
 * larger than before it: test_model, seed 10.)
 */
static void test_trim_room(const char *dir)
{
	mms_env *env = open_new(dir, "trim.mms", 0);
	enum { N = 64 };
	uint64_t pg[N], p, end;
	mms_alloc_test_inline_max = 2; /* a base for a few runs */
	mms_alloc_test_tail_max = 1;   /* a commit of two changes writes a log page */
	/* every page in use, synced */
	mms_txn_enter(env);
	while (free_pages(env) && mms_alloc(env, 1, MMS_ALLOC_DATA, &p) == 0)
		;
	for (int i = 0; i < N; i++)
		mms_alloc(env, 1, MMS_ALLOC_DATA, &pg[i]); /* the file grows: a free end */
	is_int(mms_sync(env), 0, "trim: sync a full file and a free end");
	/* pending runs only below the free end (the base holds them) */
	mms_txn_enter(env);
	for (uint64_t q = 10; q < 30; q += 2)
		mms_free(env, q, 1, MMS_ALLOC_DATA);
	is_int(mms_commit(env), 0, "trim: commit ten pending runs");
	ok(env->meta.free_blob != 0, "trim: the free list is a base");
	mms_txn_enter(env);
	mms_free(env, pg[N - 1], 1, MMS_ALLOC_DATA);
	uint64_t before = env->meta.file_pages;
	is_int(mms_alloc_trim_tail(env, &end), 0, "trim: cut the free end");
	is_int(mms_commit(env), 0, "trim: commit it");
	ok(end < before && env->meta.file_pages == end, "trim: the commit kept the file at %llu pages "
	   "(%llu before the trim; it has %llu)", (unsigned long long)end, (unsigned long long)before,
	   (unsigned long long)env->meta.file_pages);
	ok(end <= pg[N - 1] + 1 + 8, "trim: the end keeps only the few pages the commit may need "
	   "(last used page %llu, end %llu)", (unsigned long long)pg[N - 1], (unsigned long long)end);
	mms_alloc_test_inline_max = 0;
	mms_alloc_test_tail_max = 0;
	is_int(mms_close(env), 0, "trim: close");
}

/* ---- punching free space at close ------------------------------------------ */

static long punches, syncs;
static uint64_t runs_open; /* free runs of the store close_counted closed, before the close */
static void count_io(void *ctx, int fd, enum mms_io_op op, const void *buf, uint64_t len, uint64_t off)
{
	(void)ctx;
	(void)fd;
	(void)buf;
	(void)len;
	(void)off;
	punches += op == MMS_IO_PUNCH;
	syncs += op == MMS_IO_SYNC;
}
static struct mms_io_hooks count_hooks = { count_io, NULL };

struct hole_ctx {
	int fd;
	uint64_t runs, bad;
};

static int hole_run(void *vctx, uint64_t pg, uint64_t n, int pending)
{
	struct hole_ctx *h = vctx;
	if (pending)
		return 0;
	h->runs++;
	off_t d = lseek(h->fd, (off_t)(pg * MMS_PAGE_SIZE), SEEK_DATA);
	if (d >= 0 && (uint64_t)d < (pg + n) * MMS_PAGE_SIZE)
		h->bad++;
	return 0;
}

/* Free runs of the closed store at path that hold data on disk (and, in
 * *runs, how many free runs it has), as a read-write open finds them: the
 * runs its synced meta lists as pending (freed by its last commit) are
 * punched as they load, the rest must be holes already. */
static uint64_t data_in_free(const char *path, uint64_t *runs)
{
	mms_env *env;
	struct hole_ctx h = { open(path, O_RDONLY), 0, 0 };
	if (h.fd < 0 || mms_open(path, NULL, &env))
		abort();
	mms_alloc_walk(env, hole_run, &h);
	mms_close(env);
	close(h.fd);
	*runs = h.runs;
	return h.bad;
}

/* Open path read-write, run `change` (if any), close; count the punches
 * and syncs of the close. */
static void close_counted(const char *path, void (*change)(mms_env *), const char *what)
{
	mms_env *env;
	if (mms_open(path, NULL, &env))
		abort();
	if (change)
		change(env);
	mms_alloc_totals(env, NULL, NULL, &runs_open, NULL);
	punches = syncs = 0;
	mms_io_hooks = &count_hooks;
	int rc = mms_close(env);
	mms_io_hooks = NULL;
	if (rc)
		ok(0, "punch: %s: close: %s", what, mms_strerror(rc));
}

static void rm_some(mms_env *env)
{
	char name[32];
	for (int i = 1; i < 40; i += 4) {
		int l = snprintf(name, sizeof name, "k%d", i);
		mms_unlink(env, MMS_ROOT_INO, name, (size_t)l);
		mms_commit(env);
	}
}

/*
 * A close punches the free runs that may hold bytes, and then writes a
 * meta saying that every free run is a hole (MMS_META_HOLES), so that the
 * next close punches only what became free since: none if nothing
 * changed (a store of 20,941 free runs took 191 ms and 41,876 fallocate
 * calls to open and close unchanged).  After a crash the newest meta does
 * not say so, and the close punches every free run again.  After every
 * close, no free page of the file holds data.
 */
static void test_punch_at_close(const char *dir)
{
	char path[512], name[32];
	uint8_t val[5000];
	memset(val, 'p', sizeof val);
	snprintf(path, sizeof path, "%s/punch.mms", dir);
	mms_env *env = open_new(dir, "punch.mms", 0);
	for (int i = 0; i < 600; i++) {
		int l = snprintf(name, sizeof name, "k%d", i);
		mms_put(env, MMS_ROOT_INO, name, (size_t)l, val, sizeof val, 0644, 0, 0, NULL);
		mms_commit(env);
	}
	for (int i = 0; i < 600; i += 2) {
		int l = snprintf(name, sizeof name, "k%d", i);
		mms_unlink(env, MMS_ROOT_INO, name, (size_t)l);
		mms_commit(env);
	}
	punches = syncs = 0;
	mms_io_hooks = &count_hooks;
	is_int(mms_close(env), 0, "punch: close a store of many free runs");
	mms_io_hooks = NULL;
	uint64_t runs, bad = data_in_free(path, &runs);
	ok(runs >= 64 && bad == 0 && punches > 0, "punch: the first close punched (%ld calls): %llu of %llu "
	   "free runs hold data", punches, (unsigned long long)bad, (unsigned long long)runs);

	close_counted(path, NULL, "unchanged");
	ok(punches == 0 && syncs == 0, "punch: open and close of the unchanged store: %ld punches, %ld syncs",
	   punches, syncs);
	close_counted(path, rm_some, "ten keys removed");
	bad = data_in_free(path, &runs);
	ok(punches > 0 && (uint64_t)punches < runs && bad == 0, "punch: ten keys removed: %ld punches for %llu "
	   "free runs, %llu of them hold data", punches, (unsigned long long)runs, (unsigned long long)bad);

	/* a process that dies with its changes committed: its frees were never
	 * punched, and the newest meta does not say holes */
	pid_t pid = fork();
	if (pid == 0) {
		if (mms_open(path, NULL, &env))
			_exit(1);
		for (int i = 3; i < 300; i += 4) {
			int l = snprintf(name, sizeof name, "k%d", i);
			mms_unlink(env, MMS_ROOT_INO, name, (size_t)l);
			mms_commit(env);
		}
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "punch: a process removed keys and died");
	close_counted(path, NULL, "after the crash");
	bad = data_in_free(path, &runs);
	ok((uint64_t)punches >= runs_open && bad == 0, "punch: after the crash the close punched every free run "
	   "(%ld calls, %llu runs), %llu hold data", punches, (unsigned long long)runs_open,
	   (unsigned long long)bad);
	close_counted(path, NULL, "unchanged again");
	ok(punches == 0 && syncs == 0, "punch: and the next close none (%ld, %ld syncs)", punches, syncs);
}

/* A store of format 4 with its free list past the meta (340 runs), opened
 * to be upgraded and closed without the upgrade: the close punches its
 * free runs but writes no meta saying so (a format 4 meta has no such
 * flag), and succeeds. */
static void test_close_old_format(const char *dir)
{
	const char *src = getenv("SRCDIR");
	char from[1024], path[512], cmd[2048];
	snprintf(from, sizeof from, "%s/tests/data/format4.mms", src && *src ? src : "..");
	snprintf(path, sizeof path, "%s/old4.mms", dir);
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, path);
	if (system(cmd)) {
		ok(0, "close of a format 4 store: copy %s", from);
		return;
	}
	mms_env *env;
	int rc = mms_open(path, &(struct mms_options){ .flags = MMS_UPGRADE }, &env);
	if (!ok(rc == 0, "close of a format 4 store: opens to be upgraded (%s)", rc ? mms_open_detail() : "ok"))
		return;
	uint64_t runs;
	mms_alloc_totals(env, NULL, NULL, &runs, NULL);
	ok(env->meta.version == 4 && runs > 64, "close of a format 4 store: format %u, %llu free runs",
	   env->meta.version, (unsigned long long)runs);
	is_int(mms_close(env), 0, "close of a format 4 store: the close succeeds");
}

int main(void)
{
	tap_plan_none();
	char *dir = tap_tmpdir();
	test_reuse_rules(dir);
	test_growth_and_full(dir);
	test_persistence(dir);
	test_log(dir, 1);
	test_log(dir, 0);
	mms_alloc_test_tail_max = 0;
	test_trim_room(dir);
	test_punch_at_close(dir);
	test_close_old_format(dir);
	return tap_done();
}
