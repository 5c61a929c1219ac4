/*
 * test_crashsim.c - machine-crash simulator of libmms.
 *
 * A workload runs in this process on a fresh store while the I/O layer
 * (src/io.h, test build) records every write (with its bytes), truncate,
 * punch and fdatasync the engine does to the store file, in order.  After
 * every commit and sync the workload notes the store's generation and a
 * digest of every key (name, type, mode, size, bytes, xattrs) read back
 * through the API: the content at that generation.
 *
 * From the record the simulator builds the files a crash could leave:
 *
 *   machine crash  everything up to some fdatasync is on disk; of the
 *                  operations after it and before the crash point, any
 *                  subset reached the disk (in order), and a write may be
 *                  torn at 512-byte sectors.  The extremes (all, none) and
 *                  random subsets.  The image is opened under another boot
 *                  id: it must open, mms_check must find nothing, and it
 *                  must hold exactly the content of one generation, at or
 *                  after the last sync that was durable, and not after the
 *                  crash point.
 *   process crash  everything up to the crash point reached the file (the
 *                  kernel has it), same boot id: the store opens at the
 *                  last commit written, check finds nothing, and every key
 *                  but those the unanswered operation was changing is
 *                  exactly as at that commit (those may hold some of the
 *                  operation's bytes: pages written since the last sync
 *                  are written in place, doc/FORMAT.md).
 *
 * Some images are also opened read-write, changed, committed and checked
 * again: recovery must leave a store that takes writes.
 *
 * The workload: puts of small and large values, overwrites at random
 * offsets, truncation down and up, hole punching, fallocate, renames over
 * other keys, unlinks, xattrs (inline and blob), copies from key to key
 * (mostly of whole pages, which share them), vacuum; a commit after every
 * operation (as mmfs does), a sync after some.
 *
 * Environment: MMS_SEED (printed), MMS_SIM_STEPS (operations per run,
 * default 250), MMS_SIM_RUNS (default 3), MMS_SIM_IMAGES (machine-crash
 * images per run, default 700; process-crash images are a quarter of that).
 * `test_crashsim --long` runs 40 runs of 2,000 steps with 25,000 images each:
 * a million images.
 */
#define _GNU_SOURCE
#define MMS_TEST_HOOKS 1 /* links tests/libmms_test.la */
#include "mms_int.h"
#include "io.h"
#include "tap.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NKEYS 12
#define MAXVAL 40000
#define SECTOR 512

/* ---- random numbers (splitmix64) ------------------------------------------- */

static uint64_t rng;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* ---- the record ------------------------------------------------------------ */

enum rec_kind {
	R_WRITE, R_TRUNCATE, R_PUNCH, R_SYNC, /* I/O, as recorded */
	R_BEGIN,                              /* an operation starts: keys a and b */
	R_COMMITTED,                          /* a commit returned: gen */
	R_SYNCED                              /* a sync returned: gen */
};

struct rec {
	enum rec_kind kind;
	uint64_t off, len;
	uint8_t *data;
	int key_a, key_b;
	uint64_t gen;
};

static struct rec *recs;
static size_t nrecs, caprecs;
static int store_fd = -1;
static bool recording;
static size_t created_at; /* records before this made the store */

static struct rec *rec_add(enum rec_kind kind)
{
	if (nrecs == caprecs) {
		caprecs = caprecs ? caprecs * 2 : 4096;
		recs = realloc(recs, caprecs * sizeof *recs);
		if (!recs)
			abort();
	}
	struct rec *r = &recs[nrecs++];
	memset(r, 0, sizeof *r);
	r->kind = kind;
	return r;
}

static void on_io(void *ctx, int fd, enum mms_io_op op, const void *buf, uint64_t len, uint64_t off)
{
	(void)ctx;
	if (!recording || (store_fd >= 0 && fd != store_fd))
		return;
	struct rec *r;
	switch (op) {
	case MMS_IO_WRITE:
		r = rec_add(R_WRITE);
		r->off = off;
		r->len = len;
		r->data = malloc(len ? len : 1);
		if (!r->data)
			abort();
		memcpy(r->data, buf, len);
		break;
	case MMS_IO_TRUNCATE:
		r = rec_add(R_TRUNCATE);
		r->len = len;
		break;
	case MMS_IO_PUNCH:
	case MMS_IO_ZERO:
		r = rec_add(R_PUNCH);
		r->off = off;
		r->len = len;
		break;
	case MMS_IO_SYNC:
		rec_add(R_SYNC);
		break;
	}
}

static struct mms_io_hooks hooks = { on_io, NULL };

static void rec_free(void)
{
	for (size_t i = 0; i < nrecs; i++)
		free(recs[i].data);
	nrecs = 0;
}

/* ---- content digests --------------------------------------------------------- */

struct keystate {
	bool exists;
	uint32_t mode, nlink;
	int group; /* the first key naming the same inode (hard links) */
	uint64_t size, hash, xhash;
};

struct state {
	uint64_t gen;
	struct keystate k[NKEYS];
};

static struct state *states;
static size_t nstates, capstates;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001B3ull;
	return h;
}

static void keyname(int k, char name[8])
{
	snprintf(name, 8, "k%d", k);
}

