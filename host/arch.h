/* SPDX-License-Identifier: MIT */
/*
 * The guest architectures vmcheck drives, and what differs between them for
 * the launchers and the checks (doc/facts.md, "aarch64 guests").
 */
#ifndef VMC_ARCH_H
#define VMC_ARCH_H

#include <stdint.h>

struct vmc_arch {
	const char *name; /* QEMU's word (query-target "arch"): "x86_64", "aarch64" */
	const char *deb;  /* Debian's: "amd64", "arm64" */
	const char *qemu; /* the default binary: "qemu-system-x86_64" */
	const char *
		kit_suffix; /* the embedded guest kit's directory: GUEST_DIR + this ("", "-aarch64") */
	/*
	 * How much longer than a guest-visible change a PCIe unplug may take:
	 * native PCIe hotplug (arm virt) waits out the 5 s attention button
	 * before the guest lets go; ACPI PCI hotplug (q35) does not.
	 */
	unsigned unplug_extra_ms;
	/*
	 * Where the guest's RAM starts. A memory block the guest lists below
	 * it is not RAM the VM was given: arm virt's UEFI maps its variable
	 * flash there (doc/facts.md, "aarch64 guests").
	 */
	uint64_t ram_base;
};

extern const struct vmc_arch vmc_arch_x86_64;
extern const struct vmc_arch vmc_arch_aarch64;

/* By QEMU's or Debian's name ("aarch64", "arm64", "x86_64", "amd64"); NULL: unknown. */
const struct vmc_arch *vmc_arch_find(const char *name);

/*
 * By a QEMU binary's name, "qemu-system-<arch>" with any directory in
 * front; NULL when the name says nothing (a wrapper script, say).
 */
const struct vmc_arch *vmc_arch_of_qemu(const char *binary);

/* The deadline of a PCIe unplug on @a, given the per-change @deadline_ms. */
unsigned vmc_arch_unplug_ms(const struct vmc_arch *a, unsigned deadline_ms);

#endif
