/*
 * bench_store.c - libmms against LMDB, the same work in one run.
 *
 * For each key order (random, then sequential) and value size (64 B and
 * 4 KiB), both engines, each in a fresh store under a temporary directory:
 *   - put N keys, one commit per put (ours: mms_put +
 *     mms_commit; LMDB: one write txn per put, env opened MDB_NOSYNC);
 *   - put N keys, one commit for all;
 *   - get every key (ours: mms_get into a
 *     buffer; LMDB: mdb_get in one read txn, then memcpy of the value into
 *     a buffer, because mdb_get is zero-copy: it returns a pointer into
 *     the map, so without the copy LMDB would do less work).
 * Sequential keys are put and read in the order of their names (LMDB's
 * best case: every put appends to its last leaf); random keys are put in
 * one shuffled order and read in another.  The names are formatted before
 * any phase, so no figure includes the formatting.
 * Neither engine syncs per put: our commit survives a crash of the process,
 * not of the machine, which is what LMDB's MDB_NOSYNC gives.
 * Then the open time of a store holding M keys (mms_open read-only +
 * mms_close, median of 20) and the file size of M keys of 100 bytes against
 * the raw M * 100 bytes, with LMDB's figures beside.
 *
 * Under callgrind (scripts/bench instr), each put and get phase is counted
 * on its own: started with collection off (--collect-atstart=no), the
 * program turns it on around a phase and dumps the counts under the phase's
 * name, so that instructions per operation come out exact and the same
 * from run to run whatever else the machine does.  --put-get-only leaves
 * out the rest.
 *
 * Usage: bench_store [--keys N] [--open-keys M] [--quick] [--json] [--dir D]
 *                    [--put-get-only]
 * Prints an aligned table on stdout (and JSON with --json); exit status 0 on
 * success, 1 on any failure (with a message naming the store and the key).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw */
#endif
#include "mms.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Callgrind's client requests (no-ops when not under valgrind). */
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define BENCH_HAVE_CALLGRIND 1
#endif
#endif
#ifdef BENCH_HAVE_CALLGRIND
#define BENCH_COUNT_BEGIN() CALLGRIND_TOGGLE_COLLECT
#define BENCH_COUNT_END(label) \
	do { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_DUMP_STATS_AT(label); } while (0)
#else
#define BENCH_COUNT_BEGIN() ((void)0)
#define BENCH_COUNT_END(label) ((void)(label))
#endif

#define BENCH_KEY_FMT "key%09u"
#define BENCH_KEY_MAX 32
#define BENCH_KEY_LEN 12 /* strlen of BENCH_KEY_FMT's keys below 10^9 */
#define BENCH_OPEN_RUNS 20
#define BENCH_SMALL_VALUE 100u
/* Keys per commit while filling the big store for the open test. */
#define BENCH_FILL_BATCH 50000u

/* Options of one run. */
struct bench_opts {
	unsigned keys;      /* keys of the put/get tests */
	unsigned open_keys; /* keys of the open-time and file-size tests */
	int json;
	int put_get_only;   /* only the put and get phases (instruction counts) */
	unsigned scale;     /* --scale N: only the scale figures of N keys */
	int cold;           /* --cold: the scale's check and vacuum on a store out of the cache */
	const char *dir;    /* parent of the temporary directory */
};

/* One line of the result table. */
struct bench_row {
	char name[96];
	const char *unit;   /* "ops/s", "ms", "MB" ... */
	double ours, lmdb;
	double ratio;       /* ours / lmdb, as printed */
};

#define BENCH_MAX_ROWS 32
static struct bench_row bench_rows[BENCH_MAX_ROWS];
/* mms_stats_json() of the store of the size test (the --json output's "store") */
static char *bench_store_figures;
static int bench_nrows;

static double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_add(const char *name, const char *unit, double ours, double lmdb)
{
	if (bench_nrows >= BENCH_MAX_ROWS)
		return;
	struct bench_row *r = &bench_rows[bench_nrows++];
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->unit = unit;
	r->ours = ours;
	r->lmdb = lmdb;
	r->ratio = lmdb > 0 ? ours / lmdb : 0;
}

/* Report a libmms failure naming the store, the step and the key. */
static int bench_mms_fail(mms_env *env, const char *path, const char *what,
                          const char *key, int rc)
{
	const char *detail = env ? mms_errdetail(env) : mms_open_detail();
	fprintf(stderr, "bench_store: %s%s%s on store %s failed: %s%s%s\n", what,
	        key ? " of key " : "", key ? key : "", path, mms_strerror(rc),
	        detail && *detail ? ": " : "", detail ? detail : "");
	return rc;
}

/* Report an LMDB failure naming the environment, the step and the key. */
static int bench_mdb_fail(const char *path, const char *what, const char *key, int rc)
{
	fprintf(stderr, "bench_store: %s%s%s on LMDB env %s failed: %s\n", what,
	        key ? " of key " : "", key ? key : "", path, mdb_strerror(rc));
	return rc;
}

/* Deterministic PRNG (xorshift64*), so runs are comparable. */
static uint64_t bench_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* A random permutation of 0..n-1.  NULL when out of memory. */
static unsigned *bench_perm(unsigned n, uint64_t seed)
{
	unsigned *p = malloc((size_t)n * sizeof(*p) + 1);
	if (!p)
		return NULL;
	for (unsigned i = 0; i < n; i++)
		p[i] = i;
	for (unsigned i = n; i > 1; i--) {
		unsigned j = (unsigned)(bench_rand(&seed) % i);
		unsigned t = p[i - 1];
		p[i - 1] = p[j];
		p[j] = t;
	}
	return p;
}

/* The value of key i: its index in the first 4 bytes, then a pattern. */
static void bench_fill_value(unsigned char *buf, size_t len, unsigned i)
{
	for (size_t j = 0; j < len; j++)
		buf[j] = (unsigned char)(i * 31u + j * 7u);
	if (len >= 4)
		memcpy(buf, &i, 4);
}

/* 0 if a read-back value is that of key i (cheap: length and index). */
static int bench_check_value(const unsigned char *buf, size_t got, size_t want, unsigned i)
{
	unsigned idx;
	if (got != want)
		return -1;
	if (want < 4)
		return 0;
	memcpy(&idx, buf, 4);
	return idx == i ? 0 : -1;
}

