/*
 * tap.h - a tiny header-only TAP producer for the C unit tests.
 *
 * A test program prints one TAP line per check and the plan at the end;
 * automake's tap-driver.sh turns each line into a PASS/FAIL result:
 *
 *	#include "tap.h"
 *	int main(void)
 *	{
 *		tap_plan_none();
 *		char *dir = tap_tmpdir();
 *		if (!ok(dir != NULL, "temp dir %s", dir))
 *			return tap_done();
 *		is_int(2 + 2, 4, "addition");
 *		is_str("a", "a", "strings");
 *		return tap_done();
 *	}
 *
 * Every line is flushed at once, so output survives a crash and a fork().
 * Failures print where the check is and both values as "# " diagnostics.
 * Not thread-safe: call the checks from one thread.  Only names starting
 * with tap_, ok and is_ are defined.
 */
#ifndef MMS_TAP_H
#define MMS_TAP_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__GNUC__)
#define TAP_PRINTF_(f, a) __attribute__((format(printf, f, a)))
#else
#define TAP_PRINTF_(f, a)
#endif

static int tap_run_;        /* checks printed so far */
static int tap_failed_;     /* of which failed */
static char **tap_dirs_;    /* directories made by tap_tmpdir() */
static size_t tap_ndirs_;

/* xorshift64: a repeatable sequence for a test's choices (*state != 0). */
static inline uint64_t tap_xorshift(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

/*
 * Declare that the plan ("1..N") is printed at the end, by tap_done().
 * Call it first.
 */
static inline void tap_plan_none(void)
{
	tap_run_ = 0;
	tap_failed_ = 0;
}

/* Print fmt as "# " diagnostic lines (one per line of the text). */
static inline void tap_vdiag_(const char *fmt, va_list ap)
{
	char buf[4096];
	vsnprintf(buf, sizeof buf, fmt, ap);
	char *line = buf;
	for (;;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		printf("# %s\n", line);
		if (!nl || nl[1] == '\0')
			break;
		line = nl + 1;
	}
	fflush(stdout);
}

/* Print a diagnostic ("# ..." lines); it never changes a result. */
TAP_PRINTF_(1, 2)
static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tap_vdiag_(fmt, ap);
	va_end(ap);
}

/* Print "ok N - name" or "not ok N - name" and return cond (0 or 1). */
static inline int tap_result_(int cond, const char *file, int line,
                              const char *fmt, va_list ap)
{
	char name[1024];
	vsnprintf(name, sizeof name, fmt, ap);
	/* '#' would start a TAP directive: keep it out of the description. */
	for (char *p = name; *p; p++)
		if (*p == '#' || *p == '\n')
			*p = *p == '#' ? '_' : ' ';
	tap_run_++;
	if (!cond)
		tap_failed_++;
	printf("%sok %d - %s\n", cond ? "" : "not ", tap_run_, name);
	if (!cond)
		printf("#   Failed test '%s'\n#   at %s line %d.\n", name, file, line);
	fflush(stdout);
	return cond;
}

/* A check that cannot run here: "ok N # SKIP why" (why says what is missing). */
static inline void tap_skip(const char *why)
{
	tap_run_++;
	printf("ok %d # SKIP %s\n", tap_run_, why);
	fflush(stdout);
}

/*
 * Drop the file at path (which nothing may map) from the page cache: 1 if
 * it left it (at most half its pages still held, by mincore), 0 if its
 * file system keeps them (tmpfs: the caller skips, saying so).  "Bail
 * out!" if the file cannot be read.
 */
static inline int tap_uncache(const char *path)
{
	int fd = open(path, O_RDONLY);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)) {
		printf("Bail out! tap_uncache: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	size_t len = (size_t)sb.st_size, pages = (len + 4095) / 4096, held = 0;
	void *m = len ? mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0) : NULL;
	unsigned char *vec = malloc(pages ? pages : 1);
	if (m == MAP_FAILED || !vec || (len && mincore(m, len, vec))) {
		printf("Bail out! tap_uncache: mincore of %s: %s\n", path, strerror(errno));
		exit(1);
	}
	for (size_t i = 0; i < pages; i++)
		held += vec[i] & 1;
	if (len)
		munmap(m, len);
	free(vec);
	close(fd);
	return held * 2 <= pages;
}

/* The body of ok(): a result named by a printf format. */
TAP_PRINTF_(4, 5)
static inline int tap_ok_(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = tap_result_(cond, file, line, fmt, ap);
	va_end(ap);
	return r;
}

