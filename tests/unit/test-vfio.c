/* SPDX-License-Identifier: MIT */
/*
 * VFIO VF hotplug without VFs: the host precondition reader against sysfs
 * trees (tests/fixtures/sriov-host: ready, held by a host driver, no
 * /dev/vfio node, a shared group; debian12-host: no VF at all), the guest
 * matching against hand-built States, and what both backends send: QMP
 * against a transcript (qmp-replay.h), libvirt's <hostdev> XML and its
 * argument errors on libvirt's test driver.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-vfio-host.h"
#include "check-vfio.h"
#include "clock.h"
#include "harness.h"
#include "hv-libvirt.h"
#include "hv-libvirt-xml.h"
#include "hv-qmp.h"
#include "qmp-replay.h"

#define VF0 "0000:06:01.0"
#define PORT "0000:00:02.2"

static const char *msg_of(const struct vmc_error *e)
{
	return e->msg ? e->msg : "";
}

static void msg_has(const struct vmc_error *e, const char *needle)
{
	if (!strstr(msg_of(e), needle))
		fprintf(stderr, "\nmissing \"%s\" in: %s\n", needle, msg_of(e));
	CU_ASSERT_PTR_NOT_NULL(strstr(msg_of(e), needle));
}

/* Read @addr from @root and judge it; returns the verdict, @err holds why. */
static int judge(struct vmc_sysroot *root, const char *addr, bool rebinds, bool *managed,
		 struct vmc_error *err)
{
	struct vmc_vfio_host h;
	int r = vmc_vfio_host_read(root->fd, addr, &h);

	CU_ASSERT_EQUAL_FATAL(r, 0);
	r = vmc_vfio_host_usable(&h, rebinds, managed, err);
	vmc_vfio_host_free(&h);
	return r;
}

static void vfs_are_found_by_their_physfn_link(void)
{
	struct vmc_sysroot root;
	char **vfs = NULL;
	int n;

	fx_open_committed("sriov-host", &root);
	n = vmc_vfio_host_vfs(root.fd, &vfs);
	CU_ASSERT_EQUAL_FATAL(n, 5);
	for (int i = 0; i < n; i++) {
		char want[32];

		snprintf(want, sizeof(want), "0000:06:01.%d", i);
		CU_ASSERT_STRING_EQUAL(vfs[i], want);
	}
	vmc_sysroot_names_free(vfs, n);
	vmc_sysroot_close(&root);
	/* A real host without SR-IOV: PCI devices, no VF. */
	fx_open_committed("debian12-host", &root);
	n = vmc_vfio_host_vfs(root.fd, &vfs);
	CU_ASSERT_EQUAL(n, 0);
	vmc_sysroot_names_free(vfs, n < 0 ? 0 : n);
	vmc_sysroot_close(&root);
}

static void a_ready_vf_is_read_whole(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_sysroot root;
	struct vmc_vfio_host h;
	bool managed = true;

	fx_open_committed("sriov-host", &root);
	CU_ASSERT_EQUAL_FATAL(vmc_vfio_host_read(root.fd, VF0, &h), 0);
	CU_ASSERT_STRING_EQUAL(h.addr, VF0);
	CU_ASSERT_EQUAL(h.vendor, 0x8086);
	CU_ASSERT_EQUAL(h.device, 0x1889);
	CU_ASSERT_STRING_EQUAL(h.driver, "vfio-pci");
	CU_ASSERT_STRING_EQUAL(h.physfn, "0000:06:00.0");
	CU_ASSERT_STRING_EQUAL(h.pf_driver, "ice");
	CU_ASSERT_EQUAL(h.group, 40);
	CU_ASSERT_TRUE(h.group_dev);
	CU_ASSERT_EQUAL(h.n_peers, 0);
	CU_ASSERT_EQUAL(vmc_vfio_host_usable(&h, false, &managed, &err), 0);
	CU_ASSERT_FALSE(managed); /* bound already: nobody rebinds it */
	CU_ASSERT_PTR_NULL(err.msg);
	vmc_vfio_host_free(&h);
	/* The group's other members, with their drivers. */
	CU_ASSERT_EQUAL_FATAL(vmc_vfio_host_read(root.fd, "0000:06:01.3", &h), 0);
	CU_ASSERT_EQUAL_FATAL(h.n_peers, 1);
	CU_ASSERT_STRING_EQUAL(h.peers[0].addr, "0000:06:01.4");
	CU_ASSERT_STRING_EQUAL(h.peers[0].driver, "iavf");
	vmc_vfio_host_free(&h);
	CU_ASSERT_EQUAL(vmc_vfio_host_read(root.fd, "0000:09:00.0", &h), -ENOENT);
	CU_ASSERT_EQUAL(vmc_vfio_host_read(root.fd, "../../etc", &h), -EINVAL);
	vmc_sysroot_close(&root);
}