static int bench_key(char *key, unsigned i)
{
	return snprintf(key, BENCH_KEY_MAX, BENCH_KEY_FMT, i);
}

/*
 * The names of keys 0..n-1, formatted once before any timed or counted
 * phase, so that neither engine's figures include the formatting.
 */
struct bench_keys {
	char (*name)[BENCH_KEY_LEN + 1];
	unsigned n;
};

static int bench_keys_make(struct bench_keys *k, unsigned n)
{
	k->name = malloc((size_t)(n ? n : 1) * sizeof(*k->name));
	if (!k->name)
		return ENOMEM;
	for (unsigned i = 0; i < n; i++)
		bench_key(k->name[i], i);
	k->n = n;
	return 0;
}

static int bench_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) != 0 ? errno : 0;
}

/* Remove a finished test's store or LMDB directory (keeps disk use low). */
static void bench_rm_tree(const char *path)
{
	nftw(path, bench_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- libmms ---------------------------------------------------------------- */

static int bench_mms_create(const char *path, mms_env **envp)
{
	struct mms_options o = { .flags = MMS_CREATE | MMS_EXCL };
	int rc = mms_open(path, &o, envp);
	if (rc)
		return bench_mms_fail(NULL, path, "mms_open (create)", NULL, rc);
	return 0;
}

/*
 * Put `n` keys of `vlen` bytes into the store root in the order `perm`,
 * committing every `batch` puts (1: one commit per put; >= n: one commit
 * at the end).  keys NULL: the names are formatted as they go (the fills
 * that are not timed); perm NULL: 0..n-1.
 */
static int bench_mms_put(mms_env *env, const char *path, const struct bench_keys *keys,
                         unsigned n, size_t vlen, unsigned batch, const unsigned *perm)
{
	char kbuf[BENCH_KEY_MAX];
	unsigned char *val = malloc(vlen);
	int rc = 0;

	if (!val)
		return ENOMEM;
	double t0 = bench_now();
	for (unsigned k = 0; k < n; k++) {
		unsigned i = perm ? perm[k] : k;
		if (k && k % 10000000 == 0) /* a fill of 100M keys takes an hour: say how far it is */
			fprintf(stderr, "bench_store: %u keys put, %.0f s\n", k, bench_now() - t0);
		const char *key = keys ? keys->name[i] : (bench_key(kbuf, i), kbuf);
		bench_fill_value(val, vlen, i);
		rc = mms_put(env, MMS_ROOT_INO, key, BENCH_KEY_LEN, val, vlen, 0644, 0, 0, NULL);
		if (rc) {
			bench_mms_fail(env, path, "mms_put", key, rc);
			goto out;
		}
		if ((k + 1) % batch == 0 || k + 1 == n) {
			rc = mms_commit(env);
			if (rc) {
				bench_mms_fail(env, path, "mms_commit", key, rc);
				goto out;
			}
		}
	}
out:
	free(val);
	return rc;
}

/* Look up and read every key in the order `perm`, checking each value. */
static int bench_mms_get(mms_env *env, const char *path, const struct bench_keys *keys,
                         unsigned n, size_t vlen, const unsigned *perm)
{
	unsigned char *buf = malloc(vlen);
	int rc = 0;

	if (!buf)
		return ENOMEM;
	for (unsigned k = 0; k < n; k++) {
		unsigned i = perm[k];
		size_t got;
		const char *key = keys->name[i];
		rc = mms_get(env, MMS_ROOT_INO, key, BENCH_KEY_LEN, buf, vlen, &got, NULL);
		if (rc) {
			bench_mms_fail(env, path, "mms_get", key, rc);
			goto out;
		}
		if (bench_check_value(buf, got, vlen, i)) {
			fprintf(stderr, "bench_store: key %s of store %s: wrong value read back "
			        "(%zu bytes, %zu expected)\n", key, path, got, vlen);
			rc = EIO;
			goto out;
		}
	}
out:
	free(buf);
	return rc;
}

/* ---- LMDB ------------------------------------------------------------------ */

static int bench_mdb_create(const char *path, size_t mapsize, MDB_env **envp, MDB_dbi *dbi)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	int rc;

	if (mkdir(path, 0755) != 0) {
		rc = errno;
		fprintf(stderr, "bench_store: mkdir %s: %s\n", path, strerror(rc));
		return rc;
	}
	rc = mdb_env_create(&env);
	if (rc)
		return bench_mdb_fail(path, "mdb_env_create", NULL, rc);
	rc = mdb_env_set_mapsize(env, mapsize);
	if (rc) {
		bench_mdb_fail(path, "mdb_env_set_mapsize", NULL, rc);
		goto fail;
	}
	rc = mdb_env_open(env, path, MDB_NOSYNC, 0644);
	if (rc) {
		bench_mdb_fail(path, "mdb_env_open", NULL, rc);
		goto fail;
	}
	rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc) {
		bench_mdb_fail(path, "mdb_txn_begin", NULL, rc);
		goto fail;
	}
	rc = mdb_dbi_open(txn, NULL, 0, dbi);
	if (rc) {
		bench_mdb_fail(path, "mdb_dbi_open", NULL, rc);
		mdb_txn_abort(txn);
		goto fail;
	}
	rc = mdb_txn_commit(txn);
	if (rc) {
		bench_mdb_fail(path, "mdb_txn_commit", NULL, rc);
		goto fail;
	}
	*envp = env;
	return 0;
fail:
	mdb_env_close(env);
	return rc;
}

