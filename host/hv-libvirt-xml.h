/* SPDX-License-Identifier: MIT */
/*
 * libvirt XML for the libvirt backend, without a daemon: the transient
 * domain of the embedded guest and the device fragments vmcheck attaches
 * (generation), and what the backend needs from a live domain XML
 * (virDomainGetXMLDesc) (parsing, with libxml2).
 *
 * Device ids: libvirt accepts user aliases only with the prefix "ua-", so
 * check id "nic1" is alias "ua-nic1"; every id handed back (slots, removed
 * devices) has the prefix stripped again.
 */
#ifndef VMC_HV_LIBVIRT_XML_H
#define VMC_HV_LIBVIRT_XML_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "hv.h"

#define VMC_LIBVIRT_XML_ALIAS_PREFIX "ua-"
#define VMC_LIBVIRT_XML_AGENT_CHANNEL "org.vmcheck.agent.0"
#define VMC_LIBVIRT_XML_QGA_CHANNEL "org.qemu.guest_agent.0"
#define VMC_LIBVIRT_XML_CRASH_DISK "crash-disk" /* the crash disk's id */
#define VMC_LIBVIRT_XML_ROOT_DISK "root-disk"   /* --image: the root disk's id */
/* --image: the root disk's slot on pcie.0, clear of the ports libvirt places from slot 1. */
#define VMC_LIBVIRT_XML_ROOT_SLOT 0x10

struct vmc_libvirt_xml_domain {
	const char *name;
	const char *type;   /* "qemu" (TCG) or "kvm" */
	const char *kernel; /* direct kernel boot */
	const char *initrd;
	const char *append;
	const char *console_log; /* serial console into this file, or NULL (pty) */
	unsigned mem_mb, maxmem_mb, slots;
	unsigned cpus, maxcpus;
	unsigned ports;              /* hotplug pcie-root-ports "pciroot1".."pciroot<ports>" */
	const struct vmc_arch *arch; /* NULL: x86_64 */
	const char *emulator;        /* <emulator>, or NULL: libvirt's choice */
	const char *nvram; /* aarch64: where the UEFI variables go; NULL: libvirt's place */
	/* kdump's disk: a raw ext4 image, serial VMC_QEMU_CRASH_SERIAL; NULL: none */
	const char *crash_disk;
	/*
	 * --image: the root disk, a qcow2 file (an overlay of the image) on the
	 * daemon's host; virtio-blk on pcie.0 (probed before the ports, so the
	 * guest's vda), serial VMC_QEMU_ROOT_SERIAL. NULL: the initramfs guest.
	 */
	const char *root_disk;
};

/*
 * vmc_libvirt_xml_domain - the domain XML of @d: direct kernel boot, a NUMA
 * cell (DIMMs need one), <maxMemory slots>, hotpluggable vCPUs on a topology
 * of one socket with maxcpus cores, the ports, the agent's channel and
 * qemu-guest-agent's (VMC_LIBVIRT_XML_QGA_CHANNEL) on sockets libvirt
 * names, the crash disk behind root port "rp-crash" when @d->crash_disk,
 * QEMU as root (relabel off: it reads the guest kit and the check's disk
 * images wherever they are). x86_64: q35, S3 on, a pvpanic device
 * (<on_crash>destroy). aarch64: virt with GICv3 and ACPI, cortex-a57 (the
 * host's CPU under KVM), UEFI without secure boot (doc/facts.md, "aarch64
 * through libvirt"), the serial console on the PL011, no panic device and
 * no <pm> (libvirt 9.0 offers neither there).
 * Returns 0 with *@out malloc'd, -EINVAL (bad sizes, an architecture it
 * has no domain for) or -ENOMEM.
 */
int vmc_libvirt_xml_domain(const struct vmc_libvirt_xml_domain *d, char **out,
			   struct vmc_error *err);

/*
 * Device fragments for virDomainAttachDeviceFlags. @bus is the libvirt
 * index of the pcie-root-port the device goes behind (at slot 0: the only
 * one a PCIe port has). @network: a libvirt network for the NIC, NULL for
 * type='user'. @dev: the disk's target ("vdb").
 */
int vmc_libvirt_xml_nic(const struct vmc_hv_nic *nic, unsigned bus, const char *network,
			char **out);
int vmc_libvirt_xml_disk(const struct vmc_hv_disk *d, unsigned bus, const char *dev, char **out);
int vmc_libvirt_xml_dimm(const struct vmc_hv_dimm *m, char **out);
/*
 * A VFIO <hostdev> of host function @v->host, managed='yes' when
 * @v->managed. -EINVAL when @v->host is no PCI address, -ENOMEM.
 */
int vmc_libvirt_xml_hostdev(const struct vmc_hv_vfio *v, unsigned bus, char **out);

/* libvirt's node device name of PCI function @addr ("pci_0000_06_02_0"); -EINVAL. */
int vmc_libvirt_xml_nodedev_name(const char *addr, char buf[32]);

/* A dir storage pool @name at @path, and a volume of @bytes in it in @format ("qcow2", "raw"). */
int vmc_libvirt_xml_pool(const char *name, const char *path, char **out);
int vmc_libvirt_xml_volume(const char *name, uint64_t bytes, const char *format, char **out);
/* A qcow2 volume @name of @bytes over @backing (its path on the daemon's host) in @backing_format. */
int vmc_libvirt_xml_overlay(const char *name, uint64_t bytes, const char *backing,
			    const char *backing_format, char **out);

/* A parsed live domain XML. */
struct vmc_libvirt_xml;

/* Parse @xml; -EINVAL (with the parser's words in @err) or -ENOMEM. */
int vmc_libvirt_xml_parse(const char *xml, struct vmc_libvirt_xml **out, struct vmc_error *err);
void vmc_libvirt_xml_free(struct vmc_libvirt_xml *x);

