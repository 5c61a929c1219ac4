/*
 * json.c - dump and load of a store as JSON Lines (the format is in
 * doc/DUMP.md).
 *
 * mms_dump() walks the tree depth first, directories before their entries
 * and entries in mms_dir_next() order, and writes one JSON value per line:
 * a header, one line per node, the data of each file in chunks of at most
 * MMS_DUMP_CHUNK bytes (holes are skipped with MMS_SEEK_DATA/HOLE, so a
 * sparse value dumps small), and an end line with the node count.  Memory
 * is bounded by the tree depth (one directory cursor per level) plus one
 * chunk.  Equal stores give byte-identical dumps: every object is written
 * compact with sorted keys and ASCII-only, xattrs sorted by name.
 *
 * mms_load() reads a dump line by line (so every error names its line),
 * validates every field, and creates the nodes: parents must come before
 * their entries, an existing key of the same path is replaced, an existing
 * directory is reused.  Times are set last: those of a file once its data
 * lines are done, those of directories after the whole dump, deepest
 * first, since creating entries changes a directory's mtime.
 *
 * Only the public API of mms.h is used, plus mms_fail() for error details.
 */
#include "mms.h"
#include "mms_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>

#include <jansson.h>

#define MMS_DUMP_FORMAT  "mmstore-dump"
#define MMS_DUMP_VERSION 2 /* 2: devices and hard links; 1 is read too */
#define MMS_DUMP_CHUNK   (1u << 20) /* largest data chunk of one line */
#define MMS_NS_PER_SEC   1000000000LL
#define MMS_DUMP_FLAGS   (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

/* ---- Small helpers --------------------------------------------------------- */

/* A growable byte string; `p` is NUL-terminated when not NULL. */
struct mms_jbuf {
	char *p;
	size_t len, cap;
};

/* Make room for `extra` more bytes (plus a NUL).  0 or ENOMEM. */
static int mms_jbuf_reserve(struct mms_jbuf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len - 1)
		return ENOMEM;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Replace the contents with `n` bytes at `src`.  0 or ENOMEM. */
static int mms_jbuf_set(struct mms_jbuf *b, const void *src, size_t n)
{
	b->len = 0;
	int rc = mms_jbuf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->p, src, n);
	b->len = n;
	b->p[n] = '\0';
	return 0;
}

