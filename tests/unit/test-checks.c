/* SPDX-License-Identifier: MIT */
/*
 * The hotplug checks' identity matching (check-util.c) against hand-built
 * States: a device is the one with the right MAC / serial / blocks / id AND
 * the right place, never "one more than before".
 */
#include <stdio.h>
#include <string.h>

#include "check-util.h"
#include "harness.h"
#include "report.h"

#define PORT "0000:00:02.2"
#define SEC(x) VMCHECK__V1__SECTION__SECTION_##x

static struct vmc_why why;

static void why_has(const char *needle)
{
	if (!strstr(why.text, needle))
		fprintf(stderr, "\nmissing \"%s\" in: %s\n", needle, why.text);
	CU_ASSERT_PTR_NOT_NULL(strstr(why.text, needle));
}

/* A guest with a boot NIC behind 00:02.0 and a hot-added one behind PORT. */
struct nic_guest {
	Vmcheck__V1__State st;
	Vmcheck__V1__Link boot, hot, *links[2];
	Vmcheck__V1__Pci pci;
	Vmcheck__V1__PciFunction port0, port2, f_boot, f_hot, *fns[4];
};

static void nic_guest_init(struct nic_guest *g)
{
	vmcheck__v1__state__init(&g->st);
	vmcheck__v1__link__init(&g->boot);
	vmcheck__v1__link__init(&g->hot);
	vmcheck__v1__pci__init(&g->pci);
	vmcheck__v1__pci_function__init(&g->port0);
	vmcheck__v1__pci_function__init(&g->port2);
	vmcheck__v1__pci_function__init(&g->f_boot);
	vmcheck__v1__pci_function__init(&g->f_hot);
	g->port0.address = "0000:00:02.0";
	g->port2.address = PORT;
	g->f_boot.address = "0000:01:00.0";
	g->f_boot.parent = "0000:00:02.0";
	g->f_hot.address = "0000:03:00.0";
	g->f_hot.parent = PORT;
	g->fns[0] = &g->port0;
	g->fns[1] = &g->port2;
	g->fns[2] = &g->f_boot;
	g->fns[3] = &g->f_hot;
	g->pci.functions = g->fns;
	g->pci.n_functions = 4;
	g->boot.name = "eth0";
	g->boot.mac = "52:54:00:12:34:56";
	g->boot.driver = "virtio_net";
	g->boot.pci_address = "0000:01:00.0";
	g->hot.name = "eth1";
	g->hot.mac = "52:54:00:76:AB:07"; /* the kernel prints lower case; be sure of either */
	g->hot.driver = "virtio_net";
	g->hot.pci_address = "0000:03:00.0";
	g->links[0] = &g->boot;
	g->links[1] = &g->hot;
	g->st.links = g->links;
	g->st.n_links = 2;
	g->st.pci = &g->pci;
	g->st.sections = SEC(LINKS) | SEC(PCI) | SEC(BLOCKS);
}

/* The agent's newest read of @bit failed: its data in @st is stale. */
static Vmcheck__V1__SectionError stale_err, *stale_errs[1] = { &stale_err };

static void make_stale(Vmcheck__V1__State *st, uint32_t bit, const char *msg)
{
	vmcheck__v1__section_error__init(&stale_err);
	stale_err.section = (Vmcheck__V1__Section)bit;
	stale_err.errno_value = EIO;
	stale_err.message = (char *)msg;
	st->errors = stale_errs;
	st->n_errors = 1;
}

static void mac_is_local_unicast_and_unique(void)
{
	char a[18], b[18], c[18];

	vmc_chk_mac(0x12ab, 7, a);
	vmc_chk_mac(0x12ab, 8, b);
	vmc_chk_mac(0x12ac, 7, c); /* only the low byte of the tag fits */
	CU_ASSERT_STRING_EQUAL(a, "52:54:00:76:ab:07");
	CU_ASSERT_STRING_NOT_EQUAL(a, b);
	CU_ASSERT_STRING_NOT_EQUAL(a, c);
	/* 0x52: locally administered (bit 1), unicast (bit 0 clear). */
	CU_ASSERT_EQUAL(0x52 & 3, 2);
	CU_ASSERT_EQUAL(vmc_chk_run_tag(), vmc_chk_run_tag());
	CU_ASSERT(vmc_chk_run_tag() <= 0xffff);
}

static void addresses_compare_without_case(void)
{
	CU_ASSERT_TRUE(vmc_chk_addr_eq("52:54:00:76:AB:07", "52:54:00:76:ab:07"));
	CU_ASSERT_TRUE(vmc_chk_addr_eq("0000:0A:00.0", "0000:0a:00.0"));
	CU_ASSERT_FALSE(vmc_chk_addr_eq("0000:0a:00.0", "0000:0a:00.1"));
	CU_ASSERT_FALSE(vmc_chk_addr_eq(NULL, NULL));
	CU_ASSERT_FALSE(vmc_chk_addr_eq("", NULL));
}

