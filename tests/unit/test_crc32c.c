/* test_crc32c.c - CRC-32C against published vectors (RFC 3720 B.4). */
#include "mms_int.h"
#include "tap.h"

int main(void)
{
	uint8_t buf[64];
	tap_plan_none();
	is_int(mms_crc32c(0, "", 0), 0, "empty input");
	is_int(mms_crc32c(0, "123456789", 9), 0xE3069283, "check value of \"123456789\"");
	memset(buf, 0, 32);
	is_int(mms_crc32c(0, buf, 32), 0x8A9136AA, "32 zero bytes");
	memset(buf, 0xff, 32);
	is_int(mms_crc32c(0, buf, 32), 0x62A8AB43, "32 0xff bytes");
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	is_int(mms_crc32c(0, buf, 32), 0x46DD794E, "32 incrementing bytes");
	/* incremental over every split point and misaligned starts */
	uint8_t big[1027];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 131 + 7);
	uint32_t whole = mms_crc32c(0, big + 3, 1021);
	int all = 1;
	for (size_t cut = 0; cut <= 1021; cut++)
		all &= mms_crc32c(mms_crc32c(0, big + 3, cut), big + 3 + cut, 1021 - cut) == whole;
	ok(all, "incremental crc equals one-shot at every split");
	return tap_done();
}
