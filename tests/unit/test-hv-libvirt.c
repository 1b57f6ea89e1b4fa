/* SPDX-License-Identifier: MIT */
/*
 * The libvirt backend without a daemon: XML generation and live-XML reading,
 * and argument/error handling and events against libvirt's built-in
 * test:///default driver (its running domain "test").
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <libvirt/libvirt.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "clock.h"
#include "hv-libvirt.h"
#include "hv-libvirt-xml.h"

/* A live XML as libvirt 9.0 shows it: port 1 taken by a NIC, port 3 hotplug off. */
static const char live_xml[] =
	"<domain type='qemu' id='3'><name>vm</name>"
	"<maxMemory slots='4' unit='KiB'>4194304</maxMemory>"
	"<memory unit='KiB'>655360</memory>"
	"<vcpu placement='static' current='2'>4</vcpu>"
	"<vcpus><vcpu id='0' enabled='yes' hotpluggable='no'/><vcpu id='1' enabled='no' "
	"hotpluggable='yes'/><vcpu id='2' enabled='yes' hotpluggable='yes'/>"
	"<vcpu id='3' enabled='no' hotpluggable='yes'/></vcpus>"
	"<cpu><topology sockets='1' dies='1' cores='4' threads='1'/></cpu>"
	"<devices>"
	"<disk type='file' device='disk'><target dev='vda' bus='virtio'/><alias name='ua-disk1'/>"
	"<address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></disk>"
	"<controller type='pci' index='1' model='pcie-root-port'><alias name='ua-pciroot1'/>"
	"<address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/></controller>"
	"<controller type='pci' index='2' model='pcie-root-port'><alias name='ua-pciroot2'/>"
	"<address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x1'/></controller>"
	"<controller type='pci' index='3' model='pcie-root-port'><target hotplug='off'/>"
	"<alias name='ua-pciroot3'/>"
	"<address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x2'/></controller>"
	"<controller type='pci' index='4' model='pcie-root-port'><alias name='pci.4'/>"
	"<address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x3'/></controller>"
	"<interface type='user'><mac address='52:54:00:00:00:01'/><alias name='ua-nic1'/>"
	"<address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></interface>"
	"<channel type='unix'><source mode='bind' path='/run/x/org.vmcheck.agent.0'/>"
	"<target type='virtio' name='org.vmcheck.agent.0'/></channel>"
	"<memory model='dimm'><target><size unit='KiB'>131072</size><node>0</node></target>"
	"<alias name='ua-dimm1'/></memory>"
	"</devices></domain>";

static void live_xml_is_read(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_libvirt_xml *x = NULL;
	struct vmc_hv_slot *slots = NULL;
	struct vmc_hv_cpu *cpus = NULL;
	struct vmc_hv_mem m;
	size_t n = 0;
	unsigned bus = 0;
	char *where = NULL, *dev = NULL, *path, vd[8];

	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_parse(live_xml, &x, &err), 0);
	/* pciroot1 has the NIC; pciroot3 has hotplug off; pciroot2 is taken by disk1 (bus 2). */
	CU_ASSERT_EQUAL(vmc_libvirt_xml_free_slots(x, &slots, &n, &err), 0);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_STRING_EQUAL(slots[0].id, "pci.4");
	CU_ASSERT_STRING_EQUAL(slots[0].address, "0000:00:02.3");
	vmc_hv_slots_free(slots, n);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_port_bus(x, "pciroot3", &bus), 0);
	CU_ASSERT_EQUAL(bus, 3);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_port_bus(x, "pciroot9", &bus), -ENOENT);

	CU_ASSERT_EQUAL(vmc_libvirt_xml_mem(x, &m, &err), 0);
	CU_ASSERT_EQUAL(m.max_bytes, 4096ULL << 20);
	CU_ASSERT_EQUAL(m.plugged_bytes, 128ULL << 20);
	CU_ASSERT_EQUAL(m.base_bytes, 512ULL << 20);
	CU_ASSERT_EQUAL(m.slots, 4);
	CU_ASSERT_EQUAL(m.used_slots, 1);

	CU_ASSERT_EQUAL(vmc_libvirt_xml_cpus(x, &cpus, &n, &err), 0);
	CU_ASSERT_EQUAL_FATAL(n, 4);
	CU_ASSERT_EQUAL(cpus[2].core_id, 2);
	CU_ASSERT_EQUAL(cpus[2].cpu_index, 2);
	CU_ASSERT_STRING_EQUAL(cpus[2].qom_path, "vcpu2");
	CU_ASSERT_PTR_NULL(cpus[1].qom_path);
	CU_ASSERT_EQUAL(cpus[1].cpu_index, -1);
	vmc_hv_cpus_free(cpus, n);

	path = vmc_libvirt_xml_channel_path(x, VMC_LIBVIRT_XML_AGENT_CHANNEL);
	CU_ASSERT_STRING_EQUAL(path, "/run/x/org.vmcheck.agent.0");
	free(path);
	CU_ASSERT_PTR_NULL(vmc_libvirt_xml_channel_path(x, "org.qemu.guest_agent.0"));

	CU_ASSERT_EQUAL(vmc_libvirt_xml_device(x, "nic1", &where, &dev), 1);
	CU_ASSERT_STRING_EQUAL(where, "interface on pci bus 1 slot 0");
	CU_ASSERT_PTR_NOT_NULL(strstr(dev, "52:54:00:00:00:01"));
	free(where);
	free(dev);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_device(x, "nic2", NULL, NULL), 0);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_free_vd(x, vd), 0);
	CU_ASSERT_STRING_EQUAL(vd, "vdb");
	vmc_libvirt_xml_free(x);

	CU_ASSERT_EQUAL(vmc_libvirt_xml_parse("<domain>", &x, &err), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(err.msg);
	vmc_error_clear(&err);
}

