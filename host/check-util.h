/* SPDX-License-Identifier: MIT */
/*
 * What the hotplug checks (check-nic.c, check-disk.c, check-memory.c,
 * check-vcpu.c) share: the identities they give devices and the predicates
 * that find those devices in the guest's merged view. Predicates match by
 * identity (MAC, PCI parent, serial, block indices, CPU id), never by count
 * or by kernel name, and keep nothing from the State they are given: the
 * view changes under the check with every push, so whatever a check needs
 * later is copied out into the expectation structs.
 */
#ifndef VMC_CHECK_UTIL_H
#define VMC_CHECK_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "check.h"

/* A PCI address in the guest's notation, "0000:01:00.0", and a kernel name. */
#define VMC_CHK_PCI_LEN 13
#define VMC_CHK_NAME_LEN 32

/* 16 random bits drawn once per process: tells this run's devices apart. */
unsigned vmc_chk_run_tag(void);

/*
 * vmc_chk_mac - the MAC of the @seq-th NIC of run @run
 * "52:54:00:76:RR:SS": QEMU's locally administered prefix, 0x76 ('v') to
 * mark vmcheck's NICs, the low byte of the run tag and of @seq. Unique among
 * the NICs present at once as long as fewer than 256 are.
 */
void vmc_chk_mac(unsigned run, unsigned seq, char out[18]);

/* Case-insensitive equality of two addresses (MAC, PCI); NULL never equals. */
bool vmc_chk_addr_eq(const char *a, const char *b);

/*
 * vmc_chk_section - may a predicate judge section @bit of @st? False, with
 * @why saying so, when the section never arrived or when the agent's
 * newest read of it failed: then the data in @st is stale and @why quotes
 * the agent's error. A predicate calls this for every section it reads,
 * so a device is never found, nor found gone, in data the agent could not
 * vouch for.
 */
bool vmc_chk_section(const Vmcheck__V1__State *st, uint32_t bit, struct vmc_why *why);
/* The agent's error for section @bit in @st (its newest read failed), or NULL. */
const Vmcheck__V1__SectionError *vmc_chk_section_error(const Vmcheck__V1__State *st, uint32_t bit);

/*
 * Lookups in a State; NULL when absent (or the section is missing). A block
 * by serial is a whole device, never one of its partitions.
 */
const Vmcheck__V1__Link *vmc_chk_link_by_mac(const Vmcheck__V1__State *st, const char *mac);
const Vmcheck__V1__Block *vmc_chk_block_by_serial(const Vmcheck__V1__State *st, const char *serial);
const Vmcheck__V1__PciFunction *vmc_chk_pci_function(const Vmcheck__V1__State *st,
						     const char *addr);
/* The first function whose upstream bridge is @port (a root port's address). */
const Vmcheck__V1__PciFunction *vmc_chk_pci_behind(const Vmcheck__V1__State *st, const char *port);
const Vmcheck__V1__MemoryBlock *vmc_chk_memblock(const Vmcheck__V1__State *st, uint64_t index);
/* A CPU the guest lists as present (in Cpus.present and in Cpus.cpus). */
const Vmcheck__V1__Cpu *vmc_chk_cpu_present(const Vmcheck__V1__State *st, unsigned id);

/*
 * A NIC on a root port: the link with @mac whose PCI function sits behind
 * @port, bound to virtio_net. vmc_chk_nic_up fills @pci with the function
 * found behind @port (even before the link shows) and @name with the link.
 */
struct vmc_chk_nic {
	const char *mac;
	const char *port;
	char pci[VMC_CHK_PCI_LEN];
	char name[VMC_CHK_NAME_LEN];
};
bool vmc_chk_nic_up(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);
/* @arg: struct vmc_chk_nic; holds once no link has the MAC. */
bool vmc_chk_nic_gone(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);

/*
 * A disk on a root port: block device with @serial, type disk, exactly
 * @size bytes, its PCI function behind @port. Fills @pci and @name.
 */
struct vmc_chk_disk {
	const char *serial;
	const char *port;
	uint64_t size;
	char pci[VMC_CHK_PCI_LEN];
	char name[VMC_CHK_NAME_LEN];
};
bool vmc_chk_disk_up(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);
/* @arg: struct vmc_chk_disk; holds once no block device has the serial. */
bool vmc_chk_disk_gone(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);