static void nic_found_by_mac_and_port(void)
{
	struct nic_guest g;
	struct vmc_chk_nic n = { .mac = "52:54:00:76:ab:07", .port = PORT };

	nic_guest_init(&g);
	CU_ASSERT_TRUE(vmc_chk_nic_up(&g.st, &n, &why));
	CU_ASSERT_STRING_EQUAL(n.name, "eth1");
	CU_ASSERT_STRING_EQUAL(n.pci, "0000:03:00.0");
	CU_ASSERT_PTR_EQUAL(vmc_chk_pci_behind(&g.st, PORT), &g.f_hot);
	CU_ASSERT_PTR_NULL(vmc_chk_pci_behind(&g.st, "0000:00:02.7"));
}

static void nic_on_another_port_is_not_ours(void)
{
	struct nic_guest g;
	struct vmc_chk_nic n = { .mac = "52:54:00:76:ab:07", .port = "0000:00:02.3" };

	nic_guest_init(&g);
	CU_ASSERT_FALSE(vmc_chk_nic_up(&g.st, &n, &why));
	why_has("sits behind " PORT ", want root port 0000:00:02.3");
	CU_ASSERT_STRING_EQUAL(n.pci, ""); /* nothing behind the wanted port */

	/* The boot NIC behind its port is not the one asked for either. */
	n.port = "0000:00:02.0";
	CU_ASSERT_FALSE(vmc_chk_nic_up(&g.st, &n, &why));
	CU_ASSERT_STRING_EQUAL(n.pci, "0000:01:00.0");
}

static void nic_waits_for_function_link_and_driver(void)
{
	struct nic_guest g;
	struct vmc_chk_nic n = { .mac = "52:54:00:76:ab:07", .port = PORT };

	/* PCI function already there, link not yet: the ladder gets the function. */
	nic_guest_init(&g);
	g.st.n_links = 1;
	CU_ASSERT_FALSE(vmc_chk_nic_up(&g.st, &n, &why));
	why_has("no link with MAC 52:54:00:76:ab:07");
	CU_ASSERT_STRING_EQUAL(n.pci, "0000:03:00.0");

	/* Link pushed before the PCI section caught up. */
	nic_guest_init(&g);
	g.pci.n_functions = 3;
	CU_ASSERT_FALSE(vmc_chk_nic_up(&g.st, &n, &why));
	why_has("PCI function 0000:03:00.0 not in the PCI section");

	nic_guest_init(&g);
	g.st.pci = NULL;
	CU_ASSERT_FALSE(vmc_chk_nic_up(&g.st, &n, &why));

	nic_guest_init(&g);
	g.hot.driver = "e1000e";
	CU_ASSERT_FALSE(vmc_chk_nic_up(&g.st, &n, &why));
	why_has("driver \"e1000e\", want virtio_net");

	nic_guest_init(&g);
	g.hot.pci_address = "";
	CU_ASSERT_FALSE(vmc_chk_nic_up(&g.st, &n, &why));
	why_has("no PCI address");
}

static void nic_gone_only_when_mac_gone(void)
{
	struct nic_guest g;
	struct vmc_chk_nic n = { .mac = "52:54:00:76:ab:07", .port = PORT };

	nic_guest_init(&g);
	CU_ASSERT_FALSE(vmc_chk_nic_gone(&g.st, &n, &why));
	why_has("eth1");
	/* Another link going away (or the count dropping) is not ours going. */
	g.links[0] = &g.hot;
	g.st.n_links = 1;
	CU_ASSERT_FALSE(vmc_chk_nic_gone(&g.st, &n, &why));
	g.links[0] = &g.boot;
	CU_ASSERT_TRUE(vmc_chk_nic_gone(&g.st, &n, &why));
}

/* Absent from a section the agent could not read, or never sent, is not gone. */
static void nothing_is_gone_from_a_missing_or_stale_section(void)
{
	struct nic_guest g;
	struct vmc_chk_nic n = { .mac = "52:54:00:76:ab:07", .port = PORT };
	struct vmc_chk_disk w = { .serial = "vmcd12ab1", .port = PORT, .size = 64 << 20 };

	nic_guest_init(&g);
	g.st.n_links = 1; /* eth1 not in the (stale) data */
	make_stale(&g.st, SEC(LINKS), "reading links: Input/output error");
	CU_ASSERT_FALSE(vmc_chk_nic_gone(&g.st, &n, &why));
	why_has("could not read the links section: reading links: Input/output error");
	CU_ASSERT_FALSE(why.final);

	nic_guest_init(&g);
	g.st.sections &= ~SEC(LINKS);
	g.st.n_links = 0;
	CU_ASSERT_FALSE(vmc_chk_nic_gone(&g.st, &n, &why));
	why_has("no links section");

	/* No blocks section at all: no disk is gone. */
	nic_guest_init(&g);
	g.st.sections &= ~SEC(BLOCKS);
	CU_ASSERT_FALSE(vmc_chk_disk_gone(&g.st, &w, &why));
	why_has("no blocks section");
	make_stale(&g.st, SEC(BLOCKS), "reading blocks: No such device");
	g.st.sections |= SEC(BLOCKS);
	CU_ASSERT_FALSE(vmc_chk_disk_gone(&g.st, &w, &why));
	why_has("reading blocks: No such device");

	/* Nor is a NIC found in stale data. */
	nic_guest_init(&g);
	make_stale(&g.st, SEC(PCI), "reading pci: Input/output error");
	CU_ASSERT_FALSE(vmc_chk_nic_up(&g.st, &n, &why));
	why_has("reading pci");
}

