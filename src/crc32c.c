/*
 * crc32c.c - CRC-32C (Castagnoli), the checksum of meta pages, tree pages
 * and blobs.  Uses the SSE4.2 crc32 instruction when the CPU has it, else a
 * byte-wise table.  Both give the same values (iSCSI/ext4 convention: the
 * initial value and the result are inverted).
 */
#include "mms_int.h"

static uint32_t mms_crc_table[256];
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
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t mms_crc_sse42(uint32_t c, const uint8_t *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi(c, *p++);
		len--;
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
