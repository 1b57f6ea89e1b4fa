/* SPDX-License-Identifier: MIT */
/*
 * vmcheck-agent-liar: the real agent telling exactly one lie, so tests can
 * prove the host catches it. The lie is chosen per run (--lie NAME, or
 * vmcheck.lie=NAME on the kernel command line) and told through the agent
 * core's hooks (struct vmc_agent_hooks); everything else is the truth. None
 * of this is linked into vmcheck-agent.
 */
#ifndef VMC_LIAR_H
#define VMC_LIAR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"

enum vmc_liar_lie {
	VMC_LIAR_NONE = 0,      /* no lie asked for: the truth */
	VMC_LIAR_SECTION_ERROR, /* the memory section "cannot be read" (EIO) */
	VMC_LIAR_DIMM_ADDRESS,  /* hot-added memory blocks 8 blocks higher */
	VMC_LIAR_ZONE_NORMAL,   /* hot-added online blocks in zone Normal */
	VMC_LIAR_CPU_TOPOLOGY,  /* every CPU but cpu0 one package higher */
	VMC_LIAR_NET_SILENT,    /* NetProbe answered as passed, nothing sent */
	VMC_LIAR_REBOOT,        /* the first DiskProbe of a VM reboots it */
};

/* The marker that a VM rebooted once already, relative to the root. */
#define VMC_LIAR_REBOOT_MARKER "var/crash/.vmcheck-liar-rebooted"
/* Hot-added memory blocks are moved this many blocks up. */
#define VMC_LIAR_DIMM_SHIFT 8u

struct vmc_liar {
	enum vmc_liar_lie lie;
	const char *from;      /* where the lie was asked for, for the log */
	bool quiet;            /* no log on stderr (unit tests) */
	int rootfd;            /* a dup of the agent's root, -1 before start */
	uint64_t *boot_blocks; /* memory blocks present at start, sorted */
	size_t n_boot_blocks;
	/* The reboot lie: */
	unsigned reboot_delay_ms; /* after the DiskProbe's reply (100) */
	int (*reboot)(void);      /* sync(), reboot(2); tests count instead */
	atomic_bool disk_probed;
	bool rebooter_started;
	pthread_t rebooter;
};

/* No lie, nothing read yet, the real reboot 100 ms after the reply. */
void vmc_liar_init(struct vmc_liar *l);

/* The lie named @name ("dimm-address"): 0, or -EINVAL for an unknown name. */
int vmc_liar_parse(const char *name, enum vmc_liar_lie *lie);
/* "dimm-address" for VMC_LIAR_DIMM_ADDRESS, "none" for VMC_LIAR_NONE. */
const char *vmc_liar_name(enum vmc_liar_lie lie);
/* Every lie's name, comma-separated, for help and error messages. */
const char *vmc_liar_names(void);

/*
 * vmc_liar_start - get ready to lie about the system under @root
 *
 * Without a lie set yet, takes it from a "vmcheck.lie=NAME" word of
 * proc/cmdline (the last one wins). The memory lies note the blocks
 * present now: those are not hot-added. Says on stderr which lie it tells.
 * Returns 0, -EINVAL for an unknown lie on the command line, or the
 * -errno of reading the memory blocks; says why on stderr.
 */
int vmc_liar_start(struct vmc_liar *l, const struct vmc_sysroot *root);

/*
 * vmc_liar_state - tell the lie, if it is about a State, in @st
 * Allocates from @a only. Returns 0 or -ENOMEM.
 */
int vmc_liar_state(struct vmc_liar *l, struct vmc_arena *a, Vmcheck__V1__State *st);

/*
 * vmc_liar_probe - the net-silent lie: a NetProbe answered without running
 *
 * Returns 1 with @res filled (strings from @a) for a NetProbe whose
 * arguments are right; -EINVAL with the agent's own refusal in @o for one
 * whose arguments are wrong; 0 (let the agent run it) for anything else.
 */
int vmc_liar_probe(struct vmc_liar *l, const Vmcheck__V1__Probe *p, struct vmc_arena *a,
		   Vmcheck__V1__ProbeResult *res, struct vmc_outcome *o);

/*
 * vmc_liar_probe_sent - the reboot lie: after the first DiskProbe's reply,
 * reboot_delay_ms later, reboot unless the marker says this VM did once
 */
void vmc_liar_probe_sent(struct vmc_liar *l, const Vmcheck__V1__Probe *p);

/* Hooks for vmc_agent_main() that tell @l's lie. */
void vmc_liar_hooks(struct vmc_liar *l, struct vmc_agent_hooks *h);

/* Wait for a pending reboot, then release what start took. */
void vmc_liar_stop(struct vmc_liar *l);

#endif