/* Digest of every key as the env sees it now.  0, or the failing code. */
static int digest(mms_env *env, struct state *s, char *why, size_t whylen)
{
	static uint8_t buf[MAXVAL + 16384];
	uint64_t inos[NKEYS] = { 0 };
	memset(s->k, 0, sizeof s->k);
	for (int k = 0; k < NKEYS; k++) {
		char name[8];
		struct mms_stat st;
		keyname(k, name);
		int rc = mms_lookup(env, MMS_ROOT_INO, name, strlen(name), &st);
		if (rc == MMS_NOTFOUND)
			continue;
		if (rc) {
			snprintf(why, whylen, "lookup %s: %s (%s)", name, mms_strerror(rc), mms_errdetail(env));
			return rc;
		}
		struct keystate *ks = &s->k[k];
		ks->exists = true;
		ks->mode = st.mode;
		ks->nlink = st.nlink;
		ks->size = st.size;
		inos[k] = st.ino;
		ks->group = k;
		for (int j = 0; j < k; j++)
			if (inos[j] == st.ino) {
				ks->group = j;
				break;
			}
		size_t n = 0;
		if (st.size > sizeof buf) {
			snprintf(why, whylen, "%s: size %" PRIu64 " is past anything written", name, st.size);
			return MMS_CORRUPT;
		}
		rc = mms_read(env, st.ino, buf, sizeof buf, 0, &n);
		if (rc || n != st.size) {
			snprintf(why, whylen, "read %s: %s, %zu of %" PRIu64 " bytes (%s)", name,
			         mms_strerror(rc), n, st.size, mms_errdetail(env));
			return rc ? rc : MMS_CORRUPT;
		}
		ks->hash = fnv(0xCBF29CE484222325ull, buf, n);
		size_t xl = 0;
		rc = mms_getxattr(env, st.ino, "user.a", 6, buf, sizeof buf, &xl);
		if (rc == 0)
			ks->xhash = fnv(1, buf, xl) | 1;
		else if (rc != MMS_NODATA) {
			snprintf(why, whylen, "getxattr %s: %s (%s)", name, mms_strerror(rc), mms_errdetail(env));
			return rc;
		}
	}
	return 0;
}

static void note_state(mms_env *env)
{
	struct mms_info info;
	char why[256];
	if (mms_stats(env, &info) || digest(env, &(struct state){ 0 }, why, sizeof why)) {
		fprintf(stderr, "the workload's store cannot be read: %s\n", why);
		abort();
	}
	if (nstates == capstates) {
		capstates = capstates ? capstates * 2 : 256;
		states = realloc(states, capstates * sizeof *states);
		if (!states)
			abort();
	}
	struct state *s = &states[nstates];
	if (digest(env, s, why, sizeof why))
		abort();
	s->gen = info.generation;
	/* a generation noted twice (nothing changed) keeps one entry */
	if (nstates && states[nstates - 1].gen == s->gen)
		states[nstates - 1] = *s;
	else
		nstates++;
}

/* The content at generation g: that of the newest noted generation <= g
 * (vacuum commits batches that change no content). */
static const struct state *state_at(uint64_t g)
{
	const struct state *best = NULL;
	for (size_t i = 0; i < nstates && states[i].gen <= g; i++)
		best = &states[i];
	return best;
}

/* ---- the workload -------------------------------------------------------------- */

static uint8_t valbuf[MAXVAL + 16384];

static void fill_random(uint8_t *p, size_t n)
{
	uint64_t tag = rnd();
	for (size_t i = 0; i < n; i++) {
		if ((i & 7) == 0)
			tag = tag * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(tag >> (8 * (i & 7)));
	}
}

static uint64_t pick_size(void)
{
	switch (below(4)) {
	case 0: return below(1025);              /* inline */
	case 1: return 1025 + below(8000);       /* a few pages */
	case 2: return 4096 * (1 + below(8));    /* page-aligned */
	default: return below(MAXVAL);
	}
}

static int ino_of(mms_env *env, int k, uint64_t *ino, uint64_t *size)
{
	char name[8];
	struct mms_stat st;
	keyname(k, name);
	int rc = mms_lookup(env, MMS_ROOT_INO, name, strlen(name), &st);
	if (rc == 0) {
		*ino = st.ino;
		*size = st.size;
	}
	return rc;
}

/* One random operation; returns the mms_* result (errors such as
 * MMS_NOTFOUND are part of the workload). */