/* LMDB counterpart of bench_mms_put(). */
static int bench_mdb_put(MDB_env *env, MDB_dbi dbi, const char *path,
                         const struct bench_keys *keys, unsigned n, size_t vlen,
                         unsigned batch, const unsigned *perm)
{
	char kbuf[BENCH_KEY_MAX];
	unsigned char *val = malloc(vlen);
	MDB_txn *txn = NULL;
	int rc = 0;

	if (!val)
		return ENOMEM;
	for (unsigned kk = 0; kk < n; kk++) {
		unsigned i = perm ? perm[kk] : kk;
		char *key = keys ? keys->name[i] : (bench_key(kbuf, i), kbuf);
		MDB_val k = { .mv_size = BENCH_KEY_LEN, .mv_data = key };
		MDB_val v = { .mv_size = vlen, .mv_data = val };
		bench_fill_value(val, vlen, i);
		if (!txn) {
			rc = mdb_txn_begin(env, NULL, 0, &txn);
			if (rc) {
				bench_mdb_fail(path, "mdb_txn_begin", key, rc);
				goto out;
			}
		}
		rc = mdb_put(txn, dbi, &k, &v, 0);
		if (rc) {
			bench_mdb_fail(path, "mdb_put", key, rc);
			goto out;
		}
		if ((kk + 1) % batch == 0 || kk + 1 == n) {
			rc = mdb_txn_commit(txn);
			txn = NULL;
			if (rc) {
				bench_mdb_fail(path, "mdb_txn_commit", key, rc);
				goto out;
			}
		}
	}
out:
	if (txn)
		mdb_txn_abort(txn);
	free(val);
	return rc;
}

static size_t bench_mapsize(unsigned n, size_t vlen);

/*
 * Random 4 KiB overwrites, one commit each: on mms inside one synced value
 * of `pages` pages (every page the last sync reaches is copied on write,
 * doc/FORMAT.md), on LMDB over `pages` existing 4 KiB values (LMDB copies
 * the pages it changes).  Returns the writes per second through *ours and
 * *lmdb.
 */
static int bench_overwrite(const char *tmp, unsigned pages, unsigned writes, double *ours,
                           double *lmdb)
{
	char path[4096], key[BENCH_KEY_MAX];
	unsigned char *val = malloc((size_t)pages * 4096);
	mms_env *env = NULL;
	MDB_env *menv = NULL;
	MDB_dbi dbi;
	MDB_txn *txn;
	struct mms_stat st;
	uint64_t seed = 0x5eed;
	int rc;

	if (!val)
		return ENOMEM;
	bench_fill_value(val, (size_t)pages * 4096, 7);
	snprintf(path, sizeof(path), "%s/mms-overwrite.store", tmp);
	rc = bench_mms_create(path, &env);
	if (!rc)
		rc = mms_put(env, MMS_ROOT_INO, "big", 3, val, (size_t)pages * 4096, 0644, 0, 0, &st);
	if (!rc)
		rc = mms_sync(env);
	if (rc) {
		bench_mms_fail(env, path, "filling the value", "big", rc);
		goto out;
	}
	double t = bench_now();
	for (unsigned i = 0; i < writes && !rc; i++) {
		uint64_t pg = bench_rand(&seed) % pages;
		rc = mms_write(env, st.ino, val, 4096, pg * 4096);
		if (!rc)
			rc = mms_commit(env);
	}
	*ours = writes / (bench_now() - t);
	if (rc) {
		bench_mms_fail(env, path, "mms_write", "big", rc);
		goto out;
	}
	rc = mms_close(env);
	env = NULL;
	if (rc)
		goto out;

	snprintf(path, sizeof(path), "%s/lmdb-overwrite", tmp);
	rc = bench_mdb_create(path, bench_mapsize(pages, 4096), &menv, &dbi);
	if (!rc)
		rc = bench_mdb_put(menv, dbi, path, NULL, pages, 4096, pages, NULL);
	if (!rc)
		rc = mdb_env_sync(menv, 1);
	if (rc)
		goto out;
	seed = 0x5eed;
	t = bench_now();
	for (unsigned i = 0; i < writes && !rc; i++) {
		int klen = bench_key(key, (unsigned)(bench_rand(&seed) % pages));
		MDB_val k = { .mv_size = (size_t)klen, .mv_data = key };
		MDB_val v = { .mv_size = 4096, .mv_data = val };
		rc = mdb_txn_begin(menv, NULL, 0, &txn);
		if (!rc) {
			rc = mdb_put(txn, dbi, &k, &v, 0);
			if (rc)
				mdb_txn_abort(txn);
			else
				rc = mdb_txn_commit(txn);
		}
	}
	*lmdb = writes / (bench_now() - t);
	if (rc)
		bench_mdb_fail(path, "mdb_put", key, rc);
out:
	if (env)
		mms_close(env);
	if (menv)
		mdb_env_close(menv);
	free(val);
	return rc;
}

/* LMDB counterpart of bench_mms_get(): mdb_get, then copy the value out. */
static int bench_mdb_get(MDB_env *env, MDB_dbi dbi, const char *path,
                         const struct bench_keys *keys, unsigned n, size_t vlen,
                         const unsigned *perm)
{
	unsigned char *buf = malloc(vlen);
	MDB_txn *txn = NULL;
	int rc;

	if (!buf)
		return ENOMEM;
	rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc) {
		bench_mdb_fail(path, "mdb_txn_begin (read)", NULL, rc);
		goto out;
	}
	for (unsigned k = 0; k < n; k++) {
		unsigned i = perm[k];
		char *key = keys->name[i];
		MDB_val kv = { .mv_size = BENCH_KEY_LEN, .mv_data = key };
		MDB_val v;
		rc = mdb_get(txn, dbi, &kv, &v);
		if (rc) {
			bench_mdb_fail(path, "mdb_get", key, rc);
			goto out;
		}
		size_t got = v.mv_size < vlen ? v.mv_size : vlen;
		memcpy(buf, v.mv_data, got);
		if (bench_check_value(buf, v.mv_size, vlen, i)) {
			fprintf(stderr, "bench_store: key %s of LMDB env %s: wrong value read back\n",
			        key, path);
			rc = EIO;
			goto out;
		}
	}
out:
	if (txn)
		mdb_txn_abort(txn);
	free(buf);
	return rc;
}

/* ---- The tests --------------------------------------------------------------- */

/* LMDB map size for n values of vlen bytes: generous, the file stays sparse. */
static size_t bench_mapsize(unsigned n, size_t vlen)
{
	size_t per = vlen > 2000 ? (vlen / 4096 + 2) * 4096 : vlen + 256;
	return (size_t)n * per * 2 + (64u << 20);
}

