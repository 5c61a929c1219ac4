/*
 * rename2.c - renameat2(2) from the command line, for the bats suites.
 *
 *   rename2 [--noreplace | --exchange] OLD NEW
 *
 * Renames OLD to NEW with the given flag (none: a plain rename).  Exits 0 on
 * success; on failure prints "rename2: OLD -> NEW: <strerror>" on stderr and
 * exits 1, so a test can check which error the filesystem gave.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int main(int argc, char **argv)
{
	unsigned flags = 0;
	int i = 1;

	if (argc == 4 && strcmp(argv[1], "--noreplace") == 0)
		flags = RENAME_NOREPLACE;
	else if (argc == 4 && strcmp(argv[1], "--exchange") == 0)
		flags = RENAME_EXCHANGE;
	else if (argc != 3) {
		fprintf(stderr, "usage: rename2 [--noreplace | --exchange] OLD NEW\n");
		return 2;
	}
	if (argc == 4)
		i = 2;
	/* The raw system call: older C libraries lack the renameat2() wrapper. */
	if (syscall(SYS_renameat2, AT_FDCWD, argv[i], AT_FDCWD, argv[i + 1], flags) != 0) {
		int err = errno;

		fprintf(stderr, "rename2: %s -> %s: %s\n", argv[i], argv[i + 1], strerror(err));
		return 1;
	}
	return 0;
}