/* The NIC guest plus vda (boot), vdb with our serial and its partition vdb1. */
struct disk_guest {
	struct nic_guest g;
	Vmcheck__V1__Block vda, vdb, vdb1, *blocks[3];
};

static void disk_guest_init(struct disk_guest *d)
{
	nic_guest_init(&d->g);
	vmcheck__v1__block__init(&d->vda);
	vmcheck__v1__block__init(&d->vdb);
	vmcheck__v1__block__init(&d->vdb1);
	d->vda.name = "vda";
	d->vda.type = "disk";
	d->vda.serial = "boot";
	d->vda.size_bytes = 1 << 30;
	d->vda.pci_address = "0000:01:00.0";
	d->vdb.name = "vdb";
	d->vdb.type = "disk";
	d->vdb.serial = "vmcd12ab1";
	d->vdb.size_bytes = 64 << 20;
	d->vdb.pci_address = "0000:03:00.0";
	d->vdb1.name = "vdb1";
	d->vdb1.type = "part";
	d->vdb1.parent = "vdb";
	d->vdb1.serial = "vmcd12ab1";
	d->vdb1.size_bytes = 64 << 20;
	d->vdb1.pci_address = "0000:03:00.0";
	/* The partition first: the lookup must still pick the disk. */
	d->blocks[0] = &d->vda;
	d->blocks[1] = &d->vdb1;
	d->blocks[2] = &d->vdb;
	d->g.st.blocks = d->blocks;
	d->g.st.n_blocks = 3;
}

static void disk_found_by_serial_size_and_port(void)
{
	struct disk_guest d;
	struct vmc_chk_disk w = { .serial = "vmcd12ab1", .port = PORT, .size = 64 << 20 };

	disk_guest_init(&d);
	CU_ASSERT_PTR_EQUAL(vmc_chk_block_by_serial(&d.g.st, "vmcd12ab1"), &d.vdb);
	CU_ASSERT_PTR_NULL(vmc_chk_block_by_serial(&d.g.st, "vmcd12ab"));
	CU_ASSERT_TRUE(vmc_chk_disk_up(&d.g.st, &w, &why));
	CU_ASSERT_STRING_EQUAL(w.name, "vdb");
	CU_ASSERT_STRING_EQUAL(w.pci, "0000:03:00.0");
}

static void disk_with_wrong_size_type_or_port_is_not_ours(void)
{
	struct disk_guest d;
	struct vmc_chk_disk w = { .serial = "vmcd12ab1", .port = PORT, .size = 64 << 20 };

	/* virtio-blk shows size 0 until it read the capacity. */
	disk_guest_init(&d);
	d.vdb.size_bytes = 0;
	CU_ASSERT_FALSE(vmc_chk_disk_up(&d.g.st, &w, &why));
	why_has("size 0, want 67108864");

	disk_guest_init(&d);
	d.vdb.size_bytes = (64 << 20) + 512;
	CU_ASSERT_FALSE(vmc_chk_disk_up(&d.g.st, &w, &why));

	disk_guest_init(&d);
	d.vdb.type = "rom";
	CU_ASSERT_FALSE(vmc_chk_disk_up(&d.g.st, &w, &why));
	why_has("type \"rom\", want disk");

	disk_guest_init(&d);
	d.vdb.pci_address = "0000:01:00.0";
	CU_ASSERT_FALSE(vmc_chk_disk_up(&d.g.st, &w, &why));
	why_has("sits behind 0000:00:02.0");

	disk_guest_init(&d);
	d.g.st.n_blocks = 1;
	CU_ASSERT_FALSE(vmc_chk_disk_up(&d.g.st, &w, &why));
	why_has("no block device with serial vmcd12ab1");
}

static void disk_gone_when_no_whole_disk_has_the_serial(void)
{
	struct disk_guest d;
	struct vmc_chk_disk w = { .serial = "vmcd12ab1", .port = PORT, .size = 64 << 20 };

	disk_guest_init(&d);
	CU_ASSERT_FALSE(vmc_chk_disk_gone(&d.g.st, &w, &why));
	why_has("vdb");
	d.g.st.n_blocks = 1;
	CU_ASSERT_TRUE(vmc_chk_disk_gone(&d.g.st, &w, &why));
}

#define BS (128ull << 20)

