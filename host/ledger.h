/* SPDX-License-Identifier: MIT */
/*
 * What a backend added to a VM and has not taken away yet: devices and the
 * backend objects behind them (netdevs, block nodes, memory backends,
 * chardevs), so that a run that stops early can remove them from a VM it
 * does not own, in an order the hypervisor accepts.
 */
#ifndef VMC_LEDGER_H
#define VMC_LEDGER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hv.h"
#include "macro.h"

enum vmc_ledger_kind {
	VMC_LEDGER_DEVICE,   /* device_add: removed with device_del, then DEVICE_DELETED */
	VMC_LEDGER_NETDEV,   /* netdev_add: netdev_del */
	VMC_LEDGER_BLOCKDEV, /* blockdev-add: blockdev-del */
	VMC_LEDGER_OBJECT,   /* object-add (a memory backend): object-del */
	VMC_LEDGER_CHARDEV,  /* chardev-add: chardev-remove */
	VMC_LEDGER_VOLUME,   /* a disk image in a storage pool (by path): deleted */
};

struct vmc_ledger_entry {
	enum vmc_ledger_kind kind;
	char *id;     /* QOM id or node name */
	char *device; /* for a backend object: the device using it (NULL: none) */
	uint64_t seq; /* order of addition */
};

struct vmc_ledger {
	struct vmc_ledger_entry *e;
	size_t n;
	uint64_t seq;
};

/*
 * vmc_ledger_add - @id of @kind was added; @device: the device that uses it
 * (a backend's), or NULL. Adding an id already there moves it to the end.
 * Returns 0 or -ENOMEM (then nothing is recorded).
 */
int vmc_ledger_add(struct vmc_ledger *l, enum vmc_ledger_kind kind, const char *id,
		   const char *device);

/* vmc_ledger_drop - @id of @kind is gone. Returns whether it was recorded. */
bool vmc_ledger_drop(struct vmc_ledger *l, enum vmc_ledger_kind kind, const char *id);

/* vmc_ledger_find - the entry of @id of @kind, or NULL. */
const struct vmc_ledger_entry *vmc_ledger_find(const struct vmc_ledger *l,
					       enum vmc_ledger_kind kind, const char *id);

/*
 * vmc_ledger_plan - the order to remove everything in @l: every device
 * first, newest first (a vCPU or a DIMM added last goes first, as the
 * checks unplug them), then every backend object, newest first, each once
 * no device uses it any more. Fills @out with up to @max pointers into @l
 * (valid until @l changes) and returns how many entries @l has.
 */
size_t vmc_ledger_plan(const struct vmc_ledger *l, const struct vmc_ledger_entry **out, size_t max);

/* "device", "netdev", "block node", "memory backend", "chardev", "volume". */
const char *vmc_ledger_kind_name(enum vmc_ledger_kind kind);

/* Forget everything (the VM is gone). The ledger stays usable. */
void vmc_ledger_clear(struct vmc_ledger *l);

/*
 * A backend's cleanup, the part both backends share: what is to be
 * removed, copied out of the ledger (which changes as things go), each
 * with its report line (struct vmc_hv_cleaned) and how far it got.
 */
enum vmc_ledger_state {
	VMC_LEDGER_PENDING,  /* not asked for yet */
	VMC_LEDGER_DELETING, /* a device's removal asked for, not seen done */
	VMC_LEDGER_GONE,
	VMC_LEDGER_LEFT,
};

struct vmc_ledger_item {
	enum vmc_ledger_kind kind;
	char id[PATH_MAX]; /* a QOM id, a node name, a volume's path */
	char device[80];   /* a backend object's device, "" none */
	const char *via;   /* how a device's removal was asked for ("device_del") */
	bool vcpu;         /* libvirt: a vCPU, not a device */
	enum vmc_ledger_state state;
};

/*
 * vmc_ledger_items - everything in @l in vmc_ledger_plan()'s order as items
 * (*@it) and report lines (*@c, "KIND ID"), plus @extra blank report lines
 * after them. Returns how many items (0: *@it and *@c NULL) or -ENOMEM.
 */
ssize_t vmc_ledger_items(const struct vmc_ledger *l, size_t extra, struct vmc_ledger_item **it,
			 struct vmc_hv_cleaned **c);

/* vmc_ledger_settle - how @it ends: @state (GONE or LEFT), how or why not in @c. */
void vmc_ledger_settle(struct vmc_ledger_item *it, struct vmc_hv_cleaned *c,
		       enum vmc_ledger_state state, const char *fmt, ...) _printf_(4, 5);

/* vmc_ledger_stop_now - is @fd (the signalfd; -1: none) readable: a second signal? */
bool vmc_ledger_stop_now(int fd);

/*
 * vmc_ledger_finish - after the wait for the devices (cut short by a
 * second signal when *@cut): a device still being removed is LEFT ("VIA
 * sent, no @event yet" when cut, else "VIA sent, @late @ms ms (the guest
 * did not let it go)"); every item not tried yet is LEFT when a signal cut
 * the cleanup short (*@cut is set if one comes now), else handed to @rest
 * (backend objects, volumes), which settles it. Returns -EBUSY if a report
 * line of @c[0..@n_c) says not removed, else 0.
 */
int vmc_ledger_finish(struct vmc_ledger_item *it, size_t n, struct vmc_hv_cleaned *c, size_t n_c,
		      int stop_fd, bool *cut, unsigned ms, const char *event, const char *late,
		      void (*rest)(void *ctx, struct vmc_ledger_item *all, size_t n,
				   struct vmc_ledger_item *it, struct vmc_hv_cleaned *c),
		      void *ctx);

#endif
