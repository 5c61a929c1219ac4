/*
 * mmstore.c - the offline command-line tool of an mmfs store.
 *
 * `mmstore COMMAND STORE [ARGS]` works on a store file without mounting it,
 * through the public libmms API only (mms.h), as LMDB's mdb_* tools do.
 * Each command is one function in the table `mmstore_cmds`, parses its own
 * options with getopt_long and returns the process exit status:
 *
 *   0  success
 *   1  the operation failed (not found, full, locked, I/O error ...)
 *   2  usage error (unknown command or option, missing or extra arguments)
 *   3  the store is damaged: check found problems, or the store could not
 *      be opened (or read) because it is corrupt, truncated, not a store, or
 *      of an unknown format version
 *
 * Commands that only read open the store read-only (shared lock); the others
 * open it read-write, make their changes in one transaction, commit, and
 * close (which syncs).  A command that fails after changing something rolls
 * the transaction back before closing, so a failed command leaves the store
 * as it was.
 *
 * Messages go to stderr and always name the store and the key:
 *   mmstore: demo.mms: key 'a/b': not found
 *
 * Keys are '/'-separated paths from the root.  Leading and trailing slashes
 * are ignored; an empty component in the middle ("a//b"), "." and ".." are
 * bad names.  Paths are walked one component at a time with mms_lookup(),
 * so every command sees the same names the engine validates.
 */
#include "mms.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Exit statuses. */
enum {
	MMSTORE_OK = 0,
	MMSTORE_FAILED = 1,
	MMSTORE_USAGE = 2,
	MMSTORE_DAMAGED = 3,
};

/* Bytes moved per read/write call by get and put. */
#define MMSTORE_CHUNK (1u << 20)

/* Entries a directory listing buffer starts with; it doubles as needed. */
#define MMSTORE_LS_INITIAL 64u

/* One subcommand: its name, its function and its usage text. */
struct mmstore_cmd {
	const char *name;
	int (*fn)(const struct mmstore_cmd *cmd, int argc, char **argv);
	const char *args;    /* the synopsis after "mmstore NAME " */
	const char *summary; /* one line for the global help */
	const char *help;    /* option and argument details, or NULL */
};

/* Where a key lives, as found by mmstore_walk(). */
struct mmstore_loc {
	uint64_t parent;  /* directory holding the last component */
	const char *name; /* the last component, inside the key; NULL for the root */
	size_t namelen;
	int exists;       /* nonzero: the last component exists and st is valid */
	struct mms_stat st;
};

/* State of the progress bar drawn on stderr. */
struct mmstore_progress {
	const char *label;
	int last;  /* last permille drawn, -1 before the first */
	int drawn; /* something is on the line and needs a newline */
};

static const char *mmstore_prog = "mmstore";

/* ---- Messages ------------------------------------------------------------ */

/* Print "mmstore: " and the formatted message and a newline on stderr. */
static void mmstore_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void mmstore_msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", mmstore_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Exit status for a libmms failure code: damage is 3, anything else 1. */
static int mmstore_status_of(int err)
{
	switch (err) {
	case MMS_CORRUPT:
	case MMS_TRUNCATED:
	case MMS_NOTSTORE:
	case MMS_VERSION:
		return MMSTORE_DAMAGED;
	default:
		return MMSTORE_FAILED;
	}
}

/*
 * The detail of a failure as " (detail)", or "" when there is none or it
 * only repeats the cause.  Points into `buf` or a static "".
 */
static const char *mmstore_detail(const char *detail, int err, char *buf, size_t size)
{
	if (!detail || !*detail || !strcmp(detail, mms_strerror(err)))
		return "";
	snprintf(buf, size, " (%s)", detail);
	return buf;
}

/*
 * Report the failure `err` of an operation on `key` (NULL: the store as a
 * whole) with the env's detail, and return the exit status for it.
 */
static int mmstore_fail(mms_env *env, const char *store, const char *key, int err)
{
	char buf[600];
	const char *detail = mmstore_detail(env ? mms_errdetail(env) : NULL, err, buf, sizeof buf);

	if (key)
		mmstore_msg("%s: key '%s': %s%s", store, key, mms_strerror(err), detail);
	else
		mmstore_msg("%s: %s%s", store, mms_strerror(err), detail);
	return mmstore_status_of(err);
}

/* ---- Usage --------------------------------------------------------------- */

/* Print the usage of one command on `out`. */
static void mmstore_cmd_usage(const struct mmstore_cmd *cmd, FILE *out)
{
	fprintf(out, "Usage: %s %s %s\n%s.\n", mmstore_prog, cmd->name, cmd->args,
	        cmd->summary);
	if (cmd->help)
		fprintf(out, "\n%s", cmd->help);
}

