/* SPDX-License-Identifier: MIT */
/* PCI reader against the committed q35 guest tree, scratch trees and this machine. */
#include <errno.h>
#include <string.h>

#include "harness.h"
#include "parse.h"
#include "state.h"

static void run_on(struct fx_run *t, struct vmc_sysroot root)
{
	fx_run(t, root, vmc_state_read_pci);
}

static void run_guest(struct fx_run *t)
{
	struct vmc_sysroot root;

	fx_open_committed("virtio-guest", &root);
	run_on(t, root);
	CU_ASSERT_EQUAL_FATAL(t->r, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t->st.pci);
}

static const Vmcheck__V1__PciFunction *fn(const struct fx_run *t, const char *addr)
{
	for (size_t i = 0; i < t->st.pci->n_functions; i++)
		if (!strcmp(t->st.pci->functions[i]->address, addr))
			return t->st.pci->functions[i];
	return NULL;
}

static void functions_sorted_by_address(void)
{
	/* 00:1f sorts after 00:02: hex, not "sort -V". */
	static const char *const order[] = { "0000:00:00.0", "0000:00:02.0", "0000:00:02.1",
					     "0000:00:02.2", "0000:00:03.0", "0000:00:1f.0",
					     "0000:00:1f.3", "0000:01:00.0", "0000:02:00.0" };
	struct fx_run t;

	run_guest(&t);
	CU_ASSERT_EQUAL_FATAL(t.st.pci->n_functions, ARRAY_SIZE(order));
	for (size_t i = 0; i < ARRAY_SIZE(order); i++)
		CU_ASSERT_STRING_EQUAL(t.st.pci->functions[i]->address, order[i]);
	fx_run_done(&t, true);
}