/* 0..n-1 in order (sequential keys), or shuffled by `seed` (random keys). */
static unsigned *bench_order(unsigned n, int random, uint64_t seed)
{
	if (random)
		return bench_perm(n, seed);
	unsigned *p = malloc((size_t)n * sizeof(*p) + 1);
	if (p)
		for (unsigned i = 0; i < n; i++)
			p[i] = i;
	return p;
}

/*
 * Put (both commit styles) and get, for one value size and one key order,
 * both engines.  Sequential: keys are put and read in the order of their
 * names (key000000000, key000000001, ...), which is LMDB's best case;
 * random: put in one shuffled order and read in another.
 */
static int bench_put_get(const char *tmp, const struct bench_opts *o,
                         const struct bench_keys *keys, size_t vlen, const char *label,
                         int random)
{
	char path[4096], name[96];
	const char *ord = random ? "random keys" : "sequential keys";
	double t, ours_each, ours_all, ours_get, mdb_each, mdb_all, mdb_get;
	mms_env *env = NULL;
	MDB_env *menv = NULL;
	MDB_dbi dbi;
	unsigned *put = bench_order(o->keys, random, 0x9e3779b97f4a7c15ull ^ vlen);
	unsigned *get = bench_order(o->keys, 1, 0x51afd6ee2c4b8a1dull ^ vlen ^ (uint64_t)random);
	int rc = ENOMEM;

	if (!put || !get)
		goto out;
	if (!random)
		for (unsigned i = 0; i < o->keys; i++)
			get[i] = i;

	/* (a) one commit per put */
	snprintf(path, sizeof(path), "%s/mms-%s-each.store", tmp, label);
	rc = bench_mms_create(path, &env);
	if (rc)
		goto out;
	snprintf(name, sizeof(name), "mms put %s, commit per put, %s", label, ord);
	t = bench_now();
	BENCH_COUNT_BEGIN();
	rc = bench_mms_put(env, path, keys, o->keys, vlen, 1, put);
	BENCH_COUNT_END(name);
	ours_each = o->keys / (bench_now() - t);
	if (rc)
		goto out;
	rc = mms_close(env);
	env = NULL;
	if (rc) {
		bench_mms_fail(NULL, path, "mms_close", NULL, rc);
		goto out;
	}
	unlink(path);

	snprintf(path, sizeof(path), "%s/lmdb-%s-each", tmp, label);
	rc = bench_mdb_create(path, bench_mapsize(o->keys, vlen), &menv, &dbi);
	if (rc)
		goto out;
	snprintf(name, sizeof(name), "lmdb put %s, commit per put, %s", label, ord);
	t = bench_now();
	BENCH_COUNT_BEGIN();
	rc = bench_mdb_put(menv, dbi, path, keys, o->keys, vlen, 1, put);
	BENCH_COUNT_END(name);
	mdb_each = o->keys / (bench_now() - t);
	if (rc)
		goto out;
	mdb_env_close(menv);
	menv = NULL;
	bench_rm_tree(path);

	/* (b) one commit for all, then the gets on that store */
	snprintf(path, sizeof(path), "%s/mms-%s-all.store", tmp, label);
	rc = bench_mms_create(path, &env);
	if (rc)
		goto out;
	snprintf(name, sizeof(name), "mms put %s, one commit, %s", label, ord);
	t = bench_now();
	BENCH_COUNT_BEGIN();
	rc = bench_mms_put(env, path, keys, o->keys, vlen, o->keys, put);
	BENCH_COUNT_END(name);
	ours_all = o->keys / (bench_now() - t);
	if (rc)
		goto out;
	snprintf(name, sizeof(name), "mms get %s, %s", label, ord);
	t = bench_now();
	BENCH_COUNT_BEGIN();
	rc = bench_mms_get(env, path, keys, o->keys, vlen, get);
	BENCH_COUNT_END(name);
	ours_get = o->keys / (bench_now() - t);
	if (rc)
		goto out;
	rc = mms_close(env);
	env = NULL;
	if (rc) {
		bench_mms_fail(NULL, path, "mms_close", NULL, rc);
		goto out;
	}
	unlink(path);

	snprintf(path, sizeof(path), "%s/lmdb-%s-all", tmp, label);
	rc = bench_mdb_create(path, bench_mapsize(o->keys, vlen), &menv, &dbi);
	if (rc)
		goto out;
	snprintf(name, sizeof(name), "lmdb put %s, one commit, %s", label, ord);
	t = bench_now();
	BENCH_COUNT_BEGIN();
	rc = bench_mdb_put(menv, dbi, path, keys, o->keys, vlen, o->keys, put);
	BENCH_COUNT_END(name);
	mdb_all = o->keys / (bench_now() - t);
	if (rc)
		goto out;
	snprintf(name, sizeof(name), "lmdb get %s, %s", label, ord);
	t = bench_now();
	BENCH_COUNT_BEGIN();
	rc = bench_mdb_get(menv, dbi, path, keys, o->keys, vlen, get);
	BENCH_COUNT_END(name);
	mdb_get = o->keys / (bench_now() - t);
	if (rc)
		goto out;
	mdb_env_close(menv);
	menv = NULL;
	bench_rm_tree(path);

	snprintf(name, sizeof(name), "put %s, commit per put, %s", label, ord);
	bench_add(name, "ops/s", ours_each, mdb_each);
	snprintf(name, sizeof(name), "put %s, one commit, %s", label, ord);
	bench_add(name, "ops/s", ours_all, mdb_all);
	snprintf(name, sizeof(name), "get %s, %s", label, ord);
	bench_add(name, "ops/s", ours_get, mdb_get);
out:
	if (env)
		mms_close(env);
	if (menv)
		mdb_env_close(menv);
	free(put);
	free(get);
	return rc;
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Size and disk usage of a file, or of all files of a directory (LMDB). */
static int bench_usage(const char *path, double *size, double *disk)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return errno;
	if (S_ISDIR(st.st_mode)) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/data.mdb", path);
		if (stat(p, &st) != 0)
			return errno;
	}
	*size = (double)st.st_size;
	*disk = (double)st.st_blocks * 512.0;
	return 0;
}

/* File size of o->keys keys of `vlen` bytes (values of a few KiB: the
 * medium sizes), filled in commits of BENCH_FILL_BATCH and synced, both
 * engines; mms also after a vacuum. */