static void unusable_vfs_are_refused_with_the_reason(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_sysroot root;
	bool managed = false;

	fx_open_committed("sriov-host", &root);
	/* Held by iavf: QEMU cannot take it, libvirt rebinds it (managed='yes'). */
	CU_ASSERT_EQUAL(judge(&root, "0000:06:01.1", false, &managed, &err), -EBUSY);
	msg_has(&err, "0000:06:01.1 is bound to iavf, not vfio-pci: bind it first");
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(judge(&root, "0000:06:01.1", true, &managed, &err), 0);
	CU_ASSERT_TRUE(managed);
	CU_ASSERT_EQUAL(judge(&root, "0000:06:01.2", false, &managed, &err), -ENOENT);
	msg_has(&err, "0000:06:01.2 is bound to vfio-pci but /dev/vfio/42 does not exist");
	vmc_error_clear(&err);
	/* A group member on a host driver blocks the group, rebinding or not. */
	CU_ASSERT_EQUAL(judge(&root, "0000:06:01.3", true, &managed, &err), -EBUSY);
	msg_has(&err, "IOMMU group 43 of 0000:06:01.3 is not viable: 0000:06:01.4 shares it, "
		      "bound to iavf");
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(judge(&root, "0000:00:1f.2", true, &managed, &err), -ENODEV);
	msg_has(&err, "0000:00:1f.2 is not an SR-IOV VF (no physfn link)");
	vmc_error_clear(&err);
	vmc_sysroot_close(&root);
}

static void a_vf_without_iommu_group_is_refused(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct fx f;
	bool managed = false;

	fx_init(&f);
	fx_write(&f, "sys/devices/pci0000:00/0000:00:03.0/0000:06:10.0/vendor", "0x8086\n");
	fx_write(&f, "sys/devices/pci0000:00/0000:00:03.0/0000:06:10.0/device", "0x10ed\n");
	fx_symlink(&f, "../0000:06:00.0",
		   "sys/devices/pci0000:00/0000:00:03.0/0000:06:10.0/physfn");
	fx_symlink(&f, "../../../../bus/pci/drivers/ixgbe",
		   "sys/devices/pci0000:00/0000:00:03.0/0000:06:00.0/driver");
	fx_symlink(&f, "../../../devices/pci0000:00/0000:00:03.0/0000:06:10.0",
		   "sys/bus/pci/devices/0000:06:10.0");
	fx_symlink(&f, "../../../devices/pci0000:00/0000:00:03.0/0000:06:00.0",
		   "sys/bus/pci/devices/0000:06:00.0");
	CU_ASSERT_EQUAL(judge(&f.root, "0000:06:10.0", true, &managed, &err), -ENODEV);
	msg_has(&err, "0000:06:10.0 has no IOMMU group (no iommu_group link)");
	vmc_error_clear(&err);
	/* A malformed ID is no device of ours. */
	fx_write(&f, "sys/devices/pci0000:00/0000:00:03.0/0000:06:10.0/device", "0x10ed0\n");
	{
		struct vmc_vfio_host h;

		CU_ASSERT_EQUAL(vmc_vfio_host_read(f.root.fd, "0000:06:10.0", &h), -EINVAL);
	}
	fx_cleanup(&f);
}

static void the_vf_driver_follows_the_pf_driver(void)
{
	CU_ASSERT_STRING_EQUAL(vmc_vfio_vf_driver("ice"), "iavf");
	CU_ASSERT_STRING_EQUAL(vmc_vfio_vf_driver("i40e"), "iavf");
	CU_ASSERT_STRING_EQUAL(vmc_vfio_vf_driver("ixgbe"), "ixgbevf");
	CU_ASSERT_STRING_EQUAL(vmc_vfio_vf_driver("mlx5_core"), "mlx5_core");
	CU_ASSERT_PTR_NULL(vmc_vfio_vf_driver("virtio-pci"));
	CU_ASSERT_PTR_NULL(vmc_vfio_vf_driver(""));
	CU_ASSERT_PTR_NULL(vmc_vfio_vf_driver(NULL));
}

