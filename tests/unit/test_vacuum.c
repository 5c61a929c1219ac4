/*
 * test_vacuum.c - compaction: the file shrinks, every value and xattr is
 * intact, check is clean, progress is reported, stopping early is safe,
 * and a process killed at a random moment of a vacuum leaves a store that
 * opens, checks clean and holds every key.
 */
#include "mms_int.h"
#include "tap.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NKEYS 200

static size_t value_len(int i) { return (size_t)(i % 9) * 37000 + 5; }

static void value(int i, uint8_t *buf, size_t len)
{
	for (size_t k = 0; k < len; k++)
		buf[k] = (uint8_t)(i * 13 + k);
}

static int fill_store(const char *path)
{
	mms_env *env;
	uint8_t *buf = malloc(1 << 20);
	int rc = mms_open(path, &(struct mms_options){ .flags = MMS_CREATE }, &env);
	for (int i = 0; i < NKEYS && !rc; i++) {
		char name[32];
		struct mms_stat st;
		int l = snprintf(name, sizeof(name), "k%04d", i);
		size_t len = value_len(i);
		value(i, buf, len > 4000 ? len : 4000); /* the xattr takes up to 3200 of these */
		rc = mms_mknod(env, MMS_ROOT_INO, name, (size_t)l, S_IFREG | 0644, 0, 0, &st);
		if (!rc)
			rc = mms_write(env, st.ino, buf, len, 0);
		if (!rc && i % 3 == 0)
			rc = mms_setxattr(env, st.ino, "user.blob", 9, buf, 3000 + (size_t)i, 0);
	}
	for (int i = 0; i < NKEYS && !rc; i++) {
		char name[32];
		int l = snprintf(name, sizeof(name), "k%04d", i);
		if (i % 5)
			rc = mms_unlink(env, MMS_ROOT_INO, name, (size_t)l);
	}
	if (!rc)
		rc = mms_close(env);
	free(buf);
	return rc;
}

/* Every kept key (i % 5 == 0) reads back; returns the number of bad keys. */
static int verify_keys(mms_env *env)
{
	uint8_t *buf = malloc(1 << 20), *want = malloc(1 << 20);
	int bad = 0;
	for (int i = 0; i < NKEYS; i += 5) {
		char name[32];
		struct mms_stat st;
		size_t got, vl;
		int l = snprintf(name, sizeof(name), "k%04d", i);
		size_t len = value_len(i);
		value(i, want, len > 4000 ? len : 4000);
		if (mms_lookup(env, MMS_ROOT_INO, name, (size_t)l, &st) ||
		    mms_read(env, st.ino, buf, 1 << 20, 0, &got) || got != len || memcmp(buf, want, len)) {
			tap_diag("key %s: value differs", name);
			bad++;
			continue;
		}
		if (i % 3 == 0 && (mms_getxattr(env, st.ino, "user.blob", 9, buf, 1 << 20, &vl) ||
		                   vl != 3000 + (size_t)i || memcmp(buf, want, vl))) {
			tap_diag("key %s: xattr differs", name);
			bad++;
		}
	}
	free(buf);
	free(want);
	return bad;
}

static uint64_t last_done, calls;
static int stop_after;
static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
	(void)ctx;
	(void)total;
	if (done < last_done)
		calls = 1u << 30; /* went backwards: flagged below */
	last_done = done;
	calls++;
	return stop_after && (int)calls >= stop_after;
}

