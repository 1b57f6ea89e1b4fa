/* SPDX-License-Identifier: MIT */
#include <errno.h>

#include "state.h"

int vmc_state_read_system(const struct vmc_state_opts *o, struct vmc_arena *a,
		Vmcheck__V1__State *st)
{
	return -ENOSYS;
}