static int step(mms_env *env)
{
	int a = (int)below(NKEYS), b = (int)below(NKEYS);
	char na[8], nb[8];
	uint64_t ino = 0, size = 0;
	keyname(a, na);
	keyname(b, nb);
	struct rec *r = rec_add(R_BEGIN);
	r->key_a = a;
	r->key_b = b;
	unsigned op = (unsigned)below(100);
	if (op < 18) {
		uint64_t n = pick_size();
		fill_random(valbuf, (size_t)n);
		return mms_put(env, MMS_ROOT_INO, na, strlen(na), valbuf, (size_t)n, 0644, 0, 0, NULL);
	}
	if (ino_of(env, a, &ino, &size))
		return mms_put(env, MMS_ROOT_INO, na, strlen(na), "x", 1, 0644, 0, 0, NULL);
	if (op < 45) {
		/* overwrite or extend at a random offset */
		uint64_t off = below(size + 6000), len = 1 + below(12000);
		if (off + len > MAXVAL)
			off = below(MAXVAL - len);
		fill_random(valbuf, (size_t)len);
		return mms_write(env, ino, valbuf, (size_t)len, off);
	}
	if (op < 50) {
		/* a big write in two steps, as mmfs makes it: the change first,
		 * the copies of its bytes after (mms_write_deferred) */
		struct mms_deferred d;
		uint64_t len = MMS_DEFER_MIN + below(MAXVAL - MMS_DEFER_MIN);
		uint64_t off = below(MAXVAL - len);
		fill_random(valbuf, (size_t)len);
		int rc = mms_write_deferred(env, ino, valbuf, (size_t)len, off, &d);
		return rc ? rc : mms_deferred_run(env, &d);
	}
	if (op < 57)
		return mms_truncate(env, ino, below(size * 3 / 2 + 4096) % MAXVAL);
	if (op < 64) {
		uint64_t off = below(size + 1), len = 1 + below(10000);
		return mms_fallocate(env, ino, MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_KEEP_SIZE, off, len);
	}
	if (op < 69) {
		uint64_t off = below(size + 4096), len = 1 + below(9000);
		if (off + len > MAXVAL)
			return 0;
		return mms_fallocate(env, ino, below(2) ? MMS_FALLOC_KEEP_SIZE : 0, off, len);
	}
	if (op < 79)
		return mms_rename(env, MMS_ROOT_INO, na, strlen(na), MMS_ROOT_INO, nb, strlen(nb), 0);
	if (op < 83)
		return mms_unlink(env, MMS_ROOT_INO, na, strlen(na));
	if (op < 88)
		return mms_link(env, ino, MMS_ROOT_INO, nb, strlen(nb), NULL);
	if (op < 93) {
		uint64_t n = below(3) ? below(300) : 1025 + below(3000);
		fill_random(valbuf, (size_t)n);
		return mms_setxattr(env, ino, "user.a", 6, valbuf, (size_t)n, 0);
	}
	if (op < 97) {
		/* a copy of a's bytes into b: whole pages are shared, so later
		 * writes to either must leave the other (and third holders) be */
		uint64_t bino = 0, bsize = 0, copied = 0;
		if (a == b || ino_of(env, b, &bino, &bsize) || bino == ino)
			return 0; /* one key, or two names of one (its ranges could overlap) */
		bool pages = below(4) != 0;
		uint64_t soff = pages ? below(size / 4096 + 1) * 4096 : below(size + 1);
		uint64_t doff = pages ? below(MAXVAL / 4096) * 4096 : below(MAXVAL / 2);
		uint64_t len = 1 + below(size - (soff < size ? soff : size) + 4096);
		if (doff + len > MAXVAL)
			len = MAXVAL - doff;
		return mms_copy_range(env, ino, soff, bino, doff, len, &copied);
	}
	return mms_vacuum(env, NULL, NULL, NULL);
}

/* Create a new store at path with the recorder on; note its first state. */
static int start_recording(const char *path, mms_env **envp, char *why, size_t whylen)
{
	struct mms_options o = { .flags = MMS_CREATE | MMS_EXCL };
	unlink(path);
	rec_free();
	nstates = 0;
	store_fd = -1;
	recording = true;
	int rc = mms_open(path, &o, envp);
	if (rc) {
		recording = false;
		snprintf(why, whylen, "create: %s (%s)", mms_strerror(rc), mms_open_detail());
		return rc;
	}
	store_fd = mms_fd(*envp);
	note_state(*envp);
	created_at = nrecs;
	return 0;
}

/* Run the workload on a new store at path, recording. */
static int run_workload(const char *path, long steps, char *why, size_t whylen)
{
	mms_env *env;
	bool punch_due = false;
	int rc = start_recording(path, &env, why, whylen);
	if (rc)
		return rc;
	for (long i = 0; i < steps; i++) {
		rc = step(env);
		if (rc && rc != MMS_NOTFOUND && rc != MMS_EXISTS && rc != MMS_NODATA) {
			snprintf(why, whylen, "step %ld: %s (%s)", i, mms_strerror(rc), mms_errdetail(env));
			mms_close(env);
			return rc;
		}
		bool sync = below(5) == 0, keep = sync && below(2);
		if (punch_due && (sync || i == steps - 1)) {
			/* the last keep-sync's punch, after a step and its commit, as
			 * mmfs may do; before the next sync */
			mms_sync_drop(env);
			rc = mms_sync_punch(env);
			mms_sync_release(env);
			punch_due = false;
			if (rc) {
				snprintf(why, whylen, "step %ld: punch: %s", i, mms_strerror(rc));
				mms_close(env);
				return rc;
			}
		}
		if (keep) {
			/* mmfs's sync: in steps, the freed runs punched later */
			int needed = 0;
			rc = mms_sync_begin(env, &needed);
			if (!rc && needed)
				rc = mms_sync_io(env);
			if (!rc && needed)
				rc = mms_sync_end_keep(env);
			punch_due = !rc && needed;
		} else {
			rc = sync ? mms_sync(env) : mms_commit(env);
		}
		if (rc) {
			snprintf(why, whylen, "step %ld: commit: %s (%s)", i, mms_strerror(rc), mms_errdetail(env));
			mms_close(env);
			return rc;
		}
		struct mms_info info;
		mms_stats(env, &info);
		rec_add(sync ? R_SYNCED : R_COMMITTED)->gen = info.generation;
		note_state(env);
	}
	if (punch_due) {
		mms_sync_drop(env);
		rc = mms_sync_punch(env);
		mms_sync_release(env);
		if (rc) {
			snprintf(why, whylen, "last punch: %s", mms_strerror(rc));
			mms_close(env);
			return rc;
		}
	}
	recording = false; /* close's syncs and trim are not noted: not checked */
	rc = mms_close(env);
	store_fd = -1;
	if (rc)
		snprintf(why, whylen, "close: %s", mms_strerror(rc));
	return rc;
}

/* End a workload's recording (close's syncs and trim are not checked):
 * close the env; rc, with the detail of a failure in why. */
static int end_recording(mms_env *env, int rc, char *why, size_t whylen)
{
	recording = false;
	if (rc)
		snprintf(why, whylen, "%s (%s)", mms_strerror(rc), mms_errdetail(env));
	mms_close(env);
	store_fd = -1;
	return rc;
}