static int bench_medium_size(const char *tmp, const struct bench_opts *o, size_t vlen)
{
	char path[4096], mpath[4096], name[96];
	double size, disk, msize, mdisk, raw = (double)o->keys * (double)vlen;
	mms_env *env = NULL;
	MDB_env *menv = NULL;
	MDB_dbi dbi;
	snprintf(path, sizeof(path), "%s/mms-medium.store", tmp);
	snprintf(mpath, sizeof(mpath), "%s/lmdb-medium", tmp);
	int rc = bench_mms_create(path, &env);
	if (!rc)
		rc = bench_mms_put(env, path, NULL, o->keys, vlen, BENCH_FILL_BATCH, NULL);
	if (!rc && (rc = mms_sync(env)))
		bench_mms_fail(env, path, "mms_sync", NULL, rc);
	if (rc)
		goto out;
	rc = bench_mdb_create(mpath, bench_mapsize(o->keys, vlen), &menv, &dbi);
	if (!rc)
		rc = bench_mdb_put(menv, dbi, mpath, NULL, o->keys, vlen, BENCH_FILL_BATCH, NULL);
	if (!rc && (rc = mdb_env_sync(menv, 1)))
		bench_mdb_fail(mpath, "mdb_env_sync", NULL, rc);
	if (!rc)
		rc = bench_usage(path, &size, &disk);
	if (!rc)
		rc = bench_usage(mpath, &msize, &mdisk);
	if (rc)
		goto out;
	snprintf(name, sizeof(name), "file size / raw, %u x %zu B", o->keys, vlen);
	bench_add(name, "x raw", size / raw, msize / raw);
	rc = mms_vacuum(env, NULL, NULL, NULL);
	if (rc) {
		bench_mms_fail(env, path, "mms_vacuum", NULL, rc);
		goto out;
	}
	rc = bench_usage(path, &size, &disk);
	if (!rc) {
		snprintf(name, sizeof(name), "file size / raw, %u x %zu B, vacuumed", o->keys, vlen);
		bench_add(name, "x raw", size / raw, msize / raw);
	}
out:
	if (env)
		mms_close(env);
	if (menv)
		mdb_env_close(menv);
	return rc;
}

/* Open time and file size of a store of o->open_keys keys of 100 bytes. */
static int bench_open_size(const char *tmp, const struct bench_opts *o)
{
	char path[4096], mpath[4096], cpath[4096], name[64];
	double times[BENCH_OPEN_RUNS], mtimes[BENCH_OPEN_RUNS];
	double size, disk, msize, mdisk, raw = (double)o->open_keys * BENCH_SMALL_VALUE;
	mms_env *env = NULL;
	MDB_env *menv = NULL;
	MDB_dbi dbi;
	int rc;

	snprintf(path, sizeof(path), "%s/mms-open.store", tmp);
	rc = bench_mms_create(path, &env);
	if (rc)
		goto out;
	rc = bench_mms_put(env, path, NULL, o->open_keys, BENCH_SMALL_VALUE, BENCH_FILL_BATCH, NULL);
	if (rc)
		goto out;
	/* the store's own figures, in the form mmstore info --json prints */
	free(bench_store_figures);
	bench_store_figures = NULL;
	if (mms_sync(env) == 0)
		(void)mms_stats_json(env, NULL, &bench_store_figures);
	rc = mms_close(env);
	env = NULL;
	if (rc) {
		bench_mms_fail(NULL, path, "mms_close", NULL, rc);
		goto out;
	}

	snprintf(mpath, sizeof(mpath), "%s/lmdb-open", tmp);
	rc = bench_mdb_create(mpath, bench_mapsize(o->open_keys, BENCH_SMALL_VALUE), &menv, &dbi);
	if (rc)
		goto out;
	rc = bench_mdb_put(menv, dbi, mpath, NULL, o->open_keys, BENCH_SMALL_VALUE, BENCH_FILL_BATCH, NULL);
	if (rc)
		goto out;
	rc = mdb_env_sync(menv, 1);
	if (rc) {
		bench_mdb_fail(mpath, "mdb_env_sync", NULL, rc);
		goto out;
	}
	mdb_env_close(menv);
	menv = NULL;

	for (int r = 0; r < BENCH_OPEN_RUNS; r++) {
		struct mms_options ro = { .flags = MMS_RDONLY };
		double t = bench_now();
		rc = mms_open(path, &ro, &env);
		if (rc) {
			bench_mms_fail(NULL, path, "mms_open (read-only)", NULL, rc);
			goto out;
		}
		rc = mms_close(env);
		env = NULL;
		times[r] = (bench_now() - t) * 1e3;
		if (rc) {
			bench_mms_fail(NULL, path, "mms_close (read-only)", NULL, rc);
			goto out;
		}

		t = bench_now();
		rc = mdb_env_create(&menv);
		if (!rc)
			rc = mdb_env_set_mapsize(menv, bench_mapsize(o->open_keys, BENCH_SMALL_VALUE));
		if (!rc)
			rc = mdb_env_open(menv, mpath, MDB_RDONLY, 0644);
		if (rc) {
			bench_mdb_fail(mpath, "mdb_env_open (read-only)", NULL, rc);
			goto out;
		}
		mdb_env_close(menv);
		menv = NULL;
		mtimes[r] = (bench_now() - t) * 1e3;
	}

	rc = bench_usage(path, &size, &disk);
	if (!rc)
		rc = bench_usage(mpath, &msize, &mdisk);
	if (rc) {
		fprintf(stderr, "bench_store: stat of %s: %s\n", path, strerror(rc));
		goto out;
	}
	snprintf(name, sizeof(name), "open+close r/o, %u keys (median)", o->open_keys);
	bench_add(name, "ms", bench_median(times, BENCH_OPEN_RUNS),
	          bench_median(mtimes, BENCH_OPEN_RUNS));
	snprintf(name, sizeof(name), "file size, %u x 100 B", o->open_keys);
	bench_add(name, "MB", size / 1e6, msize / 1e6);
	snprintf(name, sizeof(name), "file size / raw %.0f MB", raw / 1e6);
	bench_add(name, "x raw", size / raw, msize / raw);
	snprintf(name, sizeof(name), "disk usage, %u x 100 B", o->open_keys);
	bench_add(name, "MB", disk / 1e6, mdisk / 1e6);
	snprintf(name, sizeof(name), "disk usage / raw %.0f MB", raw / 1e6);
	bench_add(name, "x raw", disk / raw, mdisk / raw);

	/* What compaction gives: mms_vacuum in place, LMDB's compacting copy. */
	rc = mms_open(path, &(struct mms_options){ 0 }, &env);
	if (rc) {
		bench_mms_fail(NULL, path, "mms_open", NULL, rc);
		goto out;
	}
	double t = bench_now(), vsecs;
	rc = mms_vacuum(env, NULL, NULL, NULL);
	vsecs = bench_now() - t;
	if (!rc)
		rc = mms_close(env);
	else
		mms_close(env);
	env = NULL;
	if (rc) {
		bench_mms_fail(NULL, path, "mms_vacuum", NULL, rc);
		goto out;
	}
	snprintf(cpath, sizeof(cpath), "%s/lmdb-compact", tmp);
	if (mkdir(cpath, 0755) != 0) {
		rc = errno;
		fprintf(stderr, "bench_store: mkdir %s: %s\n", cpath, strerror(rc));
		goto out;
	}
	rc = mdb_env_create(&menv);
	if (!rc)
		rc = mdb_env_set_mapsize(menv, bench_mapsize(o->open_keys, BENCH_SMALL_VALUE));
	if (!rc)
		rc = mdb_env_open(menv, mpath, MDB_RDONLY, 0644);
	t = bench_now();
	if (!rc)
		rc = mdb_env_copy2(menv, cpath, MDB_CP_COMPACT);
	double msecs = bench_now() - t;
	if (rc) {
		bench_mdb_fail(mpath, "mdb_env_copy2 (compact)", NULL, rc);
		goto out;
	}
	rc = bench_usage(path, &size, &disk);
	if (!rc)
		rc = bench_usage(cpath, &msize, &mdisk);
	if (rc) {
		fprintf(stderr, "bench_store: stat of %s: %s\n", path, strerror(rc));
		goto out;
	}
	bench_add("vacuum (LMDB: compacting copy)", "s", vsecs, msecs);
	bench_add("file size / raw, compacted", "x raw", size / raw, msize / raw);
	bench_add("disk usage / raw, compacted", "x raw", disk / raw, mdisk / raw);
out:
	if (env)
		mms_close(env);
	if (menv)
		mdb_env_close(menv);
	return rc;
}

