/* SPDX-License-Identifier: MIT */
/*
 * The lifecycle check (check-lifecycle.c): whether the machine offers
 * suspend to RAM, as the hypervisor and the guest each say it. Pure
 * functions of their answers, so the verdict is unit-tested without a VM
 * that cannot suspend.
 */
#ifndef VMC_CHECK_LIFECYCLE_H
#define VMC_CHECK_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>

#include "check.h"

/* One side's word on suspend to RAM. */
struct vmc_lifecycle_s3 {
	int offered;    /* 1 yes, 0 no, -1 it does not say or could not be asked */
	char says[320]; /* its words ("QEMU: query-current-machine says ..."), or why none */
};

/*
 * vmc_lifecycle_s3_guest - the guest's word, from its System section: no
 * when its kernel has no suspend to RAM ("mem" missing from
 * /sys/power/state) or "mem" is not S3 (/sys/power/mem_sleep without
 * "deep": suspend-to-idle only; doc/facts.md, "aarch64 guests"); yes when
 * mem_sleep lists "deep"; it does not say without a System section or a
 * mem_sleep (an agent before protocol minor 2, a kernel before 4.10).
 * Guest strings are quoted bounded.
 */
void vmc_lifecycle_s3_guest(const Vmcheck__V1__System *sys, struct vmc_lifecycle_s3 *out);

/*
 * vmc_lifecycle_s3_skip - whether S3 is skipped: true, with the words of
 * each side that said no (then the other's) in @why, when the hypervisor
 * or the guest says no; false when neither does (both yes, or one does
 * not say: the check goes ahead as it always did).
 */
bool vmc_lifecycle_s3_skip(const struct vmc_lifecycle_s3 *hv, const struct vmc_lifecycle_s3 *guest,
			   char *why, size_t size);

#endif