/* ---- the guest's side */

/* A guest with a virtio NIC behind 00:02.0 and the VF (maybe) behind PORT. */
struct vf_guest {
	Vmcheck__V1__State st;
	Vmcheck__V1__Pci pci;
	Vmcheck__V1__PciFunction port0, port2, nic, vf, *fns[4];
	Vmcheck__V1__Link eth0, vf_link, *links[2];
};

static void vf_guest_init(struct vf_guest *g)
{
	vmcheck__v1__state__init(&g->st);
	vmcheck__v1__pci__init(&g->pci);
	vmcheck__v1__pci_function__init(&g->port0);
	vmcheck__v1__pci_function__init(&g->port2);
	vmcheck__v1__pci_function__init(&g->nic);
	vmcheck__v1__pci_function__init(&g->vf);
	vmcheck__v1__link__init(&g->eth0);
	vmcheck__v1__link__init(&g->vf_link);
	g->port0.address = "0000:00:02.0";
	g->port2.address = PORT;
	g->nic.address = "0000:01:00.0";
	g->nic.parent = "0000:00:02.0";
	g->nic.vendor = 0x1af4;
	g->nic.device = 0x1041;
	g->nic.driver = "virtio-pci";
	g->vf.address = "0000:03:00.0";
	g->vf.parent = PORT;
	g->vf.vendor = 0x8086;
	g->vf.device = 0x1889;
	g->vf.driver = "iavf";
	g->fns[0] = &g->port0;
	g->fns[1] = &g->port2;
	g->fns[2] = &g->nic;
	g->fns[3] = &g->vf;
	g->pci.functions = g->fns;
	g->pci.n_functions = 4;
	g->eth0.name = "eth0";
	g->eth0.pci_address = "0000:01:00.0";
	g->eth0.driver = "virtio_net";
	g->vf_link.name = "eth1";
	g->vf_link.pci_address = "0000:03:00.0";
	g->vf_link.driver = "iavf";
	g->vf_link.mac = "02:11:22:33:44:55";
	g->links[0] = &g->eth0;
	g->links[1] = &g->vf_link;
	g->st.links = g->links;
	g->st.n_links = 2;
	g->st.pci = &g->pci;
	g->st.sections = VMCHECK__V1__SECTION__SECTION_PCI | VMCHECK__V1__SECTION__SECTION_LINKS;
}

static struct vmc_vfio_want want_iavf(void)
{
	return (struct vmc_vfio_want){ .vendor = 0x8086,
				       .device = 0x1889,
				       .port = PORT,
				       .driver = "iavf" };
}

static void why_has(const struct vmc_why *why, const char *needle)
{
	if (!strstr(why->text, needle))
		fprintf(stderr, "\nmissing \"%s\" in: %s\n", needle, why->text);
	CU_ASSERT_PTR_NOT_NULL(strstr(why->text, needle));
}

static void vf_found_by_port_ids_driver_and_link(void)
{
	struct vf_guest g;
	struct vmc_vfio_want w = want_iavf();
	struct vmc_why why = { .text = "" };

	vf_guest_init(&g);
	CU_ASSERT_TRUE(vmc_vfio_guest_up(&g.st, &w, &why));
	CU_ASSERT_STRING_EQUAL(w.pci, "0000:03:00.0");
	CU_ASSERT_STRING_EQUAL(w.link, "eth1");
	CU_ASSERT_STRING_EQUAL(w.got_driver, "iavf");
	/* No known driver to expect: whichever is bound, reported. */
	g.vf.driver = g.vf_link.driver = "vfio-user-test";
	w.driver = NULL;
	CU_ASSERT_TRUE(vmc_vfio_guest_up(&g.st, &w, &why));
	CU_ASSERT_STRING_EQUAL(w.got_driver, "vfio-user-test");
}

