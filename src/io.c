/*
 * io.c - the store file's I/O layer (see io.h).
 */
#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "mms_int.h"

#ifdef MMS_TEST_HOOKS
struct mms_io_hooks *mms_io_hooks;
const char *mms_io_test_boot_id;
unsigned long mms_io_test_prefetches;
#define MMS_IO_RECORD(fd, op, buf, len, off)                                      \
	do {                                                                      \
		if (mms_io_hooks)                                                 \
			mms_io_hooks->record(mms_io_hooks->ctx, fd, op, buf, len, off); \
	} while (0)
#else
#define MMS_IO_RECORD(fd, op, buf, len, off) ((void)0)
#endif

static const uint8_t mms_io_zeros[65536];

int mms_io_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len > 0) {
		size_t chunk = len;
		const void *src = p;
		if (!p) {
			chunk = len < sizeof mms_io_zeros ? len : sizeof mms_io_zeros;
			src = mms_io_zeros;
		} else if (chunk > ((size_t)1 << 30)) {
			chunk = (size_t)1 << 30;
		}
		ssize_t w = pwrite(fd, src, chunk, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (w == 0)
			return EIO;
		MMS_IO_RECORD(fd, MMS_IO_WRITE, src, (uint64_t)w, off);
		if (p)
			p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int mms_io_pwritev(int fd, const struct iovec *iov, int n, uint64_t off)
{
	size_t want = 0;
	for (int i = 0; i < n; i++)
		want += iov[i].iov_len;
	ssize_t w;
	do
		w = pwritev(fd, iov, n, (off_t)off);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return errno;
#ifdef MMS_TEST_HOOKS
	{
		uint64_t pos = off;
		size_t left = (size_t)w;
		for (int i = 0; i < n && left; i++) {
			size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
			MMS_IO_RECORD(fd, MMS_IO_WRITE, iov[i].iov_base, k, pos);
			pos += k;
			left -= k;
		}
	}
#endif
	if ((size_t)w == want)
		return 0;
	/* short: write the rest buffer by buffer */
	size_t done = (size_t)w;
	uint64_t pos = off;
	for (int i = 0; i < n; i++) {
		size_t l = iov[i].iov_len;
		if (done >= l) {
			done -= l;
			pos += l;
			continue;
		}
		int rc = mms_io_pwrite(fd, (const uint8_t *)iov[i].iov_base + done, l - done, pos + done);
		if (rc)
			return rc;
		pos += l;
		done = 0;
	}
	return 0;
}

int mms_io_pread(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
	uint8_t *p = buf;
	size_t have = 0;
	while (have < len) {
		ssize_t r = pread(fd, p + have, len - have, (off_t)(off + have));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (r == 0)
			break;
		have += (size_t)r;
	}
	*got = have;
	return 0;
}

int mms_io_truncate(int fd, uint64_t len)
{
	if (ftruncate(fd, (off_t)len) < 0)
		return errno;
	MMS_IO_RECORD(fd, MMS_IO_TRUNCATE, NULL, len, 0);
	return 0;
}

int mms_io_punch(int fd, uint64_t off, uint64_t len)
{
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
		return errno;
	MMS_IO_RECORD(fd, MMS_IO_PUNCH, NULL, len, off);
	return 0;
}

int mms_io_zero_alloc(int fd, uint64_t off, uint64_t len)
{
	if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0) {
		MMS_IO_RECORD(fd, MMS_IO_ZERO, NULL, len, off);
		return 0;
	}
	/* no ZERO_RANGE here: zeros written over space fallocate reserved */
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0 &&
	    errno != EOPNOTSUPP && errno != ENOSYS)
		return errno;
	return mms_io_pwrite(fd, NULL, (size_t)len, off);
}

int mms_io_drop_cache(int fd, uint64_t off, uint64_t len)
{
	return posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
}

void mms_io_no_readahead(int fd)
{
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
}

void mms_io_prefetch(int fd, uint64_t off, uint64_t len)
{
#ifdef MMS_TEST_HOOKS
	__atomic_add_fetch(&mms_io_test_prefetches, 1, __ATOMIC_RELAXED);
#endif
	(void)posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
}

int mms_io_datasync(int fd)
{
	if (fdatasync(fd) < 0)
		return errno;
	MMS_IO_RECORD(fd, MMS_IO_SYNC, NULL, 0, 0);
	return 0;
}

void mms_io_boot_id(uint8_t out[16])
{
	char buf[64] = "";
	ssize_t r = -1;
	int real = 1;
#ifdef MMS_TEST_HOOKS
	if (mms_io_test_boot_id) {
		/* "" stands for a boot id that cannot be read */
		snprintf(buf, sizeof buf, "%s", mms_io_test_boot_id);
		r = buf[0] ? (ssize_t)strlen(buf) : 0;
		real = 0;
	}
#endif
	if (real) {
		int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			r = read(fd, buf, sizeof buf - 1);
			close(fd);
		}
	}
	if (r < 1) {
		/* fail closed: an id no other open shares, so only synced metas
		 * are trusted (an unsynced one may point at lost pages) */
		if (getrandom(out, 16, 0) == 16)
			return;
		uint64_t t = (uint64_t)mms_now_ns() ^ ((uint64_t)getpid() << 32);
		memcpy(out, &t, 8);
		t = ~t * 0x9E3779B97F4A7C15ull;
		memcpy(out + 8, &t, 8);
		return;
	}
	buf[r] = 0;
	uint32_t h[4];
	for (int i = 0; i < 4; i++)
		h[i] = mms_crc32c((uint32_t)i * 0x9E3779B9u, buf, strlen(buf));
	memcpy(out, h, 16);
}
