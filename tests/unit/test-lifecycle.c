/* SPDX-License-Identifier: MIT */
/* Whether the lifecycle check runs S3: the hypervisor's and the guest's words (check-lifecycle.h). */
#include <string.h>

#include "check-lifecycle.h"
#include "harness.h"

static struct vmc_lifecycle_s3 guest_of(const char *states, const char *mem_sleep)
{
	Vmcheck__V1__System sys = VMCHECK__V1__SYSTEM__INIT;
	struct vmc_lifecycle_s3 g;

	sys.power_states = (char *)states;
	sys.mem_sleep = (char *)mem_sleep;
	vmc_lifecycle_s3_guest(&sys, &g);
	return g;
}

/* What the kernels here say (doc/facts.md, "aarch64 guests"). */
static void the_guest_says_s3_by_deep(void)
{
	struct vmc_lifecycle_s3 g;

	/* q35 with disable_s3=0 */
	g = guest_of("freeze mem disk", "s2idle [deep]");
	CU_ASSERT_EQUAL(g.offered, 1);
	CU_ASSERT_STRING_EQUAL(g.says, "the guest: /sys/power/mem_sleep is \"s2idle [deep]\"");
	/* deep offered but not the current choice: still S3 when asked for */
	CU_ASSERT_EQUAL(guest_of("freeze mem", "[s2idle] deep").offered, 1);
	/* arm virt, and q35 with disable_s3=1: "mem" listed, but it is s2idle */
	g = guest_of("freeze mem disk", "[s2idle]");
	CU_ASSERT_EQUAL(g.offered, 0);
	CU_ASSERT_STRING_EQUAL(g.says,
			       "the guest: /sys/power/mem_sleep is \"[s2idle]\", no deep (S3)");
	/* a word that only contains "deep" is not it */
	CU_ASSERT_EQUAL(guest_of("mem", "[s2idle] deeper [deep").offered, 0);
	/* no mem at all */
	g = guest_of("freeze disk", "[s2idle]");
	CU_ASSERT_EQUAL(g.offered, 0);
	CU_ASSERT_STRING_EQUAL(g.says, "the guest: /sys/power/state is \"freeze disk\", no mem");
	/* an agent before minor 2, a kernel without mem_sleep: it does not say */
	g = guest_of("freeze mem disk", "");
	CU_ASSERT_EQUAL(g.offered, -1);
	CU_ASSERT_STRING_EQUAL(g.says, "the guest does not say: its system section has no "
				       "/sys/power/mem_sleep");
	vmc_lifecycle_s3_guest(NULL, &g);
	CU_ASSERT_EQUAL(g.offered, -1);
	/* Guest strings are quoted bounded. */
	char big[400];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	g = guest_of("mem", big);
	CU_ASSERT_EQUAL(g.offered, 0);
	CU_ASSERT(strlen(g.says) < 140);
}

static struct vmc_lifecycle_s3 said(int offered, const char *says)
{
	struct vmc_lifecycle_s3 w = { .offered = offered };

	snprintf(w.says, sizeof(w.says), "%s", says);
	return w;
}

static void either_no_skips_with_its_words(void)
{
	struct vmc_lifecycle_s3 q_no = said(0, "QEMU: query-current-machine says "
					       "wakeup-suspend-support false"),
				q_yes = said(1, "QEMU: query-current-machine says "
						"wakeup-suspend-support true"),
				q_unk = said(-1, "the hypervisor could not be asked: refused"),
				g_no = said(0,
					    "the guest: /sys/power/mem_sleep is \"[s2idle]\", no "
					    "deep (S3)"),
				g_yes = said(1,
					     "the guest: /sys/power/mem_sleep is \"s2idle [deep]\""),
				g_unk = said(-1, "the guest does not say");
	char why[720];

	/* arm virt: both say no, QEMU first */
	CU_ASSERT_TRUE(vmc_lifecycle_s3_skip(&q_no, &g_no, why, sizeof(why)));
	CU_ASSERT_STRING_EQUAL(why, "no suspend to RAM on this machine: QEMU: "
				    "query-current-machine says wakeup-suspend-support false; the "
				    "guest: /sys/power/mem_sleep is \"[s2idle]\", no deep (S3)");
	/* q35 with disable_s3=1: QEMU says yes, the guest no; the no comes first */
	CU_ASSERT_TRUE(vmc_lifecycle_s3_skip(&q_yes, &g_no, why, sizeof(why)));
	CU_ASSERT_STRING_EQUAL(why, "no suspend to RAM on this machine: the guest: "
				    "/sys/power/mem_sleep is \"[s2idle]\", no deep (S3); QEMU: "
				    "query-current-machine says wakeup-suspend-support true");
	CU_ASSERT_TRUE(vmc_lifecycle_s3_skip(&q_no, &g_unk, why, sizeof(why)));
	CU_ASSERT_TRUE(vmc_lifecycle_s3_skip(&q_unk, &g_no, why, sizeof(why)));
	/* q35 with S3: the full check; and nobody's no is assumed */
	CU_ASSERT_FALSE(vmc_lifecycle_s3_skip(&q_yes, &g_yes, why, sizeof(why)));
	CU_ASSERT_FALSE(vmc_lifecycle_s3_skip(&q_unk, &g_yes, why, sizeof(why)));
	CU_ASSERT_FALSE(vmc_lifecycle_s3_skip(&q_yes, &g_unk, why, sizeof(why)));
	CU_ASSERT_FALSE(vmc_lifecycle_s3_skip(&q_unk, &g_unk, why, sizeof(why)));
}

VMC_SUITE(lifecycle, NULL, NULL, VMC_TEST(the_guest_says_s3_by_deep),
	  VMC_TEST(either_no_skips_with_its_words))