/* A usage error in `cmd`: the message (if any) and the usage on stderr. */
static int mmstore_usage_error(const struct mmstore_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int mmstore_usage_error(const struct mmstore_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	if (fmt) {
		fprintf(stderr, "%s %s: ", mmstore_prog, cmd->name);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	mmstore_cmd_usage(cmd, stderr);
	return MMSTORE_USAGE;
}

/*
 * Parse the options of `cmd` with getopt_long.  `shortopts` and `longopts`
 * describe the command's own options; --help (-h) is added here.  `on_opt` is
 * called for each option with its getopt_long value and optarg, and returns 0
 * or a usage error.  On success *first is the index of the first positional
 * argument; the return value is -1 to go on, or an exit status to stop with
 * (0 after --help, 2 after a usage error).
 */
static int mmstore_getopt(const struct mmstore_cmd *cmd, int argc, char **argv,
                          const char *shortopts, const struct option *longopts,
                          int (*on_opt)(void *ctx, int opt, const char *arg), void *ctx,
                          int *first)
{
	struct option opts[16];
	char shorts[64];
	size_t n = 0;

	/* GNU getopt permutes, so options may follow the store and keys.  A
	 * leading '+' would stop that; ':' makes missing arguments visible. */
	snprintf(shorts, sizeof shorts, ":h%s", shortopts ? shortopts : "");
	for (const struct option *o = longopts; o && o->name && n + 2 < 16; o++)
		opts[n++] = *o;
	opts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	opts[n] = (struct option){ NULL, 0, NULL, 0 };

	opterr = 0; /* our messages name the command */
	optind = 0; /* glibc: full re-initialisation */
	for (;;) {
		int opt = getopt_long(argc, argv, shorts, opts, NULL);
		int status;

		if (opt == -1)
			break;
		if (opt == 'h') {
			mmstore_cmd_usage(cmd, stdout);
			return MMSTORE_OK;
		}
		if (opt == '?') {
			/* A long option is named by its word; a short one by optopt,
			 * as it may sit inside a cluster ("-lz"). */
			const char *word = argv[optind - 1];

			if (optopt && strncmp(word, "--", 2) != 0)
				return mmstore_usage_error(cmd, "unknown option '-%c'", optopt);
			return mmstore_usage_error(cmd, "unknown option '%s'", word);
		}
		if (opt == ':')
			return mmstore_usage_error(cmd, "option '%s' needs an argument",
			                           argv[optind - 1]);
		status = on_opt ? on_opt(ctx, opt, optarg) : MMSTORE_USAGE;
		if (status)
			return status;
	}
	*first = optind;
	return -1;
}

/*
 * Check that there are between `min` and `max` positional arguments from
 * argv[first]: -1 if so, else the usage error's exit status.
 */
static int mmstore_nargs(const struct mmstore_cmd *cmd, int argc, char **argv, int first,
                         int min, int max)
{
	int n = argc - first;

	if (n < min)
		return mmstore_usage_error(cmd, n == 0 ? "missing STORE" : "missing arguments");
	if (n > max)
		return mmstore_usage_error(cmd, "extra argument '%s'", argv[first + max]);
	return -1;
}

/* Format a byte count for humans ("1.5 MiB") into buf. */
static const char *mmstore_human(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

/* ---- Progress ------------------------------------------------------------ */

/* mms_progress_fn drawing a bar on stderr; never stops the work. */
static int mmstore_progress_draw(void *ctx, uint64_t done, uint64_t total)
{
	struct mmstore_progress *p = ctx;
	int permille, width = 40, fill;
	char bar[41];

	if (total == 0)
		return 0;
	if (done > total)
		done = total;
	permille = (int)((double)done * 1000.0 / (double)total);
	if (permille == p->last)
		return 0;
	p->last = permille;
	fill = permille * width / 1000;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(width - fill));
	bar[width] = '\0';
	fprintf(stderr, "\r%s [%s] %3d%%", p->label, bar, permille / 10);
	fflush(stderr);
	p->drawn = 1;
	return 0;
}

/* The progress callback to pass to libmms: a bar when stderr is a terminal. */
static mms_progress_fn mmstore_progress_init(struct mmstore_progress *p, const char *label)
{
	p->label = label;
	p->last = -1;
	p->drawn = 0;
	return isatty(STDERR_FILENO) ? mmstore_progress_draw : NULL;
}

/* End the bar's line, if one was drawn. */
static void mmstore_progress_end(struct mmstore_progress *p)
{
	if (p->drawn)
		fputc('\n', stderr);
	p->drawn = 0;
}

/* ---- Opening and closing ------------------------------------------------- */

/*
 * Open `store` with `opts`.  On failure, report it ("cannot open" or "cannot
 * create") with mms_open_detail() and return the exit status; 0 on success.
 */
/* How long an open waits for a process that is letting go of the store
 * (mmstore --wait SECONDS; default MMSTORE_WAIT_DEFAULT). */
#define MMSTORE_WAIT_DEFAULT 5
static unsigned mmstore_wait_ms = MMSTORE_WAIT_DEFAULT * 1000;

static void mmstore_waiting(void *ctx, long pid, const char *cmd)
{
	const char *store = ctx;
	if (pid)
		mmstore_msg("%s: waiting up to %u s for process %ld (%s) to let go of the store",
		            store, mmstore_wait_ms / 1000, pid, cmd[0] ? cmd : "?");
	else
		mmstore_msg("%s: waiting up to %u s for the store's lock", store, mmstore_wait_ms / 1000);
}

/* Say who holds the lock of `store` and what to do. */
static void mmstore_locked(const char *store)
{
	char mnt[4096], cmd[256] = "";
	long pid = 0;
	int have = mms_lock_holder(store, &pid, cmd, sizeof cmd) == 0;
	if (mms_mount_of(store, mnt, sizeof mnt) == 0)
		mmstore_msg("%s: cannot open: store is locked: it is mounted at %s%s%s; use the mount, "
		            "or unmount it first (fusermount3 -u %s)", store, mnt,
		            have ? " by process " : "", have ? cmd : "", mnt);
	else if (have)
		mmstore_msg("%s: cannot open: store is locked by process %ld (%s); wait for it to "
		            "finish, or give mmstore --wait SECONDS", store, pid, cmd[0] ? cmd : "?");
	else
		mmstore_msg("%s: cannot open: store is locked by another process", store);
}

static int mmstore_open(const char *store, const struct mms_options *opts, mms_env **envp)
{
	int err = mms_open_wait(store, opts, mmstore_wait_ms, mmstore_waiting, (void *)store, envp);
	char buf[600];

	if (err == 0)
		return MMSTORE_OK;
	if (err == MMS_LOCKED) {
		mmstore_locked(store);
		return mmstore_status_of(err);
	}
	mmstore_msg("%s: cannot %s: %s%s", store,
	            opts && (opts->flags & MMS_CREATE) && err == MMS_EXISTS ? "create" : "open",
	            mms_strerror(err), mmstore_detail(mms_open_detail(), err, buf, sizeof buf));
	return mmstore_status_of(err);
}

/* Open `store` read-only (readonly != 0) or read-write. */
static int mmstore_open_simple(const char *store, int readonly, mms_env **envp)
{
	struct mms_options opts = { 0 };

	opts.flags = readonly ? MMS_RDONLY : 0;
	return mmstore_open(store, &opts, envp);
}

/*
 * Finish a command: with status 0, commit (read-write stores); otherwise
 * roll back what the command changed.  Then close (a read-write close syncs).
 * Returns the final exit status.
 */
static int mmstore_finish(mms_env *env, const char *store, int status)
{
	int err;

	if (!mms_readonly(env)) {
		if (status == MMSTORE_OK) {
			err = mms_commit(env);
			if (err) {
				status = mmstore_fail(env, store, NULL, err);
				mms_rollback(env);
			}
		} else {
			mms_rollback(env);
		}
	}
	err = mms_close(env);
	if (err && status == MMSTORE_OK)
		status = mmstore_fail(NULL, store, NULL, err);
	return status;
}

/* Flush stdout; report a failure (a full disk, a closed pipe) as status 1. */
static int mmstore_flush_stdout(const char *store)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		mmstore_msg("%s: writing to standard output: %s", store, strerror(errno));
		return MMSTORE_FAILED;
	}
	return MMSTORE_OK;
}