/* A guest whose memory blocks are @idx[0..n), all in @state. */
struct mem_guest {
	Vmcheck__V1__State st;
	Vmcheck__V1__Memory mem;
	Vmcheck__V1__MemoryBlock blk[16], *p[16];
};

static void mem_guest_init(struct mem_guest *g, const uint64_t *idx, size_t n,
			   Vmcheck__V1__MemoryBlock__State state)
{
	vmcheck__v1__state__init(&g->st);
	vmcheck__v1__memory__init(&g->mem);
	g->mem.block_size = BS;
	for (size_t i = 0; i < n; i++) {
		vmcheck__v1__memory_block__init(&g->blk[i]);
		g->blk[i].index = idx[i];
		g->blk[i].phys_start = idx[i] * BS;
		g->blk[i].state = state;
		g->blk[i].valid_zones = "Movable";
		g->p[i] = &g->blk[i];
		if (state == VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE)
			g->mem.online_bytes += BS;
	}
	g->mem.blocks = g->p;
	g->mem.n_blocks = n;
	g->mem.auto_online_blocks = "offline";
	g->st.memory = &g->mem;
	g->st.sections = SEC(MEMORY);
}

static const Vmcheck__V1__MemoryBlock__State ONLINE = VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE;
static const Vmcheck__V1__MemoryBlock__State OFFLINE = VMCHECK__V1__MEMORY_BLOCK__STATE__OFFLINE;

/* A DIMM of @size placed by the hypervisor at @addr, after the baseline @b. */
static void dimm_at(struct vmc_chk_dimm *d, const struct mem_guest *b, uint64_t addr, uint64_t size)
{
	struct vmc_error err = VMC_ERROR_INIT;

	CU_ASSERT_EQUAL_FATAL(vmc_chk_dimm_init(d, &b->st, size), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_chk_dimm_place(d, addr, size, &err), 0);
}

static void dimm_is_the_blocks_at_its_address(void)
{
	/* Boot memory 0-3 (one hole at 2, as after an earlier unplug), a DIMM of 2 blocks at 4 GiB. */
	static const uint64_t base[] = { 3, 0, 1 }, after[] = { 0, 1, 3, 32, 33 };
	struct mem_guest b, g;
	struct vmc_chk_dimm d;

	mem_guest_init(&b, base, 3, ONLINE);
	dimm_at(&d, &b, 32 * BS, 2 * BS);
	CU_ASSERT_EQUAL(d.base_online, 3 * BS);
	CU_ASSERT_EQUAL(d.first, 32);
	CU_ASSERT_EQUAL(d.count, 2);
	CU_ASSERT_FALSE(vmc_chk_dimm_blocks(&b.st, &d, &why));
	why_has("0 of the DIMM's 2 memory blocks 32-33 present (block 32 missing)");

	/* Only one of the two announced yet. */
	mem_guest_init(&g, after, 4, OFFLINE);
	CU_ASSERT_FALSE(vmc_chk_dimm_blocks(&g.st, &d, &why));
	why_has("1 of the DIMM's 2 memory blocks 32-33 present (block 33 missing)");

	mem_guest_init(&g, after, 5, OFFLINE);
	CU_ASSERT_TRUE(vmc_chk_dimm_blocks(&g.st, &d, &why));
	vmc_chk_dimm_free(&d);
}

static void dimm_blocks_elsewhere_are_not_the_dimm(void)
{
	/* The right count of new blocks, contiguous, but not where QEMU put the DIMM. */
	static const uint64_t base[] = { 0, 1 }, shifted[] = { 0, 1, 40, 41 },
			      extra[] = { 0, 1, 32, 33, 34 };
	struct mem_guest b, g;
	struct vmc_chk_dimm d;
	struct vmc_error err = VMC_ERROR_INIT;

	mem_guest_init(&b, base, 2, ONLINE);
	dimm_at(&d, &b, 32 * BS, 2 * BS);
	mem_guest_init(&g, shifted, 4, ONLINE);
	CU_ASSERT_FALSE(vmc_chk_dimm_blocks(&g.st, &d, &why));
	why_has("new memory blocks 40 41 lie outside the DIMM at 0x100000000 (blocks 32-33)");
	/* Every block of the DIMM, and one more that nothing plugged. */
	mem_guest_init(&g, extra, 5, ONLINE);
	CU_ASSERT_FALSE(vmc_chk_dimm_blocks(&g.st, &d, &why));
	why_has("new memory blocks 34 lie outside");
	vmc_chk_dimm_free(&d);

	/* A DIMM the hypervisor did not place on block boundaries cannot be matched. */
	CU_ASSERT_EQUAL_FATAL(vmc_chk_dimm_init(&d, &b.st, 2 * BS), 0);
	CU_ASSERT_EQUAL(vmc_chk_dimm_place(&d, 32 * BS + 4096, 2 * BS, &err), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not aligned"));
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(vmc_chk_dimm_place(&d, 32 * BS, BS, &err), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "asked for 256 MiB"));
	vmc_error_clear(&err);
	vmc_chk_dimm_free(&d);

	/* No memory section, or a stale one: nothing to start from. */
	vmcheck__v1__state__init(&g.st);
	CU_ASSERT_EQUAL(vmc_chk_dimm_init(&d, &g.st, BS), -ENOENT);
	mem_guest_init(&g, base, 2, ONLINE);
	make_stale(&g.st, SEC(MEMORY), "reading memory: Input/output error");
	CU_ASSERT_EQUAL(vmc_chk_dimm_init(&d, &g.st, BS), -ENOENT);
}

