/*
 * test_pager.c - the pager's transactions of any size: a transaction past
 * its spill limit writes its dirty pages to the file and reads them back,
 * keeps at most the limit (plus one call's pages) in memory, rolls back and
 * commits as a small one does, and leaves a dirty table as small as before
 * (a big table scanned at every later commit made each cost 1 ms at
 * 10,000,000 keys).
 */
#include "mms_int.h"
#include "tap.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define NKEYS 60000
#define SPILL 64u
#define VLEN 100

static void value_of(unsigned i, unsigned round, uint8_t *v)
{
	for (unsigned j = 0; j < VLEN; j++)
		v[j] = (uint8_t)(i * 7u + j * 13u + round);
}

/* Put keys 0..NKEYS-1 in the open transaction; 0 or the first failure.
 * *most gets the most dirty pages held in memory between two puts. */
static int put_all(mms_env *env, unsigned round, size_t *most)
{
	char name[32];
	uint8_t v[VLEN];
	*most = 0;
	for (unsigned i = 0; i < NKEYS; i++) {
		int l = snprintf(name, sizeof name, "key%06u", i);
		value_of(i, round, v);
		int rc = mms_put(env, MMS_ROOT_INO, name, (size_t)l, v, VLEN, 0644, 0, 0, NULL);
		if (rc) {
			tap_diag("put %s: %s (%s)", name, mms_strerror(rc), mms_errdetail(env));
			return rc;
		}
		size_t mem, slots;
		mms_pager_counts(env, &mem, &slots);
		if (mem > *most)
			*most = mem;
	}
	return 0;
}

/* Number of keys (of every `step`-th) whose value is not round's. */
static unsigned wrong_values(mms_env *env, unsigned round, unsigned step)
{
	char name[32];
	uint8_t v[VLEN], got[VLEN];
	unsigned bad = 0;
	for (unsigned i = 0; i < NKEYS; i += step) {
		int l = snprintf(name, sizeof name, "key%06u", i);
		size_t n = 0;
		value_of(i, round, v);
		int rc = mms_get(env, MMS_ROOT_INO, name, (size_t)l, got, sizeof got, &n, NULL);
		if (rc || n != VLEN || memcmp(v, got, VLEN))
			bad++;
	}
	return bad;
}

/* Resident kB of this process's mappings of the file at path (the engine's
 * map of the store), from /proc/self/smaps; -1 if it cannot be read. */
static long map_rss_kb(const char *path)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[4096];
	long kb = 0, v;
	unsigned long lo, hi;
	int ours = 0;
	size_t pl = strlen(path);
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		size_t l = strlen(line);
		if (l && line[l - 1] == '\n')
			line[--l] = 0;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) /* a mapping's first line */
			ours = l >= pl && !strcmp(line + l - pl, path);
		else if (ours && sscanf(line, "Rss: %ld kB", &v) == 1)
			kb += v;
	}
	fclose(f);
	return kb;
}

struct reader {
	mms_env *env;
	unsigned round, bad;
};

static void *reader_run(void *arg)
{
	struct reader *r = arg;
	r->bad = wrong_values(r->env, r->round, 1);
	return NULL;
}

static void no_problem(void *ctx, const char *where, const char *what)
{
	(*(unsigned *)ctx)++;
	tap_diag("check: %s: %s", where, what);
}

