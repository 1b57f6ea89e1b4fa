/* SPDX-License-Identifier: MIT */
/* Release functions for what the hypervisor seam hands out. */
#include "hv.h"

#include <stdlib.h>
#include <string.h>

void vmc_hv_event_free(struct vmc_hv_event *ev)
{
	free(ev->name);
	free(ev->device);
	free(ev->detail);
	free(ev->reason);
	memset(ev, 0, sizeof(*ev));
}

const struct vmc_arch *vmc_hv_arch(struct vmc_hv *hv)
{
	const struct vmc_arch *a = hv->ops->arch ? hv->ops->arch(hv) : NULL;

	return a ? a : &vmc_arch_x86_64;
}

void vmc_hv_process_get(struct vmc_hv *hv, struct vmc_hv_process *out)
{
	out->pid = -1;
	out->started_ns = 0;
	if (hv->ops->process)
		hv->ops->process(hv, out);
}

void vmc_hv_slots_free(struct vmc_hv_slot *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].id);
		free(s[i].address);
	}
	free(s);
}

void vmc_hv_cpus_free(struct vmc_hv_cpu *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(c[i].type);
		free(c[i].qom_path);
	}
	free(c);
}
