/* SPDX-License-Identifier: MIT */
/*
 * The QMP backend's operations against exchanges recorded from QEMU 7.2
 * (qmp-replay.h): the fake checks every command we send against the
 * recording, so these tests pin both what we ask and how we read answers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "harness.h"
#include "hv-qmp.h"
#include "qemu.h"
#include "qmp-replay.h"

static struct replay rp;
static struct vmc_error err;

/* The error message, "" when none was set (a failing test must not crash). */
static const char *msg(void)
{
	return err.msg ? err.msg : "";
}

static struct vmc_hv *start(const char *name)
{
	struct vmc_qmp *q = NULL;
	struct vmc_hv *hv = NULL;
	int fd;

	vmc_error_clear(&err);
	replay_start(&rp, name, &fd);
	CU_ASSERT_EQUAL_FATAL(vmc_qmp_open_fd(fd, "fake", 2000, &q, &err), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_hv_qmp_new(q, "vserial:/x/agent.sock", NULL, &vmc_arch_x86_64,
					     &hv, &err),
			      0);
	return hv;
}

static void finish(struct vmc_hv *hv)
{
	hv->ops->free(hv);
	CU_ASSERT_STRING_EQUAL(replay_finish(&rp), "");
	vmc_error_clear(&err);
}

/* For asserts on strings that a broken backend may leave NULL. */
static const char *str(const char *s)
{
	return s ? s : "(null)";
}

static uint64_t soon(void)
{
	return vmc_mono_ns() + 2000000000ull;
}

/* Take the next @name about @device; its device and detail are checked by the caller. */
static void take(struct vmc_hv *hv, const char *name, const char *device, struct vmc_hv_event *ev)
{
	CU_ASSERT_EQUAL_FATAL(hv->ops->wait_event(hv, name, device, soon(), ev, &err), 0);
	CU_ASSERT_STRING_EQUAL(ev->name, name);
}

