/* SPDX-License-Identifier: MIT */
/*
 * What a backend added to a VM and has not taken away yet: devices and the
 * backend objects behind them (netdevs, block nodes, memory backends,
 * chardevs), so that a run that stops early can remove them from a VM it
 * does not own, in an order the hypervisor accepts.
 */
#ifndef VMC_LEDGER_H
#define VMC_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
