/* SPDX-License-Identifier: MIT */
/*
 * Usage probes: prove the guest can use what it got. Sysfs and procfs are
 * read relative to the sysroot; the disk probe opens dev/NAME below it too
 * (on a fixture root a regular file may stand in for the device). Each
 * returns 0 with @res filled (strings from @a), or -errno with the Error
 * code, errno and reason in @o.
 */
#ifndef VMC_PROBE_H
#define VMC_PROBE_H

#include "arena.h"
#include "outcome.h"
#include "sysroot.h"

#define VMC_PROBE_PATTERN_MAX (1u << 20)
#define VMC_PROBE_REGIONS_MAX 64u
#define VMC_PROBE_CPU_DEFAULT_MS 50u
#define VMC_PROBE_CPU_MAX_MS 5000u
#define VMC_PROBE_TOKEN_MAX 64u
#define VMC_PROBE_NET_DEFAULT_MS 3000u
#define VMC_PROBE_NET_MAX_MS 30000u
#define VMC_PROBE_MEM_DEFAULT_MS 5000u
#define VMC_PROBE_MEM_MAX_MS 60000u

/*
 * vmc_probe_disk - write @p->pattern at each offset of a raw disk, read it back
 *
 * Refused, before anything is opened for writing: a disk that is missing,
 * read-only, mounted (itself or a partition, by major:minor in
 * proc/self/mountinfo), held (holders/), partitioned; offsets that are not
 * multiples of 512, overlap or run past the end; an empty pattern or one
 * over 1 MiB. The live device is opened O_EXCL, so the kernel refuses it
 * too when something claims it. Writes go through O_DIRECT when the device
 * allows it, else through the page cache with fsync and FADV_DONTNEED
 * before reading back.
 */
int vmc_probe_disk(const struct vmc_sysroot *root, const Vmcheck__V1__DiskProbe *p,
		   struct vmc_arena *a, Vmcheck__V1__ProbeResult *res, struct vmc_outcome *o);

/*
 * vmc_probe_cpu - spin for @p->duration_ms on a thread pinned to CPU @p->cpu
 *
 * Refused when the CPU is not present or offline (per @rootfd's sysfs) or
 * the duration is over the maximum. res->cpu_ran_on is the CPU asked for,
 * or the last other CPU sched_getcpu() reported during the loop.
 */
int vmc_probe_cpu(int rootfd, const Vmcheck__V1__CpuProbe *p, Vmcheck__V1__ProbeResult *res,
		  struct vmc_outcome *o);

/*
 * vmc_probe_net_check - refuse a NetProbe whose arguments are wrong
 *
 * Returns 0, or -EINVAL with BAD_ARGUMENT and the reason in @o: a MAC that
 * is not xx:xx:xx:xx:xx:xx, an address or peer that is not a dotted IPv4
 * unicast address (or both the same), prefixlen outside 1..32, port outside
 * 1..65535, a token of 0 or over 64 bytes, a timeout over 30000 ms.
 */
int vmc_probe_net_check(const Vmcheck__V1__NetProbe *p, struct vmc_outcome *o);

/*
 * vmc_probe_net - TCP over one link, found by MAC, to the host's listener
 *
 * Acts on the running kernel (rtnetlink, the agent's network namespace):
 * refused with UNSUPPORTED when @root is not the live system, with BUSY
 * while another net probe runs. Brings the link up if it is down, adds
 * the address unless the link has exactly that one, connects from it with
 * the socket bound to the link (SO_BINDTODEVICE), sends the token and
 * reads until its echo is complete, all within p->timeout_ms; then removes
 * the address it added and puts the link down if it brought it up, on
 * every path, each step of that within a second. NOT_FOUND: no link has
 * the MAC. A failure names the step, both addresses and the link.
 */
int vmc_probe_net(const struct vmc_sysroot *root, const Vmcheck__V1__NetProbe *p,
		  struct vmc_arena *a, Vmcheck__V1__ProbeResult *res, struct vmc_outcome *o);

/*
 * vmc_probe_memory - touch anonymous memory until pages land in a physical range
 *
 * Allocates 4 MiB chunks (all kept until the end, so the allocator moves
 * on) until the pages on frames in [phys_start, phys_start + size), as the
 * real /proc/self/pagemap shows them, add up to want_bytes (default
 * min(size, 16 MiB)), or the bound is allocated, or three quarters of the
 * timeout (default 5 s, at most 60 s) have passed. The bound is
 * max_alloc_bytes (default size + 64 MiB), lowered so that 64 MiB of
 * MemAvailable (proc/meminfo under @root) stay free. Then writes a pattern
 * derived from its frame into each such page, reads it back, and reads
 * pagemap again. Everything is unmapped before it returns, on every path.
 *
 * BAD_ARGUMENT: a range that is empty, not page aligned or past 2^64, want
 * over size, a timeout over the limit. NOT_PERMITTED: pagemap hides the
 * frames (no CAP_SYS_ADMIN). BUSY while another memory probe runs.
 */
int vmc_probe_memory(const struct vmc_sysroot *root, const Vmcheck__V1__MemoryProbe *p,
		     Vmcheck__V1__ProbeResult *res, struct vmc_outcome *o);

#endif