/* Append `n` bytes.  0 or ENOMEM. */
static int mms_jbuf_add(struct mms_jbuf *b, const void *src, size_t n)
{
	int rc = mms_jbuf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->p + b->len, src, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static const char mms_b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Length of the base64 text of n bytes (without a NUL). */
static size_t mms_b64_enclen(size_t n)
{
	return (n + 2) / 3 * 4;
}

/* Standard base64 with '=' padding; out needs mms_b64_enclen(n)+1 bytes.
 * Returns the text length (the text is NUL-terminated). */
static size_t mms_b64_encode(const void *src, size_t n, char *out)
{
	const uint8_t *in = src;
	size_t o = 0, i = 0;
	for (; n - i >= 3; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = mms_b64_alphabet[v >> 18 & 63];
		out[o++] = mms_b64_alphabet[v >> 12 & 63];
		out[o++] = mms_b64_alphabet[v >> 6 & 63];
		out[o++] = mms_b64_alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = mms_b64_alphabet[v >> 18 & 63];
		out[o++] = mms_b64_alphabet[v >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = mms_b64_alphabet[v >> 18 & 63];
		out[o++] = mms_b64_alphabet[v >> 12 & 63];
		out[o++] = mms_b64_alphabet[v >> 6 & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

/* Value of a base64 digit, or -1. */
static int mms_b64_digit(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strict base64 decoding: the length is a multiple of 4, only the alphabet,
 * '=' only as the last one or two characters, and the unused bits of the
 * last digit are zero (so every byte string has exactly one text).  `out`
 * needs n/4*3 bytes.  Returns 0 and *outlen, or -1.
 */
static int mms_b64_decode(const char *src, size_t n, void *dst, size_t *outlen)
{
	const unsigned char *in = (const unsigned char *)src;
	uint8_t *out = dst;
	size_t o = 0;
	if (n % 4)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int d[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			if (in[i + k] == '=' && i + 4 == n && k >= 2) {
				d[k] = 0;
				pad++;
				continue;
			}
			if (pad)
				return -1; /* a digit after '=' */
			d[k] = mms_b64_digit(in[i + k]);
			if (d[k] < 0)
				return -1;
		}
		uint32_t v = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 |
		             (uint32_t)d[2] << 6 | (uint32_t)d[3];
		out[o++] = (uint8_t)(v >> 16);
		if (pad == 2) {
			if (v & 0xffff)
				return -1;
		} else {
			out[o++] = (uint8_t)(v >> 8);
			if (pad == 1) {
				if (v & 0xff)
					return -1;
			} else {
				out[o++] = (uint8_t)v;
			}
		}
	}
	*outlen = o;
	return 0;
}

/*
 * True if the bytes are valid UTF-8 (RFC 3629: shortest form, no
 * surrogates, at most U+10FFFF) without NUL: such names are written as JSON
 * strings, all others in base64.
 */
static bool mms_utf8_valid(const void *src, size_t n)
{
	const unsigned char *s = src;
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t k;
		uint32_t cp, min;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/*
 * Write bytes for an error message into out (size outsz): printable ASCII
 * and valid UTF-8 as they are, other bytes as \xHH, cut with "..." when
 * long.
 */
static const char *mms_printable(const void *src, size_t n, char *out, size_t outsz)
{
	const unsigned char *s = src;
	size_t o = 0;
	bool utf8 = mms_utf8_valid(src, n);
	for (size_t i = 0; i < n; i++) {
		if (o + 8 >= outsz) {
			/* do not leave half a UTF-8 sequence before the "..." */
			while (utf8 && o > 0 && ((unsigned char)out[o - 1] & 0xc0) == 0x80)
				o--;
			if (utf8 && o > 0 && ((unsigned char)out[o - 1] & 0xc0) == 0xc0)
				o--;
			memcpy(out + o, "...", 4);
			return out;
		}
		if ((s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') || (utf8 && s[i] >= 0x80))
			out[o++] = (char)s[i];
		else
			o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", s[i]);
	}
	out[o] = '\0';
	return out;
}

/* A timespec as ns since the epoch; false if it does not fit. */
static bool mms_ts_to_ns(const struct timespec *ts, int64_t *ns)
{
	int64_t v;
	if (__builtin_mul_overflow((int64_t)ts->tv_sec, MMS_NS_PER_SEC, &v) ||
	    __builtin_add_overflow(v, (int64_t)ts->tv_nsec, &v))
		return false;
	*ns = v;
	return true;
}

/* ns since the epoch as a timespec with 0 <= tv_nsec < 1e9. */
static struct timespec mms_ns_to_ts(int64_t ns)
{
	int64_t sec = ns / MMS_NS_PER_SEC, rem = ns % MMS_NS_PER_SEC;
	if (rem < 0) {
		sec--;
		rem += MMS_NS_PER_SEC;
	}
	return (struct timespec){.tv_sec = (time_t)sec, .tv_nsec = (long)rem};
}

/* The dump's name of a node type, or NULL for a type it cannot hold. */
static const char *mms_type_name(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:  return "file";
	case S_IFDIR:  return "dir";
	case S_IFLNK:  return "symlink";
	case S_IFIFO:  return "fifo";
	case S_IFSOCK: return "socket";
	case S_IFCHR:  return "chardev";
	case S_IFBLK:  return "blockdev";
	default:       return NULL;
	}
}

/*
 * Record a detail "<message>: <cause>" for `err`; for damage and space
 * errors the engine's own detail (which page, which key) is kept after it.
 * Returns err.
 */
static int mms_json_fail(mms_env *env, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int mms_json_fail(mms_env *env, int err, const char *fmt, ...)
{
	char msg[384], prev[256] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (err == MMS_CORRUPT || err == MMS_FULL || err == MMS_TRUNCATED)
		snprintf(prev, sizeof prev, "%s", mms_errdetail(env));
	if (prev[0])
		return mms_fail(env, err, "%s: %s (%s)", msg, mms_strerror(err), prev);
	return mms_fail(env, err, "%s: %s", msg, mms_strerror(err));
}

/*
 * Set obj[key] to the bytes as a string when they are valid UTF-8, else
 * obj["<key>_base64"] to their base64.  0 or ENOMEM.
 */
static int mms_json_set_bytes(json_t *obj, const char *key, const void *p, size_t n)
{
	if (mms_utf8_valid(p, n))
		return json_object_set_new(obj, key, json_stringn(p, n)) ? ENOMEM : 0;
	char bkey[32];
	snprintf(bkey, sizeof bkey, "%s_base64", key);
	char *b64 = malloc(mms_b64_enclen(n) + 1);
	if (!b64)
		return ENOMEM;
	size_t blen = mms_b64_encode(p, n, b64);
	int rc = json_object_set_new(obj, bkey, json_stringn_nocheck(b64, blen)) ? ENOMEM : 0;
	free(b64);
	return rc;
}

/* ---- Dump -------------------------------------------------------------------- */

/* State of one mms_dump() call. */
struct mms_dump {
	mms_env *env;
	FILE *out;
	mms_progress_fn progress;
	void *ctx;
	uint64_t nodes, total;
	struct mms_jbuf path;  /* of the node being written, "" for the root */
	uint8_t *chunk;        /* MMS_DUMP_CHUNK bytes */
	char *b64;             /* base64 of a chunk or an xattr value */
	uint8_t *xvalue;       /* MMS_XATTR_VALUE_MAX bytes */
};

/* The directories a dump has entered: a damaged store whose names form a
 * cycle must give an error, not an endless dump.  Open addressing. */
struct mms_dirset {
	uint64_t *slot; /* 0: empty */
	size_t cap, n;
};

/* Add ino: 1 if it was new, 0 if already there, -1 out of memory. */
static int mms_dirset_add(struct mms_dirset *s, uint64_t ino)
{
	if ((s->n + 1) * 2 > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 256;
		uint64_t *ns = calloc(ncap, sizeof *ns);
		if (!ns)
			return -1;
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->slot[i])
				continue;
			size_t j = (size_t)(s->slot[i] * 0x9E3779B97F4A7C15ull >> 17) & (ncap - 1);
			while (ns[j])
				j = (j + 1) & (ncap - 1);
			ns[j] = s->slot[i];
		}
		free(s->slot);
		s->slot = ns;
		s->cap = ncap;
	}
	size_t j = (size_t)(ino * 0x9E3779B97F4A7C15ull >> 17) & (s->cap - 1);
	while (s->slot[j]) {
		if (s->slot[j] == ino)
			return 0;
		j = (j + 1) & (s->cap - 1);
	}
	s->slot[j] = ino;
	s->n++;
	return 1;
}

/* The first path a dump gave each inode with several names, so that its
 * other names become "hardlink" lines.  Open addressing on ino. */
struct mms_linkmap {
	struct mms_linkent {
		uint64_t ino; /* 0: empty */
		char *path;
		size_t len;
	} *slot;
	size_t cap, n;
};

static size_t mms_linkmap_at(const struct mms_linkmap *m, uint64_t ino)
{
	size_t j = (size_t)(ino * 0x9E3779B97F4A7C15ull >> 17) & (m->cap - 1);
	while (m->slot[j].ino && m->slot[j].ino != ino)
		j = (j + 1) & (m->cap - 1);
	return j;
}

/* The first path of ino, or NULL (then it is recorded as `path`, unless
 * out of memory: *err gets ENOMEM). */
static const struct mms_linkent *mms_linkmap_get(struct mms_linkmap *m, uint64_t ino,
                                                 const char *path, size_t len, int *err)
{
	if (m->cap && m->slot[mms_linkmap_at(m, ino)].ino)
		return &m->slot[mms_linkmap_at(m, ino)];
	if ((m->n + 1) * 2 > m->cap) {
		struct mms_linkmap g = { calloc(m->cap ? m->cap * 2 : 64, sizeof *g.slot),
		                         m->cap ? m->cap * 2 : 64, m->n };
		if (!g.slot) {
			*err = ENOMEM;
			return NULL;
		}
		for (size_t i = 0; i < m->cap; i++)
			if (m->slot[i].ino)
				g.slot[mms_linkmap_at(&g, m->slot[i].ino)] = m->slot[i];
		free(m->slot);
		*m = g;
	}
	struct mms_linkent *e = &m->slot[mms_linkmap_at(m, ino)];
	e->path = malloc(len + 1);
	if (!e->path) {
		*err = ENOMEM;
		return NULL;
	}
	memcpy(e->path, path, len);
	e->path[len] = '\0';
	e->len = len;
	e->ino = ino;
	m->n++;
	return NULL;
}

static void mms_linkmap_free(struct mms_linkmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slot[i].path);
	free(m->slot);
}

/* One level of the depth-first walk: a directory being listed. */
struct mms_dump_level {
	mms_cursor *cur;
	size_t pathlen; /* length of the directory's path */
};

/* The current path, printable, for error details. */
static const char *mms_dump_where(struct mms_dump *d, char *buf, size_t size)
{
	return mms_printable(d->path.p ? d->path.p : "", d->path.len, buf, size);
}

/* Write obj and a newline.  0, or the errno of the failed write. */
static int mms_dump_emit(struct mms_dump *d, json_t *obj)
{
	errno = 0;
	if (json_dumpf(obj, d->out, MMS_DUMP_FLAGS) == 0 && putc('\n', d->out) != EOF)
		return 0;
	int err = errno ? errno : EIO;
	return mms_fail(d->env, err, "writing the dump: %s", strerror(err));
}

/* qsort() order of xattr names: bytewise (names hold no NUL). */
static int mms_name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Add "xattrs" (sorted by name) to a node object if the node has any. */
static int mms_dump_xattrs(struct mms_dump *d, uint64_t ino, json_t *node)
{
	char where[256];
	char *names = NULL;
	const char **sorted = NULL;
	json_t *arr = NULL;
	size_t len = 0, n = 0;
	int rc = mms_listxattr(d->env, ino, NULL, 0, &len);
	if (rc) {
		rc = mms_json_fail(d->env, rc, "key '%s': listing xattrs",
		                   mms_dump_where(d, where, sizeof where));
		goto out;
	}
	if (len == 0)
		goto out;
	names = malloc(len);
	if (!names) {
		rc = ENOMEM;
		goto out;
	}
	rc = mms_listxattr(d->env, ino, names, len, &len);
	if (rc) {
		rc = mms_json_fail(d->env, rc, "key '%s': listing xattrs",
		                   mms_dump_where(d, where, sizeof where));
		goto out;
	}
	for (size_t i = 0; i < len; i++)
		n += names[i] == '\0';
	sorted = malloc((n ? n : 1) * sizeof *sorted);
	arr = json_array();
	if (!sorted || !arr) {
		rc = ENOMEM;
		goto out;
	}
	n = 0;
	for (size_t i = 0; i < len; i += strlen(names + i) + 1)
		sorted[n++] = names + i;
	qsort(sorted, n, sizeof *sorted, mms_name_cmp);
	for (size_t i = 0; i < n; i++) {
		size_t nlen = strlen(sorted[i]), vlen;
		rc = mms_getxattr(d->env, ino, sorted[i], nlen, d->xvalue,
		                  MMS_XATTR_VALUE_MAX, &vlen);
		if (rc) {
			char xname[256];
			rc = mms_json_fail(d->env, rc, "key '%s': reading xattr '%s'",
			                   mms_dump_where(d, where, sizeof where),
			                   mms_printable(sorted[i], nlen, xname, sizeof xname));
			goto out;
		}
		json_t *x = json_object();
		if (!x || json_array_append_new(arr, x)) {
			rc = ENOMEM;
			goto out;
		}
		size_t blen = mms_b64_encode(d->xvalue, vlen, d->b64);
		rc = mms_json_set_bytes(x, "name", sorted[i], nlen);
		if (!rc && json_object_set_new(x, "value_base64", json_stringn_nocheck(d->b64, blen)))
			rc = ENOMEM;
		if (rc)
			goto out;
	}
	if (json_object_set(node, "xattrs", arr))
		rc = ENOMEM;
out:
	json_decref(arr);
	free(sorted);
	free(names);
	return rc;
}

/* Write the data lines of a file: every range that holds data, in chunks. */
static int mms_dump_data(struct mms_dump *d, const struct mms_stat *st)
{
	char where[256];
	uint64_t off = 0;
	while (off < st->size) {
		uint64_t start, end;
		int rc = mms_seek(d->env, st->ino, off, MMS_SEEK_DATA, &start);
		if (rc == MMS_NXIO)
			return 0;
		if (!rc)
			rc = mms_seek(d->env, st->ino, start, MMS_SEEK_HOLE, &end);
		if (!rc && (start < off || end <= start || end > st->size))
			rc = mms_fail(d->env, MMS_CORRUPT, "key '%s': seek gave data [%" PRIu64
			              ", %" PRIu64 ") from offset %" PRIu64 " of size %" PRIu64,
			              mms_dump_where(d, where, sizeof where), start, end, off, st->size);
		if (rc)
			return rc == MMS_CORRUPT ? rc :
			       mms_json_fail(d->env, rc, "key '%s': finding data after offset %" PRIu64,
			                     mms_dump_where(d, where, sizeof where), off);
		for (off = start; off < end;) {
			size_t want = end - off < MMS_DUMP_CHUNK ? (size_t)(end - off) : MMS_DUMP_CHUNK;
			size_t got = 0;
			while (got < want) {
				size_t n;
				rc = mms_read(d->env, st->ino, d->chunk + got, want - got, off + got, &n);
				if (rc)
					return mms_json_fail(d->env, rc, "key '%s': reading at offset %" PRIu64,
					                     mms_dump_where(d, where, sizeof where), off + got);
				if (n == 0)
					return mms_fail(d->env, MMS_CORRUPT, "key '%s': value ends at %" PRIu64
					                " before its size %" PRIu64,
					                mms_dump_where(d, where, sizeof where), off + got, st->size);
				got += n;
			}
			json_t *obj = json_object();
			size_t blen = mms_b64_encode(d->chunk, got, d->b64);
			rc = obj ? 0 : ENOMEM;
			if (!rc && (json_object_set_new(obj, "type", json_string("data")) ||
			            json_object_set_new(obj, "offset", json_integer((json_int_t)off)) ||
			            json_object_set_new(obj, "base64", json_stringn_nocheck(d->b64, blen))))
				rc = ENOMEM;
			if (!rc)
				rc = mms_json_set_bytes(obj, "path", d->path.p, d->path.len);
			if (!rc)
				rc = mms_dump_emit(d, obj);
			json_decref(obj);
			if (rc)
				return rc;
			off += got;
		}
	}
	return 0;
}

/* Write the line of one node (d->path) and, for a file, its data lines. */
static int mms_dump_node(struct mms_dump *d, const struct mms_stat *st)
{
	char where[256];
	const char *type = mms_type_name(st->mode);
	int64_t t[3];
	if (!type)
		return mms_fail(d->env, MMS_CORRUPT, "key '%s': unknown type 0%o",
		                mms_dump_where(d, where, sizeof where), st->mode & S_IFMT);
	if (!mms_ts_to_ns(&st->atime, &t[0]) || !mms_ts_to_ns(&st->mtime, &t[1]) ||
	    !mms_ts_to_ns(&st->ctime, &t[2]))
		return mms_fail(d->env, MMS_CORRUPT, "key '%s': a time out of range",
		                mms_dump_where(d, where, sizeof where));
	json_t *obj = json_object();
	int rc = obj ? 0 : ENOMEM;
	if (!rc && (json_object_set_new(obj, "type", json_string(type)) ||
	            json_object_set_new(obj, "mode", json_integer(st->mode & 07777)) ||
	            json_object_set_new(obj, "uid", json_integer(st->uid)) ||
	            json_object_set_new(obj, "gid", json_integer(st->gid)) ||
	            json_object_set_new(obj, "atime", json_integer(t[0])) ||
	            json_object_set_new(obj, "mtime", json_integer(t[1])) ||
	            json_object_set_new(obj, "ctime", json_integer(t[2]))))
		rc = ENOMEM;
	if (!rc && S_ISREG(st->mode) &&
	    json_object_set_new(obj, "size", json_integer((json_int_t)st->size)))
		rc = ENOMEM;
	if (!rc && (S_ISCHR(st->mode) || S_ISBLK(st->mode)) &&
	    (json_object_set_new(obj, "major", json_integer((json_int_t)major(st->rdev))) ||
	     json_object_set_new(obj, "minor", json_integer((json_int_t)minor(st->rdev)))))
		rc = ENOMEM;
	if (!rc)
		rc = mms_json_set_bytes(obj, "path", d->path.p ? d->path.p : "", d->path.len);
	if (!rc && S_ISLNK(st->mode)) {
		size_t tlen;
		rc = mms_readlink(d->env, st->ino, (char *)d->xvalue, MMS_SYMLINK_MAX, &tlen);
		if (rc)
			rc = mms_json_fail(d->env, rc, "key '%s': reading the symlink",
			                   mms_dump_where(d, where, sizeof where));
		else
			rc = mms_json_set_bytes(obj, "target", d->xvalue, tlen);
	}
	if (!rc)
		rc = mms_dump_xattrs(d, st->ino, obj);
	if (!rc)
		rc = mms_dump_emit(d, obj);
	json_decref(obj);
	if (!rc && S_ISREG(st->mode))
		rc = mms_dump_data(d, st);
	if (rc)
		return rc;
	d->nodes++;
	if (d->progress && d->progress(d->ctx, d->nodes, d->total))
		return mms_fail(d->env, ECANCELED, "dump stopped by the progress callback");
	return 0;
}

/* Write obj (NULL: out of memory) as a line and drop it. */
static int mms_dump_simple(struct mms_dump *d, json_t *obj)
{
	int rc = obj ? mms_dump_emit(d, obj) : ENOMEM;
	json_decref(obj);
	return rc;
}

int mms_dump(mms_env *env, FILE *out, mms_progress_fn progress, void *ctx)
{
	struct mms_dump d = {.env = env, .out = out, .progress = progress, .ctx = ctx};
	struct mms_dump_level *lv = NULL;
	struct mms_dirset seen = { NULL, 0, 0 };
	struct mms_linkmap links = { NULL, 0, 0 };
	size_t depth = 0, cap = 0;
	struct mms_info info;
	struct mms_stat st;
	char where[256];
	int rc;

	if (!env || !out)
		return MMS_INVAL;
	rc = mms_stats(env, &info);
	if (rc)
		return rc;
	d.total = info.keys + info.dirs;
	mms_file_warm(env, 0, env->meta.file_pages);
	d.chunk = malloc(MMS_DUMP_CHUNK);
	d.b64 = malloc(mms_b64_enclen(MMS_DUMP_CHUNK > MMS_XATTR_VALUE_MAX ?
	                              MMS_DUMP_CHUNK : MMS_XATTR_VALUE_MAX) + 1);
	d.xvalue = malloc(MMS_XATTR_VALUE_MAX > MMS_SYMLINK_MAX ?
	                  MMS_XATTR_VALUE_MAX : MMS_SYMLINK_MAX);
	if (!d.chunk || !d.b64 || !d.xvalue || mms_jbuf_set(&d.path, "", 0)) {
		rc = ENOMEM;
		goto out;
	}

	rc = mms_dump_simple(&d, json_pack("{s:s, s:i}", "format", MMS_DUMP_FORMAT,
	                                   "version", MMS_DUMP_VERSION));
	if (rc)
		goto out;
	rc = mms_getattr(env, MMS_ROOT_INO, &st);
	if (rc) {
		rc = mms_json_fail(env, rc, "reading the root");
		goto out;
	}
	rc = mms_dump_node(&d, &st);
	if (rc)
		goto out;
	lv = malloc(sizeof *lv * (cap = 16));
	if (!lv) {
		rc = ENOMEM;
		goto out;
	}
	rc = mms_dir_open(env, MMS_ROOT_INO, 0, &lv[0].cur);
	if (rc) {
		rc = mms_json_fail(env, rc, "listing the root");
		goto out;
	}
	lv[0].pathlen = 0;
	depth = 1;

	while (depth > 0) {
		struct mms_dump_level *top = &lv[depth - 1];
		struct mms_dirent ent;
		d.path.len = top->pathlen;
		rc = mms_dir_next(top->cur, &ent);
		if (rc == MMS_NOTFOUND) {
			mms_dir_close(top->cur);
			depth--;
			continue;
		}
		if (rc) {
			rc = mms_json_fail(env, rc, "listing '%s'", mms_dump_where(&d, where, sizeof where));
			goto out;
		}
		if ((top->pathlen && mms_jbuf_add(&d.path, "/", 1)) ||
		    mms_jbuf_add(&d.path, ent.name, ent.namelen)) {
			rc = ENOMEM;
			goto out;
		}
		rc = mms_getattr(env, ent.ino, &st);
		if (rc) {
			rc = mms_json_fail(env, rc, "key '%s': reading its attributes",
			                   mms_dump_where(&d, where, sizeof where));
			goto out;
		}
		const struct mms_linkent *first = NULL;
		if (!S_ISDIR(st.mode) && st.nlink > 1)
			first = mms_linkmap_get(&links, st.ino, d.path.p, d.path.len, &rc);
		if (rc)
			goto out;
		if (first) {
			/* a name of an inode dumped already */
			json_t *obj = json_object();
			rc = obj ? 0 : ENOMEM;
			if (!rc && json_object_set_new(obj, "type", json_string("hardlink")))
				rc = ENOMEM;
			if (!rc)
				rc = mms_json_set_bytes(obj, "path", d.path.p, d.path.len);
			if (!rc)
				rc = mms_json_set_bytes(obj, "to", first->path, first->len);
			if (rc) {
				json_decref(obj);
				goto out;
			}
			rc = mms_dump_simple(&d, obj);
			if (rc)
				goto out;
			d.nodes++;
			continue;
		}
		rc = mms_dump_node(&d, &st);
		if (rc)
			goto out;
		if (!S_ISDIR(st.mode))
			continue;
		int fresh = mms_dirset_add(&seen, st.ino);
		if (fresh < 0) {
			rc = ENOMEM;
			goto out;
		}
		if (!fresh || st.ino == MMS_ROOT_INO) {
			rc = mms_fail(env, MMS_CORRUPT,
			              "key '%s': directory %llu is reached twice (the names form a cycle)",
			              mms_dump_where(&d, where, sizeof where), (unsigned long long)st.ino);
			goto out;
		}
		if (depth == cap) {
			struct mms_dump_level *nlv = realloc(lv, sizeof *lv * cap * 2);
			if (!nlv) {
				rc = ENOMEM;
				goto out;
			}
			lv = nlv;
			cap *= 2;
		}
		rc = mms_dir_open(env, st.ino, 0, &lv[depth].cur);
		if (rc) {
			rc = mms_json_fail(env, rc, "listing '%s'", mms_dump_where(&d, where, sizeof where));
			goto out;
		}
		lv[depth].pathlen = d.path.len;
		depth++;
	}

	rc = mms_dump_simple(&d, json_pack("{s:s, s:I}", "type", "end",
	                                   "nodes", (json_int_t)d.nodes));
	if (!rc) {
		errno = 0;
		if (fflush(out) != 0 || ferror(out)) {
			int err = errno ? errno : EIO;
			rc = mms_fail(env, err, "writing the dump: %s", strerror(err));
		}
	}
out:
	while (depth > 0)
		mms_dir_close(lv[--depth].cur);
	free(lv);
	free(seen.slot);
	mms_linkmap_free(&links);
	free(d.path.p);
	free(d.xvalue);
	free(d.b64);
	free(d.chunk);
	return rc;
}

/* ---- Load ------------------------------------------------------------------ */

/* Attributes applied last, once a node is complete. */
struct mms_load_attr {
	uint64_t ino;
	uint32_t mode, uid, gid;
	int64_t atime, mtime, ctime;
};

/* A directory whose attributes are applied at the end of the load. */
struct mms_load_dir {
	struct mms_load_attr attr;
	size_t depth; /* path components; 0 for the root */
	size_t seq;   /* order of appearance, to sort deterministically */
};

/* A node line, parsed and validated. */
struct mms_load_node {
	uint32_t type;            /* S_IFREG, S_IFDIR, ... */
	struct mms_load_attr attr;
	uint64_t size;            /* files */
	uint64_t rdev;            /* devices */
	json_t *xattrs;           /* borrowed from the line, or NULL */
};

/* State of one mms_load() call. */
struct mms_load {
	mms_env *env;
	FILE *in;
	mms_progress_fn progress;
	void *ctx;
	unsigned long line;       /* number of the line being handled */
	uint64_t nodes;           /* node lines so far */
	bool by_bytes;            /* progress in bytes of the input */
	uint64_t done_bytes, total_bytes;
	struct mms_jbuf path;     /* path of the current line */
	struct mms_jbuf target;   /* symlink target / xattr name of the current line */
	bool file_open;           /* data lines may follow for `file` */
	struct mms_load_attr file;
	uint64_t file_size;
	struct mms_jbuf file_path;
	bool cache_valid;         /* parent cache: directory `cache_path` is inode `cache_ino` */
	struct mms_jbuf cache_path;
	uint64_t cache_ino;
	struct mms_load_dir *dirs;
	size_t ndirs, capdirs;
	uint8_t *chunk;           /* decoded data or xattr value */
	size_t chunk_cap;
};

/* MMS_INVAL with "line N: <cause>" as the detail. */
static int mms_load_bad(struct mms_load *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int mms_load_bad(struct mms_load *l, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return mms_fail(l->env, MMS_INVAL, "line %lu: %s", l->line, msg);
}

/* The path of the current line, printable, for details. */
static const char *mms_load_where(struct mms_load *l, char *buf, size_t size)
{
	return mms_printable(l->path.p ? l->path.p : "", l->path.len, buf, size);
}

/* An engine call on the current line's path failed: keep its code. */
static int mms_load_failed(struct mms_load *l, int err, const char *what)
{
	char where[256];
	return mms_json_fail(l->env, err, "line %lu: %s '%s'", l->line, what,
	                     mms_load_where(l, where, sizeof where));
}

/* Reject keys of obj that are not in the NULL-terminated list `allowed`. */
static int mms_load_keys(struct mms_load *l, json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t *val;
	json_object_foreach(obj, key, val) {
		size_t i = 0;
		while (allowed[i] && strcmp(allowed[i], key) != 0)
			i++;
		if (!allowed[i]) {
			char k[128];
			return mms_load_bad(l, "unknown field '%s'",
			                    mms_printable(key, strlen(key), k, sizeof k));
		}
	}
	return 0;
}

/* obj[key] as an integer in [min, max]. */
static int mms_load_int(struct mms_load *l, json_t *obj, const char *key,
                        int64_t min, int64_t max, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return mms_load_bad(l, "missing field '%s'", key);
	if (!json_is_integer(v))
		return mms_load_bad(l, "field '%s' is not an integer", key);
	json_int_t x = json_integer_value(v);
	if (x < min || x > max)
		return mms_load_bad(l, "field '%s' is %lld, out of range [%" PRId64 ", %" PRId64 "]",
		                    key, (long long)x, min, max);
	*out = x;
	return 0;
}

/* Make sure l->chunk holds n bytes. */
static int mms_load_chunk(struct mms_load *l, size_t n)
{
	if (n <= l->chunk_cap)
		return 0;
	uint8_t *p = realloc(l->chunk, n);
	if (!p)
		return ENOMEM;
	l->chunk = p;
	l->chunk_cap = n;
	return 0;
}

/*
 * Decode obj[key] (a string) or obj["<key>_base64"] into out.  Exactly one
 * of them must be there, unless `optional`: then *present says if one was.
 * At most `max` bytes.
 */
static int mms_load_bytes(struct mms_load *l, json_t *obj, const char *key, size_t max,
                          bool optional, bool *present, struct mms_jbuf *out)
{
	char bkey[32];
	snprintf(bkey, sizeof bkey, "%s_base64", key);
	json_t *s = json_object_get(obj, key), *b = json_object_get(obj, bkey);
	if (present)
		*present = s || b;
	if (s && b)
		return mms_load_bad(l, "both '%s' and '%s'", key, bkey);
	if (!s && !b)
		return optional ? 0 : mms_load_bad(l, "missing field '%s' (or '%s')", key, bkey);
	if (s) {
		if (!json_is_string(s))
			return mms_load_bad(l, "field '%s' is not a string", key);
		size_t n = json_string_length(s);
		if (n > max)
			return mms_load_bad(l, "field '%s' is longer than %zu bytes", key, max);
		return mms_jbuf_set(out, json_string_value(s), n);
	}
	if (!json_is_string(b))
		return mms_load_bad(l, "field '%s' is not a string", bkey);
	size_t blen = json_string_length(b);
	if (blen / 4 * 3 > max + 2)
		return mms_load_bad(l, "field '%s' is longer than %zu bytes", bkey, max);
	out->len = 0;
	size_t n;
	int rc = mms_jbuf_reserve(out, blen / 4 * 3);
	if (rc)
		return rc;
	if (mms_b64_decode(json_string_value(b), blen, out->p, &n))
		return mms_load_bad(l, "field '%s' is not valid base64", bkey);
	if (n > max)
		return mms_load_bad(l, "field '%s' is longer than %zu bytes", bkey, max);
	out->len = n;
	out->p[n] = '\0';
	return 0;
}

/* Check that l->path is "" (the root) or names separated by single '/'. */
static int mms_load_check_path(struct mms_load *l)
{
	const char *p = l->path.p;
	size_t n = l->path.len, start = 0;
	char where[256];
	if (n == 0)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '/') {
			if (p[i] == '\0')
				return mms_load_bad(l, "path '%s' holds a NUL byte",
				                    mms_load_where(l, where, sizeof where));
			continue;
		}
		size_t len = i - start;
		if (len == 0 || (len == 1 && p[start] == '.') ||
		    (len == 2 && p[start] == '.' && p[start + 1] == '.'))
			return mms_load_bad(l, "path '%s' has an empty, '.' or '..' component",
			                    mms_load_where(l, where, sizeof where));
		if (len > MMS_NAME_MAX)
			return mms_load_bad(l, "path '%s' has a component longer than %u bytes",
			                    mms_load_where(l, where, sizeof where), MMS_NAME_MAX);
		start = i + 1;
	}
	return 0;
}

/* Find the directory holding l->path (which is not the root): *parent and
 * the last component. */
static int mms_load_parent(struct mms_load *l, uint64_t *parent, const char **name,
                           size_t *namelen)
{
	const char *p = l->path.p;
	size_t n = l->path.len, slash = n;
	char where[256];
	while (slash > 0 && p[slash - 1] != '/')
		slash--;
	*name = p + slash;
	*namelen = n - slash;
	if (slash == 0) {
		*parent = MMS_ROOT_INO;
		return 0;
	}
	size_t plen = slash - 1;
	if (l->cache_valid && l->cache_path.len == plen && memcmp(l->cache_path.p, p, plen) == 0) {
		*parent = l->cache_ino;
		return 0;
	}
	uint64_t ino = MMS_ROOT_INO;
	for (size_t start = 0; start < plen;) {
		size_t end = start;
		while (end < plen && p[end] != '/')
			end++;
		struct mms_stat st;
		int rc = mms_lookup(l->env, ino, p + start, end - start, &st);
		if (rc == MMS_NOTFOUND)
			return mms_load_bad(l, "the parent directory of '%s' does not exist"
			                    " (it must come earlier in the dump)",
			                    mms_load_where(l, where, sizeof where));
		if (rc)
			return mms_load_failed(l, rc, "finding the parent of");
		if (!S_ISDIR(st.mode))
			return mms_load_bad(l, "the parent of '%s' is not a directory",
			                    mms_load_where(l, where, sizeof where));
		ino = st.ino;
		start = end + 1;
	}
	int rc = mms_jbuf_set(&l->cache_path, p, plen);
	if (rc)
		return rc;
	l->cache_ino = ino;
	l->cache_valid = true;
	*parent = ino;
	return 0;
}

/* Set mode, owner and times of a complete node. */
static int mms_load_apply(struct mms_load *l, const struct mms_load_attr *a)
{
	struct mms_setattr sa = {
		.mode = a->mode, .uid = a->uid, .gid = a->gid,
		.atime = mms_ns_to_ts(a->atime),
		.mtime = mms_ns_to_ts(a->mtime),
		.ctime = mms_ns_to_ts(a->ctime),
	};
	return mms_setattr(l->env, a->ino, &sa,
	                   MMS_SET_MODE | MMS_SET_UID | MMS_SET_GID | MMS_SET_ATIME |
	                   MMS_SET_MTIME | MMS_SET_CTIME, NULL);
}

/* The file whose data lines came last is complete: set its attributes. */
static int mms_load_close_file(struct mms_load *l)
{
	if (!l->file_open)
		return 0;
	l->file_open = false;
	int rc = mms_load_apply(l, &l->file);
	if (rc) {
		char where[256];
		return mms_json_fail(l->env, rc, "line %lu: setting the attributes of '%s'", l->line,
		                     mms_printable(l->file_path.p, l->file_path.len, where, sizeof where));
	}
	return 0;
}

/* Remove every xattr of a reused directory, so it ends up as dumped. */
static int mms_load_clear_xattrs(struct mms_load *l, uint64_t ino)
{
	size_t len;
	char *names = NULL;
	int rc = mms_listxattr(l->env, ino, NULL, 0, &len);
	if (rc || len == 0)
		goto out;
	names = malloc(len);
	if (!names) {
		rc = ENOMEM;
		goto out;
	}
	rc = mms_listxattr(l->env, ino, names, len, &len);
	for (size_t i = 0; !rc && i < len; i += strlen(names + i) + 1)
		rc = mms_removexattr(l->env, ino, names + i, strlen(names + i));
out:
	free(names);
	return rc ? mms_load_failed(l, rc, "removing the old xattrs of") : 0;
}

/* Parse the "xattrs" field and set each attribute on ino. */
static int mms_load_xattrs(struct mms_load *l, json_t *xattrs, uint64_t ino)
{
	static const char *const allowed[] = {"name", "name_base64", "value_base64", NULL};
	size_t i;
	json_t *x;
	if (!xattrs)
		return 0;
	if (!json_is_array(xattrs))
		return mms_load_bad(l, "field 'xattrs' is not an array");
	int rc = mms_load_chunk(l, MMS_DUMP_CHUNK + 2);
	if (rc)
		return rc;
	json_array_foreach(xattrs, i, x) {
		if (!json_is_object(x))
			return mms_load_bad(l, "xattr %zu is not an object", i);
		rc = mms_load_keys(l, x, allowed);
		if (!rc)
			rc = mms_load_bytes(l, x, "name", MMS_XATTR_NAME_MAX, false, NULL, &l->target);
		if (rc)
			return rc;
		if (l->target.len == 0 || memchr(l->target.p, '\0', l->target.len))
			return mms_load_bad(l, "xattr %zu: a name is 1 to %u bytes without NUL", i,
			                    MMS_XATTR_NAME_MAX);
		json_t *v = json_object_get(x, "value_base64");
		if (!v)
			return mms_load_bad(l, "xattr %zu: missing field 'value_base64'", i);
		if (!json_is_string(v))
			return mms_load_bad(l, "xattr %zu: field 'value_base64' is not a string", i);
		size_t blen = json_string_length(v), vlen;
		if (blen > mms_b64_enclen(MMS_XATTR_VALUE_MAX))
			return mms_load_bad(l, "xattr %zu: value longer than %u bytes", i,
			                    MMS_XATTR_VALUE_MAX);
		if (mms_b64_decode(json_string_value(v), blen, l->chunk, &vlen))
			return mms_load_bad(l, "xattr %zu: 'value_base64' is not valid base64", i);
		if (vlen > MMS_XATTR_VALUE_MAX)
			return mms_load_bad(l, "xattr %zu: value longer than %u bytes", i,
			                    MMS_XATTR_VALUE_MAX);
		rc = mms_setxattr(l->env, ino, l->target.p, l->target.len, l->chunk, vlen, 0);
		if (rc)
			return mms_load_failed(l, rc, "setting an xattr of");
	}
	return 0;
}

/* Remember a loaded directory (l->path) whose attributes are set at the end. */
static int mms_load_add_dir(struct mms_load *l, const struct mms_load_attr *a)
{
	if (l->ndirs == l->capdirs) {
		size_t cap = l->capdirs ? l->capdirs * 2 : 64;
		struct mms_load_dir *p = realloc(l->dirs, cap * sizeof *p);
		if (!p)
			return ENOMEM;
		l->dirs = p;
		l->capdirs = cap;
	}
	size_t depth = 0;
	for (size_t i = 0; i < l->path.len; i++)
		depth += l->path.p[i] == '/';
	l->dirs[l->ndirs] = (struct mms_load_dir){
		.attr = *a, .depth = l->path.len ? depth + 1 : 0, .seq = l->ndirs,
	};
	l->ndirs++;
	return 0;
}

/*
 * Make room for the node of the current line: remove what name `name` of
 * `parent` holds, after a look-up that gave `found` (0, MMS_NOTFOUND or an
 * error) and *st.
 */
static int mms_load_remove(struct mms_load *l, uint64_t parent, const char *name,
                           size_t namelen, int found, const struct mms_stat *st)
{
	int rc;

	if (found == MMS_NOTFOUND)
		return 0;
	if (found)
		return mms_load_failed(l, found, "looking up");
	if (S_ISDIR(st->mode)) {
		l->cache_valid = false;
		rc = mms_rmdir(l->env, parent, name, namelen);
		return rc ? mms_load_failed(l, rc, "replacing the directory") : 0;
	}
	rc = mms_unlink(l->env, parent, name, namelen);
	return rc ? mms_load_failed(l, rc, "replacing") : 0;
}

/*
 * Create the node of the current line (replacing what has its path) and
 * set *ino.  An existing directory is reused for a "dir" line.
 */
static int mms_load_create(struct mms_load *l, const struct mms_load_node *nd, uint64_t *ino)
{
	const struct mms_load_attr *a = &nd->attr;
	struct mms_stat st;
	uint64_t parent = MMS_ROOT_INO;
	const char *name = NULL;
	size_t namelen = 0;
	int rc;

	if (l->path.len == 0) {
		if (nd->type != S_IFDIR)
			return mms_load_bad(l, "the root (path \"\") must be a dir");
		*ino = MMS_ROOT_INO;
		return mms_load_clear_xattrs(l, MMS_ROOT_INO);
	}
	rc = mms_load_parent(l, &parent, &name, &namelen);
	if (rc)
		return rc;
	rc = mms_lookup(l->env, parent, name, namelen, &st);
	if (rc == 0 && S_ISDIR(st.mode) && nd->type == S_IFDIR) {
		*ino = st.ino;
		rc = mms_load_clear_xattrs(l, st.ino);
		goto remember;
	}
	rc = mms_load_remove(l, parent, name, namelen, rc, &st);
	if (rc)
		return rc;

	switch (nd->type) {
	case S_IFDIR:
		rc = mms_mkdir(l->env, parent, name, namelen, a->mode, a->uid, a->gid, &st);
		break;
	case S_IFLNK:
		rc = mms_symlink(l->env, parent, name, namelen, l->target.p, l->target.len,
		                 a->uid, a->gid, &st);
		break;
	default:
		rc = mms_mkdev(l->env, parent, name, namelen, nd->type | a->mode, nd->rdev, a->uid,
		               a->gid, &st);
		break;
	}
	if (rc)
		return mms_load_failed(l, rc, "creating");
	*ino = st.ino;
	if (nd->type == S_IFREG && nd->size > 0) {
		rc = mms_truncate(l->env, st.ino, nd->size);
		if (rc)
			return mms_load_failed(l, rc, "setting the size of");
	}
remember:
	/* the entries of a new directory usually follow it */
	if (!rc && nd->type == S_IFDIR) {
		rc = mms_jbuf_set(&l->cache_path, l->path.p, l->path.len);
		l->cache_ino = *ino;
		l->cache_valid = rc == 0;
	}
	return rc;
}

/* A node line: {"type": "file"|"dir"|"symlink"|"fifo"|"socket", ...}. */
static int mms_load_node_line(struct mms_load *l, json_t *obj, const char *type)
{
	static const char *const common[] = {
		"type", "path", "path_base64", "mode", "uid", "gid", "atime", "mtime", "ctime",
		"xattrs", NULL};
	static const char *const file[] = {
		"type", "path", "path_base64", "mode", "uid", "gid", "atime", "mtime", "ctime",
		"xattrs", "size", NULL};
	static const char *const link[] = {
		"type", "path", "path_base64", "mode", "uid", "gid", "atime", "mtime", "ctime",
		"xattrs", "target", "target_base64", NULL};
	static const char *const dev[] = {
		"type", "path", "path_base64", "mode", "uid", "gid", "atime", "mtime", "ctime",
		"xattrs", "major", "minor", NULL};
	struct mms_load_node nd = {0};
	const char *const *allowed = common;
	int64_t v;
	int rc;

	if (strcmp(type, "file") == 0)
		nd.type = S_IFREG, allowed = file;
	else if (strcmp(type, "dir") == 0)
		nd.type = S_IFDIR;
	else if (strcmp(type, "symlink") == 0)
		nd.type = S_IFLNK, allowed = link;
	else if (strcmp(type, "fifo") == 0)
		nd.type = S_IFIFO;
	else if (strcmp(type, "chardev") == 0)
		nd.type = S_IFCHR, allowed = dev;
	else if (strcmp(type, "blockdev") == 0)
		nd.type = S_IFBLK, allowed = dev;
	else
		nd.type = S_IFSOCK;

	rc = mms_load_keys(l, obj, allowed);
	if (!rc)
		rc = mms_load_bytes(l, obj, "path", SIZE_MAX / 2, false, NULL, &l->path);
	if (!rc)
		rc = mms_load_check_path(l);
	if (!rc)
		rc = mms_load_int(l, obj, "mode", 0, 07777, &v);
	if (rc)
		return rc;
	nd.attr.mode = (uint32_t)v;
	if ((rc = mms_load_int(l, obj, "uid", 0, UINT32_MAX, &v)))
		return rc;
	nd.attr.uid = (uint32_t)v;
	if ((rc = mms_load_int(l, obj, "gid", 0, UINT32_MAX, &v)))
		return rc;
	nd.attr.gid = (uint32_t)v;
	if ((rc = mms_load_int(l, obj, "atime", INT64_MIN, INT64_MAX, &nd.attr.atime)) ||
	    (rc = mms_load_int(l, obj, "mtime", INT64_MIN, INT64_MAX, &nd.attr.mtime)) ||
	    (rc = mms_load_int(l, obj, "ctime", INT64_MIN, INT64_MAX, &nd.attr.ctime)))
		return rc;
	if (nd.type == S_IFREG) {
		if ((rc = mms_load_int(l, obj, "size", 0, (int64_t)MMS_SIZE_MAX, &v)))
			return rc;
		nd.size = (uint64_t)v;
	}
	if (nd.type == S_IFCHR || nd.type == S_IFBLK) {
		int64_t ma, mi;
		if ((rc = mms_load_int(l, obj, "major", 0, UINT32_MAX, &ma)) ||
		    (rc = mms_load_int(l, obj, "minor", 0, UINT32_MAX, &mi)))
			return rc;
		nd.rdev = makedev((unsigned)ma, (unsigned)mi);
	}
	if (nd.type == S_IFLNK) {
		rc = mms_load_bytes(l, obj, "target", MMS_SYMLINK_MAX, false, NULL, &l->target);
		if (rc)
			return rc;
		if (l->target.len == 0)
			return mms_load_bad(l, "field 'target' is empty");
	}
	nd.xattrs = json_object_get(obj, "xattrs");
	if (nd.xattrs && !json_is_array(nd.xattrs))
		return mms_load_bad(l, "field 'xattrs' is not an array");

	rc = mms_load_create(l, &nd, &nd.attr.ino);
	if (!rc)
		rc = mms_load_xattrs(l, nd.xattrs, nd.attr.ino);
	if (rc)
		return rc;
	l->nodes++;
	switch (nd.type) {
	case S_IFDIR:
		return mms_load_add_dir(l, &nd.attr);
	case S_IFREG:
		l->file_open = true;
		l->file = nd.attr;
		l->file_size = nd.size;
		return mms_jbuf_set(&l->file_path, l->path.p, l->path.len);
	default:
		rc = mms_load_apply(l, &nd.attr);
		return rc ? mms_load_failed(l, rc, "setting the attributes of") : 0;
	}
}

/* A hard link line: {"type":"hardlink","path":...,"to":...}: `path`
 * becomes one more name of the node at `to`, which came earlier. */
static int mms_load_hardlink_line(struct mms_load *l, json_t *obj)
{
	static const char *const allowed[] = {"type", "path", "path_base64", "to", "to_base64",
	                                      NULL};
	char where[256];
	struct mms_stat to, st;
	uint64_t parent;
	const char *name;
	size_t namelen;
	int rc = mms_load_keys(l, obj, allowed);

	if (!rc)
		rc = mms_load_bytes(l, obj, "to", MMS_PATH_MAX, false, NULL, &l->target);
	if (!rc)
		rc = mms_load_bytes(l, obj, "path", SIZE_MAX / 2, false, NULL, &l->path);
	if (!rc)
		rc = mms_load_check_path(l);
	if (rc)
		return rc;
	if (l->path.len == 0)
		return mms_load_bad(l, "the root cannot be a hard link");
	rc = mms_resolve(l->env, l->target.p, l->target.len, &to);
	if (rc == MMS_NOTFOUND || rc == MMS_NOTDIR || rc == MMS_BADNAME)
		return mms_load_bad(l, "hard link '%s' to a path that is not there (it must come "
		                    "earlier in the dump)", mms_load_where(l, where, sizeof where));
	if (rc)
		return mms_load_failed(l, rc, "finding the target of");
	if (S_ISDIR(to.mode))
		return mms_load_bad(l, "hard link '%s' to a directory",
		                    mms_load_where(l, where, sizeof where));
	rc = mms_load_parent(l, &parent, &name, &namelen);
	if (rc)
		return rc;
	rc = mms_lookup(l->env, parent, name, namelen, &st);
	if (rc == 0 && st.ino == to.ino)
		goto done; /* loaded into a store that has it already */
	rc = mms_load_remove(l, parent, name, namelen, rc, &st);
	if (rc)
		return rc;
	rc = mms_link(l->env, to.ino, parent, name, namelen, NULL);
	if (rc)
		return mms_load_failed(l, rc, "linking");
	/* a link changes the inode's ctime: give it back what it was */
	rc = mms_setattr(l->env, to.ino, &(struct mms_setattr){ .ctime = to.ctime },
	                 MMS_SET_CTIME, NULL);
	if (rc)
		return mms_load_failed(l, rc, "setting the attributes of");
done:
	l->nodes++;
	return 0;
}

/* A data line: {"type":"data","path":...,"offset":N,"base64":"..."}. */
static int mms_load_data_line(struct mms_load *l, json_t *obj)
{
	static const char *const allowed[] = {"type", "path", "path_base64", "offset", "base64",
	                                      NULL};
	char where[256];
	int64_t off;
	size_t n;
	int rc = mms_load_keys(l, obj, allowed);
	if (!rc)
		rc = mms_load_bytes(l, obj, "path", SIZE_MAX / 2, false, NULL, &l->path);
	if (!rc)
		rc = mms_load_int(l, obj, "offset", 0, (int64_t)MMS_SIZE_MAX, &off);
	if (rc)
		return rc;
	if (!l->file_open || l->file_path.len != l->path.len ||
	    memcmp(l->file_path.p, l->path.p, l->path.len) != 0)
		return mms_load_bad(l, "data for '%s', which is not the file of the node line"
		                    " before it", mms_load_where(l, where, sizeof where));
	json_t *b = json_object_get(obj, "base64");
	if (!b)
		return mms_load_bad(l, "missing field 'base64'");
	if (!json_is_string(b))
		return mms_load_bad(l, "field 'base64' is not a string");
	size_t blen = json_string_length(b);
	if (blen > mms_b64_enclen(MMS_DUMP_CHUNK))
		return mms_load_bad(l, "data chunk longer than %u bytes", MMS_DUMP_CHUNK);
	rc = mms_load_chunk(l, MMS_DUMP_CHUNK + 2);
	if (rc)
		return rc;
	if (mms_b64_decode(json_string_value(b), blen, l->chunk, &n))
		return mms_load_bad(l, "field 'base64' is not valid base64");
	if (n > MMS_DUMP_CHUNK)
		return mms_load_bad(l, "data chunk longer than %u bytes", MMS_DUMP_CHUNK);
	if ((uint64_t)off > l->file_size || n > l->file_size - (uint64_t)off)
		return mms_load_bad(l, "data [%" PRId64 ", %" PRId64 " + %zu) is beyond the size %"
		                    PRIu64 " of '%s'", off, off, n, l->file_size,
		                    mms_load_where(l, where, sizeof where));
	if (n == 0)
		return 0;
	rc = mms_write(l->env, l->file.ino, l->chunk, n, (uint64_t)off);
	return rc ? mms_load_failed(l, rc, "writing data of") : 0;
}

/* Line 1: {"format":"mmstore-dump","version":1}. */
static int mms_load_header(struct mms_load *l, json_t *obj)
{
	static const char *const allowed[] = {"format", "version", NULL};
	json_t *f = json_object_get(obj, "format");
	if (!json_is_string(f) || strcmp(json_string_value(f), MMS_DUMP_FORMAT) != 0)
		return mms_load_bad(l, "not an mmstore dump (the first line must be"
		                    " {\"format\":\"" MMS_DUMP_FORMAT "\",\"version\":%d})",
		                    MMS_DUMP_VERSION);
	json_t *v = json_object_get(obj, "version");
	if (!json_is_integer(v))
		return mms_load_bad(l, "field 'version' is missing or not an integer");
	if (json_integer_value(v) != MMS_DUMP_VERSION && json_integer_value(v) != 1)
		return mms_load_bad(l, "dump version %lld is not supported (this build reads 1 "
		                    "and %d)", (long long)json_integer_value(v), MMS_DUMP_VERSION);
	return mms_load_keys(l, obj, allowed);
}

/* The end line: {"type":"end","nodes":N}. */
static int mms_load_end_line(struct mms_load *l, json_t *obj)
{
	static const char *const allowed[] = {"type", "nodes", NULL};
	int64_t n;
	int rc = mms_load_keys(l, obj, allowed);
	if (!rc)
		rc = mms_load_int(l, obj, "nodes", 0, INT64_MAX, &n);
	if (rc)
		return rc;
	if ((uint64_t)n != l->nodes)
		return mms_load_bad(l, "the end line counts %" PRId64 " nodes but the dump has %" PRIu64,
		                    n, l->nodes);
	return mms_load_close_file(l);
}

/* Handle one line (without its newline). *ended is set by the end line. */
static int mms_load_line(struct mms_load *l, const char *text, size_t len, bool *ended)
{
	json_error_t jerr;
	json_t *obj = NULL;
	int rc;
	if (*ended)
		return mms_load_bad(l, "text after the end line");
	if (len == 0)
		return mms_load_bad(l, "empty line");
	obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj)
		return mms_load_bad(l, "invalid JSON at column %d: %s", jerr.column, jerr.text);
	if (!json_is_object(obj)) {
		rc = mms_load_bad(l, "not a JSON object");
		goto out;
	}
	if (l->line == 1) {
		rc = mms_load_header(l, obj);
		goto out;
	}
	json_t *t = json_object_get(obj, "type");
	if (!t) {
		rc = mms_load_bad(l, "missing field 'type'");
		goto out;
	}
	const char *type = json_string_value(t);
	if (!type) {
		rc = mms_load_bad(l, "field 'type' is not a string");
		goto out;
	}
	if (strcmp(type, "data") == 0) {
		rc = mms_load_data_line(l, obj);
		goto out;
	}
	rc = mms_load_close_file(l);
	if (rc)
		goto out;
	if (strcmp(type, "end") == 0) {
		rc = mms_load_end_line(l, obj);
		*ended = rc == 0;
	} else if (strcmp(type, "file") == 0 || strcmp(type, "dir") == 0 ||
	           strcmp(type, "symlink") == 0 || strcmp(type, "fifo") == 0 ||
	           strcmp(type, "socket") == 0 || strcmp(type, "chardev") == 0 ||
	           strcmp(type, "blockdev") == 0) {
		rc = mms_load_node_line(l, obj, type);
	} else if (strcmp(type, "hardlink") == 0) {
		rc = mms_load_hardlink_line(l, obj);
	} else {
		char tb[64];
		rc = mms_load_bad(l, "unknown type '%s'",
		                  mms_printable(type, json_string_length(t), tb, sizeof tb));
	}
out:
	json_decref(obj);
	return rc;
}

/* Deepest first; equal depths in the order they came. */
static int mms_load_dir_cmp(const void *a, const void *b)
{
	const struct mms_load_dir *x = a, *y = b;
	if (x->depth != y->depth)
		return x->depth < y->depth ? 1 : -1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Set the attributes of every directory loaded, deepest first. */
static int mms_load_finish_dirs(struct mms_load *l)
{
	qsort(l->dirs, l->ndirs, sizeof *l->dirs, mms_load_dir_cmp);
	for (size_t i = 0; i < l->ndirs; i++) {
		int rc = mms_load_apply(l, &l->dirs[i].attr);
		/* a directory the dump itself replaced later is gone: skip it */
		if (rc == MMS_NOTFOUND)
			continue;
		if (rc)
			return mms_json_fail(l->env, rc, "setting the attributes of directory inode %"
			                     PRIu64, l->dirs[i].attr.ino);
	}
	return 0;
}

int mms_load(mms_env *env, FILE *in, mms_progress_fn progress, void *ctx)
{
	struct mms_load l = {.env = env, .in = in, .progress = progress, .ctx = ctx};
	char *line = NULL;
	size_t linecap = 0;
	bool ended = false;
	struct stat sb;
	int rc = 0;

	if (!env || !in)
		return MMS_INVAL;
	if (mms_readonly(env))
		return mms_fail(env, MMS_RDONLY, "load: the store is open read-only");
	if (fstat(fileno(in), &sb) == 0 && S_ISREG(sb.st_mode)) {
		off_t pos = ftello(in);
		if (pos >= 0 && pos <= sb.st_size) {
			l.by_bytes = true;
			l.total_bytes = (uint64_t)(sb.st_size - pos);
		}
	}

	for (;;) {
		errno = 0;
		ssize_t n = getline(&line, &linecap, in);
		if (n < 0) {
			if (ferror(in)) {
				int err = errno ? errno : EIO;
				rc = mms_fail(env, err, "line %lu: reading the dump: %s", l.line + 1,
				              strerror(err));
				goto out;
			}
			break;
		}
		l.line++;
		l.done_bytes += (uint64_t)n;
		size_t len = (size_t)n;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		rc = mms_load_line(&l, line, len, &ended);
		if (rc)
			goto out;
		if (progress) {
			uint64_t done = l.by_bytes ? l.done_bytes : l.nodes;
			uint64_t total = l.by_bytes ? l.total_bytes : 0;
			if (progress(ctx, done, total)) {
				rc = mms_fail(env, ECANCELED, "line %lu: load stopped by the progress callback",
				              l.line);
				goto out;
			}
		}
	}
	if (!ended) {
		l.line++;
		rc = mms_load_bad(&l, l.line == 1 ? "empty input, not an mmstore dump" :
		                  "the dump ends without its end line (truncated?)");
		goto out;
	}
	rc = mms_load_finish_dirs(&l);
out:
	free(line);
	free(l.path.p);
	free(l.target.p);
	free(l.file_path.p);
	free(l.cache_path.p);
	free(l.dirs);
	free(l.chunk);
	return rc;
}

/* ---- The store's figures as JSON ------------------------------------------- */

int mms_stats_json(mms_env *env, const char *extra, char **textp)
{
	struct mms_info in;
	json_error_t jerr;
	int rc = mms_stats(env, &in);
	if (rc)
		return rc;
	json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
	                      " s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I}",
	                      "store", mms_path(env),
	                      "page_size", (json_int_t)in.page_size,
	                      "format_version", (json_int_t)in.format_version,
	                      "file_size", (json_int_t)in.file_size,
	                      "disk_size", (json_int_t)in.disk_size,
	                      "max_size", (json_int_t)in.max_size,
	                      "used", (json_int_t)in.used_bytes,
	                      "tree", (json_int_t)in.tree_bytes,
	                      "data", (json_int_t)in.data_bytes,
	                      "free", (json_int_t)in.free_bytes,
	                      "pending", (json_int_t)in.pending_bytes,
	                      "free_extents", (json_int_t)in.free_extents,
	                      "keys", (json_int_t)in.keys,
	                      "fragmentation", in.fragmentation,
	                      "dirs", (json_int_t)in.dirs,
	                      "orphans", (json_int_t)in.orphans,
	                      "generation", (json_int_t)in.generation,
	                      "synced_generation", (json_int_t)in.synced_generation,
	                      "next_ino", (json_int_t)in.next_ino,
	                      "damaged", (json_int_t)__atomic_load_n(&env->damaged, __ATOMIC_ACQUIRE),
	                      "readonly", mms_readonly(env) != 0,
	                      "capacity", (json_int_t)(in.capacity_bytes > INT64_MAX ? INT64_MAX
	                                                                     : in.capacity_bytes),
	                      "available", (json_int_t)(in.avail_bytes > INT64_MAX ? INT64_MAX
	                                                                   : in.avail_bytes));
	if (!o)
		return ENOMEM;
	if (extra && *extra) {
		json_t *x = json_loads(extra, 0, &jerr);
		if (!x || !json_is_object(x) || json_object_update(o, x)) {
			json_decref(x);
			json_decref(o);
			return mms_fail(env, MMS_INVAL, "extra fields are not a JSON object: %s",
			                x ? "not an object" : jerr.text);
		}
		json_decref(x);
	}
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!text)
		return ENOMEM;
	*textp = text;
	return 0;
}