static void vf_waits_for_function_driver_and_link(void)
{
	struct vf_guest g;
	struct vmc_vfio_want w = want_iavf();
	struct vmc_why why = { .text = "" };

	vf_guest_init(&g);
	g.st.n_links = 1;
	CU_ASSERT_FALSE(vmc_vfio_guest_up(&g.st, &w, &why));
	why_has(&why, "0000:03:00.0 bound to iavf, no network link on it");
	g.vf.driver = "";
	CU_ASSERT_FALSE(vmc_vfio_guest_up(&g.st, &w, &why));
	why_has(&why, "0000:03:00.0 (8086:1889): no driver bound (want iavf: is it in the guest?)");
	g.vf.driver = "ixgbevf";
	CU_ASSERT_FALSE(vmc_vfio_guest_up(&g.st, &w, &why));
	why_has(&why, "0000:03:00.0: driver ixgbevf, want iavf");
	/* Somebody else's device behind our port is not the VF. */
	g.vf.vendor = 0x1af4;
	g.vf.device = 0x1041;
	CU_ASSERT_FALSE(vmc_vfio_guest_up(&g.st, &w, &why));
	why_has(&why, "0000:03:00.0 behind " PORT " is 1af4:1041, want the VF's 8086:1889");
	g.pci.n_functions = 3;
	CU_ASSERT_FALSE(vmc_vfio_guest_up(&g.st, &w, &why));
	why_has(&why, "no PCI function behind root port " PORT);
	/* The same VF behind another port is not ours either. */
	vf_guest_init(&g);
	g.vf.parent = "0000:00:02.0";
	CU_ASSERT_FALSE(vmc_vfio_guest_up(&g.st, &w, &why));
}

static void vf_gone_when_function_and_link_are(void)
{
	struct vf_guest g;
	struct vmc_vfio_want w = want_iavf();
	struct vmc_why why = { .text = "" };

	vf_guest_init(&g);
	CU_ASSERT_TRUE(vmc_vfio_guest_up(&g.st, &w, &why));
	CU_ASSERT_FALSE(vmc_vfio_guest_gone(&g.st, &w, &why));
	why_has(&why, "0000:03:00.0 (8086:1889) still behind " PORT);
	g.pci.n_functions = 3; /* the function went first, its link lingers */
	CU_ASSERT_FALSE(vmc_vfio_guest_gone(&g.st, &w, &why));
	why_has(&why, "link eth1 still on 0000:03:00.0");
	g.st.n_links = 1;
	CU_ASSERT_TRUE(vmc_vfio_guest_gone(&g.st, &w, &why));
}

/* ---- the backends */

