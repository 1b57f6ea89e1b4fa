/* SPDX-License-Identifier: MIT */
/*
 * Section readers. Each reads one subsystem relative to a sysroot and fills
 * its part of a State message with memory from @a (see common/arena.h): the
 * wire message is the data model, there is no second copy to keep in sync.
 *
 * Every reader returns 0 or -errno. A missing file or a device that vanished
 * while being read (-ENOENT) makes that field or device absent, never a
 * failure of the section; a reader fails only when the subsystem as a whole
 * cannot be read. @st is left without the section on failure.
 */
#ifndef VMC_STATE_H
#define VMC_STATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "arena.h"
#include "pb.h"
#include "sysroot.h"

/*
 * Where the links reader's rtnetlink replies come from: the running
 * kernel, or in tests a script (a dump interrupted on purpose cannot be
 * had from the kernel on demand).
 */
struct vmc_nl_source {
	/* Send the request @req of @len bytes; 0 or -errno. */
	int (*send)(void *ctx, const void *req, size_t len);
	/* The next datagram from the kernel into @buf: its length, or -errno. */
	ssize_t (*recv)(void *ctx, void *buf, size_t size);
	void *ctx;
};

struct vmc_state_opts {
	struct vmc_sysroot root;
	const char *const *crash_dirs; /* NULL-terminated; relative to root */
	/*
	 * x86: how many low bits of an APIC id number the threads of a core,
	 * from vmc_state_smt_shift() at agent start; -1 unknown (thread ids
	 * are then -1).
	 */
	int smt_shift;
	/* The address dump's replies on a live root; NULL: a NETLINK_ROUTE socket. */
	const struct vmc_nl_source *nl;
};

int vmc_state_read_system(const struct vmc_state_opts *o, struct vmc_arena *a,
			  Vmcheck__V1__State *st);
int vmc_state_read_links(const struct vmc_state_opts *o, struct vmc_arena *a,
			 Vmcheck__V1__State *st);
/*
 * What a failure of vmc_state_read_links() with @r meant, when errno
 * alone would mislead ("address dump interrupted 4 times" for -EAGAIN);
 * NULL otherwise.
 */
const char *vmc_state_explain_links(int r);
int vmc_state_read_blocks(const struct vmc_state_opts *o, struct vmc_arena *a,
			  Vmcheck__V1__State *st);
int vmc_state_read_memory(const struct vmc_state_opts *o, struct vmc_arena *a,
			  Vmcheck__V1__State *st);
int vmc_state_read_cpus(const struct vmc_state_opts *o, struct vmc_arena *a,
			Vmcheck__V1__State *st);
int vmc_state_read_pci(const struct vmc_state_opts *o, struct vmc_arena *a, Vmcheck__V1__State *st);
int vmc_state_read_crash(const struct vmc_state_opts *o, struct vmc_arena *a,
			 Vmcheck__V1__State *st);

/*
 * vmc_state_memory_ranges - (re)compute m->ranges from m->blocks
 *
 * Blocks must be sorted by index; ranges merge them as lsmem(1) does by
 * default. The ranges are allocated from @a (old ones are abandoned there).
 * Returns 0 or -ENOMEM.
 */
int vmc_state_memory_ranges(struct vmc_arena *a, Vmcheck__V1__Memory *m);

/*
 * vmc_state_meminfo_kb - one "Key:  N kB" line of proc/meminfo under @rootfd
 * @key: "MemTotal", "MemAvailable", ...
 *
 * Returns 0 with *@kb set; -ENOENT when the file or the key is missing,
 * -EINVAL when the line is not "N kB", another -errno when unreadable.
 */
int vmc_state_meminfo_kb(int rootfd, const char *key, uint64_t *kb);

/*
 * vmc_state_smt_shift - the SMT width an x86 CPU reports, as an APIC id shift
 *
 * On the live system (@root->live) from CPUID leaf 0xB subleaf 0 (EAX[4:0])
 * when the CPU has that leaf; otherwise from the first processor of
 * proc/cpuinfo under @root: log2 of "siblings" / "cpu cores", rounded up
 * (one thread per core: 0). CPUID cannot be asked of a fixture, and asking
 * it costs: call this once, when the agent starts. Returns the shift, or -1
 * when neither source says (not x86, no cpuinfo).
 */
int vmc_state_smt_shift(const struct vmc_sysroot *root);

/*
 * vmc_state_read - one consistent snapshot of the sections in @mask
 * @generation: stamped into the State
 * @out: allocated in @a
 *
 * Sections that fail are listed in State.errors with their errno; the call
 * itself fails only on -ENOMEM.
 */
int vmc_state_read(const struct vmc_state_opts *o, uint32_t mask, uint64_t generation,
		   struct vmc_arena *a, Vmcheck__V1__State **out);

#endif