static void dimm_online_and_gone_count_bytes(void)
{
	static const uint64_t base[] = { 0, 1 }, after[] = { 0, 1, 32, 33 };
	struct mem_guest b, g;
	struct vmc_chk_dimm d;

	mem_guest_init(&b, base, 2, ONLINE);
	dimm_at(&d, &b, 32 * BS, 2 * BS);
	mem_guest_init(&g, after, 4, ONLINE);
	CU_ASSERT_TRUE(vmc_chk_dimm_blocks(&g.st, &d, &why));
	CU_ASSERT_TRUE(vmc_chk_dimm_online(&g.st, &d, &why));

	g.blk[3].state = OFFLINE;
	g.mem.online_bytes -= BS;
	CU_ASSERT_FALSE(vmc_chk_dimm_online(&g.st, &d, &why));
	why_has("memory block 33 not online");

	/* Our blocks online, but some other memory went offline meanwhile. */
	g.blk[3].state = ONLINE;
	g.blk[0].state = OFFLINE;
	CU_ASSERT_FALSE(vmc_chk_dimm_online(&g.st, &d, &why));
	why_has("want 268435456 + 268435456");

	CU_ASSERT_FALSE(vmc_chk_dimm_gone(&g.st, &d, &why));
	why_has("memory block 32 still there");

	/* Gone from a section the agent could not read is not gone. */
	mem_guest_init(&g, base, 2, ONLINE);
	make_stale(&g.st, SEC(MEMORY), "reading memory: Input/output error");
	CU_ASSERT_FALSE(vmc_chk_dimm_gone(&g.st, &d, &why));
	why_has("could not read the memory section");
	vmc_chk_dimm_free(&d);
}

static void movable_means_movable(void)
{
	static const uint64_t base[] = { 0, 1 }, after[] = { 0, 1, 32, 33 };
	struct mem_guest b, g;
	struct vmc_chk_dimm d;

	mem_guest_init(&b, base, 2, ONLINE);
	dimm_at(&d, &b, 32 * BS, 2 * BS);
	d.movable = true;
	mem_guest_init(&g, after, 4, ONLINE);
	CU_ASSERT_TRUE(vmc_chk_dimm_online(&g.st, &d, &why));
	/* Online, but in Normal: it will never be Movable, the wait ends now. */
	g.blk[3].valid_zones = "Normal";
	CU_ASSERT_FALSE(vmc_chk_dimm_online(&g.st, &d, &why));
	why_has("memory block 33 is online in zone \"Normal\", not Movable");
	CU_ASSERT_TRUE(why.final);
	/* Not asked for Movable: any zone will do. */
	d.movable = false;
	CU_ASSERT_TRUE(vmc_chk_dimm_online(&g.st, &d, &why));
	vmc_chk_dimm_free(&d);
}

static void dimm_unplug_leaves_later_dimms_online(void)
{
	/* dimm1 = blocks 32-33, dimm2 = 34 plugged after it; dimm1 goes first. */
	static const uint64_t base[] = { 0, 1 }, one[] = { 0, 1, 32, 33 },
			      both[] = { 0, 1, 32, 33, 34 }, after[] = { 0, 1, 34 };
	struct mem_guest g;
	struct vmc_chk_dimm d;

	mem_guest_init(&g, base, 2, ONLINE);
	dimm_at(&d, &g, 32 * BS, 2 * BS);
	mem_guest_init(&g, one, 4, ONLINE);
	CU_ASSERT_TRUE(vmc_chk_dimm_blocks(&g.st, &d, &why));

	mem_guest_init(&g, both, 5, ONLINE);
	vmc_chk_dimm_unplugging(&d, &g.st);
	CU_ASSERT_EQUAL(d.left_online, 3 * BS);
	mem_guest_init(&g, after, 3, ONLINE);
	CU_ASSERT_TRUE(vmc_chk_dimm_gone(&g.st, &d, &why));
	g.mem.online_bytes = 2 * BS;
	CU_ASSERT_FALSE(vmc_chk_dimm_gone(&g.st, &d, &why));
	why_has("online memory 268435456 bytes, want 402653184");

	/* A block of the DIMM that never came online is not taken off the total. */
	mem_guest_init(&g, both, 5, ONLINE);
	g.blk[3].state = OFFLINE;
	g.mem.online_bytes -= BS;
	vmc_chk_dimm_unplugging(&d, &g.st);
	CU_ASSERT_EQUAL(d.left_online, 3 * BS);
	vmc_chk_dimm_free(&d);
}