/* ---- Keys ---------------------------------------------------------------- */

/* The process umask, without changing it for good. */
static mode_t mmstore_umask(void)
{
	mode_t m = umask(022);

	umask(m);
	return m;
}

/*
 * Walk `key` from the root.  Every component but the last must be a
 * directory; with `mkparents`, missing ones are created (mms_mkdir).  On
 * success *loc tells where the last component is and whether it exists.
 * The root ("", "/") is the root with loc->name NULL.  Returns 0 or the
 * libmms code of the first failing step.
 */
static int mmstore_walk(mms_env *env, const char *key, int mkparents, struct mmstore_loc *loc)
{
	size_t len = strlen(key);
	const char *p = key, *end;
	uint64_t dir = MMS_ROOT_INO;
	mode_t mask = mmstore_umask();
	struct mms_stat st;
	int err;

	if (len > MMS_PATH_MAX)
		return MMS_NAMETOOLONG;
	while (len && key[len - 1] == '/')
		len--;
	end = key + len;
	while (p < end && *p == '/')
		p++;
	if (p == end) {
		err = mms_getattr(env, MMS_ROOT_INO, &st);
		if (err)
			return err;
		*loc = (struct mmstore_loc){ .parent = MMS_ROOT_INO, .exists = 1, .st = st };
		return 0;
	}
	for (;;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		size_t n = slash ? (size_t)(slash - p) : (size_t)(end - p);

		if (n == 0)
			return MMS_BADNAME; /* "a//b" */
		err = mms_lookup(env, dir, p, n, &st);
		if (!slash) {
			if (err && err != MMS_NOTFOUND)
				return err;
			*loc = (struct mmstore_loc){ .parent = dir, .name = p, .namelen = n,
			                             .exists = err == 0 };
			if (err == 0)
				loc->st = st;
			return 0;
		}
		if (err == MMS_NOTFOUND && mkparents)
			err = mms_mkdir(env, dir, p, n, 0777 & ~mask, (uint32_t)geteuid(),
			                (uint32_t)getegid(), &st);
		if (err)
			return err;
		if (!S_ISDIR(st.mode))
			return MMS_NOTDIR;
		dir = st.ino;
		p = slash + 1;
	}
}

/* Report that `key` names the root, which `what` ("removed") cannot be. */
static int mmstore_root_error(const char *store, const char *key, const char *what)
{
	mmstore_msg("%s: key '%s': the root directory cannot be %s", store, key, what);
	return MMSTORE_FAILED;
}

/* mmstore_walk() that also requires the key to exist. */
static int mmstore_find(mms_env *env, const char *key, struct mmstore_loc *loc)
{
	int err = mmstore_walk(env, key, 0, loc);

	if (err == 0 && !loc->exists)
		err = MMS_NOTFOUND;
	return err;
}

/* ---- create -------------------------------------------------------------- */

/* Options of create. */
struct mmstore_create_opts {
	const struct mmstore_cmd *cmd;
	struct mms_options opts;
};

static int mmstore_create_opt(void *ctx, int opt, const char *arg)
{
	struct mmstore_create_opts *c = ctx;
	uint64_t *dst = opt == 's' ? &c->opts.initial_size : &c->opts.max_size;

	if (opt != 's' && opt != 'm')
		return MMSTORE_USAGE;
	if (mms_parse_size(arg, dst))
		return mmstore_usage_error(c->cmd, "invalid size '%s'", arg);
	return 0;
}

static int mmstore_cmd_create(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "max-size", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	struct mmstore_create_opts c = { .cmd = cmd };
	mms_env *env;
	int first, status;

	status = mmstore_getopt(cmd, argc, argv, "s:m:", longopts, mmstore_create_opt, &c, &first);
	if (status >= 0)
		return status;
	if ((status = mmstore_nargs(cmd, argc, argv, first, 1, 1)) >= 0)
		return status;
	c.opts.flags = MMS_CREATE | MMS_EXCL;
	status = mmstore_open(argv[first], &c.opts, &env);
	if (status)
		return status;
	return mmstore_finish(env, argv[first], MMSTORE_OK);
}

/* ---- info ---------------------------------------------------------------- */

static int mmstore_flag_opt(void *ctx, int opt, const char *arg)
{
	(void)arg;
	*(int *)ctx = opt;
	return 0;
}

/* Print the store's figures as one JSON object (mms_stats_json). */
static int mmstore_info_json(const char *store, mms_env *env)
{
	char *text = NULL;
	int err = mms_stats_json(env, NULL, &text);
	if (err) {
		mmstore_msg("%s: cannot describe the store: %s", store, mms_strerror(err));
		return MMSTORE_FAILED;
	}
	int status = MMSTORE_OK;
	if (fputs(text, stdout) == EOF || putchar('\n') == EOF) {
		mmstore_msg("%s: writing to standard output: %s", store, strerror(errno));
		status = MMSTORE_FAILED;
	}
	free(text);
	return status;
}

/* Print *info as aligned "name: value" lines. */
static void mmstore_info_text(const char *store, const struct mms_info *in)
{
	char h[32];

	printf("store:             %s\n", store);
	printf("format version:    %" PRIu32 "\n", in->format_version);
	printf("page size:         %" PRIu32 "\n", in->page_size);
	printf("file size:         %" PRIu64 " (%s)\n", in->file_size,
	       mmstore_human(in->file_size, h, sizeof h));
	printf("disk size:         %" PRIu64 " (%s)\n", in->disk_size,
	       mmstore_human(in->disk_size, h, sizeof h));
	if (in->max_size)
		printf("max size:          %" PRIu64 " (%s)\n", in->max_size,
		       mmstore_human(in->max_size, h, sizeof h));
	else
		printf("max size:          unlimited\n");
	printf("used:              %" PRIu64 " (%s)\n", in->used_bytes,
	       mmstore_human(in->used_bytes, h, sizeof h));
	printf("  trees:           %" PRIu64 "\n", in->tree_bytes);
	printf("  data:            %" PRIu64 "\n", in->data_bytes);
	printf("free:              %" PRIu64 " in %" PRIu64 " runs\n", in->free_bytes,
	       in->free_extents);
	printf("pending free:      %" PRIu64 "\n", in->pending_bytes);
	printf("available:         %" PRIu64 " (%s; max size and the host's disk allow)\n",
	       in->avail_bytes, mmstore_human(in->avail_bytes, h, sizeof h));
	printf("fragmentation:     %.3f\n", in->fragmentation);
	printf("keys:              %" PRIu64 "\n", in->keys);
	printf("directories:       %" PRIu64 "\n", in->dirs);
	printf("orphans:           %" PRIu64 "\n", in->orphans);
	printf("generation:        %" PRIu64 " (synced %" PRIu64 ")\n", in->generation,
	       in->synced_generation);
	printf("next inode:        %" PRIu64 "\n", in->next_ino);
}