static void generated_xml_escapes_and_reads_back(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_libvirt_xml_domain d = { .name = "a'<b",
					    .type = "qemu",
					    .kernel = "/k",
					    .initrd = "/i",
					    .append = "x=\"1\" & y",
					    .mem_mb = 512,
					    .maxmem_mb = 4096,
					    .slots = 4,
					    .cpus = 1,
					    .maxcpus = 4,
					    .ports = 2 };
	struct vmc_hv_nic nic = { .id = "nic1", .mac = "52:54:00:12:34:56", .slot = "pciroot1" };
	struct vmc_libvirt_xml *x = NULL;
	struct vmc_hv_mem m;
	unsigned bus = 0;
	char *xml = NULL;

	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_domain(&d, &xml, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(xml, "<name>a&apos;&lt;b</name>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(xml, "x=&quot;1&quot; &amp; y"));
	CU_ASSERT_PTR_NOT_NULL(strstr(xml, "<suspend-to-mem enabled='yes'/>"));
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_parse(xml, &x, &err), 0);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_port_bus(x, "pciroot2", &bus), 0);
	CU_ASSERT_EQUAL(bus, 2);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_mem(x, &m, &err), 0);
	CU_ASSERT_EQUAL(m.slots, 4);
	CU_ASSERT_EQUAL(m.base_bytes, 512ULL << 20);
	vmc_libvirt_xml_free(x);
	free(xml);

	d.cpus = 5;
	CU_ASSERT_EQUAL(vmc_libvirt_xml_domain(&d, &xml, &err), -EINVAL);
	vmc_error_clear(&err);

	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_nic(&nic, 1, NULL, &xml), 0);
	CU_ASSERT_STRING_EQUAL(xml, "<interface type='user'><mac address='52:54:00:12:34:56'/>"
				    "<model type='virtio'/><alias name='ua-nic1'/>"
				    "<address type='pci' domain='0x0000' bus='0x01' slot='0x00' "
				    "function='0x0'/></interface>");
	free(xml);
}

/* The x86_64 domain as vmcheck made it before aarch64 came: it must not change. */
static const char x86_xml[] =
	"<domain type='qemu'>\n"
	"  <name>vm</name>\n"
	"  <memory unit='MiB'>512</memory>\n"
	"  <maxMemory slots='4' unit='MiB'>4096</maxMemory>\n"
	"  <vcpu current='1'>2</vcpu>\n"
	"  <vcpus>\n"
	"    <vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>\n"
	"    <vcpu id='1' enabled='no' hotpluggable='yes' order='2'/>\n"
	"  </vcpus>\n"
	"  <os>\n"
	"    <type arch='x86_64' machine='q35'>hvm</type>\n"
	"    <kernel>/k/vmlinuz</kernel>\n"
	"    <initrd>/k/initrd.img</initrd>\n"
	"    <cmdline>console=ttyS0</cmdline>\n"
	"  </os>\n"
	"  <features><acpi/></features>\n"
	"  <cpu mode='custom' match='exact' check='none'>\n"
	"    <model fallback='forbid'>qemu64</model>\n"
	"    <topology sockets='1' dies='1' cores='2' threads='1'/>\n"
	"    <numa><cell id='0' cpus='0-1' memory='512' unit='MiB'/></numa>\n"
	"  </cpu>\n"
	"  <pm><suspend-to-mem enabled='yes'/><suspend-to-disk enabled='no'/></pm>\n"
	"  <on_poweroff>destroy</on_poweroff>\n"
	"  <on_reboot>restart</on_reboot>\n"
	"  <on_crash>destroy</on_crash>\n"
	"  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>\n"
	"  <devices>\n"
	"    <controller type='pci' index='0' model='pcie-root'/>\n"
	"    <controller type='pci' index='1' model='pcie-root-port'><alias name='ua-pciroot1'/></controller>\n"
	"    <controller type='pci' index='2' model='pcie-root-port'><alias name='ua-pciroot2'/></controller>\n"
	"    <controller type='pci' index='3' model='pcie-root-port'><alias name='ua-rp-agent'/></controller>\n"
	"    <controller type='virtio-serial' index='0'><address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></controller>\n"
	"    <controller type='usb' model='none'/>\n"
	"    <memballoon model='none'/>\n"
	"    <panic model='isa'/>\n"
	"    <serial type='file'><source path='/w/console.log'/><target port='0'/></serial>\n"
	"    <channel type='unix'><source mode='bind'/><target type='virtio' name='org.vmcheck.agent.0'/></channel>\n"
	"    <channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\n"
	"  </devices>\n"
	"</domain>\n";

/* Where the crash disk goes in it, and what it adds. */
#define X86_BEFORE_CRASH "    <panic model='isa'/>\n"
static const char x86_crash[] =
	"    <controller type='pci' index='4' model='pcie-root-port'><alias name='ua-rp-crash'/>"
	"</controller>\n"
	"    <disk type='file' device='disk'><driver name='qemu' type='raw'/>"
	"<source file='/p/crash-disk.img'/><target dev='vda' bus='virtio'/>"
	"<serial>vmcheck-crash</serial><alias name='ua-crash-disk'/><address type='pci' "
	"domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></disk>\n";

/* The x86_64 domain x86_xml is made of; each test changes what it is about. */
#define X86_DOMAIN                                                                               \
	{                                                                                        \
		.name = "vm", .type = "qemu", .kernel = "/k/vmlinuz", .initrd = "/k/initrd.img", \
		.append = "console=ttyS0", .console_log = "/w/console.log", .mem_mb = 512,       \
		.maxmem_mb = 4096, .slots = 4, .cpus = 1, .maxcpus = 2, .ports = 2               \
	}

static void x86_domain_xml_as_before(void)
{
	struct vmc_libvirt_xml_domain d = X86_DOMAIN;
	struct vmc_error err = VMC_ERROR_INIT;
	const char *cut = strstr(x86_xml, X86_BEFORE_CRASH);
	char *xml = NULL, *want = NULL;

	CU_ASSERT_EQUAL(vmc_libvirt_xml_domain(&d, &xml, &err), 0);
	fx_str_is(xml, x86_xml, "x86_64 domain XML");
	d.arch = &vmc_arch_x86_64;
	CU_ASSERT_EQUAL(vmc_libvirt_xml_domain(&d, &xml, &err), 0);
	fx_str_is(xml, x86_xml, "x86_64 domain XML, arch given");
	/* The crash disk is all a crash disk adds, behind the port after the agent's. */
	d.crash_disk = "/p/crash-disk.img";
	CU_ASSERT_PTR_NOT_NULL_FATAL(cut);
	cut += strlen(X86_BEFORE_CRASH);
	CU_ASSERT_FATAL(asprintf(&want, "%.*s%s%s", (int)(cut - x86_xml), x86_xml, x86_crash, cut) >
			0);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_domain(&d, &xml, &err), 0);
	fx_str_is(xml, want, "x86_64 domain XML with the crash disk");
	free(want);
}

/*
 * --image: the root disk on pcie.0 at its fixed slot, before the crash
 * disk (whose target moves to vdb); it takes none of the hotplug ports.
 * Its overlay volume names the backing file and format.
 */