struct cpu_guest {
	Vmcheck__V1__State st;
	Vmcheck__V1__Cpus cpus;
	Vmcheck__V1__Cpu c[4], *p[4];
};

/*
 * CPUs 0..n-1 present; @online_mask says which are online. An online CPU
 * sits at socket = its id, core 0, thread 0 (QEMU's -smp N,maxcpus=M
 * default here: one core per socket); an offline one shows no topology.
 */
static void cpu_guest_init(struct cpu_guest *g, const char *present, unsigned n,
			   unsigned online_mask)
{
	vmcheck__v1__state__init(&g->st);
	vmcheck__v1__cpus__init(&g->cpus);
	for (unsigned i = 0; i < n; i++) {
		bool on = online_mask >> i & 1;

		vmcheck__v1__cpu__init(&g->c[i]);
		g->c[i].id = i;
		g->c[i].present = true;
		g->c[i].online = on;
		g->c[i].package_id = on ? (int32_t)i : -1;
		g->c[i].core_id = on ? 0 : -1;
		g->c[i].die_id = on ? 0 : -1;
		g->c[i].thread_id = on ? 0 : -1;
		g->c[i].apic_id = on ? (int64_t)i : -1;
		g->p[i] = &g->c[i];
	}
	g->cpus.present = (char *)present;
	g->cpus.cpus = g->p;
	g->cpus.n_cpus = n;
	g->st.cpus = &g->cpus;
	g->st.sections = SEC(CPUS);
}

/* QEMU's position socket @socket, die 0, core 0, thread 0. */
static void cpu_want(struct vmc_chk_cpu *c, const struct cpu_guest *base, int socket)
{
	struct vmc_hv_cpu where = { .socket_id = socket, .die_id = 0, .core_id = 0, .thread_id = 0 };

	vmc_chk_cpu_init(c, &base->st, &where, true);
}

static void cpu_is_the_one_new_cpu(void)
{
	struct cpu_guest b, g;
	struct vmc_chk_cpu c;

	cpu_guest_init(&b, "0-1", 2, 3);
	cpu_want(&c, &b, 2);
	CU_ASSERT_EQUAL(c.id, -1);
	CU_ASSERT_FALSE(vmc_chk_cpu_up(&b.st, &c, &why));
	why_has("no new CPU (present 0-1, before the plug 0-1)");

	/* Whatever number the guest gives it: no id is assumed. */
	cpu_guest_init(&g, "0-2", 3, 3);
	CU_ASSERT_TRUE(vmc_chk_cpu_up(&g.st, &c, &why));
	CU_ASSERT_EQUAL(c.id, 2);
	CU_ASSERT_FALSE(vmc_chk_cpu_online(&g.st, &c, &why));
	why_has("cpu2 offline");
	g.c[2].online = true;
	CU_ASSERT_TRUE(vmc_chk_cpu_online(&g.st, &c, &why));

	/* In the list but not in the present set: not there. */
	g.cpus.present = "0-1";
	CU_ASSERT_PTR_NULL(vmc_chk_cpu_present(&g.st, 2));
	CU_ASSERT_FALSE(vmc_chk_cpu_online(&g.st, &c, &why));

	/* Two new CPUs for one vCPU: which one is it? Neither: final. */
	cpu_want(&c, &b, 2);
	cpu_guest_init(&g, "0-3", 4, 3);
	CU_ASSERT_FALSE(vmc_chk_cpu_up(&g.st, &c, &why));
	why_has("2 new CPUs for one vCPU: cpu2 cpu3");
	CU_ASSERT_TRUE(why.final);

	/* A stale cpus section proves nothing. */
	cpu_want(&c, &b, 2);
	cpu_guest_init(&g, "0-2", 3, 3);
	make_stale(&g.st, SEC(CPUS), "reading cpus: Input/output error");
	CU_ASSERT_FALSE(vmc_chk_cpu_up(&g.st, &c, &why));
	why_has("could not read the cpus section");
}