/*
 * Free hotplug slots: pcie-root-ports with hotplug not off and no device
 * whose PCI address is on their bus, sorted by id; the id is the port's
 * alias (prefix stripped), the address where the port sits ("0000:00:02.1").
 */
int vmc_libvirt_xml_free_slots(const struct vmc_libvirt_xml *x, struct vmc_hv_slot **out, size_t *n,
			       struct vmc_error *err);

/* The bus index of root port @slot (an id from free_slots); -ENOENT. */
int vmc_libvirt_xml_port_bus(const struct vmc_libvirt_xml *x, const char *slot, unsigned *bus);

/*
 * Memory from the XML: max_bytes and slots from <maxMemory>, plugged bytes
 * and used slots from <memory model='dimm'> devices, base = <memory> minus
 * the DIMMs (libvirt counts them in <memory>). -ENOENT without <maxMemory>.
 */
int vmc_libvirt_xml_mem(const struct vmc_libvirt_xml *x, struct vmc_hv_mem *out,
			struct vmc_error *err);

/*
 * vCPUs from <vcpus> (or <vcpu current>): one entry per libvirt vCPU id.
 * libvirt shows neither QOM paths nor topology ids: the position is inferred
 * from the id and <topology> the way QEMU numbers x86 CPUs (thread fastest,
 * then core, die, socket); qom_path is "vcpuN" and cpu_index N for an
 * enabled vCPU (libvirt's id is QEMU's cpu-index), NULL and -1 otherwise.
 */
int vmc_libvirt_xml_cpus(const struct vmc_libvirt_xml *x, struct vmc_hv_cpu **out, size_t *n,
			 struct vmc_error *err);

/* The unix socket of virtio channel @name, malloc'd, or NULL (none, or no path yet). */
char *vmc_libvirt_xml_channel_path(const struct vmc_libvirt_xml *x, const char *name);

/*
 * Has the guest opened virtio channel @name? libvirt tracks it from QEMU's
 * VSERPORT_CHANGE as <target state='connected'/>, for any virtio channel.
 */
bool vmc_libvirt_xml_channel_connected(const struct vmc_libvirt_xml *x, const char *name);

/*
 * Device with alias VMC_LIBVIRT_XML_ALIAS_PREFIX @id: 1 with, if @where,
 * "interface on pci bus 3 slot 0" (malloc'd) and, if @dev_xml, the device's
 * own XML (malloc'd, what DetachDeviceFlags wants); 0 if none; -ENOMEM.
 */
int vmc_libvirt_xml_device(const struct vmc_libvirt_xml *x, const char *id, char **where,
			   char **dev_xml);

/*
 * Where libvirt put DIMM @id (alias VMC_LIBVIRT_XML_ALIAS_PREFIX @id, or @id
 * on a domain someone else defined): <memory model='dimm'> with
 * <address type='dimm' slot='N' base='0x...'/> and <target><size>.
 * Returns 0; -ENOENT (no such DIMM) or -ENODATA (no address or size: the
 * domain is not running, or the XML says less than libvirt 9.0 does), with @err.
 */
int vmc_libvirt_xml_dimm_info(const struct vmc_libvirt_xml *x, const char *id,
			      struct vmc_hv_dimm_info *out, struct vmc_error *err);

/*
 * vmc_libvirt_xml_nic_path - how the guest behind NIC @id (alias
 * VMC_LIBVIRT_XML_ALIAS_PREFIX @id) reaches the libvirt host, from the live
 * XML.
 * type='user' (QEMU's slirp): the guest is the 15th address of the user
 * network (10.0.2.0/24, or its <ip family='ipv4' address prefix>), its peer
 * the 2nd, which slirp delivers to the host's loopback: @out is filled,
 * returns 0. type='network': *@network is its name (malloc'd), returns 1:
 * the caller reads that network's XML for vmc_libvirt_xml_network_path().
 * -ENOENT (no such interface), -ENOTSUP (another type, or a passt backend,
 * whose addresses are the host's own), -ENOMEM; with @err.
 */
int vmc_libvirt_xml_nic_path(const struct vmc_libvirt_xml *x, const char *id,
			     struct vmc_hv_netpath *out, char **network, struct vmc_error *err);

/*
 * vmc_libvirt_xml_network_path - a guest address on libvirt network @net
 * (its parsed XML, virNetworkGetXMLDesc): peer and listen are the host's IPv4
 * <ip address> on the network's bridge, the guest gets the highest address
 * of that subnet that is neither the host's, the broadcast, inside a
 * <dhcp><range> nor a <dhcp><host ip>. Returns 0; -ENOTSUP with @err when
 * the network has no IPv4 address on the host (a bridge or passthrough
 * network) or its DHCP ranges leave no address.
 */
int vmc_libvirt_xml_network_path(const struct vmc_libvirt_xml *net, struct vmc_hv_netpath *out,
				 struct vmc_error *err);

/* The guest's architecture of a domain XML, <os><type arch>, malloc'd; NULL if none. */
char *vmc_libvirt_xml_os_arch(const struct vmc_libvirt_xml *x);

/*
 * The emulator of a domain capabilities XML (virConnectGetDomainCapabilities),
 * <domainCapabilities><path>, malloc'd; NULL if none.
 */
char *vmc_libvirt_xml_domcaps_emulator(const struct vmc_libvirt_xml *caps);

/* A virtio disk target no disk uses yet ("vdb"), into @buf; -ENOSPC. */
int vmc_libvirt_xml_free_vd(const struct vmc_libvirt_xml *x, char buf[8]);

#endif
