/*
 * linecheck.c - check what a reader got in tests/160-fs-concurrency.bats.
 *
 *   linecheck FILE KEY [zeros]
 *
 * FILE must be whole 64-byte records, each a line written for key KEY:
 * "wW vVVVVVVVV kKK " then 46 'x' and a newline.  With "zeros", a record of
 * 64 zero bytes is accepted too: what a read that raced with a truncation
 * may see, on FUSE as on ext4 (the kernel zero-fills a page past the new
 * end while a reader still sees the old size).  Prints the number of bad
 * records (a short last record counts as one) and, on stderr, the first.
 * Exit status 0 when there are none, 1 otherwise, 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REC 64

static int record_ok(const unsigned char *r, int key, int zeros)
{
	char want[8];
	int i;

	if (zeros) {
		for (i = 0; i < REC && r[i] == 0; i++)
			;
		if (i == REC)
			return 1;
	}
	/* "wW vVVVVVVVV kKK x...x\n" */
	if (r[0] != 'w' || r[1] < '0' || r[1] > '9' || r[2] != ' ' || r[3] != 'v')
		return 0;
	for (i = 4; i < 12; i++)
		if (r[i] < '0' || r[i] > '9')
			return 0;
	snprintf(want, sizeof(want), " k%02d ", key);
	if (memcmp(r + 12, want, 5) != 0)
		return 0;
	for (i = 17; i < REC - 1; i++)
		if (r[i] != 'x')
			return 0;
	return r[REC - 1] == '\n';
}

int main(int argc, char **argv)
{
	unsigned char r[REC];
	long bad = 0, at = 0;
	size_t n;
	FILE *f;
	int key, zeros;

	if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "zeros") != 0)) {
		fprintf(stderr, "usage: linecheck FILE KEY [zeros]\n");
		return 2;
	}
	key = atoi(argv[2]);
	zeros = argc == 4;
	f = fopen(argv[1], "rb");
	if (f == NULL) {
		perror(argv[1]);
		return 2;
	}
	while ((n = fread(r, 1, REC, f)) > 0) {
		if (n < REC || !record_ok(r, key, zeros)) {
			if (bad++ == 0) {
				fprintf(stderr, "linecheck: %s: the record at byte %ld (%zu bytes) starts '",
				        argv[1], at, n);
				for (size_t i = 0; i < n && i < 24; i++)
					fprintf(stderr, r[i] >= ' ' && r[i] < 127 ? "%c" : "\\%03o", r[i]);
				fprintf(stderr, "'\n");
			}
		}
		at += (long)n;
	}
	fclose(f);
	printf("%ld\n", bad);
	return bad ? 1 : 0;
}