static void lifecycle_commands(void)
{
	struct vmc_hv *hv = start("lifecycle");
	struct vmc_hv_event ev;

	CU_ASSERT_STRING_EQUAL(hv->ops->name, "qmp");
	CU_ASSERT_STRING_EQUAL(hv->ops->agent_spec(hv), "vserial:/x/agent.sock");
	CU_ASSERT_EQUAL(hv->ops->stop(hv, &err), 0);
	CU_ASSERT_TRUE(hv->ops->seen_event(hv, VMC_EV_STOP, NULL));
	CU_ASSERT_EQUAL(hv->ops->cont(hv, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->reset(hv, &err), 0);
	take(hv, VMC_EV_RESET, NULL, &ev);
	CU_ASSERT_PTR_NULL(ev.device);
	CU_ASSERT_STRING_EQUAL(str(ev.detail),
			       "{\"guest\":false,\"reason\":\"host-qmp-system-reset\"}");
	vmc_hv_event_free(&ev);
	/* The recorded send-key arguments must be exactly ctrl, alt, delete. */
	CU_ASSERT_EQUAL(hv->ops->reboot(hv, &err), 0);
	take(hv, "VSERPORT_CHANGE", "agent-port", &ev);
	CU_ASSERT_STRING_EQUAL(str(ev.device), "agent-port");
	vmc_hv_event_free(&ev);
	hv->ops->flush_events(hv);
	CU_ASSERT_FALSE(hv->ops->seen_event(hv, VMC_EV_STOP, NULL));
	CU_ASSERT_EQUAL(hv->ops->alive(hv, &err), 0);
	finish(hv);
}

static void free_slots_of_a_launched_vm(void)
{
	struct vmc_hv *hv = start("free-slots");
	struct vmc_hv_slot *s = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(hv->ops->free_slots(hv, &s, &n, &err), 0);
	/* rp-agent and rp-net are taken; the rest in id order. */
	CU_ASSERT_EQUAL_FATAL(n, 8);
	for (size_t i = 0; i < n; i++) {
		char id[32], addr[32];

		snprintf(id, sizeof(id), "pciroot%zu", i + 1);
		snprintf(addr, sizeof(addr), "0000:00:%02zx.0", i + 1);
		CU_ASSERT_STRING_EQUAL(s[i].id, id);
		CU_ASSERT_STRING_EQUAL(s[i].address, addr);
	}
	vmc_hv_slots_free(s, n);
	finish(hv);
}

static void free_slots_of_an_attached_vm_before_enumeration(void)
{
	struct vmc_hv *hv = start("free-slots-attach");
	struct vmc_hv_slot *s = NULL;
	struct vmc_hv_mem m;
	size_t n = 0;

	/*
	 * port1 has hotplug=off, port2 holds a NIC, port4 a bridge, pcibr is
	 * no PCIe slot, one port has no id: left are the ioh3420 and two ports,
	 * port10 after port3. query-pci still knows where the ports sit.
	 */
	CU_ASSERT_EQUAL_FATAL(hv->ops->free_slots(hv, &s, &n, &err), 0);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT_STRING_EQUAL(s[0].id, "legacy1");
	CU_ASSERT_STRING_EQUAL(s[0].address, "0000:00:05.0");
	CU_ASSERT_STRING_EQUAL(s[1].id, "port3");
	CU_ASSERT_STRING_EQUAL(s[1].address, "0000:00:03.0");
	CU_ASSERT_STRING_EQUAL(s[2].id, "port10");
	CU_ASSERT_STRING_EQUAL(s[2].address, "0000:00:04.0");
	vmc_hv_slots_free(s, n);
	CU_ASSERT_EQUAL_FATAL(hv->ops->mem_info(hv, &m, &err), 0);
	CU_ASSERT_EQUAL(m.base_bytes, 256ull << 20);
	CU_ASSERT_EQUAL(m.max_bytes, 1ull << 30);
	CU_ASSERT_EQUAL(m.slots, 2);
	CU_ASSERT_EQUAL(m.used_slots, 0);
	finish(hv);
}

static void nic_cycle_releases_the_netdev(void)
{
	struct vmc_hv *hv = start("nic-cycle");
	struct vmc_hv_nic nic = { "nic1", "52:54:00:00:00:01", "pciroot1" };
	struct vmc_hv_nic taken = { "nic2", "52:54:00:00:00:02", "pciroot1" };
	struct vmc_hv_nic root = { "nic9", "52:54:00:00:00:09", "pcie.0" };
	struct vmc_hv_event ev;
	char *where = NULL;

	for (int round = 1; round <= 2; round++) {
		CU_ASSERT_EQUAL(hv->ops->nic_add(hv, &nic, &err), 0);
		CU_ASSERT_EQUAL(hv->ops->device_present(hv, "nic1", &where, &err), 1);
		CU_ASSERT_STRING_EQUAL(str(where),
				       "virtio-net-pci at 0000:01:00.0 behind pciroot1");
		free(where);
		/* Refused on the taken slot; its netdev is removed again (recorded). */
		if (round == 1) {
			CU_ASSERT_EQUAL(hv->ops->nic_add(hv, &taken, &err), VMC_QMP_ECOMMAND);
			CU_ASSERT_STRING_EQUAL(msg(),
					       "device_add nic2 on pciroot1: PCI: slot 0 "
					       "function 0 not available for virtio-net-pci, "
					       "in use by virtio-net-pci,id=nic1");
		}
		CU_ASSERT_EQUAL(hv->ops->nic_del(hv, "nic1", &err), 0);
		/* Not the earlier ".../nic1/virtio-backend": the NIC itself. */
		take(hv, VMC_EV_DEVICE_DELETED, "nic1", &ev);
		CU_ASSERT_STRING_EQUAL(str(ev.device), "nic1");
		CU_ASSERT_PTR_NOT_NULL(strstr(str(ev.detail), "\"device\":\"nic1\""));
		vmc_hv_event_free(&ev);
		CU_ASSERT_FALSE(hv->ops->seen_event(hv, VMC_EV_DEVICE_DELETED, NULL));
		/* netdev_del nic1-net comes next in the recording. */
		CU_ASSERT_EQUAL(hv->ops->device_present(hv, "nic1", NULL, &err), 0);
	}
	CU_ASSERT_EQUAL(hv->ops->nic_add(hv, &root, &err), VMC_QMP_ECOMMAND);
	CU_ASSERT_STRING_EQUAL(
		msg(), "device_add nic9 on pcie.0: Bus 'pcie.0' does not support hotplugging");
	finish(hv);
}

static void disk_cycle(void)
{
	struct vmc_hv *hv = start("disk");
	struct vmc_hv_disk d = { "disk1", "/tmp/vmcheck-lopOIf/disk1.qcow2", "qcow2", "vmc-disk1",
				 "pciroot2" };
	struct vmc_hv_event ev;

	CU_ASSERT_EQUAL(hv->ops->disk_add(hv, &d, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->disk_del(hv, "disk1", &err), 0);
	take(hv, VMC_EV_DEVICE_DELETED, "disk1", &ev);
	CU_ASSERT_STRING_EQUAL(str(ev.device), "disk1");
	vmc_hv_event_free(&ev);
	CU_ASSERT_EQUAL(hv->ops->disk_release(hv, "disk1", &err), 0);
	finish(hv);
}

static void dimm_cycle(void)
{
	struct vmc_hv *hv = start("memory");
	struct vmc_hv_dimm dimm = { "dimm1", 128ull << 20 };
	struct vmc_hv_event ev;
	struct vmc_hv_mem m;

	CU_ASSERT_EQUAL_FATAL(hv->ops->mem_info(hv, &m, &err), 0);
	CU_ASSERT_EQUAL(m.base_bytes, 512ull << 20);
	CU_ASSERT_EQUAL(m.plugged_bytes, 0);
	CU_ASSERT_EQUAL(m.max_bytes, 4ull << 30);
	CU_ASSERT_EQUAL(m.slots, 4);
	CU_ASSERT_EQUAL(m.used_slots, 0);
	CU_ASSERT_EQUAL(hv->ops->mem_add(hv, &dimm, &err), 0);
	CU_ASSERT_EQUAL_FATAL(hv->ops->mem_info(hv, &m, &err), 0);
	CU_ASSERT_EQUAL(m.plugged_bytes, 128ull << 20);
	CU_ASSERT_EQUAL(m.used_slots, 1);
	CU_ASSERT_EQUAL(hv->ops->mem_del(hv, "dimm1", &err), 0);
	/* The device of an ACPI_DEVICE_OST is in data.info. */
	take(hv, VMC_EV_ACPI_DEVICE_OST, "dimm1", &ev);
	CU_ASSERT_PTR_NOT_NULL(strstr(str(ev.detail), "\"source\":1"));
	vmc_hv_event_free(&ev);
	take(hv, VMC_EV_DEVICE_DELETED, "dimm1", &ev);
	vmc_hv_event_free(&ev);
	CU_ASSERT_TRUE(hv->ops->seen_event(hv, VMC_EV_ACPI_DEVICE_OST, "dimm1"));
	CU_ASSERT_EQUAL(hv->ops->mem_release(hv, "dimm1", &err), 0);
	CU_ASSERT_EQUAL_FATAL(hv->ops->mem_info(hv, &m, &err), 0);
	CU_ASSERT_EQUAL(m.plugged_bytes, 0);
	CU_ASSERT_EQUAL(m.used_slots, 0);
	finish(hv);
}

static void cpus_and_the_lapic_path(void)
{
	struct vmc_hv *hv = start("cpus");
	struct vmc_hv_cpu *c = NULL;
	struct vmc_hv_event ev;
	size_t n = 0;

	/* QEMU lists core 3 first; we sort by position. */
	CU_ASSERT_EQUAL_FATAL(hv->ops->cpus(hv, &c, &n, &err), 0);
	CU_ASSERT_EQUAL_FATAL(n, 4);
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_STRING_EQUAL(c[i].type, "qemu64-x86_64-cpu");
		CU_ASSERT_EQUAL(c[i].socket_id, 0);
		CU_ASSERT_EQUAL(c[i].die_id, -1);
		CU_ASSERT_EQUAL(c[i].core_id, (int)i);
		CU_ASSERT_EQUAL(c[i].thread_id, 0);
		CU_ASSERT_EQUAL(c[i].cpu_index, i ? -1 : 0);
		CU_ASSERT_EQUAL(c[i].qom_path == NULL, i != 0);
	}
	CU_ASSERT_STRING_EQUAL(str(c[0].qom_path), "/machine/unattached/device[0]");
	struct vmc_hv_vcpu add = { "cpu1", &c[1] };

	CU_ASSERT_EQUAL(hv->ops->cpu_add(hv, &add, &err), 0);
	vmc_hv_cpus_free(c, n);
	CU_ASSERT_EQUAL_FATAL(hv->ops->cpus(hv, &c, &n, &err), 0);
	CU_ASSERT_EQUAL_FATAL(n, 4);
	CU_ASSERT_STRING_EQUAL(str(c[1].qom_path), "/machine/peripheral/cpu1");
	CU_ASSERT_EQUAL(c[1].cpu_index, 1);
	vmc_hv_cpus_free(c, n);
	take(hv, VMC_EV_ACPI_DEVICE_OST, "cpu1", &ev);
	vmc_hv_event_free(&ev);
	CU_ASSERT_EQUAL(hv->ops->cpu_del(hv, "cpu1", &err), 0);
	/* Only ".../cpu1/lapic" names it: that must be enough. */
	take(hv, VMC_EV_DEVICE_DELETED, "cpu1", &ev);
	CU_ASSERT_STRING_EQUAL(str(ev.device), "cpu1");
	CU_ASSERT_STRING_EQUAL(str(ev.detail), "{\"path\":\"/machine/peripheral/cpu1/lapic\"}");
	vmc_hv_event_free(&ev);
	finish(hv);
}

/* arm virt has no CPU hotplug: -ENOTSUP, in QEMU's own words (7.2's, and 8.0's on). */
static void no_cpu_hotplug_is_not_supported(void)
{
	static const char *const says[][2] = {
		{ "cpus-arm", "The feature 'query-hotpluggable-cpus' is not enabled" },
		{ "cpus-arm-qemu8", "machine does not support hot-plugging CPUs" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(says); i++) {
		struct vmc_hv *hv = start(says[i][0]);
		struct vmc_hv_cpu *c = NULL;
		char want[128];
		size_t n = 0;

		CU_ASSERT_EQUAL(hv->ops->cpus(hv, &c, &n, &err), -ENOTSUP);
		CU_ASSERT_EQUAL(err.code, -ENOTSUP);
		snprintf(want, sizeof(want), "query-hotpluggable-cpus: %s", says[i][1]);
		CU_ASSERT_STRING_EQUAL(msg(), want);
		CU_ASSERT_PTR_NULL(c);
		CU_ASSERT_EQUAL(n, 0);
		finish(hv);
	}
}

/* Any other refusal is QEMU refusing: a failure, not "not offered". */
static void a_cpu_query_refused_fails(void)
{
	struct vmc_hv *hv = start("cpus-refused");
	struct vmc_hv_cpu *c = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL(hv->ops->cpus(hv, &c, &n, &err), VMC_QMP_ECOMMAND);
	CU_ASSERT_STRING_EQUAL(msg(), "query-hotpluggable-cpus: Invalid CPU topology");
	CU_ASSERT_PTR_NULL(c);
	finish(hv);
}

/* What query-current-machine says of suspend to RAM, in QEMU's words: arm virt no, q35 yes. */
static void suspend_support_is_qemus_answer(void)
{
	static const struct {
		const char *transcript;
		int offered;
	} m[] = { { "machine-arm", 0 }, { "machine-q35", 1 } };

	for (size_t i = 0; i < ARRAY_SIZE(m); i++) {
		struct vmc_hv *hv = start(m[i].transcript);
		char says[160] = "", want[160];

		CU_ASSERT_EQUAL(hv->ops->suspend_support(hv, says, sizeof(says), &err),
				m[i].offered);
		snprintf(want, sizeof(want),
			 "QEMU: query-current-machine says wakeup-suspend-support %s",
			 m[i].offered ? "true" : "false");
		CU_ASSERT_STRING_EQUAL(says, want);
		CU_ASSERT_STRING_EQUAL(msg(), "");
		finish(hv);
	}
}

static void attached_qemu_gone(void)
{
	struct vmc_hv *hv = start("gone");
	struct vmc_hv_process proc;

	/* alive() does not wait: let the fake close first. */
	CU_ASSERT_STRING_EQUAL(replay_finish(&rp), "");
	CU_ASSERT_EQUAL(hv->ops->alive(hv, &err), -ESRCH);
	CU_ASSERT_STRING_EQUAL(msg(),
			       "QEMU closed its QMP socket; last QMP command: qmp_capabilities");
	CU_ASSERT_EQUAL(hv->ops->reset(hv, &err), -EPIPE);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg(), "system_reset: qmp fake: "));
	CU_ASSERT_PTR_NULL(vmc_qemu_workdir(hv));
	/* Not our child: its process is not known. */
	vmc_hv_process_get(hv, &proc);
	CU_ASSERT_EQUAL(proc.pid, -1);
	CU_ASSERT_EQUAL(proc.started_ns, 0);
	hv->ops->free(hv);
	vmc_error_clear(&err);
}