/* Commit (or sync) in a workload of its own, noting the state. */
static int commit_noted(mms_env *env, bool sync)
{
	int rc = sync ? mms_sync(env) : mms_commit(env);
	if (rc)
		return rc;
	struct mms_info info;
	mms_stats(env, &info);
	rec_add(sync ? R_SYNCED : R_COMMITTED)->gen = info.generation;
	note_state(env);
	return 0;
}

/*
 * Transactions bigger than the pager's spill limit (2 pages here), as
 * mmstore load makes: their dirty pages reach the file before the commit,
 * and are read back and changed again inside it.  Three transactions of
 * 150 new keys (k0..k11 among them, the keys checked), a fourth of 150
 * more that is rolled back, then one that renames, links and unlinks.
 */
static int run_spill_workload(const char *path, uint64_t *spills, char *why, size_t whylen)
{
	mms_env *env;
	char name[16], other[8];
	int rc = start_recording(path, &env, why, whylen);
	if (rc)
		return rc;
	mms_pager_set_spill(env, 2);
	for (int t = 0; t < 4 && !rc; t++) {
		for (int i = 0; i < 150 && !rc; i++) {
			int l = snprintf(name, sizeof name, "s%d.%d", t, i);
			uint64_t n = 1 + below(1500);
			fill_random(valbuf, (size_t)n);
			rc = mms_put(env, MMS_ROOT_INO, name, (size_t)l, valbuf, (size_t)n, 0644, 0, 0, NULL);
			if (!rc && t < 3 && i % 37 == 0 && i / 37 < 4) {
				keyname(t * 4 + i / 37, name);
				n = pick_size();
				fill_random(valbuf, (size_t)n);
				rc = mms_put(env, MMS_ROOT_INO, name, strlen(name), valbuf, (size_t)n, 0644, 0, 0, NULL);
			}
		}
		if (!rc && t < 3)
			rc = commit_noted(env, t == 1);
	}
	if (!rc)
		rc = mms_rollback(env);
	for (int i = 0; i < 150 && !rc; i += 3) {
		int l = snprintf(name, sizeof name, "s0.%d", i);
		rc = mms_unlink(env, MMS_ROOT_INO, name, (size_t)l);
		if (!rc && i % 30 == 0) {
			keyname((int)below(NKEYS), name);
			keyname((int)below(NKEYS), other);
			rc = mms_rename(env, MMS_ROOT_INO, name, strlen(name), MMS_ROOT_INO, other,
			                strlen(other), 0);
			if (rc == MMS_NOTFOUND || rc == MMS_EXISTS)
				rc = 0;
		}
		if (!rc && i % 45 == 0) {
			uint64_t ino = 0, size = 0;
			int k = (int)below(NKEYS);
			if (ino_of(env, k, &ino, &size) == 0) {
				keyname((int)below(NKEYS), other);
				rc = mms_link(env, ino, MMS_ROOT_INO, other, strlen(other), NULL);
				if (rc == MMS_EXISTS)
					rc = 0;
			}
		}
	}
	if (!rc)
		rc = commit_noted(env, true);
	*spills = mms_pager_spills(env);
	return end_recording(env, rc, why, whylen);
}

/*
 * A vacuum of a store whose free list is too long for the meta page: the
 * trim that ends the vacuum lowers the file size, and the commit after it
 * needs a blob for the free list, which grew the file from the new, lower
 * end - shortening the file under the older synced meta (a crash then gave
 * MMS_TRUNCATED).  Keys k0..k11 are checked; 900 others make the holes.
 */
static int run_vacuum_workload(const char *path, char *why, size_t whylen)
{
	mms_env *env;
	char name[16];
	int rc = start_recording(path, &env, why, whylen);
	if (rc)
		return rc;
	fill_random(valbuf, 4096);
	for (int i = 0; i < 900 && !rc; i++) {
		int l = snprintf(name, sizeof name, "f%d", i);
		rc = mms_put(env, MMS_ROOT_INO, name, (size_t)l, valbuf, 4096, 0644, 0, 0, NULL);
		if (!rc && i % 75 == 0) {
			keyname(i / 75, name);
			uint64_t n = pick_size();
			fill_random(valbuf, (size_t)n);
			rc = mms_put(env, MMS_ROOT_INO, name, strlen(name), valbuf, (size_t)n, 0644, 0, 0, NULL);
		}
		if (!rc && i % 100 == 99)
			rc = commit_noted(env, false);
	}
	struct mms_info info;
	if (!rc)
		rc = commit_noted(env, true);
	for (int i = 0; i < 900 && !rc; i += 2) {
		int l = snprintf(name, sizeof name, "f%d", i);
		rc = mms_unlink(env, MMS_ROOT_INO, name, (size_t)l);
	}
	if (!rc)
		rc = commit_noted(env, true);
	if (!rc) {
		rec_add(R_BEGIN)->key_a = -1;
		rc = mms_vacuum(env, NULL, NULL, NULL);
	}
	if (!rc) {
		mms_stats(env, &info);
		rec_add(R_SYNCED)->gen = info.generation;
		note_state(env);
	}
	return end_recording(env, rc, why, whylen);
}

/* ---- images ------------------------------------------------------------------- */

struct image {
	uint8_t *b;
	uint64_t len, cap;
};

static void img_resize(struct image *im, uint64_t len)
{
	if (len > im->cap) {
		uint64_t cap = im->cap ? im->cap : 1 << 20;
		while (cap < len)
			cap *= 2;
		im->b = realloc(im->b, cap);
		if (!im->b)
			abort();
		im->cap = cap;
	}
	if (len > im->len)
		memset(im->b + im->len, 0, len - im->len);
	im->len = len;
}