/* ---- Scale: one store of o->scale keys ------------------------------------- */

static void bench_no_problem(void *ctx, const char *where, const char *what)
{
	(*(uint64_t *)ctx)++;
	fprintf(stderr, "bench_store: mms_check: %s: %s\n", where, what);
}

/* Peak resident set of this process so far, in MiB. */
static double bench_maxrss_mib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_maxrss / 1024.0;
}

/*
 * The figures of one store of n keys of 100 bytes (libmms only; scripts/bench
 * scale runs it at several sizes and prints them side by side):
 *   fill      the n keys put in ONE transaction, as mmstore load makes it
 *             (the transaction spills past its limit), then committed;
 *             seconds per million keys, and the process's peak RSS;
 *   commit    then 2000 puts of a new key, each with its own commit: us each
 *             (their new pages land in the space the file grew by during
 *             the fill, which the host file system has not allocated yet:
 *             on ext4 a page written there costs about twice one written
 *             over pages it holds);
 *   open      read-only open + close of the synced store, median of 20;
 *   check     mms_check of the whole store, seconds per million keys;
 *   again     after the check (the store reopened read-write, the pages the
 *             first 2000 puts freed free again since their sync), 2000 puts
 *             with a commit each again: the steady cost, us each;
 *   fragmented after every 10th key is removed (one commit, one sync), which
 *             leaves the free space in many runs: 2000 puts with a commit
 *             each again (the free list's cost per commit), us each;
 *   vacuum    then mms_vacuum, seconds per million keys; file size / raw
 *             after it.
 * With --cold the check and the vacuum each start on a store just closed
 * and dropped from the page cache (as after a reboot).
 */
/* 2000 puts of new keys (named prefix + a number), each with its own
 * commit; *us gets the time of one. */
static int bench_scale_commits(mms_env *env, const char *prefix, double *us)
{
	char key[BENCH_KEY_MAX];
	unsigned char val[BENCH_SMALL_VALUE];
	int rc = 0;
	double t = bench_now();
	for (unsigned i = 0; i < 2000 && !rc; i++) {
		int klen = snprintf(key, sizeof(key), "%s%09u", prefix, i);
		bench_fill_value(val, sizeof(val), i);
		rc = mms_put(env, MMS_ROOT_INO, key, (size_t)klen, val, sizeof(val), 0644, 0, 0, NULL);
		if (!rc)
			rc = mms_commit(env);
	}
	*us = (bench_now() - t) / 2000 * 1e6;
	return rc;
}

/* Drop the (closed) file at path from the page cache. */
static int bench_uncache(const char *path)
{
	int fd = open(path, O_RDONLY), rc = 0;
	if (fd < 0 || fsync(fd) || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED))
		rc = errno;
	if (fd >= 0)
		close(fd);
	if (rc)
		fprintf(stderr, "bench_store: cannot drop %s from the page cache: %s\n", path, strerror(rc));
	return rc;
}