int main(void)
{
	tap_plan_none();
	char *dir = tap_tmpdir();
	char path[512];
	snprintf(path, sizeof(path), "%s/vac.mms", dir);
	is_int(fill_store(path), 0, "fill a store, delete 4 keys in 5");

	mms_env *env;
	struct stat before, after;
	stat(path, &before);
	is_int(mms_open(path, NULL, &env), 0, "open");
	struct mms_vacuum_result res;
	is_int(mms_vacuum(env, on_progress, NULL, &res), 0, "vacuum");
	ok(calls >= 1 && calls < (1u << 30), "progress reported, never backwards (%llu calls)", (unsigned long long)calls);
	ok(res.size_after < res.size_before / 2, "file shrank from %llu to %llu bytes",
	   (unsigned long long)res.size_before, (unsigned long long)res.size_after);
	uint64_t probs = 1;
	is_int(mms_check(env, NULL, NULL, NULL, NULL, &probs), 0, "check runs");
	is_int(probs, 0, "check is clean after vacuum");
	is_int(verify_keys(env), 0, "every kept key and xattr is intact");
	is_int(mms_close(env), 0, "close");
	stat(path, &after);
	/* deleted values were punched out already: disk use stays about the same */
	ok(after.st_size < before.st_size / 2 && after.st_blocks <= before.st_blocks + 128,
	   "size %lld -> %lld, disk %lld -> %lld", (long long)before.st_size, (long long)after.st_size,
	   (long long)before.st_blocks * 512, (long long)after.st_blocks * 512);
	is_int(mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env), 0, "reopen read-only");
	is_int(verify_keys(env), 0, "intact after reopen");
	is_int(mms_close(env), 0, "close");

	/* a second vacuum has nothing left to do */
	is_int(mms_open(path, NULL, &env), 0, "open");
	is_int(mms_vacuum(env, NULL, NULL, &res), 0, "vacuum again");
	ok(res.size_after <= res.size_before, "no growth (%llu -> %llu)", (unsigned long long)res.size_before,
	   (unsigned long long)res.size_after);
	is_int(mms_close(env), 0, "close");

	/* Tree pages only, and the free space in one-page holes: 600,000 puts of
	 * small keys (424,000 names) in a scattered order, 50,000 per commit,
	 * leave the old copies of the name tree's leaves all over the file.
	 * Vacuum used to fail here with MMS_FULL: it moved every tree page in
	 * one step, with the copies of their parents on top, and each commit's
	 * free list (12 pages) had to find a contiguous run below the target. */
	snprintf(path, sizeof(path), "%s/trees.mms", dir);
	is_int(mms_open(path, &(struct mms_options){ .flags = MMS_CREATE | MMS_EXCL }, &env), 0,
	       "create a store for small keys");
	uint8_t small[100];
	memset(small, 'v', sizeof(small));
	int rc = 0;
	for (unsigned i = 0; i < 600000 && !rc; i++) {
		char name[32];
		int nl = snprintf(name, sizeof(name), "key-%08u", (i * 2654435761u) % 600000u);
		rc = mms_put(env, MMS_ROOT_INO, name, (size_t)nl, small, sizeof(small), S_IFREG | 0644, 0,
		             0, NULL);
		if (!rc && (i + 1) % 50000 == 0)
			rc = mms_commit(env);
	}
	is_int(rc, 0, "600,000 puts of 100 bytes");
	is_int(mms_close(env), 0, "close");
	is_int(mms_open(path, NULL, &env), 0, "open");
	struct mms_info info;
	is_int(mms_stats(env, &info), 0, "stats");
	is_int(mms_vacuum(env, NULL, NULL, &res), 0, "vacuum");
	ok(res.size_after <= info.used_bytes + info.used_bytes / 32 + (1u << 20),
	   "the file shrank to the live pages and a margin: %llu -> %llu bytes, %llu live",
	   (unsigned long long)res.size_before, (unsigned long long)res.size_after,
	   (unsigned long long)info.used_bytes);
	probs = 1;
	is_int(mms_check(env, NULL, NULL, NULL, NULL, &probs), 0, "check runs");
	is_int(probs, 0, "check is clean after vacuum");
	is_int(mms_close(env), 0, "close");

	/* killed at a random moment */
	srand((unsigned)time(NULL));
	int rounds = 12, good = 0;
	for (int r = 0; r < rounds; r++) {
		snprintf(path, sizeof(path), "%s/kill%d.mms", dir, r);
		if (fill_store(path))
			break;
		pid_t pid = fork();
		if (pid == 0) {
			mms_env *e;
			if (mms_open(path, NULL, &e))
				_exit(2);
			mms_vacuum(e, NULL, NULL, NULL);
			mms_close(e);
			_exit(0);
		}
		usleep((useconds_t)(rand() % 30000));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (mms_open(path, NULL, &env))
			continue;
		uint64_t p = 1;
		if (!mms_check(env, NULL, NULL, NULL, NULL, &p) && p == 0 && verify_keys(env) == 0)
			good++;
		mms_close(env);
	}
	is_int(good, rounds, "a vacuum killed at random: the store opens, checks clean and keeps every key");
	return tap_done();
}