/* Apply record i; torn: only a random subset of its sectors. */
static void img_apply(struct image *im, const struct rec *r, bool torn)
{
	switch (r->kind) {
	case R_WRITE:
		if (r->off + r->len > im->len)
			img_resize(im, r->off + r->len);
		if (!torn) {
			memcpy(im->b + r->off, r->data, r->len);
			break;
		}
		for (uint64_t s = r->off / SECTOR * SECTOR; s < r->off + r->len; s += SECTOR) {
			uint64_t a = s > r->off ? s : r->off, e = s + SECTOR;
			if (e > r->off + r->len)
				e = r->off + r->len;
			if (below(2))
				memcpy(im->b + a, r->data + (a - r->off), e - a);
		}
		break;
	case R_TRUNCATE:
		img_resize(im, r->len);
		break;
	case R_PUNCH: {
		uint64_t e = r->off + r->len < im->len ? r->off + r->len : im->len;
		if (r->off < e)
			memset(im->b + r->off, 0, e - r->off);
		break;
	}
	default:
		break;
	}
}

static void img_copy(struct image *dst, const struct image *src)
{
	dst->len = 0;
	img_resize(dst, src->len);
	memcpy(dst->b, src->b, src->len);
}

static int img_write(const char *path, const struct image *im)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	int rc = 0;
	for (uint64_t off = 0; off < im->len && !rc;) {
		ssize_t w = pwrite(fd, im->b + off, im->len - off, (off_t)off);
		if (w <= 0)
			rc = -1;
		else
			off += (uint64_t)w;
	}
	close(fd);
	return rc;
}

static void on_problem(void *ctx, const char *where, const char *what)
{
	char *out = ctx;
	size_t l = strlen(out);
	if (l < 400)
		snprintf(out + l, 512 - l, "%s: %s; ", where, what);
}

static long t_torn_metas; /* images with a torn meta page */

/* Problems mms_check finds in the store at path (~0: it could not run). */
static uint64_t check_store_path(const char *path)
{
	mms_env *env;
	uint64_t np = ~0ull;
	if (mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env))
		return ~0ull;
	if (mms_check(env, NULL, NULL, NULL, NULL, &np))
		np = ~0ull;
	mms_close(env);
	return np;
}

/*
 * Open the image at path and compare it.  machine: the store must hold
 * exactly one generation in [lo, hi].  Otherwise (process crash) it must
 * open at generation hi exactly, keys skip_a/skip_b compared without their
 * bytes.  Writes a reason into why on failure.
 */
static bool img_verify(const char *path, bool machine, uint64_t lo, uint64_t hi, int skip_a,
                       int skip_b, bool write_after, char *why, size_t whylen)
{
	mms_env *env;
	struct mms_options ro = { .flags = MMS_RDONLY };
	char problems[512] = "";
	uint64_t np = 0;
	struct state got;
	struct mms_info info;
	int rc = mms_open(path, &ro, &env);
	if (rc) {
		snprintf(why, whylen, "open: %s (%s)", mms_strerror(rc), mms_open_detail());
		return false;
	}
	rc = mms_check(env, on_problem, problems, NULL, NULL, &np);
	/* A meta page torn by the crash is named by check (it cannot tell a
	 * torn write from damage); the next read-write open rewrites it */
	bool torn_meta = rc == 0 && np == 1 && !strncmp(problems, "meta ", 5);
	if (rc || (np && !torn_meta)) {
		snprintf(why, whylen, "check: %s, %" PRIu64 " problems: %s", mms_strerror(rc), np, problems);
		mms_close(env);
		return false;
	}
	mms_stats(env, &info);
	rc = digest(env, &got, why, whylen);
	mms_close(env);
	if (rc)
		return false;
	if (torn_meta) {
		t_torn_metas++;
		rc = mms_open(path, NULL, &env);
		if (rc == 0)
			rc = mms_close(env);
		uint64_t left = check_store_path(path);
		if (rc || left) {
			snprintf(why, whylen, "a torn meta (%s) is still there after a read-write open: %s",
			         problems, rc ? mms_strerror(rc) : "check still reports it");
			return false;
		}
	}
	if (info.generation < lo || info.generation > hi) {
		snprintf(why, whylen, "opened at generation %" PRIu64 ", not in %" PRIu64 "..%" PRIu64,
		         info.generation, lo, hi);
		return false;
	}
	const struct state *want = state_at(info.generation);
	if (!want) {
		snprintf(why, whylen, "no content noted for generation %" PRIu64, info.generation);
		return false;
	}
	for (int k = 0; k < NKEYS; k++) {
		const struct keystate *w = &want->k[k], *g = &got.k[k];
		/* a write in flight may show in the keys it named, and in every
		 * other name of their inodes */
		bool skip = !machine && (k == skip_a || k == skip_b ||
		                         (skip_a >= 0 && want->k[skip_a].exists && w->group == want->k[skip_a].group) ||
		                         (skip_b >= 0 && want->k[skip_b].exists && w->group == want->k[skip_b].group));
		if (w->exists != g->exists || w->mode != g->mode || w->size != g->size ||
		    w->nlink != g->nlink || w->group != g->group ||
		    (!skip && (w->hash != g->hash || w->xhash != g->xhash))) {
			snprintf(why, whylen,
			         "generation %" PRIu64 ": key k%d is %s mode %o nlink %u (as k%d) size %"
			         PRIu64 " hash %016" PRIx64 " xattr %016" PRIx64 ", was %s mode %o nlink %u "
			         "(as k%d) size %" PRIu64 " hash %016" PRIx64 " xattr %016" PRIx64,
			         info.generation, k, g->exists ? "there" : "absent", g->mode, g->nlink,
			         g->group, g->size, g->hash, g->xhash, w->exists ? "there" : "absent",
			         w->mode, w->nlink, w->group, w->size, w->hash, w->xhash);
			return false;
		}
	}
	if (!write_after)
		return true;
	/* recovery must leave a store that takes writes */
	rc = mms_open(path, NULL, &env);
	if (rc) {
		snprintf(why, whylen, "read-write open: %s (%s)", mms_strerror(rc), mms_open_detail());
		return false;
	}
	fill_random(valbuf, 6000);
	rc = mms_put(env, MMS_ROOT_INO, "after", 5, valbuf, 6000, 0644, 0, 0, NULL);
	if (!rc)
		rc = mms_commit(env);
	if (!rc) {
		problems[0] = 0;
		rc = mms_check(env, on_problem, problems, NULL, NULL, &np);
	}
	if (rc || np) {
		snprintf(why, whylen, "after recovery, a put and check: %s (%s), %" PRIu64 " problems: %s",
		         mms_strerror(rc), mms_errdetail(env), np, problems);
		mms_close(env);
		return false;
	}
	mms_close(env);
	return true;
}