int main(void)
{
	tap_plan_none();
	char path[512];
	snprintf(path, sizeof path, "%s/pager.mms", tap_tmpdir());
	mms_env *env;
	int rc = mms_open(path, &(struct mms_options){ .flags = MMS_CREATE | MMS_EXCL }, &env);
	if (!ok(rc == 0, "create %s", path))
		return tap_done();
	mms_pager_set_spill(env, SPILL);

	size_t most = 0, mem = 0, slots = 0;
	rc = put_all(env, 1, &most);
	ok(rc == 0, "%d puts in one transaction", NKEYS);
	uint64_t spills = mms_pager_spills(env);
	ok(spills > 10, "the transaction spilled (%" PRIu64 " times past %u pages)", spills, SPILL);
	ok(most <= SPILL + 32, "at most the limit and one call's pages were in memory (%zu, limit %u)",
	   most, SPILL);
	/* Spilled pages come back with pread: the map holds no page of them
	 * (it did when they were read through it: each fault maps the cached
	 * pages around it too, up to 16 pages for each of the 256 brought
	 * back between two drops of the map). */
	long rss = map_rss_kb(path);
	ok(rss >= 0 && rss <= 64, "the map of the store holds %ld kB after the spills (at most 64)", rss);
	/* read-only calls may run concurrently: two readers bring the same
	 * spilled pages back at once (mms_unspill publishes one copy) */
	struct reader rd[2] = { { env, 1, 0 }, { env, 1, 0 } };
	pthread_t th[2];
	int started = 0;
	for (int t = 0; t < 2; t++)
		started += pthread_create(&th[t], NULL, reader_run, &rd[t]) == 0;
	for (int t = 0; t < started; t++)
		pthread_join(th[t], NULL);
	ok(started == 2 && rd[0].bad == 0 && rd[1].bad == 0,
	   "two threads reading at once inside the transaction read every key right (%u, %u wrong)",
	   rd[0].bad, rd[1].bad);
	ok(wrong_values(env, 1, 1) == 0, "every key reads back inside the transaction");
	mms_pager_counts(env, &mem, &slots);
	ok(mem <= 2 * SPILL, "reads alone brought back at most twice the limit (%zu, limit %u)", mem,
	   SPILL);
	rc = mms_rollback(env);
	ok(rc == 0, "rollback");
	uint8_t got[VLEN];
	ok(mms_get(env, MMS_ROOT_INO, "key000000", 9, got, sizeof got, NULL, NULL) == MMS_NOTFOUND,
	   "after the rollback no key is there");
	mms_pager_counts(env, &mem, &slots);
	ok(mem == 0 && slots <= 4096, "the rollback left a small dirty table (%zu slots)", slots);

	rc = put_all(env, 2, &most);
	ok(rc == 0, "%d puts again", NKEYS);
	rc = mms_commit(env);
	ok(rc == 0, "commit");
	mms_pager_counts(env, &mem, &slots);
	ok(mem == 0 && slots <= 4096, "the commit left a small dirty table (%zu slots)", slots);
	ok(wrong_values(env, 2, 1) == 0, "every key reads back after the commit");
	/* spilled pages written again (changed after their spill) */
	rc = put_all(env, 3, &most);
	if (!rc)
		rc = mms_sync(env);
	ok(rc == 0, "a second transaction over the same keys, synced");
	rc = mms_close(env);
	ok(rc == 0, "close");

	rc = mms_open(path, NULL, &env);
	if (!ok(rc == 0, "reopen"))
		return tap_done();
	ok(wrong_values(env, 3, 1) == 0, "after a reopen every key has the last transaction's value");
	unsigned problems = 0;
	uint64_t n = 0;
	rc = mms_check(env, no_problem, &problems, NULL, NULL, &n);
	ok(rc == 0 && problems == 0, "mms_check finds no problem");

	/* A transaction of a few thousand pages leaves a table of thousands of
	 * slots; the commits of one put each after it get a small one again
	 * (each commit scans the whole table, twice). */
	uint8_t v[VLEN];
	char name[32];
	mms_pager_set_spill(env, 1u << 20);
	for (unsigned i = 0; i < NKEYS && !rc; i += 40) {
		int l = snprintf(name, sizeof name, "key%06u", i);
		value_of(i, 4, v);
		rc = mms_put(env, MMS_ROOT_INO, name, (size_t)l, v, VLEN, 0644, 0, 0, NULL);
	}
	if (!rc)
		rc = mms_commit(env);
	size_t big_slots = 0;
	mms_pager_counts(env, &mem, &big_slots);
	for (unsigned i = 0; i < 3 && !rc; i++) {
		int l = snprintf(name, sizeof name, "small%u", i);
		rc = mms_put(env, MMS_ROOT_INO, name, (size_t)l, v, VLEN, 0644, 0, 0, NULL);
		if (!rc)
			rc = mms_commit(env);
	}
	mms_pager_counts(env, &mem, &slots);
	ok(rc == 0 && big_slots > 256 && slots <= 64,
	   "commits of one put after a big one scan a small dirty table (%zu slots, %zu after the big one)",
	   slots, big_slots);
	mms_close(env);
	return tap_done();
}
