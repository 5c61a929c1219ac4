/*
 * io.h - the store file's I/O layer: every byte the engine writes to the
 * store file, every change of its length or its holes, and every flush to
 * disk goes through these calls, and nothing else in src/ calls pwrite,
 * ftruncate, fallocate or fdatasync on the store.  (Reads of pages go
 * through the map, pager.c; reads of value bytes through mms_io_pread.)
 *
 * One layer, so that what reaches the file can be seen in one place: a test
 * build (-DMMS_TEST_HOOKS, tests/libmms_test.la; never the installed
 * library) lets a test record every operation in order, with its bytes,
 * and build from the record the images a power loss could leave
 * (tests/unit/test_crashsim.c).
 *
 * Every call returns 0 or a positive errno value; short writes and EINTR
 * are retried.  The layer knows nothing of pages, metas or commits: it sits
 * below every other module.
 */
#ifndef MMS_IO_H
#define MMS_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Write all of buf at byte off.  buf NULL: write len zero bytes. */
int mms_io_pwrite(int fd, const void *buf, size_t len, uint64_t off);
/* Write the n buffers of iov, back to back, at byte off. */
int mms_io_pwritev(int fd, const struct iovec *iov, int n, uint64_t off);
/* Read len bytes at off; *got gets how many were there (less at the end
 * of the file). */
int mms_io_pread(int fd, void *buf, size_t len, uint64_t off, size_t *got);
/* Set the file's length. */
int mms_io_truncate(int fd, uint64_t len);
/* Make [off, off+len) read as zeros and give its disk space back
 * (FALLOC_FL_PUNCH_HOLE).  EOPNOTSUPP where the host cannot punch. */
int mms_io_punch(int fd, uint64_t off, uint64_t len);
/* Make [off, off+len) read as zeros and keep disk space allocated for it
 * (FALLOC_FL_ZERO_RANGE, else writes of zeros after fallocate), so a later
 * write there cannot fail for want of host space. */
int mms_io_zero_alloc(int fd, uint64_t off, uint64_t len);
/* fdatasync: everything written before is on disk. */
int mms_io_datasync(int fd);
/* Drop the page cache of [off, off+len) (len 0: to the end of the file):
 * clean pages go, dirty ones are written back first, mapped ones stay. */
int mms_io_drop_cache(int fd, uint64_t off, uint64_t len);
/* No readahead on this file: reads bring in exactly their pages, in single
 * pages a drop of the read's range can take out. */
void mms_io_no_readahead(int fd);
/* Start reading [off, off+len) into the page cache, without waiting
 * (POSIX_FADV_WILLNEED): a walk asks for what it reads next. */
void mms_io_prefetch(int fd, uint64_t off, uint64_t len);
/* The id of this boot (16 bytes).  If /proc/sys/kernel/random/boot_id cannot
 * be read, a random id, so that no unsynced meta is trusted (fail closed). */
void mms_io_boot_id(uint8_t out[16]);

#ifdef MMS_TEST_HOOKS
/* Test builds only: called after each operation that succeeded. */
enum mms_io_op { MMS_IO_WRITE, MMS_IO_TRUNCATE, MMS_IO_PUNCH, MMS_IO_ZERO, MMS_IO_SYNC };
struct mms_io_hooks {
	void (*record)(void *ctx, int fd, enum mms_io_op op, const void *buf, uint64_t len,
	               uint64_t off);
	void *ctx;
};
extern struct mms_io_hooks *mms_io_hooks;
/* Non-NULL: the boot id every open sees (a test simulates a reboot); ""
 * stands for a boot id that cannot be read. */
extern const char *mms_io_test_boot_id;
/* Calls of mms_io_prefetch so far. */
extern unsigned long mms_io_test_prefetches;
#endif

#endif /* MMS_IO_H */