/* The generation the operation under way at record `cut` ends at: commits
 * up to it may have reached the file (a vacuum commits several). */
static uint64_t next_gen(size_t cut)
{
	for (size_t i = cut; i < nrecs; i++)
		if (recs[i].kind == R_COMMITTED || recs[i].kind == R_SYNCED)
			return recs[i].gen;
	return nstates ? states[nstates - 1].gen : 0;
}

/*
 * The file is never shortened below what a synced meta on it records: a
 * machine crash would find that meta with pages missing (MMS_TRUNCATED).
 * Replays the record in full and checks at every truncation.  Returns the
 * record index of a violation, or -1.
 */
static long check_truncations(uint64_t *len_out, uint64_t *need_out)
{
	struct image im = { 0 };
	long bad = -1;
	for (size_t i = 0; i < nrecs && bad < 0; i++) {
		if (recs[i].kind == R_TRUNCATE && recs[i].len < im.len) {
			uint64_t need = 0;
			for (int s = 0; s < 2; s++) {
				uint8_t page[4096];
				if (im.len < (uint64_t)(s + 1) * 4096)
					continue;
				memcpy(page, im.b + s * 4096, 4096);
				uint32_t crc = mms_get_le32(page + 8);
				mms_put_le32(page + 8, 0);
				if (memcmp(page, "MMSTORE", 8) || crc != mms_crc32c(0, page, 4096) ||
				    !(mms_get_le32(page + 20) & 1))
					continue;
				uint64_t fp = mms_get_le64(page + 72) * 4096;
				if (fp > need)
					need = fp;
			}
			if (recs[i].len < need) {
				bad = (long)i;
				*len_out = recs[i].len;
				*need_out = need;
			}
		}
		img_apply(&im, &recs[i], false);
	}
	free(im.b);
	return bad;
}

struct totals {
	long machine, process, failed;
};

/*
 * Check `images` machine-crash images and a quarter as many process-crash
 * images of the record.  Returns false at the first failing image.
 */
