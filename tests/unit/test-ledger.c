/* SPDX-License-Identifier: MIT */
/*
 * The ledger of what a backend added to a VM: what is recorded and dropped,
 * and the order a cleanup follows (devices before the objects they use,
 * the newest first).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ledger.h"

/* "D:disk2 B:disk2-blk ..." of @l's plan, for one comparison per case. */
static void plan_text(const struct vmc_ledger *l, char *buf, size_t size)
{
	static const char kind[] = "DNBOC";
	const struct vmc_ledger_entry *plan[16];
	size_t n = vmc_ledger_plan(l, plan, 16), len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && i < 16 && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%c:%s", i ? " " : "",
					kind[plan[i]->kind], plan[i]->id);
}

static void devices_go_first_newest_first(void)
{
	struct vmc_ledger l = { 0 };
	char text[256];

	/* As the checks add them: the backend, then its device. */
	CU_ASSERT_EQUAL(vmc_ledger_add(&l, VMC_LEDGER_NETDEV, "nic1-net", "nic1"), 0);
	CU_ASSERT_EQUAL(vmc_ledger_add(&l, VMC_LEDGER_DEVICE, "nic1", NULL), 0);
	CU_ASSERT_EQUAL(vmc_ledger_add(&l, VMC_LEDGER_BLOCKDEV, "disk1-blk", "disk1"), 0);
	CU_ASSERT_EQUAL(vmc_ledger_add(&l, VMC_LEDGER_DEVICE, "disk1", NULL), 0);
	CU_ASSERT_EQUAL(vmc_ledger_add(&l, VMC_LEDGER_BLOCKDEV, "disk2-blk", "disk2"), 0);
	CU_ASSERT_EQUAL(vmc_ledger_add(&l, VMC_LEDGER_DEVICE, "disk2", NULL), 0);
	CU_ASSERT_EQUAL(vmc_ledger_add(&l, VMC_LEDGER_OBJECT, "dimm1-mem", "dimm1"), 0);
	CU_ASSERT_EQUAL(vmc_ledger_add(&l, VMC_LEDGER_DEVICE, "dimm1", NULL), 0);
	CU_ASSERT_EQUAL(vmc_ledger_add(&l, VMC_LEDGER_DEVICE, "vcpu1", NULL), 0);
	CU_ASSERT_EQUAL(vmc_ledger_add(&l, VMC_LEDGER_DEVICE, "vcpu2", NULL), 0);
	plan_text(&l, text, sizeof(text));
	CU_ASSERT_STRING_EQUAL(text, "D:vcpu2 D:vcpu1 D:dimm1 D:disk2 D:disk1 D:nic1 "
				     "O:dimm1-mem B:disk2-blk B:disk1-blk N:nic1-net");
	vmc_ledger_clear(&l);
	CU_ASSERT_EQUAL(l.n, 0);
}

static void dropped_things_leave_the_plan(void)
{
	struct vmc_ledger l = { 0 };
	const struct vmc_ledger_entry *e;
	char text[256];

	vmc_ledger_add(&l, VMC_LEDGER_BLOCKDEV, "disk1-blk", "disk1");
	vmc_ledger_add(&l, VMC_LEDGER_DEVICE, "disk1", NULL);
	vmc_ledger_add(&l, VMC_LEDGER_BLOCKDEV, "disk2-blk", "disk2");
	vmc_ledger_add(&l, VMC_LEDGER_DEVICE, "disk2", NULL);
	/* disk1's cycle completed: DEVICE_DELETED, then blockdev-del. */
	CU_ASSERT_TRUE(vmc_ledger_drop(&l, VMC_LEDGER_DEVICE, "disk1"));
	CU_ASSERT_TRUE(vmc_ledger_drop(&l, VMC_LEDGER_BLOCKDEV, "disk1-blk"));
	/* Only what was recorded, under its own kind. */
	CU_ASSERT_FALSE(vmc_ledger_drop(&l, VMC_LEDGER_DEVICE, "disk1"));
	CU_ASSERT_FALSE(vmc_ledger_drop(&l, VMC_LEDGER_DEVICE, "disk2-blk"));
	plan_text(&l, text, sizeof(text));
	CU_ASSERT_STRING_EQUAL(text, "D:disk2 B:disk2-blk");
	e = vmc_ledger_find(&l, VMC_LEDGER_BLOCKDEV, "disk2-blk");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(e->device, "disk2");
	CU_ASSERT_PTR_NULL(vmc_ledger_find(&l, VMC_LEDGER_DEVICE, "disk1"));
	vmc_ledger_clear(&l);
}

