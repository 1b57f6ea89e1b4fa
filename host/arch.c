/* SPDX-License-Identifier: MIT */
/* The guest architectures: names, default binaries and kits, deadlines. */
#include "arch.h"

#include <stddef.h>
#include <string.h>

#include "macro.h"

const struct vmc_arch vmc_arch_x86_64 = {
	.name = "x86_64",
	.deb = "amd64",
	.qemu = "qemu-system-x86_64",
	.kit_suffix = "",
	.unplug_extra_ms = 0,
};

const struct vmc_arch vmc_arch_aarch64 = {
	.name = "aarch64",
	.deb = "arm64",
	.qemu = "qemu-system-aarch64",
	.kit_suffix = "-aarch64",
	/* doc/facts.md: DEVICE_DELETED ~6 s after device_del on arm virt. */
	.unplug_extra_ms = 5000,
	/* hw/arm/virt.c's memory map: flash, then MMIO, RAM from 1 GiB. */
	.ram_base = 0x40000000,
};

static const struct vmc_arch *const all[] = { &vmc_arch_x86_64, &vmc_arch_aarch64 };

const struct vmc_arch *vmc_arch_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		if (!strcmp(name, all[i]->name) || !strcmp(name, all[i]->deb))
			return all[i];
	return NULL;
}

const struct vmc_arch *vmc_arch_of_qemu(const char *binary)
{
	const char *base = binary ? strrchr(binary, '/') : NULL;

	base = base ? base + 1 : binary;
	if (!base || strncmp(base, "qemu-system-", strlen("qemu-system-")))
		return NULL;
	return vmc_arch_find(base + strlen("qemu-system-"));
}

unsigned vmc_arch_unplug_ms(const struct vmc_arch *a, unsigned deadline_ms)
{
	unsigned extra = a ? a->unplug_extra_ms : 0;

	return deadline_ms > ~0u - extra ? ~0u : deadline_ms + extra;
}