/*
 * A DIMM, identified in the guest by its address: the hypervisor says
 * where it put the DIMM (vmc_hv_ops.dimm_info), and the guest must show
 * exactly the memory blocks addr/block_size .. (addr+size)/block_size - 1
 * (block n starts at n * block_size), no other new one, all online;
 * in zone Movable when @movable. Blocks present before the plug (@base)
 * belong to others.
 */
struct vmc_chk_dimm {
	uint64_t *base; /* owned; block indices before the plug, sorted */
	size_t n_base;
	uint64_t block_size;  /* the guest's, at the plug */
	uint64_t base_online; /* Memory.online_bytes before the plug */
	uint64_t left_online; /* what should stay online after the unplug */
	uint64_t size;
	uint64_t addr;         /* where the hypervisor put it */
	uint64_t first, count; /* its blocks */
	bool movable;          /* the guest onlines it movable, or the check asked for it */
};
/*
 * Copy the baseline out of @st: -ENOMEM, or -ENOENT when @st has no fresh
 * memory section (none, or the agent's newest read failed).
 */
int vmc_chk_dimm_init(struct vmc_chk_dimm *d, const Vmcheck__V1__State *st, uint64_t size);
/*
 * vmc_chk_dimm_place - the hypervisor put the DIMM at @addr with @size:
 * sets its blocks. -EINVAL with @err set when @size is not what was asked
 * or the DIMM is not aligned to the guest's memory blocks.
 */
int vmc_chk_dimm_place(struct vmc_chk_dimm *d, uint64_t addr, uint64_t size, struct vmc_error *err);
void vmc_chk_dimm_free(struct vmc_chk_dimm *d);
/* Every block of the DIMM present, and no other new block. */
bool vmc_chk_dimm_blocks(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);
/*
 * The DIMM's blocks all online (in zone Movable when d->movable: another
 * zone is final), online bytes = baseline + size.
 */
bool vmc_chk_dimm_online(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);
/*
 * vmc_chk_dimm_unplugging - right before the unplug, from @st: what must
 * stay online once the DIMM is gone (the online bytes less its online
 * blocks; DIMMs plugged after it still count).
 */
void vmc_chk_dimm_unplugging(struct vmc_chk_dimm *d, const Vmcheck__V1__State *st);
/* None of the DIMM's blocks left, online bytes as vmc_chk_dimm_unplugging() said. */
bool vmc_chk_dimm_gone(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);

/*
 * A vCPU, identified in the guest by what changed and where it sits: the
 * one CPU present now that was not before the plug (QEMU's cpu-index is
 * never taken for Linux's CPU number), whose topology ids, once it is
 * online, must be the socket/die/core/thread QEMU put it at.
 */
struct vmc_chk_cpu {
	char base_present[256]; /* Cpus.present before the plug */
	int id;                 /* the guest's number of the new CPU; -1 until found */
	int socket_id, die_id, core_id, thread_id; /* QEMU's props; -1 when absent */
	bool thread_known; /* the agent reports thread ids (protocol minor >= 1) */
};
void vmc_chk_cpu_init(struct vmc_chk_cpu *c, const Vmcheck__V1__State *st,
		      const struct vmc_hv_cpu *where, bool thread_known);
/* Exactly one new present CPU (sets c->id); two or more is final. */
bool vmc_chk_cpu_up(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);
bool vmc_chk_cpu_online(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);
/* Online, and its topology ids are QEMU's position (a mismatch is final, both views quoted). */
bool vmc_chk_cpu_topology(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);
/* Both views of @c in one line, for notes and messages; @p may be NULL. */
void vmc_chk_cpu_views(const struct vmc_chk_cpu *c, const Vmcheck__V1__Cpu *p, char *buf,
		       size_t size);
bool vmc_chk_cpu_gone(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);

/* The VM or its agent is gone, or the run was interrupted: no later step can run. */
static inline bool vmc_chk_fatal(int rc)
{
	return rc == -ESRCH || rc == -EPIPE || rc == -EINTR;
}

/*
 * vmc_chk_slot_address - 0 if @slot has its guest PCI address, which is
 * how a device plugged into it is recognised; else -EINVAL with @err set.
 */
