/*
 * crc32c.c - CRC-32C (Castagnoli), the checksum of meta pages, tree pages
 * and blobs.  Uses the SSE4.2 crc32 instruction when the CPU has it, else a
 * byte-wise table.  Both give the same values (iSCSI/ext4 convention: the
 * initial value and the result are inverted).
 *
 * The crc32 instruction has a latency of three cycles but a throughput of
 * one, so long buffers are cut into three blocks of MMS_CRC_BLOCK bytes
 * that are summed side by side; the three partial sums are then joined:
 * the CRC is linear, so the state after A||B is shift(a) ^ b, where shift()
 * appends MMS_CRC_BLOCK zero bytes.  shift() is precomputed as four
 * 256-entry tables (one per byte of the state).
 */
#include "mms_int.h"

#define MMS_CRC_BLOCK 1360u /* three blocks cover a page in one pass */

static uint32_t mms_crc_table[256];
static uint32_t mms_crc_shift[4][256];
static pthread_once_t mms_crc_once = PTHREAD_ONCE_INIT;
static int mms_crc_hw;

static void mms_crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		mms_crc_table[i] = c;
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	mms_crc_hw = __builtin_cpu_supports("sse4.2");
#endif
	/* shift tables: the raw state after feeding MMS_CRC_BLOCK zero bytes */
	for (int j = 0; j < 4; j++) {
		for (uint32_t v = 0; v < 256; v++) {
			uint32_t c = v << (8 * j);
			for (unsigned k = 0; k < MMS_CRC_BLOCK; k++)
				c = mms_crc_table[c & 0xff] ^ (c >> 8);
			mms_crc_shift[j][v] = c;
		}
	}
}

static inline uint32_t mms_crc_shift_block(uint32_t c)
{
	return mms_crc_shift[0][c & 0xff] ^ mms_crc_shift[1][(c >> 8) & 0xff] ^
	       mms_crc_shift[2][(c >> 16) & 0xff] ^ mms_crc_shift[3][c >> 24];
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t mms_crc_sse42(uint32_t c, const uint8_t *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi(c, *p++);
		len--;
	}
	while (len >= 3 * MMS_CRC_BLOCK) {
		uint64_t c0 = c, c1 = 0, c2 = 0;
		for (unsigned i = 0; i < MMS_CRC_BLOCK; i += 8) {
			uint64_t a, b, d;
			memcpy(&a, p + i, 8);
			memcpy(&b, p + MMS_CRC_BLOCK + i, 8);
			memcpy(&d, p + 2 * MMS_CRC_BLOCK + i, 8);
			c0 = __builtin_ia32_crc32di(c0, a);
			c1 = __builtin_ia32_crc32di(c1, b);
			c2 = __builtin_ia32_crc32di(c2, d);
		}
		c = mms_crc_shift_block(mms_crc_shift_block((uint32_t)c0) ^ (uint32_t)c1) ^ (uint32_t)c2;
		p += 3 * MMS_CRC_BLOCK;
		len -= 3 * MMS_CRC_BLOCK;
	}
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = (uint32_t)__builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi(c, *p++);
	return c;
}
#endif

uint32_t mms_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c = ~crc;

	pthread_once(&mms_crc_once, mms_crc_init);
#if defined(__x86_64__)
	if (mms_crc_hw)
		return ~mms_crc_sse42(c, p, len);
#endif
	while (len--)
		c = mms_crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}
