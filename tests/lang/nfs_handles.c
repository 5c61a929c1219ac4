/*
 * nfs_handles.c - an NFS client that keeps its file handles (tests/220).
 *
 *   nfs_handles SERVER EXPORT OUTDIR PATH...
 *
 * Mounts EXPORT of SERVER over NFSv3 (libnfs), opens every PATH (relative
 * to the export) and keeps the handles; prints "ready" and waits for a line
 * on standard input (the test restarts the server, drops caches, removes a
 * file meanwhile); then reads each file through the handle it kept, not by
 * its name, into OUTDIR/N (N: the PATH's position, from 0) and prints
 * "PATH ok BYTES", or "PATH error <strerror> (pread: <strerror>)" when the
 * server refuses the handle (ESTALE, from a GETATTR, for a removed file).
 * Exit status 0 unless the client itself fails (mount, open, memory).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nfsc/libnfs.h>

#define CHUNK (256 * 1024)

int main(int argc, char **argv)
{
	struct nfs_context *nfs;
	struct nfsfh **fh;
	char line[64], out[4096];
	char *buf;
	int n, rc;

	if (argc < 5) {
		fprintf(stderr, "usage: %s SERVER EXPORT OUTDIR PATH...\n", argv[0]);
		return 2;
	}
	n = argc - 4;
	fh = calloc((size_t)n, sizeof(*fh));
	buf = malloc(CHUNK);
	nfs = nfs_init_context();
	if (fh == NULL || buf == NULL || nfs == NULL) {
		fprintf(stderr, "nfs_handles: out of memory\n");
		return 1;
	}
	nfs_set_autoreconnect(nfs, 100);
	rc = nfs_mount(nfs, argv[1], argv[2]);
	if (rc != 0) {
		fprintf(stderr, "nfs_handles: mount %s:%s: %s\n", argv[1], argv[2], nfs_get_error(nfs));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		rc = nfs_open(nfs, argv[4 + i], O_RDONLY, &fh[i]);
		if (rc != 0) {
			fprintf(stderr, "nfs_handles: open %s: %s\n", argv[4 + i], nfs_get_error(nfs));
			return 1;
		}
	}
	printf("ready\n");
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL) {
		fprintf(stderr, "nfs_handles: no go line\n");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		uint64_t off = 0;
		FILE *f;

		snprintf(out, sizeof(out), "%s/%d", argv[3], i);
		f = fopen(out, "wb");
		if (f == NULL) {
			fprintf(stderr, "nfs_handles: %s: %s\n", out, strerror(errno));
			return 1;
		}
		for (;;) {
			rc = nfs_pread(nfs, fh[i], off, CHUNK, buf);
			if (rc <= 0)
				break;
			if (fwrite(buf, 1, (size_t)rc, f) != (size_t)rc) {
				fprintf(stderr, "nfs_handles: %s: %s\n", out, strerror(errno));
				return 1;
			}
			off += (uint64_t)rc;
		}
		if (fclose(f) != 0) {
			fprintf(stderr, "nfs_handles: %s: %s\n", out, strerror(errno));
			return 1;
		}
		if (rc < 0) {
			/* libnfs' pread says EFAULT for any refusal; its GETATTR
			 * gives the server's status */
			struct nfs_stat_64 st;
			int src = nfs_fstat64(nfs, fh[i], &st);
			printf("%s error %s (pread: %s)\n", argv[4 + i], strerror(src < 0 ? -src : -rc),
			       strerror(-rc));
		}
		else
			printf("%s ok %llu\n", argv[4 + i], (unsigned long long)off);
	}
	/* (NFSv3 has no close on the wire: this frees the handles, stale or not) */
	for (int i = 0; i < n; i++)
		(void)nfs_close(nfs, fh[i]);
	nfs_destroy_context(nfs);
	free(fh);
	free(buf);
	return 0;
}