static void qmp_sends_device_add_vfio_pci(void)
{
	struct vmc_hv_vfio vf1 = { "vf1", VF0, "pciroot1", false };
	struct vmc_hv_vfio vf2 = { "vf2", "0000:00:01.0", "pciroot1", false };
	struct vmc_hv_vfio vf3 = { "vf3", "0000:06:02.0", "pciroot1", false };
	struct vmc_hv_vfio managed = { "vf9", VF0, "pciroot1", true };
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_event ev;
	struct vmc_qmp *q = NULL;
	struct vmc_hv *hv = NULL;
	struct replay rp;
	int fd;

	replay_start(&rp, "vfio", &fd);
	CU_ASSERT_EQUAL_FATAL(vmc_qmp_open_fd(fd, "fake", 2000, &q, &err), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_hv_qmp_new(q, NULL, NULL, &vmc_arch_x86_64, &hv, &err), 0);
	CU_ASSERT_FALSE(hv->ops->vfio_rebinds);
	/* Nothing is sent for a function QEMU would have to rebind. */
	CU_ASSERT_EQUAL(hv->ops->vfio_add(hv, &managed, &err), -ENOTSUP);
	msg_has(&err, "device_add vf9 (vfio-pci host=" VF0 "): QEMU cannot bind it to vfio-pci");
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(hv->ops->vfio_add(hv, &vf1, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->vfio_del(hv, "vf1", &err), 0);
	CU_ASSERT_EQUAL_FATAL(hv->ops->wait_event(hv, VMC_EV_DEVICE_DELETED, "vf1",
						  vmc_mono_ns() + 2000000000ull, &ev, &err),
			      0);
	CU_ASSERT_STRING_EQUAL(ev.device, "vf1");
	vmc_hv_event_free(&ev);
	CU_ASSERT_EQUAL(hv->ops->vfio_add(hv, &vf2, &err), VMC_QMP_ECOMMAND);
	CU_ASSERT_STRING_EQUAL(msg_of(&err), "device_add vf2 (vfio-pci host=0000:00:01.0) on "
					     "pciroot1: vfio 0000:00:01.0: no iommu_group found: "
					     "No such file or directory");
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(hv->ops->vfio_add(hv, &vf3, &err), VMC_QMP_ECOMMAND);
	msg_has(&err, "no such host device");
	vmc_error_clear(&err);
	hv->ops->free(hv);
	CU_ASSERT_STRING_EQUAL(replay_finish(&rp), "");
}

static void libvirt_hostdev_xml(void)
{
	struct vmc_hv_vfio v = { "vf1", VF0, "pciroot2", true };
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_libvirt_xml *x = NULL;
	char *xml = NULL, *where = NULL, *doc = NULL, name[32];

	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_hostdev(&v, 2, &xml), 0);
	CU_ASSERT_STRING_EQUAL(xml, "<hostdev mode='subsystem' type='pci' managed='yes'>"
				    "<driver name='vfio'/><source><address domain='0x0000' "
				    "bus='0x06' slot='0x01' function='0x0'/></source>"
				    "<alias name='ua-vf1'/><address type='pci' domain='0x0000' "
				    "bus='0x02' slot='0x00' function='0x0'/></hostdev>");
	/* In a domain, it takes its port and is found by its alias for the detach. */
	CU_ASSERT(asprintf(&doc,
			   "<domain><devices><controller type='pci' index='2' "
			   "model='pcie-root-port'><alias name='ua-pciroot2'/></controller>%s"
			   "</devices></domain>",
			   xml) > 0);
	free(xml);
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_parse(doc, &x, &err), 0);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_device(x, "vf1", &where, NULL), 1);
	CU_ASSERT_STRING_EQUAL(where, "hostdev on pci bus 2 slot 0");
	free(where);
	{
		struct vmc_hv_slot *slots = NULL;
		size_t n = 9;

		CU_ASSERT_EQUAL(vmc_libvirt_xml_free_slots(x, &slots, &n, &err), 0);
		CU_ASSERT_EQUAL(n, 0);
		vmc_hv_slots_free(slots, n);
	}
	vmc_libvirt_xml_free(x);
	free(doc);

	v.managed = false;
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_hostdev(&v, 1, &xml), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(xml, "managed='no'"));
	free(xml);
	v.host = "06:01.0";
	xml = NULL;
	CU_ASSERT_EQUAL(vmc_libvirt_xml_hostdev(&v, 1, &xml), -EINVAL);
	CU_ASSERT_PTR_NULL(xml);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_nodedev_name("0000:af:1e.7", name), 0);
	CU_ASSERT_STRING_EQUAL(name, "pci_0000_af_1e_7");
	CU_ASSERT_EQUAL(vmc_libvirt_xml_nodedev_name("0000:af:1e.7x", name), -EINVAL);
}

static void test_driver_errors_of_vfio(void)
{
	struct vmc_libvirt_config c = { .uri = "test:///default",
					.domain = "test",
					.agent = "vserial:/x" };
	struct vmc_hv_vfio v = { "vf1", VF0, "pciroot9", false };
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv *hv = NULL;

	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_open(&c, &hv, &err), 0);
	CU_ASSERT_TRUE(hv->ops->vfio_rebinds);
	CU_ASSERT_EQUAL(hv->ops->vfio_add(hv, &v, &err), -ENOENT);
	CU_ASSERT_STRING_EQUAL(msg_of(&err), "attach-device vf1 (host " VF0 "): the domain has no "
					     "pcie-root-port pciroot9");
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(hv->ops->vfio_del(hv, "vf1", &err), -ENOENT);
	vmc_error_clear(&err);
	hv->ops->free(hv);
}

VMC_SUITE(vfio, NULL, NULL, VMC_TEST(vfs_are_found_by_their_physfn_link),
	  VMC_TEST(a_ready_vf_is_read_whole), VMC_TEST(unusable_vfs_are_refused_with_the_reason),
	  VMC_TEST(a_vf_without_iommu_group_is_refused),
	  VMC_TEST(the_vf_driver_follows_the_pf_driver),
	  VMC_TEST(vf_found_by_port_ids_driver_and_link),
	  VMC_TEST(vf_waits_for_function_driver_and_link),
	  VMC_TEST(vf_gone_when_function_and_link_are), VMC_TEST(qmp_sends_device_add_vfio_pci),
	  VMC_TEST(libvirt_hostdev_xml), VMC_TEST(test_driver_errors_of_vfio))