static void function_has_ids_parent_bridge_driver_and_slot(void)
{
	const Vmcheck__V1__PciFunction *f;
	struct fx_run t;

	run_guest(&t);
	f = fn(&t, "0000:01:00.0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(f->vendor, 0x1af4);
	CU_ASSERT_EQUAL(f->device, 0x1042);
	CU_ASSERT_EQUAL(f->class_code, 0x010000);
	CU_ASSERT_EQUAL(f->subsystem_vendor, 0x1af4);
	CU_ASSERT_EQUAL(f->subsystem_device, 0x1100);
	CU_ASSERT_STRING_EQUAL(f->driver, "virtio-pci");
	CU_ASSERT_STRING_EQUAL(f->parent, "0000:00:02.0");
	CU_ASSERT_STRING_EQUAL(f->slot, "1");
	f = fn(&t, "0000:02:00.0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_STRING_EQUAL(f->parent, "0000:00:02.1");
	CU_ASSERT_STRING_EQUAL(f->slot, "2");
	/* The root port itself sits on the root bus, in no slot. */
	f = fn(&t, "0000:00:02.0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(f->class_code, 0x060400);
	CU_ASSERT_STRING_EQUAL(f->driver, "pcieport");
	CU_ASSERT_STRING_EQUAL(f->parent, "");
	CU_ASSERT_STRING_EQUAL(f->slot, "");
	f = fn(&t, "0000:00:1f.3");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_STRING_EQUAL(f->driver, "");
	fx_run_done(&t, true);
}

/*
 * The PCI driver of a virtio function is the transport; the device's own
 * driver is on the virtio bus. The NIC at 00:03.0 has none bound (unbound
 * from virtio_net, as "echo virtio0 > .../virtio_net/unbind" leaves it).
 */
static void virtio_functions_name_their_device_type_and_driver(void)
{
	const Vmcheck__V1__PciFunction *f;
	struct fx_run t;

	run_guest(&t);
	f = fn(&t, "0000:01:00.0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_STRING_EQUAL(f->driver, "virtio-pci");
	CU_ASSERT_STRING_EQUAL(f->virtio_device, "virtio1");
	CU_ASSERT_EQUAL(f->virtio_type, 2);
	CU_ASSERT_STRING_EQUAL(f->virtio_driver, "virtio_blk");
	f = fn(&t, "0000:02:00.0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_STRING_EQUAL(f->virtio_device, "virtio2");
	CU_ASSERT_STRING_EQUAL(f->virtio_driver, "virtio_blk");
	f = fn(&t, "0000:00:03.0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(f->class_code, 0x020000);
	CU_ASSERT_STRING_EQUAL(f->driver, "virtio-pci");
	CU_ASSERT_STRING_EQUAL(f->virtio_device, "virtio0");
	CU_ASSERT_EQUAL(f->virtio_type, 1);
	CU_ASSERT_STRING_EQUAL(f->virtio_driver, "");
	/* Not virtio: the defaults of the wire. */
	f = fn(&t, "0000:00:02.0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_STRING_EQUAL(f->virtio_device, "");
	CU_ASSERT_EQUAL(f->virtio_type, 0);
	CU_ASSERT_STRING_EQUAL(f->virtio_driver, "");
	fx_run_done(&t, true);
}

/* This machine's capture: every virtio device with the driver it had. */
static void captured_host_has_every_virtio_device(void)
{
	static const struct {
		const char *addr, *dev;
		uint32_t type;
		const char *drv;
	} want[] = {
		{ "0000:00:01.0", "virtio0", 5, "virtio_balloon" },
		{ "0000:00:02.0", "virtio1", 2, "virtio_blk" },
		{ "0000:00:03.0", "virtio2", 1, "virtio_net" },
		{ "0000:00:04.0", "virtio3", 0x13, "vmw_vsock_virtio_transport" },
		{ "0000:00:05.0", "virtio4", 4, "virtio_rng" },
	};
	struct vmc_sysroot root;
	struct fx_run t;

	fx_open_committed("debian12-host", &root);
	run_on(&t, root);
	CU_ASSERT_EQUAL_FATAL(t.r, 0);
	CU_ASSERT_EQUAL(t.st.pci->n_functions, 6);
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		const Vmcheck__V1__PciFunction *f = fn(&t, want[i].addr);

		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		CU_ASSERT_STRING_EQUAL(f->virtio_device, want[i].dev);
		CU_ASSERT_EQUAL(f->virtio_type, want[i].type);
		CU_ASSERT_STRING_EQUAL(f->virtio_driver, want[i].drv);
	}
	fx_run_done(&t, true);
}

static void slots_with_and_without_power(void)
{
	const Vmcheck__V1__PciSlot *s;
	struct fx_run t;

	run_guest(&t);
	CU_ASSERT_EQUAL_FATAL(t.st.pci->n_slots, 3);
	s = t.st.pci->slots[0];
	CU_ASSERT_STRING_EQUAL(s->name, "1");
	CU_ASSERT_STRING_EQUAL(s->address, "0000:01:00");
	CU_ASSERT_EQUAL(s->power, 1);
	CU_ASSERT_EQUAL(s->presence, 1);
	CU_ASSERT_EQUAL(s->attention, 0);
	CU_ASSERT_EQUAL(s->latch, -1);
	CU_ASSERT_STRING_EQUAL(t.st.pci->slots[1]->name, "2");
	/* The empty root port: natural order puts "10" last; no power control. */
	s = t.st.pci->slots[2];
	CU_ASSERT_STRING_EQUAL(s->name, "10");
	CU_ASSERT_STRING_EQUAL(s->address, "0000:03:00");
	CU_ASSERT_EQUAL(s->power, -1);
	CU_ASSERT_EQUAL(s->presence, 0);
	fx_run_done(&t, true);
}

#define DEV "sys/devices/pci0000:00/0000:00:03.0/"

static void scratch_tree_errors_and_vanishing(void)
{
	struct fx_run t;
	struct fx f;

	fx_init(&f);
	run_on(&t, f.root);
	CU_ASSERT_EQUAL(t.r, -ENOENT);
	CU_ASSERT_PTR_NULL(t.st.pci);
	fx_run_done(&t, false);

	/* No slots directory (no hotplug driver); one function hot-removed. */
	fx_write(&f, DEV "vendor", "0x1af4\n");
	fx_write(&f, DEV "device", "0x1041\n");
	fx_write(&f, DEV "class", "0x020000\n");
	fx_symlink(&f, "../../../devices/pci0000:00/0000:00:03.0",
		   "sys/bus/pci/devices/0000:00:03.0");
	fx_symlink(&f, "../../../devices/pci0000:00/0000:00:04.0",
		   "sys/bus/pci/devices/0000:00:04.0");
	run_on(&t, f.root);
	CU_ASSERT_EQUAL_FATAL(t.r, 0);
	CU_ASSERT_EQUAL(t.st.pci->n_slots, 0);
	CU_ASSERT_EQUAL_FATAL(t.st.pci->n_functions, 1);
	CU_ASSERT_EQUAL(t.st.pci->functions[0]->class_code, 0x020000);
	CU_ASSERT_EQUAL(t.st.pci->functions[0]->subsystem_vendor, 0);
	CU_ASSERT_STRING_EQUAL(t.st.pci->functions[0]->slot, "");
	fx_run_done(&t, false);

	fx_write(&f, DEV "vendor", "0x1af4x\n");
	run_on(&t, f.root);
	CU_ASSERT_EQUAL(t.r, -EINVAL);
	CU_ASSERT_PTR_NULL(t.st.pci);
	fx_run_done(&t, false);
	fx_cleanup(&f);
}

#define VIRTIO_BUS "sys/bus/virtio/devices/"

/* A scratch virtio-pci function at 00:03.0 whose virtio device is virtio5. */
static void virtio_function(struct fx *f)
{
	fx_init(f);
	fx_write(f, DEV "vendor", "0x1af4\n");
	fx_write(f, DEV "device", "0x1041\n");
	fx_write(f, DEV "class", "0x020000\n");
	fx_symlink(f, "../../../bus/pci/drivers/virtio-pci", DEV "driver");
	fx_symlink(f, "../../../devices/pci0000:00/0000:00:03.0",
		   "sys/bus/pci/devices/0000:00:03.0");
	fx_mkdir(f, DEV "virtio5");
	fx_write(f, DEV "virtio5/device", "0x0001\n");
}

static void virtio_device_vanishing_or_not_yet_there(void)
{
	struct fx_run t;
	struct fx f;

	/* On the function, gone from the virtio bus: unregistered while we read. */
	virtio_function(&f);
	run_on(&t, f.root);
	CU_ASSERT_EQUAL_FATAL(t.r, 0);
	CU_ASSERT_EQUAL(t.st.pci->n_functions, 0);
	fx_run_done(&t, false);

	/* Registered, bound to virtio_net: hex type parsed, driver named. */
	fx_symlink(&f, "../../../devices/pci0000:00/0000:00:03.0/virtio5", VIRTIO_BUS "virtio5");
	fx_symlink(&f, "../../../../../bus/virtio/drivers/virtio_net", DEV "virtio5/driver");
	run_on(&t, f.root);
	CU_ASSERT_EQUAL_FATAL(t.r, 0);
	CU_ASSERT_EQUAL_FATAL(t.st.pci->n_functions, 1);
	CU_ASSERT_STRING_EQUAL(t.st.pci->functions[0]->virtio_device, "virtio5");
	CU_ASSERT_EQUAL(t.st.pci->functions[0]->virtio_type, 1);
	CU_ASSERT_STRING_EQUAL(t.st.pci->functions[0]->virtio_driver, "virtio_net");
	fx_run_done(&t, false);

	/* A type that is not hex fails the section, like any malformed ID. */
	fx_write(&f, DEV "virtio5/device", "net\n");
	run_on(&t, f.root);
	CU_ASSERT_EQUAL(t.r, -EINVAL);
	fx_run_done(&t, false);
	fx_cleanup(&f);

	/* virtio-pci bound, no virtio device yet (mid-probe): the function, no device. */
	virtio_function(&f);
	fx_remove(&f, DEV "virtio5");
	run_on(&t, f.root);
	CU_ASSERT_EQUAL_FATAL(t.r, 0);
	CU_ASSERT_EQUAL_FATAL(t.st.pci->n_functions, 1);
	CU_ASSERT_STRING_EQUAL(t.st.pci->functions[0]->virtio_device, "");
	CU_ASSERT_EQUAL(t.st.pci->functions[0]->virtio_type, 0);
	fx_run_done(&t, false);
	fx_cleanup(&f);
}

static void live_machine_invariants(void)
{
	struct vmc_sysroot root;
	struct fx_run t;

	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&root, "/"), 0);
	run_on(&t, root);
	CU_ASSERT_EQUAL_FATAL(t.r, 0);
	for (size_t i = 0; i < t.st.pci->n_functions; i++) {
		const Vmcheck__V1__PciFunction *f = t.st.pci->functions[i];

		CU_ASSERT_TRUE(vmc_parse_is_pci_address(f->address));
		CU_ASSERT_NOT_EQUAL(f->vendor, 0);
		CU_ASSERT_NOT_EQUAL(f->vendor, 0xffff);
		if (i > 0)
			CU_ASSERT_TRUE(strcmp(t.st.pci->functions[i - 1]->address, f->address) < 0);
		if (f->parent[0])
			CU_ASSERT_PTR_NOT_NULL(fn(&t, f->parent));
		/* Only a virtio-pci transport carries a virtio device, and that has a type. */
		if (strcmp(f->driver, "virtio-pci"))
			CU_ASSERT_STRING_EQUAL(f->virtio_device, "");
		if (f->virtio_device[0])
			CU_ASSERT_NOT_EQUAL(f->virtio_type, 0);
	}
	fx_run_done(&t, true);
}

VMC_SUITE(state_pci, NULL, NULL, VMC_TEST(functions_sorted_by_address),
	  VMC_TEST(function_has_ids_parent_bridge_driver_and_slot),
	  VMC_TEST(virtio_functions_name_their_device_type_and_driver),
	  VMC_TEST(captured_host_has_every_virtio_device), VMC_TEST(slots_with_and_without_power),
	  VMC_TEST(scratch_tree_errors_and_vanishing),
	  VMC_TEST(virtio_device_vanishing_or_not_yet_there), VMC_TEST(live_machine_invariants))