static int bench_scale(const char *tmp, unsigned n, int cold)
{
	char path[4096], key[BENCH_KEY_MAX];
	double times[BENCH_OPEN_RUNS], t, mkeys = n / 1e6;
	mms_env *env = NULL;
	uint64_t problems = 0, counted = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/mms-scale.store", tmp);
	rc = bench_mms_create(path, &env);
	if (rc)
		return rc;
	t = bench_now();
	rc = bench_mms_put(env, path, NULL, n, BENCH_SMALL_VALUE, n, NULL);
	double fill = bench_now() - t, rss = bench_maxrss_mib();
	if (!rc)
		rc = mms_sync(env);
	if (rc)
		goto out;
	struct mms_info info;
	mms_stats(env, &info);
	fprintf(stderr, "bench_store: scale %u: %" PRIu64 " free runs, %" PRIu64 " pending after the fill\n",
	        n, info.free_extents, info.pending_bytes);
	fprintf(stderr, "bench_store: scale %u: fill %.2f s per million keys, peak RSS %.0f MiB\n", n,
	        fill / mkeys, rss);
	double commit;
	rc = bench_scale_commits(env, "new", &commit);
	if (!rc)
		rc = mms_sync(env);
	if (!rc)
		rc = mms_close(env);
	env = NULL;
	if (rc) {
		bench_mms_fail(env, path, "puts with a commit each", NULL, rc);
		goto out;
	}
	for (int r = 0; r < BENCH_OPEN_RUNS; r++) {
		mms_env *e;
		t = bench_now();
		rc = mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &e);
		if (rc)
			return bench_mms_fail(NULL, path, "mms_open", NULL, rc);
		mms_close(e);
		times[r] = (bench_now() - t) * 1e3;
	}
	double open_ms = bench_median(times, BENCH_OPEN_RUNS);
	fprintf(stderr, "bench_store: scale %u: put with its own commit %.1f us, open %.3f ms\n", n,
	        commit, open_ms);
	if (cold && (rc = bench_uncache(path)))
		goto out;
	rc = mms_open(path, NULL, &env);
	if (rc)
		return bench_mms_fail(NULL, path, "mms_open", NULL, rc);
	t = bench_now();
	rc = mms_check(env, bench_no_problem, &problems, NULL, NULL, &counted);
	double check = bench_now() - t;
	fprintf(stderr, "bench_store: scale %u: check%s %.2f s per million keys\n", n, cold ? " (cold)" : "",
	        check / mkeys);
	if (!rc && problems) {
		fprintf(stderr, "bench_store: mms_check found %" PRIu64 " problems in %s\n", problems, path);
		rc = EIO;
	}
	double again = 0;
	if (!rc)
		rc = bench_scale_commits(env, "again", &again);
	if (!rc)
		rc = mms_sync(env);
	if (!rc)
		fprintf(stderr, "bench_store: scale %u: put with its own commit again %.1f us\n", n, again);
	for (unsigned i = 0; i < n && !rc; i += 10) {
		int klen = bench_key(key, i);
		rc = mms_unlink(env, MMS_ROOT_INO, key, (size_t)klen);
	}
	if (!rc)
		rc = mms_sync(env);
	if (rc) {
		bench_mms_fail(env, path, "check or unlink", NULL, rc);
		goto out;
	}
	mms_stats(env, &info);
	uint64_t frag_runs = info.free_extents;
	double frag_commit;
	rc = bench_scale_commits(env, "frag", &frag_commit);
	if (!rc)
		rc = mms_sync(env);
	if (rc) {
		bench_mms_fail(env, path, "puts with a commit each, fragmented", NULL, rc);
		goto out;
	}
	if (cold) {
		rc = mms_close(env);
		env = NULL;
		if (rc) {
			bench_mms_fail(NULL, path, "mms_close", NULL, rc);
			goto out;
		}
		if ((rc = bench_uncache(path)))
			goto out;
		if ((rc = mms_open(path, NULL, &env))) {
			bench_mms_fail(NULL, path, "mms_open", NULL, rc);
			goto out;
		}
	}
	t = bench_now();
	rc = mms_vacuum(env, NULL, NULL, NULL);
	double vac = bench_now() - t;
	if (rc) {
		bench_mms_fail(env, path, "mms_vacuum", NULL, rc);
		goto out;
	}
	double size = 0, disk = 0;
	bench_usage(path, &size, &disk);
	double raw = (double)(n - (n + 9) / 10 + 6000) * BENCH_SMALL_VALUE;
	const char *c = cold ? " (cold)" : "";
	printf("scale %u keys: fill %.2f s per million keys, peak RSS %.0f MiB; put with its own "
	       "commit %.1f us; open %.3f ms; check%s %.2f s per million keys; again %.1f us; with %"
	       PRIu64 " free runs, put with its own commit %.1f us; vacuum%s %.2f s per million keys, "
	       "file %.2fx raw after it\n",
	       n, fill / mkeys, rss, commit, open_ms, c, check / mkeys, again, frag_runs, frag_commit,
	       c, vac / mkeys, size / raw);
	printf("{\"scale\": %u, \"cold\": %s, \"fill_s_per_mkeys\": %.4g, \"peak_rss_mib\": %.4g, "
	       "\"commit_us\": %.4g, \"open_ms\": %.4g, \"check_s_per_mkeys\": %.4g, "
	       "\"again_commit_us\": %.4g, \"frag_runs\": %" PRIu64 ", \"frag_commit_us\": %.4g, "
	       "\"vacuum_s_per_mkeys\": %.4g, \"file_per_raw\": %.4g}\n",
	       n, cold ? "true" : "false", fill / mkeys, rss, commit, open_ms, check / mkeys, again,
	       frag_runs, frag_commit, vac / mkeys, size / raw);
out:
	if (env)
		mms_close(env);
	unlink(path);
	return rc;
}

/* ---- Output ------------------------------------------------------------------ */

static void bench_fmt(char *buf, size_t size, double v)
{
	if (v >= 1000)
		snprintf(buf, size, "%.0f", v);
	else if (v >= 10)
		snprintf(buf, size, "%.1f", v);
	else
		snprintf(buf, size, "%.3f", v);
}

static void bench_print_table(const struct bench_opts *o)
{
	char a[32], b[32];
	printf("\nmms %s vs %s: %u keys for put/get, %u keys for open/size\n",
	       MMS_VERSION_STRING, mdb_version(NULL, NULL, NULL), o->keys, o->open_keys);
	printf("%-46s %14s %14s %10s  %s\n", "test", "mms", "LMDB", "mms/LMDB", "unit");
	for (int i = 0; i < bench_nrows; i++) {
		const struct bench_row *r = &bench_rows[i];
		bench_fmt(a, sizeof(a), r->ours);
		bench_fmt(b, sizeof(b), r->lmdb);
		printf("%-46s %14s %14s %10.2f  %s\n", r->name, a, b, r->ratio, r->unit);
	}
	printf("\nNotes:\n"
	       " - Durability: no engine syncs per put.  An mms commit survives a crash of\n"
	       "   the process, not of the machine; LMDB runs with MDB_NOSYNC, which gives\n"
	       "   the same guarantee.  Sync time is not counted; \"one commit\" includes\n"
	       "   the final commit.\n"
	       " - Each put test starts from a fresh store; the gets run on the store of\n"
	       "   the one-commit test.  The open/size store is filled in commits of %u\n"
	       "   keys and closed (synced) before it is measured.\n"
	       " - get: LMDB's mdb_get is zero-copy (a pointer into its map); the bench\n"
	       "   copies each value into a buffer (memcpy), as mms_get does.\n"
	       " - ops/s: higher is better; ms and MB: lower is better.  mms/LMDB > 1 means\n"
	       "   mms is faster for ops/s, slower or bigger for ms and MB.\n"
	       " - LMDB stores values larger than ~2 KiB on overflow pages: a 4 KiB value\n"
	       "   takes two pages there.\n", BENCH_FILL_BATCH);
}