static bool check_record(const char *img_path, long images, struct totals *t, char *why,
                         size_t whylen)
{
	/* the sync points: durable[j] = record index of the j-th fdatasync */
	size_t *syncs = malloc((nrecs + 1) * sizeof *syncs), ns = 0;
	if (!syncs)
		abort();
	for (size_t i = 0; i < nrecs; i++)
		if (recs[i].kind == R_SYNC)
			syncs[ns++] = i;
	syncs[ns] = nrecs; /* the end: nothing after it */
	struct image base = { 0 }, im = { 0 };
	size_t applied = 0; /* records [0, applied) are in base */
	bool ok = true;
	long per_window = images / (long)(ns + 1) + 1;

	for (size_t w = 0; w <= ns && ok; w++) {
		/* window w: the durable prefix ends at syncs[w-1] (w == 0: nothing) */
		size_t start = w ? syncs[w - 1] + 1 : 0, end = syncs[w];
		while (applied < start)
			img_apply(&base, &recs[applied++], false);
		if (start < created_at)
			continue; /* the store was still being made */
		/* the generation that durable prefix guarantees: that of the
		 * sync whose last fdatasync ends it, else the sync before */
		uint64_t lo = states[0].gen;
		for (size_t i = 0; i < start; i++)
			if (recs[i].kind == R_SYNCED)
				lo = recs[i].gen;
		for (size_t i = start; i < nrecs && recs[i].kind != R_SYNC; i++)
			if (recs[i].kind == R_SYNCED) {
				lo = recs[i].gen;
				break;
			}
		for (long n = 0; n < per_window && ok; n++) {
			/* crash point: any record in [start, end] */
			size_t cut = start + (size_t)below(end - start + 1);
			uint64_t hi = next_gen(cut);
			img_copy(&im, &base);
			int mode = (int)below(8); /* 0: none, 1: all, else random */
			for (size_t i = start; i < cut; i++) {
				if (mode == 0)
					break;
				if (mode == 1 || below(2))
					img_apply(&im, &recs[i], mode != 1 && recs[i].kind == R_WRITE && below(4) == 0);
			}
			if (img_write(img_path, &im)) {
				snprintf(why, whylen, "cannot write the image");
				ok = false;
				break;
			}
			mms_io_test_boot_id = "simulated-reboot";
			char detail[1400];
			ok = img_verify(img_path, true, lo, hi, -1, -1, below(16) == 0, detail, sizeof detail);
			mms_io_test_boot_id = NULL;
			t->machine++;
			if (!ok)
				snprintf(why, whylen, "machine crash at record %zu of %zu (last durable fdatasync: record %zd, %s): %s",
				         cut, nrecs, w ? (ssize_t)syncs[w - 1] : (ssize_t)-1,
				         mode == 0 ? "nothing after it" : mode == 1 ? "everything after it" : "a random subset after it",
				         detail);
		}
	}
	/* process crashes: everything up to the cut reached the file */
	im.len = 0;
	size_t at = 0;
	long nproc = images / 4 + 1;
	size_t *cuts = malloc((size_t)nproc * sizeof *cuts);
	if (!cuts)
		abort();
	for (long i = 0; i < nproc; i++)
		cuts[i] = (size_t)below(nrecs + 1);
	/* ascending, so the image is built once */
	for (long i = 1; i < nproc; i++)
		for (long j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
			size_t x = cuts[j];
			cuts[j] = cuts[j - 1];
			cuts[j - 1] = x;
		}
	for (long i = 0; i < nproc && ok; i++) {
		size_t cut = cuts[i];
		while (at < cut)
			img_apply(&im, &recs[at++], false);
		if (cut < created_at)
			continue; /* the store was not made yet */
		uint64_t gen = states[0].gen;
		int skip_a = -1, skip_b = -1;
		for (size_t j = 0; j < cut; j++) {
			if (recs[j].kind == R_COMMITTED || recs[j].kind == R_SYNCED) {
				gen = recs[j].gen;
				skip_a = skip_b = -1;
			} else if (recs[j].kind == R_BEGIN) {
				skip_a = recs[j].key_a;
				skip_b = recs[j].key_b;
			}
		}
		if (img_write(img_path, &im)) {
			snprintf(why, whylen, "cannot write the image");
			ok = false;
			break;
		}
		char detail[1400];
		/* the meta of the commit under way may be written: from gen up
		 * to the generation that operation ends at */
		ok = img_verify(img_path, false, gen, next_gen(cut), skip_a, skip_b,
		                below(16) == 0, detail, sizeof detail);
		t->process++;
		if (!ok)
			snprintf(why, whylen, "process crash at record %zu of %zu: %s", cut, nrecs, detail);
	}
	free(cuts);
	free(base.b);
	free(im.b);
	free(syncs);
	return ok;
}

/*
 * The two reproducers of the issue, exactly: a value synced, then changed
 * and committed but not synced, then the machine crashes with every write
 * of the change on disk but no meta of it trusted (the worst case for
 * in-place writes).  After the reboot the value must be exactly as synced.
 *   truncate: 12,288 bytes of 'A', truncated to 5,000 (3,192 bytes from
 *             offset 5,000 used to read back as zeros)
 *   overwrite: 8 KiB of 'A', 4 KiB of 'B' written at 4096 (it used to come
 *             back half 'A', half 'B')
 */
static void reproducer(const char *path, const char *img, bool truncate)
{
	mms_env *env;
	struct mms_stat st;
	static uint8_t a[12288], b[4096], got[12288];
	size_t want = truncate ? 12288 : 8192, n = 0;
	const char *what = truncate ? "unsynced truncate" : "unsynced overwrite";
	memset(a, 'A', sizeof a);
	memset(b, 'B', sizeof b);
	unlink(path);
	rec_free();
	store_fd = -1;
	recording = true;
	int rc = mms_open(path, &(struct mms_options){ .flags = MMS_CREATE | MMS_EXCL }, &env);
	if (rc == 0) {
		store_fd = mms_fd(env);
		rc = mms_put(env, MMS_ROOT_INO, "v", 1, a, want, 0644, 0, 0, &st);
	}
	if (rc == 0)
		rc = mms_sync(env);
	if (rc == 0)
		rc = truncate ? mms_truncate(env, st.ino, 5000) : mms_write(env, st.ino, b, sizeof b, 4096);
	if (rc == 0)
		rc = mms_commit(env);
	recording = false;
	mms_close(env);
	if (!is_int(rc, 0, what))
		return;
	/* every write reached the disk; the reboot trusts only synced metas */
	struct image im = { 0 };
	for (size_t i = 0; i < nrecs; i++)
		img_apply(&im, &recs[i], false);
	if (img_write(img, &im))
		abort();
	free(im.b);
	mms_io_test_boot_id = "after-the-crash";
	rc = mms_open(img, &(struct mms_options){ .flags = MMS_RDONLY }, &env);
	mms_io_test_boot_id = NULL;
	if (!is_int(rc, 0, "after the reboot, the store opens"))
		return;
	rc = mms_lookup(env, MMS_ROOT_INO, "v", 1, &st);
	if (rc == 0)
		rc = mms_read(env, st.ino, got, sizeof got, 0, &n);
	size_t bad = 0;
	for (size_t i = 0; i < n; i++)
		bad += got[i] != 'A';
	ok(rc == 0 && n == want && bad == 0,
	   "%s, then a machine crash: the value is as synced (%zu bytes, %zu of them not 'A')", what, n,
	   bad);
	mms_close(env);
}

static long env_long(const char *name, long def)
{
	const char *s = getenv(name);
	return s && *s ? strtol(s, NULL, 10) : def;
}