static void an_id_added_again_is_newest(void)
{
	struct vmc_ledger l = { 0 };
	const struct vmc_ledger_entry *plan[4];
	char text[256];

	vmc_ledger_add(&l, VMC_LEDGER_DEVICE, "nic1", NULL);
	vmc_ledger_add(&l, VMC_LEDGER_DEVICE, "nic2", NULL);
	vmc_ledger_add(&l, VMC_LEDGER_DEVICE, "nic1", NULL);
	plan_text(&l, text, sizeof(text));
	CU_ASSERT_STRING_EQUAL(text, "D:nic1 D:nic2");
	/* A short array gets the first of the plan; the count is the whole. */
	CU_ASSERT_EQUAL(vmc_ledger_plan(&l, plan, 1), 2);
	CU_ASSERT_STRING_EQUAL(plan[0]->id, "nic1");
	CU_ASSERT_STRING_EQUAL(vmc_ledger_kind_name(VMC_LEDGER_BLOCKDEV), "block node");
	CU_ASSERT_STRING_EQUAL(vmc_ledger_kind_name(VMC_LEDGER_OBJECT), "memory backend");
	CU_ASSERT_STRING_EQUAL(vmc_ledger_kind_name(VMC_LEDGER_VOLUME), "volume");
	vmc_ledger_clear(&l);
	/* Cleared, it is usable again. */
	CU_ASSERT_EQUAL(vmc_ledger_add(&l, VMC_LEDGER_CHARDEV, "ch1", NULL), 0);
	plan_text(&l, text, sizeof(text));
	CU_ASSERT_STRING_EQUAL(text, "C:ch1");
	vmc_ledger_clear(&l);
}

/* The rest of a cleanup: each item left for it, once. */
static void rest_gone(void *ctx, struct vmc_ledger_item *all, size_t n, struct vmc_ledger_item *it,
		      struct vmc_hv_cleaned *c)
{
	(*(int *)ctx)++;
	vmc_ledger_settle(it, c, VMC_LEDGER_GONE, "%s", "netdev_del");
}

/*
 * The shared end of a cleanup: items in the plan's order with their report
 * lines; a device still being removed is left with the backend's words;
 * the rest goes to the backend, or is left untried after a second signal.
 */
static void a_cleanup_ends_with_each_item_settled(void)
{
	struct vmc_ledger l = { 0 };
	struct vmc_ledger_item *it = NULL;
	struct vmc_hv_cleaned *c = NULL;
	bool cut = false;
	int rested = 0;

	CU_ASSERT_EQUAL(vmc_ledger_items(&l, 1, &it, &c), 0);
	CU_ASSERT_PTR_NULL(it);
	vmc_ledger_add(&l, VMC_LEDGER_NETDEV, "nic1-net", "nic1");
	vmc_ledger_add(&l, VMC_LEDGER_DEVICE, "nic1", NULL);
	CU_ASSERT_EQUAL_FATAL(vmc_ledger_items(&l, 0, &it, &c), 2);
	CU_ASSERT_STRING_EQUAL(it[0].id, "nic1");
	CU_ASSERT_STRING_EQUAL(c[0].what, "device nic1");
	CU_ASSERT_STRING_EQUAL(it[1].device, "nic1");
	CU_ASSERT_STRING_EQUAL(c[1].what, "netdev nic1-net");
	it[0].state = VMC_LEDGER_DELETING;
	it[0].via = "device_del";
	CU_ASSERT_EQUAL(vmc_ledger_finish(it, 2, c, 2, -1, &cut, 300, "DEVICE_DELETED",
					  "no DEVICE_DELETED within", rest_gone, &rested),
			-EBUSY);
	CU_ASSERT_STRING_EQUAL(c[0].how, "device_del sent, no DEVICE_DELETED within 300 ms (the "
					 "guest did not let it go)");
	CU_ASSERT_FALSE(c[0].removed);
	CU_ASSERT_EQUAL(rested, 1);
	CU_ASSERT_TRUE(c[1].removed);
	free(it);
	free(c);

	/* Cut short: the device waited for says so, the netdev is not tried. */
	CU_ASSERT_EQUAL_FATAL(vmc_ledger_items(&l, 0, &it, &c), 2);
	it[0].state = VMC_LEDGER_DELETING;
	it[0].via = "device_del";
	cut = true;
	CU_ASSERT_EQUAL(vmc_ledger_finish(it, 2, c, 2, -1, &cut, 300, "DEVICE_DELETED",
					  "no DEVICE_DELETED within", rest_gone, &rested),
			-EBUSY);
	CU_ASSERT_STRING_EQUAL(c[0].how, "device_del sent, no DEVICE_DELETED yet");
	CU_ASSERT_STRING_EQUAL(c[1].how, "not tried: a second signal cut the cleanup short");
	CU_ASSERT_EQUAL(rested, 1);
	free(it);
	free(c);
	vmc_ledger_clear(&l);
}

VMC_SUITE(ledger, NULL, NULL, VMC_TEST(devices_go_first_newest_first),
	  VMC_TEST(dropped_things_leave_the_plan), VMC_TEST(an_id_added_again_is_newest),
	  VMC_TEST(a_cleanup_ends_with_each_item_settled))