/* Attached (no arch given), the backend asks QEMU: the target decides. */
static void attach_learns_the_arch_from_query_target(void)
{
	struct vmc_qmp *q = NULL;
	struct vmc_hv *hv = NULL;
	struct vmc_hv_cpu *c = NULL;
	size_t n = 0;
	int fd;

	vmc_error_clear(&err);
	replay_start(&rp, "target-aarch64", &fd);
	CU_ASSERT_EQUAL_FATAL(vmc_qmp_open_fd(fd, "fake", 2000, &q, &err), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_hv_qmp_new(q, "vserial:/x/agent.sock", NULL, NULL, &hv, &err), 0);
	CU_ASSERT_PTR_EQUAL(vmc_hv_arch(hv), &vmc_arch_aarch64);
	/* arm virt in QEMU 7.2 has no CPU hotplug: QEMU's own words reach the check. */
	CU_ASSERT_EQUAL(hv->ops->cpus(hv, &c, &n, &err), -ENOTSUP);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT_STRING_EQUAL(msg(), "query-hotpluggable-cpus: The feature "
				      "'query-hotpluggable-cpus' is not enabled");
	finish(hv);
}

static void attach_refuses_a_target_it_does_not_drive(void)
{
	struct vmc_qmp *q = NULL;
	struct vmc_hv *hv = NULL;
	int fd;

	vmc_error_clear(&err);
	replay_start(&rp, "target-other", &fd);
	CU_ASSERT_EQUAL_FATAL(vmc_qmp_open_fd(fd, "fake", 2000, &q, &err), 0);
	CU_ASSERT_EQUAL(vmc_hv_qmp_new(q, NULL, NULL, NULL, &hv, &err), -ENOTSUP);
	CU_ASSERT_PTR_NULL(hv);
	CU_ASSERT_STRING_EQUAL(msg(), "query-target: QEMU's target is \"riscv64\": vmcheck "
				      "drives x86_64 and aarch64 guests");
	/* The connection went with the backend: the fake saw nothing more. */
	CU_ASSERT_STRING_EQUAL(replay_finish(&rp), "");
	vmc_error_clear(&err);
}

