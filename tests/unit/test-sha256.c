/* SPDX-License-Identifier: MIT */
/* SHA-256 against FIPS 180-4 / NIST test vectors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "sha256.h"

static void known_vectors(void)
{
	char hex[VMC_SHA256_HEX];

	vmc_sha256_hex("", 0, hex);
	CU_ASSERT_STRING_EQUAL(hex,
			       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	vmc_sha256_hex("abc", 3, hex);
	CU_ASSERT_STRING_EQUAL(hex,
			       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* 56 bytes: the length no longer fits the first block. */
	vmc_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
	CU_ASSERT_STRING_EQUAL(hex,
			       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void a_mebibyte_in_one_piece_and_in_odd_pieces(void)
{
	const size_t n = 1u << 20;
	unsigned char *buf = malloc(n);
	struct vmc_sha256 s;
	uint8_t d[VMC_SHA256_LEN];
	char hex[VMC_SHA256_HEX];
	size_t off = 0, step = 1;

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	/* 1 MiB of 'a' (sha256sum of `head -c 1048576 /dev/zero | tr '\0' a`). */
	memset(buf, 'a', n);
	vmc_sha256_hex(buf, n, hex);
	CU_ASSERT_STRING_EQUAL(hex,
			       "9bc1b2a288b26af7257a36277ae3816a7d4f16e89c1e7e77d0a5c48bad62b360");
	vmc_sha256_init(&s);
	while (off < n) {
		size_t take = step < n - off ? step : n - off;

		vmc_sha256_update(&s, buf + off, take);
		off += take;
		step = step * 3 + 1; /* 1, 4, 13, 40, ...: straddles block edges */
	}
	vmc_sha256_final(&s, d);
	for (unsigned i = 0; i < VMC_SHA256_LEN; i++)
		sprintf(hex + 2 * i, "%02x", d[i]);
	CU_ASSERT_STRING_EQUAL(hex,
			       "9bc1b2a288b26af7257a36277ae3816a7d4f16e89c1e7e77d0a5c48bad62b360");
	free(buf);
}

VMC_SUITE(sha256, NULL, NULL, VMC_TEST(known_vectors),
	  VMC_TEST(a_mebibyte_in_one_piece_and_in_odd_pieces))
