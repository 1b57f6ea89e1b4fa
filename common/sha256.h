/* SPDX-License-Identifier: MIT */
/*
 * SHA-256 (FIPS 180-4), for the disk probe's checksums: the static agent
 * links no crypto library, and the host must be able to recompute the same
 * digest from the bytes it finds in the disk image.
 */
#ifndef VMC_SHA256_H
#define VMC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define VMC_SHA256_LEN 32
#define VMC_SHA256_HEX (2 * VMC_SHA256_LEN + 1)

struct vmc_sha256 {
	uint32_t h[8];
	uint64_t len;    /* bytes hashed so far */
	uint8_t buf[64]; /* a partial block */
};

void vmc_sha256_init(struct vmc_sha256 *s);
void vmc_sha256_update(struct vmc_sha256 *s, const void *data, size_t n);
/* Writes the digest; @s must be initialised again before reuse. */
void vmc_sha256_final(struct vmc_sha256 *s, uint8_t out[VMC_SHA256_LEN]);

/* The digest of @n bytes at @data as 64 lowercase hex digits, NUL-terminated. */
void vmc_sha256_hex(const void *data, size_t n, char out[VMC_SHA256_HEX]);

#endif
