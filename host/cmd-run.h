/* SPDX-License-Identifier: MIT */
/*
 * vmcheck run's options as parsed, and the rules on which of them go
 * together, kept apart from the parsing so that the rules can be tested.
 */
#ifndef VMC_CMD_RUN_H
#define VMC_CMD_RUN_H

#include "check.h"
#include "error.h"
#include "qemu.h"

struct vmc_run_args {
	struct vmc_qemu_config qemu;
	struct vmc_run_opts opts;
	const char *qmp, *agent, *only, *junit, *json;
	const char *libvirt, *domain, *network; /* --libvirt mode */
	const char *hosts;                      /* --hosts: --libvirt on each */
};

/*
 * vmc_cmd_run_validate - do the modes and options of @a go together?
 * @a: the options as parsed, each value already checked on its own;
 *     --only bigmem counts as --bigmem (its default size comes later)
 *
 * Returns 0; or -EINVAL with @err set to the first rule broken, worded as
 * vmcheck prints it after "vmcheck: " ("run: --libvirt and --qmp exclude
 * each other"). @a is never changed.
 */
int vmc_cmd_run_validate(const struct vmc_run_args *a, struct vmc_error *err);

#endif
