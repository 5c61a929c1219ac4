/*
 * rename_race.c - open and stat a name while another thread renames new
 * files over it as fast as it can.
 *
 *   rename_race DIR SECONDS
 *
 * On a local filesystem every open and stat of DIR/key succeeds: it finds
 * the file the name held at some moment.  Three threads open, read and
 * fstat it, two rename new files DIR/tmp.R.N over it.  Any failure is
 * printed with its errno and makes the exit status 1.  The last line gives
 * the counts, so a caller can check that the threads really raced.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NOPENERS 3

static const char *dir;
static atomic_int stop;
static atomic_long failures, opens, renames;

static void failed(const char *what, const char *path)
{
	/* the first few are enough to see what went wrong */
	if (atomic_fetch_add(&failures, 1) < 5)
		fprintf(stderr, "rename_race: %s %s: %s\n", what, path, strerror(errno));
}

static void *opener(void *arg)
{
	char path[4096], buf[64];
	struct stat st;

	(void)arg;
	snprintf(path, sizeof(path), "%s/key", dir);
	while (!atomic_load(&stop)) {
		int fd = open(path, O_RDONLY);

		if (fd < 0) {
			failed("open", path);
			continue;
		}
		if (read(fd, buf, sizeof(buf)) < 0)
			failed("read", path);
		if (fstat(fd, &st) != 0)
			failed("fstat", path);
		close(fd);
		atomic_fetch_add(&opens, 1);
	}
	return NULL;
}

static void *renamer(void *arg)
{
	char path[4096], tmp[4096];
	long n = 0;

	snprintf(path, sizeof(path), "%s/key", dir);
	while (!atomic_load(&stop)) {
		snprintf(tmp, sizeof(tmp), "%s/tmp.%d.%ld", dir, (int)(intptr_t)arg, n++);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);

		if (fd < 0) {
			failed("create", tmp);
			break;
		}
		if (write(fd, tmp, strlen(tmp)) < 0)
			failed("write", tmp);
		close(fd);
		if (rename(tmp, path) != 0) {
			failed("rename to", path);
			break;
		}
		atomic_fetch_add(&renames, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[NOPENERS + 2];
	char path[4096];
	int i, fd;

	if (argc != 3) {
		fprintf(stderr, "usage: rename_race DIR SECONDS\n");
		return 2;
	}
	dir = argv[1];
	snprintf(path, sizeof(path), "%s/key", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	close(fd);
	for (i = 0; i < NOPENERS; i++)
		pthread_create(&t[i], NULL, opener, NULL);
	pthread_create(&t[NOPENERS], NULL, renamer, (void *)(intptr_t)1);
	pthread_create(&t[NOPENERS + 1], NULL, renamer, (void *)(intptr_t)2);
	sleep((unsigned)atoi(argv[2]));
	atomic_store(&stop, 1);
	for (i = 0; i < NOPENERS + 2; i++)
		pthread_join(t[i], NULL);
	printf("opens %ld renames %ld failures %ld\n", atomic_load(&opens),
	       atomic_load(&renames), atomic_load(&failures));
	return atomic_load(&failures) ? 1 : 0;
}