int vmc_chk_slot_address(const struct vmc_hv_slot *slot, struct vmc_error *err);

/*
 * vmc_chk_free_slots - the free root ports for @want devices of @check
 * @opt: the option that asked for them ("--nics"), for the skip reason
 * Returns 1 with @slots/@n set (free with vmc_hv_slots_free()); 0 when
 * there are too few (the plug is reported skipped with the count found);
 * negative when discovery failed (reported as a failed step).
 */
int vmc_chk_free_slots(struct vmc_ctx *c, const char *check, unsigned want, const char *opt,
		       struct vmc_hv_slot **slots, size_t *n);

/*
 * vmc_chk_del - the result @rc of a *_del for step @s: 0 when the request
 * went out, also when the hypervisor stopped waiting for the removal
 * (-EINPROGRESS: *@pending is set and its words go into the notes);
 * otherwise the step's failure, as vmc_step_acted() returns it.
 */
int vmc_chk_del(struct vmc_step *s, int rc, struct vmc_error *err, bool *pending);

/*
 * vmc_chk_unplug_ms - the deadline of a PCIe device's removal (NIC, disk,
 * VFIO function) on @c's guest architecture: --deadline-ms, plus what the
 * architecture's hotplug adds before the guest lets go (native PCIe on arm
 * virt waits out its attention button; vmc_arch_unplug_ms()).
 */
unsigned vmc_chk_unplug_ms(const struct vmc_ctx *c);

/*
 * vmc_chk_shown - before an unplug: whether @c's guest shows the device,
 * that is, whether its "gone" expectation @gone (with @arg) does not hold
 * on the view yet. A device the guest never showed (its plug failed, or an
 * agent that lies) cannot be seen to go: vmc_chk_seen_go() then fails the
 * unplug instead of passing it on the guest's silence.
 */
bool vmc_chk_shown(struct vmc_ctx *c, vmc_expect_fn gone, void *arg);

/*
 * vmc_chk_seen_go - the end of unplug step @s of device @id: @r as it is,
 * unless @r is 0 and the guest did not show the device before (@shown
 * false): then the step fails saying so, the hypervisor's removal noted.
 */
int vmc_chk_seen_go(struct vmc_step *s, int r, bool shown, const char *id);

/*
 * vmc_chk_removed - after the guest let go of device @id in step @s, the
 * hypervisor must have let go too. DEVICE_DELETED is awaited until
 * @deadline_ms after the action; then every layer is asked
 * (removal_views): QEMU and the management layer (libvirt's live state)
 * must both say gone. A removal with no DEVICE_DELETED passes when they
 * do (@pending: quoting the hypervisor's give-up); QEMU still holding the
 * device fails it as QEMU's; QEMU done but libvirt still listing it fails
 * it as the libvirt layer's, with the three views. Returns 0 or the
 * step's negative code (message set).
 */
int vmc_chk_removed(struct vmc_ctx *c, struct vmc_step *s, const char *id, bool pending,
		    unsigned deadline_ms);

/*
 * vmc_chk_act - have the agent do @act within @deadline_ms, for step @s.
 * The reply says only that it was done. Returns 0 or vmc_step_agent()'s code.
 */
int vmc_chk_act(struct vmc_step *s, Vmcheck__V1__Act *act, unsigned deadline_ms);

/*
 * vmc_chk_fail - record a failed step @name of @check for an error that came
 * before any action (discovery, image creation): begins, fails and ends it.
 * Returns @rc.
 */
int vmc_chk_fail(struct vmc_ctx *c, const char *check, const char *name, int rc,
		 struct vmc_error *err);

/*
 * vmc_chk_repeat - run @cycle --repeat times, stopping after the first that
 * fails: a failed cycle leaves the VM in an unknown state, so repeating it
 * measures nothing. @cycle numbers its devices on from *@seq (0 at first).
 * Returns the failed cycle's code, or 0.
 */
int vmc_chk_repeat(struct vmc_ctx *c, int (*cycle)(struct vmc_ctx *c, unsigned *seq));

/* "256 MiB", "1 GiB", "4096 B": exact binary units for messages. */
const char *vmc_chk_bytes(uint64_t n, char buf[32]);

#endif