/* One result with a plain (not printf) name; returns cond. */
static inline int tap_named_(int cond, const char *file, int line, const char *name)
{
	return tap_ok_(cond, file, line, "%s", name ? name : "");
}

static inline int tap_is_int_(long long got, long long want, const char *file,
                              int line, const char *name)
{
	int r = tap_named_(got == want, file, line, name);
	if (!r)
		tap_diag("         got: %lld\n    expected: %lld", got, want);
	return r;
}

static inline int tap_is_str_(const char *got, const char *want, const char *file,
                              int line, const char *name)
{
	int same = (got == NULL || want == NULL) ? got == want : strcmp(got, want) == 0;
	int r = tap_named_(same, file, line, name);
	if (!r)
		tap_diag("         got: %s%s%s\n    expected: %s%s%s",
		         got ? "'" : "", got ? got : "NULL", got ? "'" : "",
		         want ? "'" : "", want ? want : "NULL", want ? "'" : "");
	return r;
}

/*
 * ok(cond, fmt, ...): one check named by a printf format; evaluates to
 * cond (0 or 1) so that callers can write `if (!ok(...))`.
 */
#define ok(cond, ...) tap_ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* is_int(got, want, name): compare as long long; prints both on failure. */
#define is_int(got, want, name) \
	tap_is_int_((long long)(got), (long long)(want), __FILE__, __LINE__, (name))

/* is_str(got, want, name): compare C strings (NULL equals only NULL). */
#define is_str(got, want, name) \
	tap_is_str_((got), (want), __FILE__, __LINE__, (name))

/*
 * Remove `name` (relative to dirfd) and everything below it, staying on
 * device `dev` (a mount inside is left alone).  Returns 0 or an errno.
 */
static inline int tap_rmtree_(int dirfd, const char *name, dev_t dev)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) == 0 ? 0 : errno;
	if (st.st_dev != dev)
		return EXDEV;
	int err = 0;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	if (fd < 0)
		return errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		err = errno;
		close(fd);
		return err;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		int e = tap_rmtree_(fd, de->d_name, dev);
		if (e && !err)
			err = e;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && !err)
		err = errno;
	return err;
}

/*
 * A fresh, empty directory under $TMPDIR (or /tmp), removed with all its
 * contents by tap_done() (kept when $TAP_KEEP_TMPDIR is set).  The string
 * is owned by tap.h and valid until tap_done().  If no directory can be
 * made the test cannot go on: prints "Bail out!" and exits with status 1.
 */
static inline char *tap_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	size_t len = strlen(base) + sizeof "/mmfs-test-XXXXXX";
	char *path = malloc(len);
	char **dirs = realloc(tap_dirs_, (tap_ndirs_ + 1) * sizeof *dirs);
	if (!path || !dirs) {
		printf("Bail out! tap_tmpdir: out of memory\n");
		fflush(stdout);
		exit(1);
	}
	tap_dirs_ = dirs;
	snprintf(path, len, "%s/mmfs-test-XXXXXX", base);
	if (!mkdtemp(path)) {
		int err = errno;
		printf("Bail out! tap_tmpdir: cannot create %s: %s\n", path, strerror(err));
		fflush(stdout);
		exit(1);
	}
	tap_dirs_[tap_ndirs_++] = path;
	return path;
}

/*
 * Print the plan "1..N", remove the tap_tmpdir() directories and return the
 * exit status for main(): 0 if every check passed, else 1.  A program that
 * made no check at all fails (a test that checks nothing proves nothing).
 */
static inline int tap_done(void)
{
	if (tap_run_ == 0)
		tap_ok_(0, __FILE__, __LINE__, "the program ran at least one check");
	const char *keep = getenv("TAP_KEEP_TMPDIR");
	for (size_t i = 0; i < tap_ndirs_; i++) {
		if (keep && *keep) {
			tap_diag("kept %s", tap_dirs_[i]);
		} else {
			struct stat st;
			int err = 0;
			if (lstat(tap_dirs_[i], &st) == 0)
				err = tap_rmtree_(AT_FDCWD, tap_dirs_[i], st.st_dev);
			if (err)
				tap_diag("cannot remove %s: %s", tap_dirs_[i], strerror(err));
		}
		free(tap_dirs_[i]);
	}
	free(tap_dirs_);
	tap_dirs_ = NULL;
	tap_ndirs_ = 0;
	printf("1..%d\n", tap_run_);
	if (tap_failed_)
		printf("# failed %d of %d checks\n", tap_failed_, tap_run_);
	fflush(stdout);
	return tap_failed_ ? 1 : 0;
}

#endif /* MMS_TAP_H */