static int mmstore_cmd_info(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct mms_info info;
	mms_env *env;
	int json = 0, first, status, err;

	status = mmstore_getopt(cmd, argc, argv, "j", longopts, mmstore_flag_opt, &json, &first);
	if (status >= 0)
		return status;
	if ((status = mmstore_nargs(cmd, argc, argv, first, 1, 1)) >= 0)
		return status;
	status = mmstore_open_simple(argv[first], 1, &env);
	if (status)
		return status;
	err = mms_stats(env, &info);
	if (err) {
		status = mmstore_fail(env, argv[first], NULL, err);
	} else if (json) {
		status = mmstore_info_json(argv[first], env);
	} else {
		mmstore_info_text(argv[first], &info);
	}
	if (status == MMSTORE_OK)
		status = mmstore_flush_stdout(argv[first]);
	return mmstore_finish(env, argv[first], status);
}

/* ---- ls ------------------------------------------------------------------ */

/* One listed entry. */
struct mmstore_entry {
	char *name;
	size_t namelen;
	uint64_t ino;
};

static int mmstore_entry_cmp(const void *a, const void *b)
{
	const struct mmstore_entry *x = a, *y = b;
	size_t n = x->namelen < y->namelen ? x->namelen : y->namelen;
	int c = memcmp(x->name, y->name, n);

	if (c)
		return c;
	return (x->namelen > y->namelen) - (x->namelen < y->namelen);
}

/* "drwxr-xr-x" for a mode. */
static void mmstore_mode_string(uint32_t mode, char out[11])
{
	static const char rwx[] = "rwxrwxrwx";

	switch (mode & S_IFMT) {
	case S_IFDIR: out[0] = 'd'; break;
	case S_IFLNK: out[0] = 'l'; break;
	case S_IFIFO: out[0] = 'p'; break;
	case S_IFSOCK: out[0] = 's'; break;
	default: out[0] = '-'; break;
	}
	for (int i = 0; i < 9; i++)
		out[1 + i] = mode & (0400u >> i) ? rwx[i] : '-';
	if (mode & S_ISUID)
		out[3] = out[3] == 'x' ? 's' : 'S';
	if (mode & S_ISGID)
		out[6] = out[6] == 'x' ? 's' : 'S';
	if (mode & S_ISVTX)
		out[9] = out[9] == 'x' ? 't' : 'T';
	out[10] = '\0';
}

/*
 * Print one entry: its name alone, or with -l "MODE SIZE MTIME NAME" (and
 * " -> TARGET" for a symlink).
 */
static int mmstore_ls_print(mms_env *env, const char *name, size_t namelen,
                            const struct mms_stat *st, int longfmt)
{
	if (longfmt) {
		char mode[11], when[32];
		struct tm tm;
		time_t t = st->mtime.tv_sec;

		mmstore_mode_string(st->mode, mode);
		if (!localtime_r(&t, &tm) || !strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm))
			snprintf(when, sizeof when, "%lld", (long long)t);
		printf("%s %12" PRIu64 " %s ", mode, st->size, when);
	}
	fwrite(name, 1, namelen, stdout);
	if (longfmt && S_ISLNK(st->mode)) {
		char target[MMS_SYMLINK_MAX];
		size_t tlen;

		if (mms_readlink(env, st->ino, target, sizeof target, &tlen) == 0) {
			fputs(" -> ", stdout);
			fwrite(target, 1, tlen, stdout);
		}
	}
	putchar('\n');
	return 0;
}

/* List directory `dir` of `store`, sorted by name.  Returns an exit status. */
static int mmstore_ls_dir(mms_env *env, const char *store, const char *key, uint64_t dir,
                          int longfmt)
{
	struct mmstore_entry *ents = NULL;
	size_t n = 0, cap = 0;
	mms_cursor *cur = NULL;
	struct mms_dirent de;
	int err, status = MMSTORE_OK;

	err = mms_dir_open(env, dir, 0, &cur);
	if (err)
		goto fail;
	while ((err = mms_dir_next(cur, &de)) == 0) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : MMSTORE_LS_INITIAL;
			struct mmstore_entry *p = realloc(ents, ncap * sizeof *p);

			if (!p) {
				err = ENOMEM;
				goto fail;
			}
			ents = p;
			cap = ncap;
		}
		ents[n].name = malloc(de.namelen ? de.namelen : 1);
		if (!ents[n].name) {
			err = ENOMEM;
			goto fail;
		}
		memcpy(ents[n].name, de.name, de.namelen);
		ents[n].namelen = de.namelen;
		ents[n].ino = de.ino;
		n++;
	}
	if (err != MMS_NOTFOUND)
		goto fail;
	err = 0;
	mms_dir_close(cur);
	cur = NULL;

	if (n > 1) /* qsort(NULL, 0, ...) is undefined */
		qsort(ents, n, sizeof *ents, mmstore_entry_cmp);
	for (size_t i = 0; i < n; i++) {
		struct mms_stat st = { 0 };

		if (longfmt) {
			err = mms_getattr(env, ents[i].ino, &st);
			if (err)
				goto fail;
		}
		mmstore_ls_print(env, ents[i].name, ents[i].namelen, &st, longfmt);
	}
	goto out;
fail:
	status = mmstore_fail(env, store, *key ? key : "/", err);
out:
	if (cur)
		mms_dir_close(cur);
	for (size_t i = 0; i < n; i++)
		free(ents[i].name);
	free(ents);
	return status;
}

static int mmstore_cmd_ls(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "long", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct mmstore_loc loc;
	const char *store, *key;
	mms_env *env;
	int longfmt = 0, first, status, err;

	status = mmstore_getopt(cmd, argc, argv, "l", longopts, mmstore_flag_opt, &longfmt, &first);
	if (status >= 0)
		return status;
	if ((status = mmstore_nargs(cmd, argc, argv, first, 1, 2)) >= 0)
		return status;
	store = argv[first];
	key = first + 1 < argc ? argv[first + 1] : "";
	status = mmstore_open_simple(store, 1, &env);
	if (status)
		return status;
	err = mmstore_find(env, key, &loc);
	if (err)
		status = mmstore_fail(env, store, *key ? key : "/", err);
	else if (S_ISDIR(loc.st.mode))
		status = mmstore_ls_dir(env, store, key, loc.st.ino, longfmt);
	else
		status = mmstore_ls_print(env, key, strlen(key), &loc.st, longfmt);
	if (status == MMSTORE_OK)
		status = mmstore_flush_stdout(store);
	return mmstore_finish(env, store, status);
}