static void image_domain_xml(void)
{
	struct vmc_libvirt_xml_domain d = X86_DOMAIN;
	static const char root[] =
		"    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
		"<source file='/p/root.qcow2'/><target dev='vda' bus='virtio'/>"
		"<serial>vmcheck-root</serial><alias name='ua-root-disk'/><address type='pci' "
		"domain='0x0000' bus='0x00' slot='0x10' function='0x0'/></disk>\n";
	struct vmc_error err = VMC_ERROR_INIT;
	const char *cut = strstr(x86_xml, X86_BEFORE_CRASH);
	struct vmc_libvirt_xml *x = NULL;
	struct vmc_hv_slot *slots = NULL;
	char *xml = NULL, *want = NULL, *crash = strdup(x86_crash), *vol = NULL;
	char *vda;
	size_t n = 0;

	d.crash_disk = "/p/crash-disk.img";
	d.root_disk = "/p/root.qcow2";
	CU_ASSERT_PTR_NOT_NULL_FATAL(cut);
	CU_ASSERT_PTR_NOT_NULL_FATAL(crash);
	vda = strstr(crash, "dev='vda'");
	CU_ASSERT_PTR_NOT_NULL_FATAL(vda);
	vda[strlen("dev='vd")] = 'b';
	cut += strlen(X86_BEFORE_CRASH);
	CU_ASSERT_FATAL(
		asprintf(&want, "%.*s%s%s%s", (int)(cut - x86_xml), x86_xml, root, crash, cut) > 0);
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_domain(&d, &xml, &err), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_parse(xml, &x, &err), 0);
	fx_str_is(xml, want, "x86_64 domain XML with a root disk");
	CU_ASSERT_EQUAL(vmc_libvirt_xml_free_slots(x, &slots, &n, &err), 0);
	CU_ASSERT_EQUAL(n, 2);
	vmc_hv_slots_free(slots, n);
	vmc_libvirt_xml_free(x);
	free(want);
	free(crash);

	CU_ASSERT_EQUAL(vmc_libvirt_xml_overlay("root.qcow2", 2147483648ULL, "/i/a'b.img", "raw",
						&vol),
			0);
	fx_str_is(vol,
		  "<volume><name>root.qcow2</name><capacity unit='bytes'>2147483648</capacity>"
		  "<target><format type='qcow2'/></target><backingStore><path>/i/a&apos;b.img"
		  "</path><format type='raw'/></backingStore></volume>",
		  "overlay volume XML");
}

/*
 * A daemon on another host: the kit is booted from volumes of the run's
 * pool and the serial console is a pty (libvirt streams it to this host);
 * nothing else of the domain changes.
 */
static void remote_domain_xml(void)
{
	struct vmc_libvirt_xml_domain d = X86_DOMAIN;
	static const char *const swap[][2] = {
		{ "<kernel>/k/vmlinuz</kernel>", "<kernel>/var/tmp/vmcheck-1-ab/vmlinuz</kernel>" },
		{ "<initrd>/k/initrd.img</initrd>",
		  "<initrd>/var/tmp/vmcheck-1-ab/initrd.img</initrd>" },
		{ "<serial type='file'><source path='/w/console.log'/><target port='0'/></serial>",
		  "<serial type='pty'><target port='0'/></serial>" },
	};
	struct vmc_error err = VMC_ERROR_INIT;
	char *want = strdup(x86_xml), *xml = NULL;

	d.kernel = "/var/tmp/vmcheck-1-ab/vmlinuz";
	d.initrd = "/var/tmp/vmcheck-1-ab/initrd.img";
	d.console_log = NULL;
	for (size_t i = 0; want && i < ARRAY_SIZE(swap); i++) {
		const char *at = strstr(want, swap[i][0]);
		char *next = NULL;

		CU_ASSERT_PTR_NOT_NULL_FATAL(at);
		CU_ASSERT_FATAL(asprintf(&next, "%.*s%s%s", (int)(at - want), want, swap[i][1],
					 at + strlen(swap[i][0])) > 0);
		free(want);
		want = next;
	}
	CU_ASSERT_EQUAL(vmc_libvirt_xml_domain(&d, &xml, &err), 0);
	fx_str_is(xml, want, "x86_64 domain XML of a remote daemon");
	free(want);
}

/* An aarch64 domain: UEFI without secure boot, GICv3, cortex-a57, no <pm>, no panic device. */
static const char a64_xml[] =
	"<domain type='qemu'>\n"
	"  <name>vm</name>\n"
	"  <memory unit='MiB'>512</memory>\n"
	"  <maxMemory slots='4' unit='MiB'>4096</maxMemory>\n"
	"  <vcpu current='1'>2</vcpu>\n"
	"  <vcpus>\n"
	"    <vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>\n"
	"    <vcpu id='1' enabled='no' hotpluggable='yes' order='2'/>\n"
	"  </vcpus>\n"
	"  <os firmware='efi'>\n"
	"    <type arch='aarch64' machine='virt'>hvm</type>\n"
	"    <firmware><feature enabled='no' name='secure-boot'/><feature enabled='no' name='enrolled-keys'/></firmware>\n"
	"    <nvram>/p/VARS.fd</nvram>\n"
	"    <kernel>/k/vmlinuz</kernel>\n"
	"    <initrd>/k/initrd.img</initrd>\n"
	"    <cmdline>console=ttyAMA0</cmdline>\n"
	"  </os>\n"
	"  <features><acpi/><gic version='3'/></features>\n"
	"  <cpu mode='custom' match='exact' check='none'>\n"
	"    <model fallback='forbid'>cortex-a57</model>\n"
	"    <topology sockets='1' dies='1' cores='2' threads='1'/>\n"
	"    <numa><cell id='0' cpus='0-1' memory='512' unit='MiB'/></numa>\n"
	"  </cpu>\n"
	"  <on_poweroff>destroy</on_poweroff>\n"
	"  <on_reboot>restart</on_reboot>\n"
	"  <on_crash>destroy</on_crash>\n"
	"  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>\n"
	"  <devices>\n"
	"    <emulator>/usr/bin/qemu-system-aarch64</emulator>\n"
	"    <controller type='pci' index='0' model='pcie-root'/>\n"
	"    <controller type='pci' index='1' model='pcie-root-port'><alias name='ua-pciroot1'/></controller>\n"
	"    <controller type='pci' index='2' model='pcie-root-port'><alias name='ua-pciroot2'/></controller>\n"
	"    <controller type='pci' index='3' model='pcie-root-port'><alias name='ua-rp-agent'/></controller>\n"
	"    <controller type='virtio-serial' index='0'><address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></controller>\n"
	"    <controller type='usb' model='none'/>\n"
	"    <memballoon model='none'/>\n"
	"    <controller type='pci' index='4' model='pcie-root-port'><alias name='ua-rp-crash'/></controller>\n"
	"    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/p/crash-disk.img'/><target dev='vda' bus='virtio'/><serial>vmcheck-crash</serial><alias name='ua-crash-disk'/><address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></disk>\n"
	"    <serial type='file'><source path='/w/console.log'/><target port='0'/></serial>\n"
	"    <channel type='unix'><source mode='bind'/><target type='virtio' name='org.vmcheck.agent.0'/></channel>\n"
	"    <channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\n"
	"  </devices>\n"
	"</domain>\n";