static void cpu_identity_is_its_topology(void)
{
	struct cpu_guest b, g;
	struct vmc_chk_cpu c;

	cpu_guest_init(&b, "0-1", 2, 3);
	cpu_want(&c, &b, 2);
	cpu_guest_init(&g, "0-2", 3, 7);
	CU_ASSERT_TRUE(vmc_chk_cpu_up(&g.st, &c, &why));
	CU_ASSERT_TRUE(vmc_chk_cpu_topology(&g.st, &c, &why));

	/* Online but its topology not shown yet: wait. */
	g.c[2].core_id = -1;
	CU_ASSERT_FALSE(vmc_chk_cpu_topology(&g.st, &c, &why));
	CU_ASSERT_FALSE(why.final);
	g.c[2].core_id = 0;

	/* The new CPU sits in socket 3, QEMU put the vCPU in socket 2: both views, final. */
	g.c[2].package_id = 3;
	CU_ASSERT_FALSE(vmc_chk_cpu_topology(&g.st, &c, &why));
	CU_ASSERT_TRUE(why.final);
	why_has("QEMU: socket-id 2 die-id 0 core-id 0 thread-id 0; guest cpu2: "
		"physical_package_id 3 die_id 0 core_id 0 thread 0");
	g.c[2].package_id = 2;
	g.c[2].thread_id = 1;
	CU_ASSERT_FALSE(vmc_chk_cpu_topology(&g.st, &c, &why));
	why_has("thread 1");

	/* An agent that cannot tell threads (protocol minor 0): the rest still must match. */
	c.thread_known = false;
	CU_ASSERT_TRUE(vmc_chk_cpu_topology(&g.st, &c, &why));
	g.c[2].core_id = 1;
	CU_ASSERT_FALSE(vmc_chk_cpu_topology(&g.st, &c, &why));
	why_has("thread -1 unknown to this agent");
}

static void cpu_gone_from_present(void)
{
	struct cpu_guest b, g;
	struct vmc_chk_cpu c;

	cpu_guest_init(&b, "0-1", 2, 3);
	cpu_want(&c, &b, 2);
	/* Never seen: its removal cannot be judged. */
	CU_ASSERT_FALSE(vmc_chk_cpu_gone(&b.st, &c, &why));
	CU_ASSERT_TRUE(why.final);
	cpu_guest_init(&g, "0-2", 3, 7);
	CU_ASSERT_TRUE(vmc_chk_cpu_up(&g.st, &c, &why));
	CU_ASSERT_FALSE(vmc_chk_cpu_gone(&g.st, &c, &why));
	why_has("cpu2 still present (present 0-2)");
	cpu_guest_init(&g, "0-1,3", 2, 3);
	CU_ASSERT_TRUE(vmc_chk_cpu_gone(&g.st, &c, &why));
	vmcheck__v1__state__init(&g.st);
	CU_ASSERT_FALSE(vmc_chk_cpu_gone(&g.st, &c, &why));
}

static void bytes_print_exact_units(void)
{
	char b[32];

	CU_ASSERT_STRING_EQUAL(vmc_chk_bytes(256ull << 20, b), "256 MiB");
	CU_ASSERT_STRING_EQUAL(vmc_chk_bytes(1ull << 30, b), "1 GiB");
	CU_ASSERT_STRING_EQUAL(vmc_chk_bytes((1ull << 30) + 512, b), "1073742336 B");
	CU_ASSERT_STRING_EQUAL(vmc_chk_bytes(1536ull << 10, b), "1536 KiB");
	CU_ASSERT_STRING_EQUAL(vmc_chk_bytes(0, b), "0 B");
}

/* A hypervisor that says which architecture its guest is, and nothing else. */
static const struct vmc_arch *arm_arch(struct vmc_hv *hv)
{
	return &vmc_arch_aarch64;
}

static void unplug_deadline_is_the_guest_archs(void)
{
	const struct vmc_hv_ops x86_ops = { .name = "x86" },
				arm_ops = { .name = "arm", .arch = arm_arch };
	struct vmc_hv x86 = { &x86_ops }, arm = { &arm_ops };
	struct vmc_run_opts o = { .deadline_ms = 10000 };
	struct vmc_ctx c = { .hv = &x86, .opts = &o };

	/* q35's ACPI PCI hotplug: the per-change deadline as given. */
	CU_ASSERT_EQUAL(vmc_chk_unplug_ms(&c), 10000);
	/* arm virt's native PCIe hotplug: the attention button's 5 s on top. */
	c.hv = &arm;
	CU_ASSERT_EQUAL(vmc_chk_unplug_ms(&c), 15000);
	o.deadline_ms = 300;
	CU_ASSERT_EQUAL(vmc_chk_unplug_ms(&c), 5300);
}

/*
 * A guest's names, quoted into a reason: what a hostile guest would use to
 * forge a line of the text report ("  disk  plug disk1 ... ok") or to drive
 * the user's terminal.
 */
#define FORGED "\n  disk       plug disk1 (serial vmcd1) on port1                  ok"
#define FORGED_Q "\\n  disk       plug disk1 (serial vmcd1) on port1                  ok"

/* @text quotes the guest: one line, no ESC, the backslash doubled. */
static void one_quoted_line(const char *text)
{
	CU_ASSERT_PTR_NULL(strchr(text, '\n'));
	CU_ASSERT_PTR_NULL(strchr(text, '\x1b'));
	if (!strstr(text, FORGED_Q))
		fprintf(stderr, "\nnot quoted: %s\n", text);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, FORGED_Q));
}