/* ---- get ----------------------------------------------------------------- */

static int mmstore_cmd_get(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	struct mmstore_loc loc;
	const char *store, *key;
	mms_env *env;
	char *buf = NULL;
	uint64_t off = 0;
	int first, status, err;

	status = mmstore_getopt(cmd, argc, argv, "", NULL, NULL, NULL, &first);
	if (status >= 0)
		return status;
	if ((status = mmstore_nargs(cmd, argc, argv, first, 2, 2)) >= 0)
		return status;
	store = argv[first];
	key = argv[first + 1];
	status = mmstore_open_simple(store, 1, &env);
	if (status)
		return status;
	err = mmstore_find(env, key, &loc);
	if (err == 0 && S_ISDIR(loc.st.mode))
		err = MMS_ISDIR;
	if (err == 0 && !(buf = malloc(MMSTORE_CHUNK)))
		err = ENOMEM;
	while (err == 0 && off < loc.st.size) {
		size_t got = 0;

		err = mms_read(env, loc.st.ino, buf, MMSTORE_CHUNK, off, &got);
		if (err || got == 0)
			break;
		if (fwrite(buf, 1, got, stdout) != got) {
			status = mmstore_flush_stdout(store);
			if (status == MMSTORE_OK) /* fwrite failed without an error flag */
				status = MMSTORE_FAILED;
			break;
		}
		off += got;
	}
	if (err)
		status = mmstore_fail(env, store, key, err);
	if (status == MMSTORE_OK)
		status = mmstore_flush_stdout(store);
	free(buf);
	return mmstore_finish(env, store, status);
}

/* ---- put ----------------------------------------------------------------- */

/*
 * Copy everything readable from `fd` into inode `ino` from offset 0.
 * Returns 0, a libmms code, or a positive errno of read(2) with *readerr set.
 */
static int mmstore_put_copy(mms_env *env, uint64_t ino, int fd, int *readerr)
{
	char *buf = malloc(MMSTORE_CHUNK);
	uint64_t off = 0;
	int err = 0;

	*readerr = 0;
	if (!buf)
		return ENOMEM;
	for (;;) {
		size_t fill = 0;

		/* Fill the whole chunk, so writes go in 1 MiB pieces even from a pipe. */
		while (fill < MMSTORE_CHUNK) {
			ssize_t n = read(fd, buf + fill, MMSTORE_CHUNK - fill);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				err = errno;
				*readerr = 1;
				goto out;
			}
			if (n == 0)
				break;
			fill += (size_t)n;
		}
		if (fill == 0)
			break;
		err = mms_write(env, ino, buf, fill, off);
		if (err)
			goto out;
		off += fill;
		if (fill < MMSTORE_CHUNK)
			break;
	}
out:
	free(buf);
	return err;
}

static int mmstore_cmd_put(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	struct mmstore_loc loc;
	const char *store, *key, *file = NULL;
	mms_env *env;
	mode_t mask = mmstore_umask();
	int first, status, err, fd = STDIN_FILENO, readerr = 0;
	uint64_t ino;

	status = mmstore_getopt(cmd, argc, argv, "", NULL, NULL, NULL, &first);
	if (status >= 0)
		return status;
	if ((status = mmstore_nargs(cmd, argc, argv, first, 2, 3)) >= 0)
		return status;
	store = argv[first];
	key = argv[first + 1];
	if (first + 2 < argc && strcmp(argv[first + 2], "-") != 0)
		file = argv[first + 2];
	if (file) {
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			mmstore_msg("%s: key '%s': cannot read '%s': %s", store, key, file,
			            strerror(errno));
			return MMSTORE_FAILED;
		}
	}
	status = mmstore_open_simple(store, 0, &env);
	if (status)
		goto out_fd;

	err = mmstore_walk(env, key, 1, &loc);
	if (err == 0 && !loc.name)
		err = MMS_ISDIR; /* the root */
	if (err)
		goto fail;
	if (loc.exists) {
		if (S_ISDIR(loc.st.mode)) {
			err = MMS_ISDIR;
			goto fail;
		}
		ino = loc.st.ino;
		err = mms_truncate(env, ino, 0);
	} else {
		struct mms_stat st;

		err = mms_mknod(env, loc.parent, loc.name, loc.namelen,
		                S_IFREG | (0666 & ~mask), (uint32_t)geteuid(),
		                (uint32_t)getegid(), &st);
		ino = st.ino;
	}
	if (err)
		goto fail;
	err = mmstore_put_copy(env, ino, fd, &readerr);
	if (err && readerr) {
		mmstore_msg("%s: key '%s': cannot read '%s': %s", store, key,
		            file ? file : "standard input", strerror(err));
		status = MMSTORE_FAILED;
		goto done;
	}
	if (err)
		goto fail;
	goto done;
fail:
	status = mmstore_fail(env, store, key, err);
done:
	status = mmstore_finish(env, store, status);
out_fd:
	if (file)
		close(fd);
	return status;
}

/* ---- rm ------------------------------------------------------------------ */

static int mmstore_cmd_rm(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	struct mmstore_loc loc;
	const char *store, *key;
	mms_env *env;
	int first, status, err;

	status = mmstore_getopt(cmd, argc, argv, "", NULL, NULL, NULL, &first);
	if (status >= 0)
		return status;
	if ((status = mmstore_nargs(cmd, argc, argv, first, 2, 2)) >= 0)
		return status;
	store = argv[first];
	key = argv[first + 1];
	status = mmstore_open_simple(store, 0, &env);
	if (status)
		return status;
	err = mmstore_find(env, key, &loc);
	if (err == 0 && !loc.name)
		return mmstore_finish(env, store, mmstore_root_error(store, key, "removed"));
	if (err == 0) {
		if (S_ISDIR(loc.st.mode))
			err = mms_rmdir(env, loc.parent, loc.name, loc.namelen);
		else
			err = mms_unlink(env, loc.parent, loc.name, loc.namelen);
	}
	if (err)
		status = mmstore_fail(env, store, key, err);
	return mmstore_finish(env, store, status);
}

/* ---- mv ------------------------------------------------------------------ */