static void aarch64_domain_xml(void)
{
	struct vmc_libvirt_xml_domain d = { .name = "vm",
					    .type = "qemu",
					    .kernel = "/k/vmlinuz",
					    .initrd = "/k/initrd.img",
					    .append = "console=ttyAMA0",
					    .console_log = "/w/console.log",
					    .mem_mb = 512,
					    .maxmem_mb = 4096,
					    .slots = 4,
					    .cpus = 1,
					    .maxcpus = 2,
					    .ports = 2,
					    .arch = &vmc_arch_aarch64,
					    .emulator = "/usr/bin/qemu-system-aarch64",
					    .nvram = "/p/VARS.fd",
					    .crash_disk = "/p/crash-disk.img" };
	static const struct vmc_arch riscv = { .name = "riscv64" };
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_libvirt_xml *x = NULL;
	struct vmc_hv_slot *slots = NULL;
	struct vmc_hv_mem m;
	char *xml = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_domain(&d, &xml, &err), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_parse(xml, &x, &err), 0);
	fx_str_is(xml, a64_xml, "aarch64 domain XML");
	fx_str_is(vmc_libvirt_xml_os_arch(x), "aarch64", "<os><type arch>");
	/* The ports of the agent and the crash disk are taken: two free ones. */
	CU_ASSERT_EQUAL(vmc_libvirt_xml_free_slots(x, &slots, &n, &err), 0);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_STRING_EQUAL(slots[0].id, "pciroot1");
	CU_ASSERT_STRING_EQUAL(slots[1].id, "pciroot2");
	vmc_hv_slots_free(slots, n);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_mem(x, &m, &err), 0);
	CU_ASSERT_EQUAL(m.base_bytes, 512ULL << 20);
	CU_ASSERT_EQUAL(m.slots, 4);
	vmc_libvirt_xml_free(x);

	/* Under KVM (an arm host), the host's CPU. */
	d.type = "kvm";
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_domain(&d, &xml, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(xml, "<domain type='kvm'>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(xml,
				      "  <cpu mode='host-passthrough' check='none'>\n"
				      "    <topology sockets='1' dies='1' cores='2' threads='1'/>\n"
				      "    <numa><cell id='0' cpus='0-1' memory='512' "
				      "unit='MiB'/></numa>\n  </cpu>\n"));
	CU_ASSERT_PTR_NULL(strstr(xml, "cortex-a57"));
	free(xml);
	d.type = "qemu";

	/* Without a UEFI variable store given, libvirt places it: no <nvram>. */
	d.nvram = NULL;
	d.emulator = NULL;
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_domain(&d, &xml, &err), 0);
	CU_ASSERT_PTR_NULL(strstr(xml, "<nvram"));
	CU_ASSERT_PTR_NULL(strstr(xml, "<emulator"));
	CU_ASSERT_PTR_NOT_NULL(strstr(xml, "<os firmware='efi'>"));
	free(xml);

	d.arch = &riscv;
	CU_ASSERT_EQUAL(vmc_libvirt_xml_domain(&d, &xml, &err), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err.msg, "domain vm: no domain XML for a riscv64 guest");
	vmc_error_clear(&err);
}

static void domain_caps_and_arch_are_read(void)
{
	static const char caps[] =
		"<domainCapabilities><path>/usr/bin/qemu-system-aarch64</path><domain>qemu</domain>"
		"<machine>virt-7.2</machine><arch>aarch64</arch></domainCapabilities>";
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_libvirt_xml *x = NULL;

	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_parse(caps, &x, &err), 0);
	fx_str_is(vmc_libvirt_xml_domcaps_emulator(x), "/usr/bin/qemu-system-aarch64",
		  "domcaps <path>");
	CU_ASSERT_PTR_NULL(vmc_libvirt_xml_os_arch(x));
	vmc_libvirt_xml_free(x);
	/* live_xml has no <os>: a domain someone else defined may say nothing. */
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_parse(live_xml, &x, &err), 0);
	CU_ASSERT_PTR_NULL(vmc_libvirt_xml_os_arch(x));
	CU_ASSERT_PTR_NULL(vmc_libvirt_xml_domcaps_emulator(x));
	vmc_libvirt_xml_free(x);
}

static void test_driver_errors(void)
{
	struct vmc_libvirt_config c = { .uri = "test:///default", .domain = "nope" };
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv *hv = NULL;

	CU_ASSERT_EQUAL(vmc_libvirt_open(&c, &hv, &err), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(
		strstr(err.msg, "domain nope: looking up the domain: libvirt error 42/"));
	vmc_error_clear(&err);
	/* The test domain has no agent channel. */
	c.domain = "test";
	CU_ASSERT_EQUAL(vmc_libvirt_open(&c, &hv, &err), -ENODEV);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no unix channel org.vmcheck.agent.0"));
	vmc_error_clear(&err);
	c.uri = "qemu:///system?socket=/nonexistent/sock";
	CU_ASSERT_EQUAL(vmc_libvirt_open(&c, &hv, &err), -ECONNREFUSED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "libvirt error 38/"));
	vmc_error_clear(&err);
}

