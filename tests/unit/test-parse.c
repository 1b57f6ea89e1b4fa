/* SPDX-License-Identifier: MIT */
/* Tests of the strict parsers of sysfs and procfs strings. */
#include <errno.h>

#include "harness.h"
#include "parse.h"

static void numbers_are_parsed_strictly(void)
{
	uint64_t u = 7;
	int64_t s = 7;

	CU_ASSERT_EQUAL(vmc_parse_u64("8000000", 16, &u), 0);
	CU_ASSERT_EQUAL(u, 0x8000000);
	CU_ASSERT_EQUAL(vmc_parse_u64("12\n", 10, &u), 0);
	CU_ASSERT_EQUAL(u, 12);
	u = 7;
	CU_ASSERT_EQUAL(vmc_parse_u64("12x", 10, &u), -EINVAL);
	CU_ASSERT_EQUAL(vmc_parse_u64("", 10, &u), -EINVAL);
	CU_ASSERT_EQUAL(vmc_parse_u64(" 1", 10, &u), -EINVAL);
	CU_ASSERT_EQUAL(vmc_parse_u64("-1", 10, &u), -EINVAL);
	CU_ASSERT_EQUAL(vmc_parse_u64("99999999999999999999999", 10, &u), -ERANGE);
	CU_ASSERT_EQUAL(u, 7);
	CU_ASSERT_EQUAL(vmc_parse_s64("-1", 10, &s), 0);
	CU_ASSERT_EQUAL(s, -1);
}

static void names_compare_like_sort_v(void)
{
	CU_ASSERT_TRUE(vmc_parse_natcmp("cpu2", "cpu10") < 0);
	CU_ASSERT_TRUE(vmc_parse_natcmp("cpu10", "cpu2") > 0);
	CU_ASSERT_EQUAL(vmc_parse_natcmp("cpu02", "cpu2"), 0);
	CU_ASSERT_TRUE(vmc_parse_natcmp("cpu", "cpu1") < 0);
	CU_ASSERT_TRUE(vmc_parse_natcmp("eth1", "lo") < 0);
}

static void pci_address_is_found_in_a_device_path(void)
{
	const char *dev = "sys/devices/pci0000:00/0000:00:02.0/0000:01:00.0/virtio1";
	char pci[13], parent[13];

	CU_ASSERT_EQUAL(vmc_parse_pci_of_path(dev, pci, parent), 0);
	CU_ASSERT_STRING_EQUAL(pci, "0000:01:00.0");
	CU_ASSERT_STRING_EQUAL(parent, "0000:00:02.0");
	CU_ASSERT_EQUAL(vmc_parse_pci_of_path("sys/devices/virtual/net/lo", pci, parent), -ENOENT);
	CU_ASSERT_FALSE(vmc_parse_is_pci_address("0000:00:02.8"));
	CU_ASSERT_FALSE(vmc_parse_is_pci_address("0000:00:02"));
}

static void cpulist_membership(void)
{
	bool in = false;

	CU_ASSERT_EQUAL(vmc_parse_cpulist_contains("0-3,5\n", 5, &in), 0);
	CU_ASSERT_TRUE(in);
	CU_ASSERT_EQUAL(vmc_parse_cpulist_contains("0-3,5", 4, &in), 0);
	CU_ASSERT_FALSE(in);
	CU_ASSERT_EQUAL(vmc_parse_cpulist_contains("", 0, &in), 0);
	CU_ASSERT_FALSE(in);
	CU_ASSERT_EQUAL(vmc_parse_cpulist_contains("3-1", 2, &in), -EINVAL);
	CU_ASSERT_EQUAL(vmc_parse_cpulist_contains("a", 2, &in), -EINVAL);
}

VMC_SUITE(parse, NULL, NULL, VMC_TEST(numbers_are_parsed_strictly),
	  VMC_TEST(names_compare_like_sort_v), VMC_TEST(pci_address_is_found_in_a_device_path),
	  VMC_TEST(cpulist_membership))
