/*
 * replay_main.c - run fuzz_store.c's harness over the files of the
 * directories given (no libFuzzer): scripts/fuzz --coverage links it into
 * a coverage build to measure what the corpus reaches.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	long n = 0;
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *e;
		if (!d)
			continue;
		while ((e = readdir(d))) {
			char path[4096];
			struct stat st;
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
			int fd = open(path, O_RDONLY);
			if (fd < 0 || fstat(fd, &st)) {
				if (fd >= 0)
					close(fd);
				continue;
			}
			uint8_t *buf = malloc((size_t)st.st_size + 1);
			ssize_t got = buf ? read(fd, buf, (size_t)st.st_size) : -1;
			close(fd);
			if (got >= 0)
				LLVMFuzzerTestOneInput(buf, (size_t)got);
			free(buf);
			n++;
		}
		closedir(d);
	}
	printf("%ld inputs\n", n);
	return 0;
}