static void test_driver_ops_and_events(void)
{
	struct vmc_libvirt_config c = { .uri = "test:///default",
					.domain = "test",
					.agent = "vserial:/x" };
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_nic nic = { .id = "nic1", .mac = "52:54:00:12:34:56", .slot = "pciroot9" };
	struct vmc_hv_event ev = { 0 };
	struct vmc_hv *hv = NULL;

	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_open(&c, &hv, &err), 0);
	CU_ASSERT_STRING_EQUAL(hv->ops->agent_spec(hv), "vserial:/x");
	/* The test domain is i686, which vmcheck does not know: x86_64, and the transcript says so. */
	CU_ASSERT_PTR_EQUAL(vmc_hv_arch(hv), &vmc_arch_x86_64);
	CU_ASSERT_EQUAL(hv->ops->alive(hv, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->stop(hv, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->wait_event(hv, VMC_EV_STOP, NULL, vmc_mono_ns() + 2000000000ULL,
					    &ev, &err),
			0);
	CU_ASSERT_PTR_NOT_NULL(ev.detail && strstr(ev.detail, "lifecycle SUSPENDED"));
	vmc_hv_event_free(&ev);
	/* Suspending twice is libvirt's error, with its code. */
	CU_ASSERT(hv->ops->stop(hv, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "virDomainSuspend: libvirt error "));
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(hv->ops->cont(hv, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->wait_event(hv, VMC_EV_RESUME, NULL, vmc_mono_ns() + 2000000000ULL,
					    &ev, &err),
			0);
	vmc_hv_event_free(&ev);
	CU_ASSERT_EQUAL(hv->ops->wait_event(hv, VMC_EV_RESET, NULL, vmc_mono_ns() + 50000000ULL,
					    &ev, &err),
			-ETIMEDOUT);
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(hv->ops->nic_add(hv, &nic, &err), -ENOENT);
	CU_ASSERT_STRING_EQUAL(err.msg,
			       "attach-device nic1: the domain has no pcie-root-port pciroot9");
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(hv->ops->cpu_del(hv, "vcpu1", &err), -ENOENT);
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(hv->ops->nic_del(hv, "nic7", &err), -ENOENT);
	vmc_error_clear(&err);
	hv->ops->free(hv);
}

/* Two equal DIMMs as libvirt 9.0 shows them live, and one of another domain's, not placed. */
static const char dimm_xml[] =
	"<domain type='qemu'><name>vm</name><devices>"
	"<memory model='dimm'><target><size unit='KiB'>131072</size><node>0</node></target>"
	"<alias name='ua-dimm1'/><address type='dimm' slot='0' base='0x100000000'/></memory>"
	"<memory model='dimm'><target><size unit='KiB'>131072</size><node>0</node></target>"
	"<alias name='ua-dimm2'/><address type='dimm' slot='1' base='0x108000000'/></memory>"
	"<memory model='dimm'><target><size unit='MiB'>256</size></target>"
	"<alias name='dimm0'/></memory>"
	"</devices></domain>";

static void dimm_info_from_the_live_xml(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_dimm_info di = { 0 };
	struct vmc_libvirt_xml *x = NULL;

	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_parse(dimm_xml, &x, &err), 0);
	/* Equal sizes: only the alias tells them apart. */
	CU_ASSERT_EQUAL(vmc_libvirt_xml_dimm_info(x, "dimm2", &di, &err), 0);
	CU_ASSERT_EQUAL(di.addr, 0x108000000ULL);
	CU_ASSERT_EQUAL(di.size, 128ULL << 20);
	CU_ASSERT_EQUAL(di.slot, 1);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_dimm_info(x, "dimm1", &di, &err), 0);
	CU_ASSERT_EQUAL(di.addr, 0x100000000ULL);
	CU_ASSERT_EQUAL(di.slot, 0);
	/* Not placed (no <address type='dimm'>): said, @out untouched. */
	CU_ASSERT_EQUAL(vmc_libvirt_xml_dimm_info(x, "dimm0", &di, &err), -ENODATA);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "no <address type='dimm'"));
	CU_ASSERT_EQUAL(di.addr, 0x100000000ULL);
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_dimm_info(x, "dimm9", &di, &err), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "alias ua-dimm9"));
	vmc_error_clear(&err);
	vmc_libvirt_xml_free(x);
}

static const char nics_xml[] =
	"<domain type='qemu'><name>vm</name><devices>"
	"<interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/>"
	"<alias name='ua-nic1'/></interface>"
	"<interface type='user'><ip family='ipv4' address='172.17.2.0' prefix='24'/>"
	"<alias name='ua-nic2'/></interface>"
	"<interface type='network'><source network='vmc-net'/><alias name='ua-nic3'/></interface>"
	"<interface type='bridge'><source bridge='br0'/><alias name='ua-nic4'/></interface>"
	"<interface type='user'><backend type='passt'/><alias name='ua-nic5'/></interface>"
	"</devices></domain>";

static void nic_path_from_the_live_xml(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_netpath p = { .guest = "" };
	struct vmc_libvirt_xml *x = NULL;
	char *network = NULL;

	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_xml_parse(nics_xml, &x, &err), 0);
	/* QEMU's user networking: slirp's defaults. */
	CU_ASSERT_EQUAL(vmc_libvirt_xml_nic_path(x, "nic1", &p, &network, &err), 0);
	CU_ASSERT_STRING_EQUAL(p.guest, "10.0.2.15");
	CU_ASSERT_EQUAL(p.prefixlen, 24);
	CU_ASSERT_STRING_EQUAL(p.peer, "10.0.2.2");
	CU_ASSERT_STRING_EQUAL(p.listen, "127.0.0.1");
	/* ...or the network its <ip> names. */
	CU_ASSERT_EQUAL(vmc_libvirt_xml_nic_path(x, "nic2", &p, &network, &err), 0);
	CU_ASSERT_STRING_EQUAL(p.guest, "172.17.2.15");
	CU_ASSERT_STRING_EQUAL(p.peer, "172.17.2.2");
	CU_ASSERT_STRING_EQUAL(p.listen, "127.0.0.1");
	/* A libvirt network: its name, for its own XML. */
	CU_ASSERT_EQUAL(vmc_libvirt_xml_nic_path(x, "nic3", &p, &network, &err), 1);
	CU_ASSERT_STRING_EQUAL(network, "vmc-net");
	free(network);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_nic_path(x, "nic4", &p, &network, &err), -ENOTSUP);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "<interface type='bridge'>"));
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_nic_path(x, "nic5", &p, &network, &err), -ENOTSUP);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "backend passt"));
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(vmc_libvirt_xml_nic_path(x, "nic9", &p, &network, &err), -ENOENT);
	vmc_error_clear(&err);
	CU_ASSERT_STRING_EQUAL(p.guest, "172.17.2.15"); /* untouched by the failures */
	vmc_libvirt_xml_free(x);
}

/* @xml's path, or the error code. */
static int net_path(const char *xml, struct vmc_hv_netpath *p, struct vmc_error *err)
{
	struct vmc_libvirt_xml *x = NULL;
	int r = vmc_libvirt_xml_parse(xml, &x, err);

	if (r == 0)
		r = vmc_libvirt_xml_network_path(x, p, err);
	vmc_libvirt_xml_free(x);
	return r;
}

static void network_path_avoids_dhcp(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_netpath p = { .guest = "" };

	/* libvirt's own default network: DHCP hands out every address. */
	CU_ASSERT_EQUAL(net_path("<network><name>default</name><forward mode='nat'/>"
				 "<ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>"
				 "<range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip>"
				 "</network>",
				 &p, &err),
			-ENOTSUP);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "DHCP range covers every address"));
	vmc_error_clear(&err);
	/* The highest address outside the range and the <host> entries. */
	CU_ASSERT_EQUAL(net_path("<network><name>n</name>"
				 "<ip address='192.168.100.1' netmask='255.255.255.0'><dhcp>"
				 "<range start='192.168.100.100' end='192.168.100.200'/>"
				 "<host mac='52:54:00:00:00:09' ip='192.168.100.254'/></dhcp></ip>"
				 "</network>",
				 &p, &err),
			0);
	CU_ASSERT_STRING_EQUAL(p.guest, "192.168.100.253");
	CU_ASSERT_EQUAL(p.prefixlen, 24);
	CU_ASSERT_STRING_EQUAL(p.peer, "192.168.100.1");
	CU_ASSERT_STRING_EQUAL(p.listen, "192.168.100.1");
	/* prefix= instead of netmask=, the host at the top, an IPv6 <ip> first. */
	CU_ASSERT_EQUAL(net_path("<network><name>n</name><ip family='ipv6' address='fd00::1' "
				 "prefix='64'/><ip family='ipv4' address='10.9.0.254' prefix='29'/>"
				 "</network>",
				 &p, &err),
			0);
	CU_ASSERT_STRING_EQUAL(p.guest, "10.9.0.253");
	CU_ASSERT_EQUAL(p.prefixlen, 29);
	CU_ASSERT_STRING_EQUAL(p.peer, "10.9.0.254");
	/* A bridge network: no address of the host on it. */
	CU_ASSERT_EQUAL(net_path("<network><name>b</name><forward mode='bridge'/>"
				 "<bridge name='br0'/></network>",
				 &p, &err),
			-ENOTSUP);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "no IPv4 <ip address>"));
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(net_path("<network><name>m</name><ip address='10.1.0.1' "
				 "netmask='255.0.255.0'/></network>",
				 &p, &err),
			-ENOTSUP);
	vmc_error_clear(&err);
}