/* The arguments of a command STORE KEY KEY without options (mv, cp), and
 * the store opened read-write: -1, or the status to exit with (0 after
 * --help). */
static int mmstore_two_keys(const struct mmstore_cmd *cmd, int argc, char **argv,
                            const char **store, const char **a, const char **b, mms_env **env)
{
	int first, status = mmstore_getopt(cmd, argc, argv, "", NULL, NULL, NULL, &first);
	if (status >= 0)
		return status;
	if ((status = mmstore_nargs(cmd, argc, argv, first, 3, 3)) >= 0)
		return status;
	*store = argv[first];
	*a = argv[first + 1];
	*b = argv[first + 2];
	status = mmstore_open_simple(*store, 0, env);
	return status ? status : -1;
}

static int mmstore_cmd_mv(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	struct mmstore_loc from, to;
	const char *store, *oldkey, *newkey;
	mms_env *env;
	int status, err;

	status = mmstore_two_keys(cmd, argc, argv, &store, &oldkey, &newkey, &env);
	if (status >= 0)
		return status;
	status = MMSTORE_OK;
	err = mmstore_find(env, oldkey, &from);
	if (err) {
		status = mmstore_fail(env, store, oldkey, err);
		goto done;
	}
	if (!from.name) {
		status = mmstore_root_error(store, oldkey, "moved");
		goto done;
	}
	err = mmstore_walk(env, newkey, 0, &to);
	if (err == 0 && !to.name) {
		status = mmstore_root_error(store, newkey, "replaced");
		goto done;
	}
	if (err == 0)
		err = mms_rename(env, from.parent, from.name, from.namelen, to.parent, to.name,
		                 to.namelen, 0);
	if (err)
		status = mmstore_fail(env, store, newkey, err);
done:
	return mmstore_finish(env, store, status);
}

/* ---- cp ------------------------------------------------------------------ */

/* Copy the value of SRC to DST (created with SRC's permission bits, or its
 * value replaced), in one transaction: mms_copy_range shares the pages. */
static int mmstore_cmd_cp(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	struct mmstore_loc from, to;
	const char *store, *srckey, *dstkey;
	mms_env *env;
	int status, err;
	uint64_t ino, copied = 0;

	status = mmstore_two_keys(cmd, argc, argv, &store, &srckey, &dstkey, &env);
	if (status >= 0)
		return status;
	status = MMSTORE_OK;
	const char *failed = srckey;
	err = mmstore_find(env, srckey, &from);
	if (err == 0 && !S_ISREG(from.st.mode) && !S_ISDIR(from.st.mode)) {
		mmstore_msg("%s: key '%s': not a regular file: nothing to copy", store, srckey);
		status = MMSTORE_FAILED;
		goto done;
	}
	if (err == 0 && S_ISDIR(from.st.mode))
		err = MMS_ISDIR;
	if (err)
		goto fail;
	failed = dstkey;
	err = mmstore_walk(env, dstkey, 1, &to);
	if (err == 0 && !to.name)
		err = MMS_ISDIR; /* the root */
	if (err)
		goto fail;
	if (to.exists && to.st.ino == from.st.ino) {
		mmstore_msg("%s: key '%s': is '%s' itself (or another name of it)", store, dstkey, srckey);
		status = MMSTORE_FAILED;
		goto done;
	}
	if (to.exists && !S_ISREG(to.st.mode)) {
		if (S_ISDIR(to.st.mode)) {
			err = MMS_ISDIR;
			goto fail;
		}
		mmstore_msg("%s: key '%s': not a regular file: not replaced", store, dstkey);
		status = MMSTORE_FAILED;
		goto done;
	}
	if (to.exists) {
		ino = to.st.ino;
		err = mms_truncate(env, ino, 0);
	} else {
		struct mms_stat st;
		err = mms_mknod(env, to.parent, to.name, to.namelen, S_IFREG | (from.st.mode & 07777),
		                (uint32_t)geteuid(), (uint32_t)getegid(), &st);
		ino = st.ino;
	}
	if (err == 0 && from.st.size)
		err = mms_copy_range(env, from.st.ino, 0, ino, 0, from.st.size, &copied);
	if (err == 0 && copied != from.st.size) {
		/* stopped short: the reason is the env's last error */
		mmstore_msg("%s: key '%s': copied %llu of %llu bytes: %s", store, dstkey,
		            (unsigned long long)copied, (unsigned long long)from.st.size,
		            mms_errdetail(env)[0] ? mms_errdetail(env) : "stopped early");
		status = MMSTORE_FAILED;
		goto done;
	}
	if (err == 0)
		goto done;
fail:
	status = mmstore_fail(env, store, failed, err);
done:
	return mmstore_finish(env, store, status);
}

/* ---- mkdir --------------------------------------------------------------- */

static int mmstore_cmd_mkdir(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "parents", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	struct mmstore_loc loc;
	const char *store, *key;
	mms_env *env;
	int parents = 0, first, status, err;

	status = mmstore_getopt(cmd, argc, argv, "p", longopts, mmstore_flag_opt, &parents, &first);
	if (status >= 0)
		return status;
	if ((status = mmstore_nargs(cmd, argc, argv, first, 2, 2)) >= 0)
		return status;
	store = argv[first];
	key = argv[first + 1];
	status = mmstore_open_simple(store, 0, &env);
	if (status)
		return status;
	err = mmstore_walk(env, key, parents, &loc);
	if (err == 0 && loc.exists) {
		/* mkdir -p of an existing directory succeeds, as mkdir(1) does. */
		if (!parents || !S_ISDIR(loc.st.mode))
			err = MMS_EXISTS;
	} else if (err == 0) {
		err = mms_mkdir(env, loc.parent, loc.name, loc.namelen, 0777 & ~mmstore_umask(),
		                (uint32_t)geteuid(), (uint32_t)getegid(), NULL);
	}
	if (err)
		status = mmstore_fail(env, store, key, err);
	return mmstore_finish(env, store, status);
}

/* ---- check --------------------------------------------------------------- */

/* mms_problem_fn: print "where: what" on stdout; ctx is the progress bar. */
static void mmstore_check_report(void *ctx, const char *where, const char *what)
{
	struct mmstore_progress *prog = ctx;

	/* End the bar's line so the problem starts on its own; redraw it later. */
	if (prog->drawn) {
		fputc('\n', stderr);
		prog->drawn = 0;
		prog->last = -1;
	}
	printf("%s: %s\n", where, what);
	fflush(stdout);
}