static void guest_names_are_quoted_in_reasons(void)
{
	struct disk_guest d;
	struct nic_guest g;
	struct vmc_chk_nic n = { .mac = "52:54:00:76:ab:07", .port = PORT };
	struct vmc_chk_disk w = { .serial = "vmcd12ab1", .port = PORT, .size = 64 << 20 };

	nic_guest_init(&g);
	g.hot.name = "eth1" FORGED "\x1b[2J";
	g.hot.driver = "e1000\\x1b";
	CU_ASSERT_FALSE(vmc_chk_nic_up(&g.st, &n, &why));
	one_quoted_line(why.text);
	why_has("link eth1" FORGED_Q "\\e[2J (52:54:00:76:ab:07): driver \"e1000\\\\x1b\"");
	CU_ASSERT_FALSE(vmc_chk_nic_gone(&g.st, &n, &why));
	one_quoted_line(why.text);

	disk_guest_init(&d);
	d.vdb.name = "vdb" FORGED "\x1b[2J";
	d.vdb.size_bytes = 0;
	CU_ASSERT_FALSE(vmc_chk_disk_up(&d.g.st, &w, &why));
	one_quoted_line(why.text);
	why_has("vdb" FORGED_Q "\\e[2J (serial vmcd12ab1): size 0");
	CU_ASSERT_FALSE(vmc_chk_disk_gone(&d.g.st, &w, &why));
	one_quoted_line(why.text);

	/* The agent's own error text for a section it could not read. */
	disk_guest_init(&d);
	make_stale(&d.g.st, SEC(BLOCKS), "reading /sys/block" FORGED "\x1b[2J");
	CU_ASSERT_FALSE(vmc_chk_disk_up(&d.g.st, &w, &why));
	one_quoted_line(why.text);
}

/* The reason of a failed step reaches the text report as one line: no forged step row. */
static void a_guest_cannot_forge_a_report_line(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step_record r = { 0 };
	struct vmc_report *rep;
	struct disk_guest d;
	struct vmc_chk_disk w = { .serial = "vmcd12ab1", .port = PORT, .size = 64 << 20 };
	char *out = NULL, msg[600];
	size_t len = 0;
	FILE *fp = open_memstream(&out, &len);

	disk_guest_init(&d);
	d.vdb.name = "vdb" FORGED "\x1b[2J";
	d.vdb.size_bytes = 0;
	CU_ASSERT_FALSE(vmc_chk_disk_up(&d.g.st, &w, &why));
	snprintf(msg, sizeof(msg), "not within 10000 ms: %s", why.text);
	CU_ASSERT_EQUAL_FATAL(vmc_report_text_new(fp, false, &rep, &err), 0);
	r.check = "disk";
	r.name = "plug disk1 (serial vmcd12ab1) on port1";
	r.operation = "disk plug";
	r.status = VMC_STEP_FAILED;
	r.latency_ns = -1;
	r.message = msg;
	rep->ops->step(rep, &r);
	rep->ops->finish(rep);
	fclose(fp);
	/* The forged row is inside the message's line, never at the start of one. */
	for (const char *p = strstr(out, "disk       plug disk1 (serial vmcd1)"); p;
	     p = strstr(p + 1, "disk       plug disk1 (serial vmcd1)")) {
		const char *q = p;

		while (q > out && q[-1] == ' ')
			q--;
		CU_ASSERT(q > out && q[-1] != '\n');
	}
	CU_ASSERT_PTR_NULL(memchr(out, '\x1b', len));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "        not within 10000 ms: vdb" FORGED_Q "\\e[2J"));
	vmc_report_free(rep);
	free(out);
}

VMC_SUITE(checks, NULL, NULL, VMC_TEST(mac_is_local_unicast_and_unique),
	  VMC_TEST(addresses_compare_without_case), VMC_TEST(nic_found_by_mac_and_port),
	  VMC_TEST(nic_on_another_port_is_not_ours),
	  VMC_TEST(nic_waits_for_function_link_and_driver), VMC_TEST(nic_gone_only_when_mac_gone),
	  VMC_TEST(disk_found_by_serial_size_and_port),
	  VMC_TEST(disk_with_wrong_size_type_or_port_is_not_ours),
	  VMC_TEST(disk_gone_when_no_whole_disk_has_the_serial),
	  VMC_TEST(guest_names_are_quoted_in_reasons), VMC_TEST(a_guest_cannot_forge_a_report_line),
	  VMC_TEST(nothing_is_gone_from_a_missing_or_stale_section),
	  VMC_TEST(dimm_is_the_blocks_at_its_address),
	  VMC_TEST(dimm_blocks_elsewhere_are_not_the_dimm),
	  VMC_TEST(dimm_online_and_gone_count_bytes), VMC_TEST(movable_means_movable),
	  VMC_TEST(dimm_unplug_leaves_later_dimms_online), VMC_TEST(cpu_is_the_one_new_cpu),
	  VMC_TEST(cpu_identity_is_its_topology), VMC_TEST(cpu_gone_from_present),
	  VMC_TEST(bytes_print_exact_units), VMC_TEST(unplug_deadline_is_the_guest_archs))