static void lifecycle_events_map_to_qmp_names(void)
{
	const char *name, *reason;

	vmc_libvirt_lifecycle_event(VIR_DOMAIN_EVENT_SHUTDOWN, VIR_DOMAIN_EVENT_SHUTDOWN_GUEST,
				    &name, &reason);
	CU_ASSERT_STRING_EQUAL(name, VMC_EV_SHUTDOWN);
	CU_ASSERT_STRING_EQUAL(reason, "guest-shutdown");
	vmc_libvirt_lifecycle_event(VIR_DOMAIN_EVENT_SHUTDOWN, VIR_DOMAIN_EVENT_SHUTDOWN_HOST,
				    &name, &reason);
	CU_ASSERT_STRING_EQUAL(reason, "host-signal");
	vmc_libvirt_lifecycle_event(VIR_DOMAIN_EVENT_SHUTDOWN, VIR_DOMAIN_EVENT_SHUTDOWN_FINISHED,
				    &name, &reason);
	CU_ASSERT_STRING_EQUAL(name, VMC_EV_SHUTDOWN);
	CU_ASSERT_PTR_NULL(reason); /* libvirt did not say who */
	vmc_libvirt_lifecycle_event(VIR_DOMAIN_EVENT_CRASHED, VIR_DOMAIN_EVENT_CRASHED_PANICKED,
				    &name, &reason);
	CU_ASSERT_STRING_EQUAL(name, VMC_EV_GUEST_PANICKED);
	vmc_libvirt_lifecycle_event(VIR_DOMAIN_EVENT_CRASHED, VIR_DOMAIN_EVENT_CRASHED_CRASHLOADED,
				    &name, &reason);
	CU_ASSERT_STRING_EQUAL(name, VMC_EV_GUEST_CRASHLOADED);
	vmc_libvirt_lifecycle_event(VIR_DOMAIN_EVENT_SUSPENDED, 0, &name, &reason);
	CU_ASSERT_STRING_EQUAL(name, VMC_EV_STOP);
	vmc_libvirt_lifecycle_event(VIR_DOMAIN_EVENT_RESUMED, 0, &name, &reason);
	CU_ASSERT_STRING_EQUAL(name, VMC_EV_RESUME);
	vmc_libvirt_lifecycle_event(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN,
				    &name, &reason);
	CU_ASSERT_STRING_EQUAL(name, "LIFECYCLE");
	CU_ASSERT_PTR_NULL(reason);
}

/*
 * Removal views on a driver without a QEMU monitor: libvirt's live XML is
 * asked, QEMU cannot be (-1, with libvirt's refusal); with the domain gone
 * neither can, which is an error. Suspend support cannot be asked either.
 */
