/* SPDX-License-Identifier: MIT */
/*
 * The large-memory boot (check-bigmem.c): what it takes from the host, how
 * the VM is shaped, and how the guest's memory blocks are held against the
 * configured size. Pure functions, so sizes, refusals and verdicts are
 * unit-tested without a 64 GiB VM.
 */
#ifndef VMC_CHECK_BIGMEM_H
#define VMC_CHECK_BIGMEM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "check.h"

/* --only bigmem without --bigmem: 3.4 s to userspace (doc/facts.md, "Big guests"). */
#define VMC_BIGMEM_DEFAULT (64ULL << 30)

/*
 * vmc_bigmem_parse - a guest RAM size: digits and a binary unit M, G or T
 * ("64G", "1T", "65536M"; "MiB", "GiB", "TiB" too)
 * It must be a multiple of 128 MiB, the smallest memory block, or the
 * guest's blocks could not add up to it; from 128 MiB to 4 PiB.
 * Returns 0, -EINVAL (malformed, no unit, not a multiple) or -ERANGE.
 */
int vmc_bigmem_parse(const char *s, uint64_t *bytes);

/*
 * vmc_bigmem_rss_need - host RAM QEMU ends up holding for a guest of
 * @bytes: 700 MB plus 17.2 MB per GiB (measured from 64 GiB to 1 TiB).
 * The per-GiB part is the guest kernel's struct page array (64 bytes per
 * 4 KiB page) that it writes at boot; the rest of the RAM stays untouched.
 */
uint64_t vmc_bigmem_rss_need(uint64_t bytes);

/*
 * vmc_bigmem_fits - can a host with @mem_available bytes (MemAvailable)
 * hold a guest of @bytes? 0 if so; -ENOMEM with the arithmetic in @err.
 */
int vmc_bigmem_fits(uint64_t bytes, uint64_t mem_available, struct vmc_error *err);

/* MemAvailable of proc/meminfo under root @rootfd, in bytes. 0 or -errno. */
int vmc_bigmem_mem_available(int rootfd, uint64_t *bytes);

/* VmRSS and VmHWM of proc/@pid/status under @rootfd, in bytes. 0 or -errno. */
int vmc_bigmem_rss(int rootfd, pid_t pid, uint64_t *rss, uint64_t *hwm);

/*
 * vmc_bigmem_host_check - vmc_bigmem_fits() against this host's
 * /proc/meminfo: the refusal that comes before anything is launched.
 */
int vmc_bigmem_host_check(uint64_t bytes, struct vmc_error *err);

/*
 * vmc_bigmem_phys_bits - the phys-bits a q35 guest of @bytes needs, 0 when
 * QEMU's TCG default (40) does. QEMU 7.2 maps RAM above 4 GiB, moves it to
 * 1 TiB when it (with the 32 GiB 64-bit PCI hole) would reach the AMD
 * HyperTransport hole below 1 TiB (qemu64 is an AMD model), and refuses to
 * start when the map exceeds the address width: 1 TiB needs 42.
 */
unsigned vmc_bigmem_phys_bits(uint64_t bytes);

/*
 * What the guest must show: memory blocks from the RAM's start on adding up
 * to exactly @bytes, all online. vmc_bigmem_memory_ok() writes the arithmetic it checked into
 * @arithmetic (block size, the runs of blocks and the holes between them,
 * MemTotal and what the kernel kept of the rest).
 */
struct vmc_bigmem_want {
	uint64_t bytes;
	/*
	 * Where the guest's RAM starts (struct vmc_arch.ram_base): blocks
	 * wholly below it are not RAM and are not counted, only said.
	 */
	uint64_t ram_base;
	char arithmetic[1024];
};
bool vmc_bigmem_memory_ok(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);

#endif