int main(int argc, char **argv)
{
	bool longrun = argc > 1 && !strcmp(argv[1], "--long");
	mms_file_test_tight_map = 1; /* every growth of the file moves the map */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t seed = (uint64_t)env_long("MMS_SEED", (long)((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
	                                                     (uint64_t)getpid()));
	long runs = env_long("MMS_SIM_RUNS", longrun ? 40 : 3);
	long steps = env_long("MMS_SIM_STEPS", longrun ? 2000 : 250);
	long images = env_long("MMS_SIM_IMAGES", longrun ? 25000 : 700);
	char *dir = tap_tmpdir();
	char path[1024], img[1024];
	snprintf(path, sizeof path, "%s/store.mms", dir);
	snprintf(img, sizeof img, "%s/image.mms", dir);
	tap_diag("seed %" PRIu64 " (replay with MMS_SEED=%" PRIu64 "), %ld runs of %ld steps, %ld images each",
	         seed, seed, runs, steps, images);
	mms_io_hooks = &hooks;
	reproducer(path, img, true);
	reproducer(path, img, false);
	struct totals t = { 0, 0, 0 };
	/* Workload runs that once failed, replayed every time: a seed and the
	 * run of it that failed. */
	static const struct { uint64_t seed; long run; const char *what; } regressions[] = {
		{ 1883449067533615ull, 0,
		  "a vacuum's trim left stale runs in punch_now; a keep-sync held them and released "
		  "them as free past the file's end: an extent outside the file" },
	};
	for (size_t i = 0; i < sizeof regressions / sizeof regressions[0]; i++) {
		char why[2048] = "";
		rng = regressions[i].seed + (uint64_t)regressions[i].run * 0x632BE59BD9B4E019ull;
		int rc = run_workload(path, steps, why, sizeof why);
		if (!ok(rc == 0, "regression %zu (%s): the workload ran%s%s", i, regressions[i].what,
		        rc ? ": " : "", why))
			continue;
		long m0 = t.machine, p0 = t.process;
		bool good = check_record(img, images / 4, &t, why, sizeof why);
		ok(good, "regression %zu: %ld machine-crash and %ld process-crash images hold a committed state%s%s",
		   i, t.machine - m0, t.process - p0, good ? "" : ": ", why);
	}
	for (long run = 0; run < runs; run++) {
		char why[2048] = "";
		rng = seed + (uint64_t)run * 0x632BE59BD9B4E019ull;
		/* odd runs keep a few free runs inline at most: the free list
		 * goes to a base and a log at once; and of those, half keep a
		 * few changes in the meta's tail of the log (the other half as
		 * many as fit), so that commits move the tail to log pages */
		mms_alloc_test_inline_max = (run & 1) ? 1 + (unsigned)(run / 2 % 6) : 0;
		mms_alloc_test_tail_max = (run & 3) == 1 ? 1 + (unsigned)(run / 4 % 8) : 0;
		int rc = run_workload(path, steps, why, sizeof why);
		if (!ok(rc == 0, "run %ld: the workload ran (%zu records, %zu generations, inline free list "
		        "%s%u, log tail %s%u)%s%s", run, nrecs, nstates,
		        mms_alloc_test_inline_max ? "up to " : "default ", mms_alloc_test_inline_max,
		        mms_alloc_test_tail_max ? "up to " : "default ", mms_alloc_test_tail_max,
		        rc ? ": " : "", why))
			continue;
		long m0 = t.machine, p0 = t.process;
		bool good = check_record(img, images, &t, why, sizeof why);
		ok(good, "run %ld: %ld machine-crash and %ld process-crash images hold a committed state%s%s",
		   run, t.machine - m0, t.process - p0, good ? "" : ": ", why);
	}
	{
		char why[2048] = "";
		rng = seed ^ 0xfeedull;
		mms_alloc_test_inline_max = (seed & 1) ? 3 : 0; /* a vacuum over a log, or not */
		mms_alloc_test_tail_max = (seed & 2) ? 2 : 0;   /* with a short tail, or not */
		int rc = run_vacuum_workload(path, why, sizeof why);
		if (ok(rc == 0, "vacuum of a fragmented store: ran (%zu records)%s%s", nrecs, rc ? ": " : "", why)) {
			uint64_t len = 0, need = 0;
			long at = check_truncations(&len, &need);
			ok(at < 0, "vacuum of a fragmented store: the file is never shortened under a synced meta%s",
			   at < 0 ? "" : " (it was)");
			if (at >= 0)
				tap_diag("record %ld truncates to %" PRIu64 " bytes; a synced meta records %" PRIu64,
				         at, len, need);
			long m0 = t.machine, p0 = t.process;
			bool good = check_record(img, images, &t, why, sizeof why);
			ok(good, "vacuum of a fragmented store: %ld machine-crash and %ld process-crash images%s%s",
			   t.machine - m0, t.process - p0, good ? "" : ": ", why);
		}
	}
	{
		char why[2048] = "";
		uint64_t spills = 0;
		rng = seed ^ 0x5b111ull;
		int rc = run_spill_workload(path, &spills, why, sizeof why);
		if (ok(rc == 0 && spills > 0, "transactions past the spill limit: ran (%zu records, %" PRIu64
		       " spills)%s%s", nrecs, spills, rc ? ": " : "", why)) {
			long m0 = t.machine, p0 = t.process;
			bool good = check_record(img, images, &t, why, sizeof why);
			ok(good, "transactions past the spill limit: %ld machine-crash and %ld process-crash images%s%s",
			   t.machine - m0, t.process - p0, good ? "" : ": ", why);
		}
	}
	mms_io_hooks = NULL;
	tap_diag("%ld machine-crash images and %ld process-crash images checked (%ld with a torn meta page, "
	         "repaired by the next read-write open)", t.machine, t.process, t_torn_metas);
	rec_free();
	free(recs);
	free(states);
	return tap_done();
}