static void test_driver_views_without_a_monitor(void)
{
	struct vmc_libvirt_config c = { .uri = "test:///default",
					.domain = "vmc-t4",
					.agent = "vserial:/x" };
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_removal v;
	struct vmc_hv *hv = NULL;
	virConnectPtr side = virConnectOpen("test:///default");
	virDomainPtr d;
	char says[160] = "";

	CU_ASSERT_PTR_NOT_NULL_FATAL(side);
	d = virDomainCreateXML(side,
			       "<domain type='test'><name>vmc-t4</name><memory>1048576</memory>"
			       "<os><type>hvm</type></os><devices><interface type='user'>"
			       "<alias name='ua-nic1'/></interface></devices></domain>",
			       0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_open(&c, &hv, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->removal_views(hv, "nic1", &v, &err), 0);
	CU_ASSERT_EQUAL(v.mgmt, 1);
	CU_ASSERT_STRING_EQUAL(v.mgmt_says, "live XML: alias ua-nic1, interface");
	CU_ASSERT_EQUAL(v.vmm, -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(v.vmm_says, "monitor passthrough refused: libvirt error "));
	/* Nor can QEMU be asked whether the machine suspends: an error, not a "no". */
	CU_ASSERT(hv->ops->suspend_support(hv, says, sizeof(says), &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "query-current-machine: monitor "
							  "passthrough refused: libvirt error "));
	CU_ASSERT_STRING_EQUAL(says, "");
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(hv->ops->removal_views(hv, "nic7", &v, &err), 0);
	CU_ASSERT_EQUAL(v.mgmt, 0);
	CU_ASSERT_STRING_EQUAL(v.mgmt_says, "live XML: no device with alias ua-nic7");
	CU_ASSERT_EQUAL(virDomainDestroy(d), 0);
	CU_ASSERT(hv->ops->removal_views(hv, "nic1", &v, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(err.msg &&
			       strstr(err.msg, "nic1: neither libvirt nor QEMU could be "
					       "asked: virDomainGetXMLDesc: libvirt error "));
	CU_ASSERT_EQUAL(v.mgmt, -1);
	vmc_error_clear(&err);
	hv->ops->free(hv);
	virDomainFree(d);
	virConnectClose(side);
}

/* The test driver's domain "test", running again as the other tests expect it. */
static void restart_test_domain(void)
{
	virConnectPtr conn = virConnectOpen("test:///default");
	virDomainPtr d = conn ? virDomainLookupByName(conn, "test") : NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	if (!virDomainIsActive(d))
		CU_ASSERT_EQUAL(virDomainCreate(d), 0);
	virDomainFree(d);
	virConnectClose(conn);
}

/*
 * ended: a defined domain by its state (shut off, reason destroyed / shutdown),
 * a transient one by its STOPPED event. A domain vmcheck did not start has
 * no console log of vmcheck's.
 */
static void test_driver_ended(void)
{
	struct vmc_libvirt_config c = { .uri = "test:///default",
					.domain = "test",
					.agent = "vserial:/x" };
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_event ev = { 0 };
	struct vmc_hv *hv = NULL;
	virConnectPtr side;
	virDomainPtr d;

	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_open(&c, &hv, &err), 0);
	CU_ASSERT_PTR_NULL(hv->ops->console_log(hv));
	CU_ASSERT_EQUAL(hv->ops->ended(hv, &err), -ENOTSUP); /* still running */
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(hv->ops->destroy(hv, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->alive(hv, &err), -ESRCH);
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(hv->ops->ended(hv, &err), -EIO);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "shut off, reason destroyed"));
	vmc_error_clear(&err);
	restart_test_domain();
	side = virConnectOpen("test:///default");
	d = side ? virDomainLookupByName(side, "test") : NULL;
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_EQUAL(virDomainShutdown(d), 0);
	CU_ASSERT_EQUAL(hv->ops->ended(hv, &err), 0);
	CU_ASSERT_EQUAL(virDomainCreate(d), 0);
	virDomainFree(d);
	hv->ops->free(hv);

	/* A transient domain is gone once stopped: its STOPPED event says how. */
	d = virDomainCreateXML(side,
			       "<domain type='test'><name>vmc-t1</name><memory>1048576</memory>"
			       "<os><type>hvm</type></os></domain>",
			       0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	c.domain = "vmc-t1";
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_open(&c, &hv, &err), 0);
	CU_ASSERT_EQUAL(virDomainShutdown(d), 0);
	CU_ASSERT_EQUAL(hv->ops->alive(hv, &err), -ESRCH);
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(hv->ops->ended(hv, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->wait_event(hv, "LIFECYCLE", NULL, vmc_mono_ns() + 2000000000ULL,
					    &ev, &err),
			0);
	CU_ASSERT_PTR_NOT_NULL(ev.detail && strstr(ev.detail, "\"as\":\"shutdown\""));
	vmc_hv_event_free(&ev);
	hv->ops->free(hv);
	virDomainFree(d);
	d = virDomainCreateXML(side,
			       "<domain type='test'><name>vmc-t2</name><memory>1048576</memory>"
			       "<os><type>hvm</type></os></domain>",
			       0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	c.domain = "vmc-t2";
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_open(&c, &hv, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->destroy(hv, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->ended(hv, &err), -EIO);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "lifecycle STOPPED, detail destroyed"));
	vmc_error_clear(&err);
	hv->ops->free(hv);
	virDomainFree(d);
	virConnectClose(side);
}

/* nic_path through a libvirt network of the test driver, on a local URI. */
static void test_driver_nic_path(void)
{
	struct vmc_libvirt_config c = { .uri = "test:///default",
					.domain = "vmc-t3",
					.agent = "vserial:/x" };
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_netpath p = { .guest = "" };
	struct vmc_hv *hv = NULL;
	virConnectPtr side = virConnectOpen("test:///default");
	virNetworkPtr net;
	virDomainPtr d;

	CU_ASSERT_PTR_NOT_NULL_FATAL(side);
	net = virNetworkCreateXML(side, "<network><name>vmc-net</name><bridge name='vmcbr0'/>"
					"<ip address='192.168.150.1' prefix='24'><dhcp><range "
					"start='192.168.150.2' end='192.168.150.200'/></dhcp></ip>"
					"</network>");
	CU_ASSERT_PTR_NOT_NULL_FATAL(net);
	d = virDomainCreateXML(side,
			       "<domain type='test'><name>vmc-t3</name><memory>1048576</memory>"
			       "<os><type>hvm</type></os><devices>"
			       "<interface type='network'><source network='vmc-net'/>"
			       "<alias name='ua-nic1'/></interface>"
			       "<interface type='user'><alias name='ua-nic2'/></interface>"
			       "</devices></domain>",
			       0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_open(&c, &hv, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->nic_path(hv, "nic1", &p, &err), 0);
	CU_ASSERT_STRING_EQUAL(p.guest, "192.168.150.254");
	CU_ASSERT_STRING_EQUAL(p.peer, "192.168.150.1");
	CU_ASSERT_STRING_EQUAL(p.listen, "192.168.150.1");
	CU_ASSERT_EQUAL(hv->ops->nic_path(hv, "nic2", &p, &err), 0);
	CU_ASSERT_STRING_EQUAL(p.guest, "10.0.2.15");
	CU_ASSERT_STRING_EQUAL(p.listen, "127.0.0.1");
	CU_ASSERT_EQUAL(hv->ops->nic_path(hv, "nic3", &p, &err), -ENOENT);
	vmc_error_clear(&err);
	hv->ops->free(hv);
	CU_ASSERT_EQUAL(virDomainDestroy(d), 0);
	CU_ASSERT_EQUAL(virNetworkDestroy(net), 0);
	virDomainFree(d);
	virNetworkFree(net);
	virConnectClose(side);
}

/* Names of the test driver's storage pools that start with "vmcheck-". */
static int our_pools(void)
{
	virConnectPtr conn = virConnectOpen("test:///default");
	virStoragePoolPtr *pools = NULL;
	int n, ours = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(conn);
	n = virConnectListAllStoragePools(conn, &pools, 0);
	for (int i = 0; i < n; i++) {
		ours += !strncmp(virStoragePoolGetName(pools[i]), "vmcheck-", 8);
		virStoragePoolFree(pools[i]);
	}
	free(pools);
	virConnectClose(conn);
	return n < 0 ? -1 : ours;
}

/* Disk images: a pool made on first use, volumes in it, all gone at the end. */
static void test_driver_storage_pool(void)
{
	struct vmc_libvirt_config c = { .uri = "test:///default",
					.domain = "test",
					.agent = "vserial:/x" };
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv *hv = NULL;
	uint64_t size = 0;
	char *path = NULL, *path2 = NULL;

	CU_ASSERT_EQUAL(our_pools(), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_open(&c, &hv, &err), 0);
	CU_ASSERT_EQUAL(our_pools(), 0); /* not before an image is asked for */
	CU_ASSERT_EQUAL_FATAL(hv->ops->image_create(hv, "d1.qcow2", 64 << 20, &path, &size, &err),
			      0);
	CU_ASSERT_PTR_NOT_NULL(strstr(path, "/var/tmp/vmcheck-"));
	CU_ASSERT_PTR_NOT_NULL(strstr(path, "/d1.qcow2"));
	CU_ASSERT_EQUAL(size, 64 << 20);
	CU_ASSERT_EQUAL(our_pools(), 1);
	/* The same name twice is libvirt's error, named. */
	CU_ASSERT(hv->ops->image_create(hv, "d1.qcow2", 1 << 20, &path2, &size, &err) < 0);
	CU_ASSERT_PTR_NULL(path2);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "virStorageVolCreateXML d1.qcow2"));
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(hv->ops->image_create(hv, "d2.qcow2", 1 << 20, &path2, &size, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->image_remove(hv, path, &err), 0);
	CU_ASSERT(hv->ops->image_remove(hv, path, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "virStorageVolDelete"));
	vmc_error_clear(&err);
	/* The test domain has no qemu-guest-agent channel: PM suspend says -ENOTSUP, why. */
	CU_ASSERT_EQUAL(hv->ops->pm_suspend(hv, &err), -ENOTSUP);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "no org.qemu.guest_agent.0 channel"));
	vmc_error_clear(&err);
	/* d2 is still in the pool: teardown deletes it with the pool. */
	hv->ops->free(hv);
	CU_ASSERT_EQUAL(our_pools(), 0);
	free(path);
	free(path2);
}