/* Launched, the config's arch stands: QEMU is not asked (the fake fails any command). */
static void a_launched_vm_keeps_the_configured_arch(void)
{
	struct vmc_hv *hv = start("greeting-only");

	CU_ASSERT_PTR_EQUAL(vmc_hv_arch(hv), &vmc_arch_x86_64);
	CU_ASSERT_PTR_EQUAL(hv->ops->arch(hv), &vmc_arch_x86_64);
	finish(hv);
}

VMC_SUITE(hv_qmp, NULL, NULL, VMC_TEST(lifecycle_commands), VMC_TEST(free_slots_of_a_launched_vm),
	  VMC_TEST(free_slots_of_an_attached_vm_before_enumeration),
	  VMC_TEST(nic_cycle_releases_the_netdev), VMC_TEST(disk_cycle), VMC_TEST(dimm_cycle),
	  VMC_TEST(cpus_and_the_lapic_path), VMC_TEST(no_cpu_hotplug_is_not_supported),
	  VMC_TEST(a_cpu_query_refused_fails), VMC_TEST(attached_qemu_gone),
	  VMC_TEST(attach_learns_the_arch_from_query_target),
	  VMC_TEST(attach_refuses_a_target_it_does_not_drive),
	  VMC_TEST(a_launched_vm_keeps_the_configured_arch),
	  VMC_TEST(suspend_support_is_qemus_answer))