static int mmstore_cmd_check(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	struct mmstore_progress prog;
	mms_progress_fn progress;
	const char *store;
	uint64_t nproblems = 0;
	mms_env *env;
	int first, status, err;

	status = mmstore_getopt(cmd, argc, argv, "", NULL, NULL, NULL, &first);
	if (status >= 0)
		return status;
	if ((status = mmstore_nargs(cmd, argc, argv, first, 1, 1)) >= 0)
		return status;
	store = argv[first];
	status = mmstore_open_simple(store, 1, &env);
	if (status)
		return status;
	progress = mmstore_progress_init(&prog, "checking");
	err = mms_check(env, mmstore_check_report, &prog, progress, &prog, &nproblems);
	mmstore_progress_end(&prog);
	if (err) {
		status = mmstore_fail(env, store, NULL, err);
		if (status == MMSTORE_FAILED && err == MMS_CORRUPT)
			status = MMSTORE_DAMAGED;
	} else if (nproblems) {
		mmstore_msg("%s: %" PRIu64 " problem%s found", store, nproblems,
		            nproblems == 1 ? "" : "s");
		status = MMSTORE_DAMAGED;
	} else {
		printf("%s: no problems found\n", store);
	}
	if (status == MMSTORE_OK)
		status = mmstore_flush_stdout(store);
	return mmstore_finish(env, store, status);
}

/* ---- vacuum -------------------------------------------------------------- */

static int mmstore_cmd_vacuum(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	struct mms_vacuum_result res = { 0 };
	struct mmstore_progress prog;
	mms_progress_fn progress;
	const char *store;
	mms_env *env;
	char h1[32], h2[32];
	int first, status, err;

	status = mmstore_getopt(cmd, argc, argv, "", NULL, NULL, NULL, &first);
	if (status >= 0)
		return status;
	if ((status = mmstore_nargs(cmd, argc, argv, first, 1, 1)) >= 0)
		return status;
	store = argv[first];
	status = mmstore_open_simple(store, 0, &env);
	if (status)
		return status;
	progress = mmstore_progress_init(&prog, "vacuum");
	err = mms_vacuum(env, progress, &prog, &res);
	mmstore_progress_end(&prog);
	if (err) {
		status = mmstore_fail(env, store, NULL, err);
	} else {
		printf("%s: size before: %" PRIu64 " (%s), after: %" PRIu64 " (%s), moved %" PRIu64
		       " bytes\n",
		       store, res.size_before, mmstore_human(res.size_before, h1, sizeof h1),
		       res.size_after, mmstore_human(res.size_after, h2, sizeof h2),
		       res.moved_bytes);
		if (res.incomplete)
			printf("%s: vacuum stopped early: no free space was left below its target; "
			       "nothing is lost, run it again to go further\n", store);
		status = mmstore_flush_stdout(store);
	}
	return mmstore_finish(env, store, status);
}

/* ---- upgrade ------------------------------------------------------------- */

static int mmstore_cmd_upgrade(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	struct mms_options opts = { .flags = MMS_UPGRADE };
	struct mms_info before, after;
	const char *store;
	mms_env *env;
	int first, status, err;

	status = mmstore_getopt(cmd, argc, argv, "", NULL, NULL, NULL, &first);
	if (status >= 0)
		return status;
	if ((status = mmstore_nargs(cmd, argc, argv, first, 1, 1)) >= 0)
		return status;
	store = argv[first];
	status = mmstore_open(store, &opts, &env);
	if (status)
		return status;
	err = mms_stats(env, &before);
	if (!err)
		err = mms_upgrade(env);
	if (!err)
		err = mms_stats(env, &after);
	if (err) {
		status = mmstore_fail(env, store, NULL, err);
	} else {
		if (before.format_version == after.format_version)
			printf("%s: already format version %" PRIu32 "; nothing to do\n", store,
			       after.format_version);
		else
			printf("%s: upgraded from format version %" PRIu32 " to %" PRIu32 "\n", store,
			       before.format_version, after.format_version);
		status = mmstore_flush_stdout(store);
	}
	return mmstore_finish(env, store, status);
}

/* ---- dump ---------------------------------------------------------------- */

static int mmstore_cmd_dump(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	const char *store, *file = NULL;
	FILE *out = stdout;
	mms_env *env;
	int first, status, err;

	status = mmstore_getopt(cmd, argc, argv, "", NULL, NULL, NULL, &first);
	if (status >= 0)
		return status;
	if ((status = mmstore_nargs(cmd, argc, argv, first, 1, 2)) >= 0)
		return status;
	store = argv[first];
	if (first + 1 < argc && strcmp(argv[first + 1], "-") != 0)
		file = argv[first + 1];
	status = mmstore_open_simple(store, 1, &env);
	if (status)
		return status;
	if (file && !(out = fopen(file, "w"))) {
		mmstore_msg("%s: cannot write '%s': %s", store, file, strerror(errno));
		return mmstore_finish(env, store, MMSTORE_FAILED);
	}
	err = mms_dump(env, out, NULL, NULL);
	if (err)
		status = mmstore_fail(env, store, NULL, err);
	if (file) {
		if (fclose(out) != 0 && status == MMSTORE_OK) {
			mmstore_msg("%s: writing '%s': %s", store, file, strerror(errno));
			status = MMSTORE_FAILED;
		}
	} else if (status == MMSTORE_OK) {
		status = mmstore_flush_stdout(store);
	}
	return mmstore_finish(env, store, status);
}

/* ---- load ---------------------------------------------------------------- */

static int mmstore_cmd_load(const struct mmstore_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "create", no_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	struct mmstore_progress prog;
	struct mms_options opts = { 0 };
	mms_progress_fn progress;
	const char *store, *file = NULL;
	FILE *in = stdin;
	mms_env *env;
	int create = 0, first, status, err;

	status = mmstore_getopt(cmd, argc, argv, "c", longopts, mmstore_flag_opt, &create, &first);
	if (status >= 0)
		return status;
	if ((status = mmstore_nargs(cmd, argc, argv, first, 1, 2)) >= 0)
		return status;
	store = argv[first];
	if (first + 1 < argc && strcmp(argv[first + 1], "-") != 0)
		file = argv[first + 1];
	if (file && !(in = fopen(file, "r"))) {
		mmstore_msg("%s: cannot read '%s': %s", store, file, strerror(errno));
		return MMSTORE_FAILED;
	}
	opts.flags = create ? MMS_CREATE : 0;
	status = mmstore_open(store, &opts, &env);
	if (status)
		goto out;
	progress = mmstore_progress_init(&prog, "loading");
	err = mms_load(env, in, progress, &prog);
	mmstore_progress_end(&prog);
	if (err) {
		/* Name the input: the detail holds the line number. */
		char buf[600];

		mmstore_msg("%s: loading '%s': %s%s", store, file ? file : "standard input",
		            mms_strerror(err),
		            mmstore_detail(mms_errdetail(env), err, buf, sizeof buf));
		status = mmstore_status_of(err);
		if (err == MMS_INVAL)
			status = MMSTORE_FAILED;
	}
	status = mmstore_finish(env, store, status);
out:
	if (file)
		fclose(in);
	return status;
}