/*
 * What a run leaves in a user's domain's pool: every volume it made and did
 * not delete is counted and deleted by the cleanup, reported with how; a
 * readable stop fd leaves it, saying so; a vCPU libvirt did not enable is
 * not counted.
 */
static void test_driver_cleanup_volumes(void)
{
	struct vmc_libvirt_config c = { .uri = "test:///default",
					.domain = "test",
					.agent = "vserial:/x" };
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_cpu where = { .socket_id = 0, .die_id = 0, .core_id = 0, .thread_id = 1 };
	struct vmc_hv_vcpu cpu = { .id = "cpu1", .where = &where };
	struct vmc_hv_cleaned *cl = NULL;
	struct vmc_hv *hv = NULL;
	uint64_t size = 0;
	char *p1 = NULL, *p2 = NULL;
	size_t n = 9;
	bool cut = true;
	int stop[2];

	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_open(&c, &hv, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->added(hv), 0);
	CU_ASSERT_EQUAL(hv->ops->cleanup(hv, -1, 1000, &cl, &n, &cut), 0);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_FALSE(cut);
	CU_ASSERT_EQUAL_FATAL(hv->ops->image_create(hv, "c1.qcow2", 1 << 20, &p1, &size, &err), 0);
	CU_ASSERT_EQUAL_FATAL(hv->ops->image_create(hv, "c2.qcow2", 1 << 20, &p2, &size, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->added(hv), 2);
	CU_ASSERT_EQUAL(hv->ops->image_remove(hv, p1, &err), 0);
	CU_ASSERT_EQUAL(hv->ops->added(hv), 1);
	/* The test driver cannot enable a vCPU: nothing to take back. */
	CU_ASSERT(hv->ops->cpu_add(hv, &cpu, &err) < 0);
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(hv->ops->added(hv), 1);
	/* A second signal already there: nothing is tried, the volume is left, said so. */
	CU_ASSERT_EQUAL_FATAL(pipe(stop), 0);
	CU_ASSERT_EQUAL(write(stop[1], "x", 1), 1);
	CU_ASSERT_EQUAL(hv->ops->cleanup(hv, stop[0], 1000, &cl, &n, &cut), -EBUSY);
	CU_ASSERT_TRUE(cut);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_FALSE(cl[0].removed);
	CU_ASSERT_PTR_NOT_NULL(strstr(cl[0].what, "volume /var/tmp/vmcheck-"));
	CU_ASSERT_PTR_NOT_NULL(strstr(cl[0].how, "second signal"));
	free(cl);
	CU_ASSERT_EQUAL(hv->ops->added(hv), 1);
	/* Then as at the end of a run: deleted, and nothing more to do. */
	CU_ASSERT_EQUAL(hv->ops->cleanup(hv, -1, 1000, &cl, &n, &cut), 0);
	CU_ASSERT_FALSE(cut);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_TRUE(cl[0].removed);
	CU_ASSERT_PTR_NOT_NULL(strstr(cl[0].what, "/c2.qcow2"));
	CU_ASSERT_STRING_EQUAL(cl[0].how, "virStorageVolDelete");
	free(cl);
	CU_ASSERT_EQUAL(hv->ops->added(hv), 0);
	CU_ASSERT(hv->ops->image_remove(hv, p2, &err) < 0); /* really gone */
	vmc_error_clear(&err);
	close(stop[0]);
	close(stop[1]);
	hv->ops->free(hv);
	CU_ASSERT_EQUAL(our_pools(), 0);
	free(p1);
	free(p2);
}

/*
 * --libvirt with the kit uploaded (as for a remote daemon, forced here):
 * the test driver refuses virStorageVolUpload, which is the kit's error,
 * named, before anything else is uploaded or started; the pool goes.
 */
static void test_driver_kit_upload_refused(void)
{
	struct vmc_libvirt_config c = { .uri = "test:///default",
					.accel = "tcg",
					.upload_kit = true };
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv *hv = NULL;
	char kernel[PATH_MAX + 32], initrd[PATH_MAX + 32];
	struct fx f;

	fx_init(&f);
	fx_write(&f, "kit/vmlinuz", "not a kernel");
	fx_write(&f, "kit/initrd.img", "not an initrd");
	fx_write(&f, "kit/cmdline", "console=ttyS0\n");
	snprintf(kernel, sizeof(kernel), "%s/kit/vmlinuz", f.path);
	snprintf(initrd, sizeof(initrd), "%s/kit/initrd.img", f.path);
	c.kernel = kernel;
	c.initrd = initrd;
	CU_ASSERT_EQUAL(vmc_libvirt_open(&c, &hv, &err), -ENOTSUP);
	CU_ASSERT_PTR_NULL(hv);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "the guest kit's "));
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "/kit/vmlinuz: virStorageVolUpload into "
							  "vmlinuz (sparse): libvirt error 3/"));
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(our_pools(), 0);
	fx_cleanup(&f);
}

VMC_SUITE(hv_libvirt, NULL, NULL, VMC_TEST(live_xml_is_read),
	  VMC_TEST(generated_xml_escapes_and_reads_back), VMC_TEST(x86_domain_xml_as_before),
	  VMC_TEST(aarch64_domain_xml), VMC_TEST(domain_caps_and_arch_are_read),
	  VMC_TEST(dimm_info_from_the_live_xml), VMC_TEST(nic_path_from_the_live_xml),
	  VMC_TEST(network_path_avoids_dhcp), VMC_TEST(lifecycle_events_map_to_qmp_names),
	  VMC_TEST(test_driver_errors), VMC_TEST(test_driver_ops_and_events),
	  VMC_TEST(test_driver_views_without_a_monitor), VMC_TEST(test_driver_ended),
	  VMC_TEST(test_driver_nic_path), VMC_TEST(test_driver_cleanup_volumes),
	  VMC_TEST(test_driver_storage_pool), VMC_TEST(remote_domain_xml),
	  VMC_TEST(test_driver_kit_upload_refused), VMC_TEST(image_domain_xml));