static void bench_print_json(const struct bench_opts *o)
{
	printf("{\"keys\": %u, \"open_keys\": %u, \"lmdb\": \"%s\", \"results\": [",
	       o->keys, o->open_keys, mdb_version(NULL, NULL, NULL));
	for (int i = 0; i < bench_nrows; i++) {
		const struct bench_row *r = &bench_rows[i];
		printf("%s\n  {\"test\": \"%s\", \"unit\": \"%s\", \"mms\": %.6g, \"lmdb\": %.6g, "
		       "\"ratio\": %.6g}", i ? "," : "", r->name, r->unit, r->ours, r->lmdb, r->ratio);
	}
	printf("\n],\n\"store\": %s}\n", bench_store_figures ? bench_store_figures : "null");
}

/* ---- Main -------------------------------------------------------------------- */

static void bench_usage_exit(int status)
{
	fprintf(status ? stderr : stdout,
	        "usage: bench_store [--keys N] [--open-keys M] [--quick] [--json] [--dir DIR]\n"
	        "                   [--put-get-only] [--scale N [--cold]]\n"
	        "  --keys N       keys of the put/get tests (default 100000)\n"
	        "  --open-keys M  keys of the open-time and file-size tests (default 1000000)\n"
	        "  --quick        10000 and 100000 keys\n"
	        "  --json         also print the results as JSON\n"
	        "  --dir DIR      make the temporary directory below DIR (default $TMPDIR or /tmp)\n"
	        "  --put-get-only only the put and get tests (for callgrind: scripts/bench instr)\n"
	        "  --scale N      only the figures of one store of N keys (scripts/bench scale)\n"
	        "  --cold         with --scale: check and vacuum a store dropped from the page cache\n"
	        "                 (not possible where TMPDIR is tmpfs: its pages stay in memory)\n");
	exit(status);
}

static unsigned bench_parse_count(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s ? s : "", &end, 10);
	if (!s || errno || *end || v == 0 || v > 100000000ul) {
		fprintf(stderr, "bench_store: %s needs a count from 1 to 100000000, got '%s'\n",
		        opt, s ? s : "");
		exit(2);
	}
	return (unsigned)v;
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .keys = 100000, .open_keys = 1000000 };
	char tmp[2048]; /* with the file names below it, fits the 4096-byte paths */
	int rc, keys_set = 0, open_set = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--keys")) {
			o.keys = bench_parse_count("--keys", argv[++i]);
			keys_set = 1;
		} else if (!strcmp(argv[i], "--open-keys")) {
			o.open_keys = bench_parse_count("--open-keys", argv[++i]);
			open_set = 1;
		} else if (!strcmp(argv[i], "--quick")) {
			if (!keys_set)
				o.keys = 10000;
			if (!open_set)
				o.open_keys = 100000;
		} else if (!strcmp(argv[i], "--json")) {
			o.json = 1;
		} else if (!strcmp(argv[i], "--scale") && i + 1 < argc) {
			o.scale = bench_parse_count("--scale", argv[++i]);
		} else if (!strcmp(argv[i], "--cold")) {
			o.cold = 1;
		} else if (!strcmp(argv[i], "--put-get-only")) {
			o.put_get_only = 1;
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			o.dir = argv[++i];
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			bench_usage_exit(0);
		} else {
			fprintf(stderr, "bench_store: unknown argument '%s'\n", argv[i]);
			bench_usage_exit(2);
		}
	}
	if (o.cold && !o.scale) {
		fprintf(stderr, "bench_store: --cold goes with --scale N\n");
		bench_usage_exit(2);
	}
	if (!o.dir)
		o.dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	if (strlen(o.dir) > sizeof(tmp) - 32) {
		fprintf(stderr, "bench_store: directory name too long: %s\n", o.dir);
		return 2;
	}
	snprintf(tmp, sizeof(tmp), "%s/bench_store.XXXXXX", o.dir);
	if (!mkdtemp(tmp)) {
		fprintf(stderr, "bench_store: cannot make a temporary directory in %s: %s\n",
		        o.dir, strerror(errno));
		return 1;
	}
	fprintf(stderr, "bench_store: working in %s\n", tmp);

	if (o.scale) {
		rc = bench_scale(tmp, o.scale, o.cold);
		nftw(tmp, bench_rm_one, 16, FTW_DEPTH | FTW_PHYS);
		return rc ? 1 : 0;
	}
	struct bench_keys keys;
	rc = bench_keys_make(&keys, o.keys);
	for (int random = 1; !rc && random >= 0; random--) {
		rc = bench_put_get(tmp, &o, &keys, 64, "64 B", random);
		if (!rc)
			rc = bench_put_get(tmp, &o, &keys, 4096, "4 KiB", random);
	}
	free(keys.name);
	if (!rc && !o.put_get_only) {
		double ours = 0, lmdb = 0;
		rc = bench_overwrite(tmp, 16384, o.keys / 5, &ours, &lmdb);
		if (!rc)
			bench_add("overwrite 4 KiB at random, commit each", "ops/s", ours, lmdb);
	}
	if (!rc && !o.put_get_only)
		rc = bench_open_size(tmp, &o);
	if (!rc && !o.put_get_only)
		rc = bench_medium_size(tmp, &o, 1500);

	nftw(tmp, bench_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (rc)
		return 1;
	bench_print_table(&o);
	if (o.json)
		bench_print_json(&o);
	return 0;
}
