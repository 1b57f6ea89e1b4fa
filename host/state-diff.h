/* SPDX-License-Identifier: MIT */
/*
 * What changed between two States, matched by identity: links by name and
 * ifindex, blocks by name, memory blocks by index, CPUs by id, PCI
 * functions by address; the system and crash sections as one item each.
 * The diff tells each addition, removal and change through callbacks; the
 * watch output and a failed step's evidence write them as lines.
 */
#ifndef VMC_STATE_DIFF_H
#define VMC_STATE_DIFF_H

#include <stdint.h>
#include <stdio.h>

#include "pb.h"

/*
 * What the diff tells, item by item. @what is the kind of item ("link",
 * "block", "memory block", "cpu", "pci", "system", "crash"); @label its
 * identity ("eth0 (ifindex 2)", "40"). Strings are valid during the call
 * only. Every callback must be set.
 */
struct vmc_state_diff_ops {
	/* An item only @b has; @label also says what else is worth showing. */
	void (*added)(void *arg, const char *what, const char *label);
	/* An item only @a has. */
	void (*removed)(void *arg, const char *what, const char *label);
	/*
	 * An item of both that differs: @changes lists each field, "mtu 1500
	 * -> 9000, carrier down -> up". @label is NULL for "system" and
	 * "crash" (one of each per State).
	 */
	void (*changed)(void *arg, const char *what, const char *label, const char *changes);
	/* The items of kind @what could not be compared: @err is -ENOMEM. */
	void (*failed)(void *arg, const char *what, int err);
};

/*
 * vmc_state_diff - what changed from @a to @b, told to @ops with @arg
 * Only sections present in both are compared; an item that did not change
 * is not told. Returns the number of callbacks made.
 */
unsigned vmc_state_diff(const Vmcheck__V1__State *a, const Vmcheck__V1__State *b,
			const struct vmc_state_diff_ops *ops, void *arg);

/*
 * vmc_state_diff_write - vmc_state_diff() as lines on @fp, each indented
 * by two spaces: "+ link vmct0 (...)", "- block loop0", "~ cpu 2: online
 * no -> yes", "~ system: ...". Returns the number of lines written.
 */
unsigned vmc_state_diff_write(FILE *fp, const Vmcheck__V1__State *a, const Vmcheck__V1__State *b);

/*
 * vmc_state_diff_write_max - the same, writing at most @max lines and then
 * one saying how many more there were. Returns the number of changes.
 */
unsigned vmc_state_diff_write_max(FILE *fp, const Vmcheck__V1__State *a,
				  const Vmcheck__V1__State *b, unsigned max);

/* Words the diff shares with the text tables. */

/* @bytes the way lsblk and lsmem print sizes: "0B", "512K", "1G", "2.9G". */
const char *vmc_human_size(uint64_t bytes, char buf[static 16]);

/* A Link's carrier: "up", "down" or "unknown". */
const char *vmc_link_carrier_name(int carrier);

/* A Link's addresses, "10.0.2.15/24 fe80::1/64", or NULL on ENOMEM; free() it. */
char *vmc_link_addresses(const Vmcheck__V1__Link *l);

#endif