/* ---- Main ---------------------------------------------------------------- */

static const struct mmstore_cmd mmstore_cmds[] = {
	{ "create", mmstore_cmd_create, "STORE [--size BYTES] [--max-size BYTES]",
	  "Create a new store (it must not exist)",
	  "  -s, --size BYTES      first segment of the file (default 1M); the file\n"
	  "                        grows as needed, and unused tail space is given\n"
	  "                        back when the store is closed\n"
	  "  -m, --max-size BYTES  size the store may grow to (default unlimited)\n"
	  "Sizes take K, M, G and T suffixes (powers of 1024).\n" },
	{ "info", mmstore_cmd_info, "STORE [--json]",
	  "Show the store's sizes, space use and counters",
	  "  -j, --json  print one JSON object\n" },
	{ "ls", mmstore_cmd_ls, "STORE [-l] [PATH]",
	  "List a directory (default the root), sorted by name",
	  "  -l, --long  print mode, size, modification time and name\n"
	  "A PATH that is not a directory prints that entry.\n" },
	{ "get", mmstore_cmd_get, "STORE KEY",
	  "Write the bytes of KEY to standard output", NULL },
	{ "put", mmstore_cmd_put, "STORE KEY [FILE]",
	  "Store FILE (default standard input) as KEY, replacing its value",
	  "Missing parent directories are created.  The whole value is replaced in\n"
	  "one transaction: on failure the previous value stays.\n" },
	{ "rm", mmstore_cmd_rm, "STORE KEY",
	  "Remove a key or an empty directory", NULL },
	{ "mv", mmstore_cmd_mv, "STORE OLD NEW",
	  "Rename OLD to NEW atomically, replacing NEW", NULL },
	{ "cp", mmstore_cmd_cp, "STORE SRC DST",
	  "Copy the value of SRC to DST (made, or its value replaced) in one commit",
	  "Whole pages are shared, not copied, until either key is written: a copy\n"
	  "takes no space and moments, whatever its size.  DST gets SRC's permission\n"
	  "bits when it is made.\n" },
	{ "mkdir", mmstore_cmd_mkdir, "STORE PATH [-p]",
	  "Create a directory",
	  "  -p, --parents  create missing parents; an existing directory is fine\n" },
	{ "check", mmstore_cmd_check, "STORE",
	  "Check every structure of the store; print each problem as 'where: what'",
	  "Exit status 3 when a problem is found or the store is too damaged to open.\n" },
	{ "vacuum", mmstore_cmd_vacuum, "STORE",
	  "Compact the store and shrink its file", NULL },
	{ "upgrade", mmstore_cmd_upgrade, "STORE",
	  "Convert a store of an older format to this build's, in place",
	  "One commit: a crash during it leaves the store as it was.  A store of the\n"
	  "current format is left alone.\n" },
	{ "dump", mmstore_cmd_dump, "STORE [FILE]",
	  "Write the store as JSON Lines (doc/DUMP.md) to FILE or standard output", NULL },
	{ "load", mmstore_cmd_load, "STORE [FILE] [--create]",
	  "Load a dump from FILE or standard input into the store",
	  "  -c, --create  create the store if it does not exist\n"
	  "Keys that exist are replaced; on failure nothing is loaded.\n" },
	{ NULL, NULL, NULL, NULL, NULL },
};

/* Print the global usage on `out`. */
static void mmstore_usage(FILE *out)
{
	fprintf(out,
	        "Usage: %s [--help|--version]\n"
	        "       %s [--wait SECONDS] COMMAND STORE [ARGS]\n"
	        "\n"
	        "Work on an mmfs store file without mounting it.\n"
	        "--wait: how long to wait for a process letting go of the store (a daemon\n"
	        "closing after an unmount, another mmstore; default 5; 0: fail at once).\n"
	        "\n"
	        "Commands:\n",
	        mmstore_prog, mmstore_prog);
	for (const struct mmstore_cmd *c = mmstore_cmds; c->name; c++)
		fprintf(out, "  %-7s %s\n          %s.\n", c->name, c->args, c->summary);
	fprintf(out,
	        "\n"
	        "Run '%s COMMAND --help' for the options of a command.\n"
	        "Exit status: 0 success, 1 failure, 2 usage error, 3 damaged store.\n",
	        mmstore_prog);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		mmstore_usage(stderr);
		return MMSTORE_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		mmstore_usage(stdout);
		return fflush(stdout) ? MMSTORE_FAILED : MMSTORE_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("mmstore (mmfs) %s\n", MMS_VERSION_STRING);
		return fflush(stdout) ? MMSTORE_FAILED : MMSTORE_OK;
	}
	if (!strcmp(argv[1], "--wait") || !strncmp(argv[1], "--wait=", 7)) {
		const char *v = argv[1][6] == '=' ? argv[1] + 7 : (argc > 2 ? argv[2] : NULL);
		char *end = NULL;
		unsigned long secs = v ? strtoul(v, &end, 10) : 0;
		if (!v || !*v || *end || secs > 3600) {
			mmstore_msg("--wait takes a number of seconds (0 to 3600)");
			return MMSTORE_USAGE;
		}
		mmstore_wait_ms = (unsigned)secs * 1000;
		int used = argv[1][6] == '=' ? 1 : 2;
		argc -= used;
		argv += used;
		if (argc < 2) {
			mmstore_usage(stderr);
			return MMSTORE_USAGE;
		}
	}
	for (const struct mmstore_cmd *c = mmstore_cmds; c->name; c++)
		if (!strcmp(argv[1], c->name))
			return c->fn(c, argc - 1, argv + 1);
	if (argv[1][0] == '-')
		mmstore_msg("unknown option '%s'", argv[1]);
	else
		mmstore_msg("unknown command '%s'", argv[1]);
	mmstore_usage(stderr);
	return MMSTORE_USAGE;
}
