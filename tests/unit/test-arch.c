/* SPDX-License-Identifier: MIT */
/* The guest architectures: names, binaries, unplug deadlines. */
#include <limits.h>

#include "arch.h"
#include "harness.h"

static void found_by_qemu_and_debian_names(void)
{
	CU_ASSERT_PTR_EQUAL(vmc_arch_find("x86_64"), &vmc_arch_x86_64);
	CU_ASSERT_PTR_EQUAL(vmc_arch_find("amd64"), &vmc_arch_x86_64);
	CU_ASSERT_PTR_EQUAL(vmc_arch_find("aarch64"), &vmc_arch_aarch64);
	CU_ASSERT_PTR_EQUAL(vmc_arch_find("arm64"), &vmc_arch_aarch64);
	CU_ASSERT_PTR_NULL(vmc_arch_find("arm"));
	CU_ASSERT_PTR_NULL(vmc_arch_find("AARCH64"));
	CU_ASSERT_PTR_NULL(vmc_arch_find(""));
	CU_ASSERT_PTR_NULL(vmc_arch_find(NULL));
}

static void binary_names_say_the_arch(void)
{
	CU_ASSERT_PTR_EQUAL(vmc_arch_of_qemu("qemu-system-aarch64"), &vmc_arch_aarch64);
	CU_ASSERT_PTR_EQUAL(vmc_arch_of_qemu("/usr/bin/qemu-system-aarch64"), &vmc_arch_aarch64);
	CU_ASSERT_PTR_EQUAL(vmc_arch_of_qemu("/opt/q/bin/qemu-system-x86_64"), &vmc_arch_x86_64);
	/* A wrapper or an unknown target says nothing. */
	CU_ASSERT_PTR_NULL(vmc_arch_of_qemu("/usr/local/bin/qemu-wrapper"));
	CU_ASSERT_PTR_NULL(vmc_arch_of_qemu("qemu-system-riscv64"));
	CU_ASSERT_PTR_NULL(vmc_arch_of_qemu("/usr/bin/qemu-system-"));
	CU_ASSERT_PTR_NULL(vmc_arch_of_qemu("qemu-system-aarch64/x"));
	CU_ASSERT_PTR_NULL(vmc_arch_of_qemu(NULL));
}

static void unplug_deadline_follows_the_arch(void)
{
	/* ACPI PCI hotplug lets go at once; native PCIe waits for its button. */
	CU_ASSERT_EQUAL(vmc_arch_unplug_ms(&vmc_arch_x86_64, 10000), 10000);
	CU_ASSERT_EQUAL(vmc_arch_unplug_ms(&vmc_arch_aarch64, 10000), 15000);
	/* The button's wait comes on top of whatever the user allows per change. */
	CU_ASSERT_EQUAL(vmc_arch_unplug_ms(&vmc_arch_aarch64, 1000), 6000);
	CU_ASSERT_EQUAL(vmc_arch_unplug_ms(NULL, 700), 700);
	CU_ASSERT_EQUAL(vmc_arch_unplug_ms(&vmc_arch_aarch64, UINT_MAX - 1), UINT_MAX);
	CU_ASSERT_STRING_EQUAL(vmc_arch_aarch64.qemu, "qemu-system-aarch64");
	CU_ASSERT_STRING_EQUAL(vmc_arch_x86_64.kit_suffix, "");
}

static void ram_starts_where_the_machine_puts_it(void)
{
	CU_ASSERT_EQUAL(vmc_arch_x86_64.ram_base, 0);
	CU_ASSERT_EQUAL(vmc_arch_aarch64.ram_base, 1ULL << 30);
}

VMC_SUITE(arch, NULL, NULL, VMC_TEST(found_by_qemu_and_debian_names),
	  VMC_TEST(binary_names_say_the_arch), VMC_TEST(unplug_deadline_follows_the_arch),
	  VMC_TEST(ram_starts_where_the_machine_puts_it))
