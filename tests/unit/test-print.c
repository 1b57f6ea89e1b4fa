/* SPDX-License-Identifier: MIT */
/*
 * Tests of the printers: the JSON contract integration tests rely on, and
 * text tables that survive whatever an agent sends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "harness.h"
#include "print.h"
#include "state-diff.h"

/* Output of one printer call, captured in memory. */
struct capture {
	char *buf;
	size_t len;
	FILE *fp;
};

static void cap_open(struct capture *c)
{
	c->buf = NULL;
	c->len = 0;
	c->fp = open_memstream(&c->buf, &c->len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->fp);
}

/* Close the stream; the text stays in c->buf until cap_free(). */
static const char *cap_text(struct capture *c)
{
	fclose(c->fp);
	c->fp = NULL;
	return c->buf;
}

static void cap_free(struct capture *c)
{
	free(c->buf);
}

#define ASSERT_HAS(text, needle)                                                         \
	do {                                                                             \
		if (!strstr((text), (needle)))                                           \
			fprintf(stderr, "\nmissing \"%s\" in:\n%s\n", (needle), (text)); \
		CU_ASSERT_PTR_NOT_NULL(strstr((text), (needle)));                        \
	} while (0)

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	CU_ASSERT_TRUE(json_object_object_get_ex(o, key, &v));
	return v;
}

/* Every field of @d is a key of @o: the "defaults included" half of the contract. */
static void assert_every_field(struct json_object *o, const ProtobufCMessageDescriptor *d)
{
	for (unsigned i = 0; i < d->n_fields; i++) {
		if (d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
			continue;
		if (!json_object_object_get_ex(o, d->fields[i].name, NULL))
			fprintf(stderr, "\nmissing key %s.%s\n", d->name, d->fields[i].name);
		CU_ASSERT_TRUE(json_object_object_get_ex(o, d->fields[i].name, NULL));
	}
}

static void json_has_every_field_with_proto_names(void)
{
	Vmcheck__V1__State st = VMCHECK__V1__STATE__INIT;
	Vmcheck__V1__Link link = VMCHECK__V1__LINK__INIT;
	Vmcheck__V1__Address addr = VMCHECK__V1__ADDRESS__INIT;
	Vmcheck__V1__Memory mem = VMCHECK__V1__MEMORY__INIT;
	Vmcheck__V1__MemoryBlock mb = VMCHECK__V1__MEMORY_BLOCK__INIT;
	Vmcheck__V1__SectionError se = VMCHECK__V1__SECTION_ERROR__INIT;
	Vmcheck__V1__Link *links[] = { &link };
	Vmcheck__V1__Address *addrs[] = { &addr };
	Vmcheck__V1__MemoryBlock *mbs[] = { &mb };
	Vmcheck__V1__SectionError *errs[] = { &se };
	struct json_object *o, *l, *a, *m;

	st.generation = 5;
	st.mono_ns = UINT64_MAX;
	st.realtime_ns = -2;
	st.sections = 11;
	st.links = links;
	st.n_links = 1;
	link.name = "eth0";
	link.carrier = VMCHECK__V1__LINK__CARRIER__CARRIER_UP;
	link.driver = NULL; /* a NULL string is the default "" */
	link.devpath = "devices/virtual/net/eth0";
	link.addresses = addrs;
	link.n_addresses = 1;
	addr.family = 10;
	addr.address = "fe80::1";
	st.memory = &mem;
	mem.blocks = mbs;
	mem.n_blocks = 1;
	mb.index = 40;
	mb.state = VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE;
	mb.node = -1;
	st.errors = errs;
	st.n_errors = 1;
	se.section = VMCHECK__V1__SECTION__SECTION_PCI;
	se.errno_value = 2;

	o = vmc_json_from_message(&st.base);
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	assert_every_field(o, &vmcheck__v1__state__descriptor);
	CU_ASSERT_EQUAL(json_object_get_int64(get(o, "generation")), 5);
	CU_ASSERT_EQUAL(json_object_get_uint64(get(o, "mono_ns")), UINT64_MAX);
	CU_ASSERT_TRUE(json_object_is_type(get(o, "mono_ns"), json_type_int));
	CU_ASSERT_EQUAL(json_object_get_int64(get(o, "realtime_ns")), -2);
	CU_ASSERT_STRING_EQUAL(json_object_get_string(get(o, "boot_id")), "");
	CU_ASSERT_EQUAL(json_object_get_int64(get(o, "read_ns")), 0);
	/* Unset message fields are null; empty repeated fields are []. */
	CU_ASSERT_PTR_NULL(get(o, "system"));
	CU_ASSERT_PTR_NULL(get(o, "crash"));
	CU_ASSERT_TRUE(json_object_is_type(get(o, "blocks"), json_type_array));
	CU_ASSERT_EQUAL(json_object_array_length(get(o, "blocks")), 0);

	l = json_object_array_get_idx(get(o, "links"), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	assert_every_field(l, &vmcheck__v1__link__descriptor);
	CU_ASSERT_STRING_EQUAL(json_object_get_string(get(l, "name")), "eth0");
	CU_ASSERT_STRING_EQUAL(json_object_get_string(get(l, "carrier")), "CARRIER_UP");
	CU_ASSERT_STRING_EQUAL(json_object_get_string(get(l, "driver")), "");
	CU_ASSERT_STRING_EQUAL(json_object_get_string(get(l, "pci_address")), "");
	CU_ASSERT_EQUAL(json_object_get_int(get(l, "mtu")), 0);
	a = json_object_array_get_idx(get(l, "addresses"), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	assert_every_field(a, &vmcheck__v1__address__descriptor);
	CU_ASSERT_EQUAL(json_object_get_int(get(a, "family")), 10);
	CU_ASSERT_EQUAL(json_object_get_int(get(a, "prefixlen")), 0);
	CU_ASSERT_STRING_EQUAL(json_object_get_string(get(a, "scope")), "");

	m = get(o, "memory");
	assert_every_field(m, &vmcheck__v1__memory__descriptor);
	CU_ASSERT_EQUAL(json_object_array_length(get(m, "ranges")), 0);
	m = json_object_array_get_idx(get(m, "blocks"), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_STRING_EQUAL(json_object_get_string(get(m, "state")), "ONLINE");
	CU_ASSERT_EQUAL(json_object_get_int(get(m, "node")), -1);
	CU_ASSERT_FALSE(json_object_get_boolean(get(m, "removable")));
	CU_ASSERT_TRUE(json_object_is_type(get(m, "removable"), json_type_boolean));

	CU_ASSERT_STRING_EQUAL(json_object_get_string(
				       get(json_object_array_get_idx(get(o, "errors"), 0),
					   "section")),
			       "SECTION_PCI");
	json_object_put(o);
}

static void json_line_is_plain_and_unescaped(void)
{
	Vmcheck__V1__Response rsp = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__Event ev = VMCHECK__V1__EVENT__INIT;
	Vmcheck__V1__Cause cause = VMCHECK__V1__CAUSE__INIT;
	Vmcheck__V1__Cause *causes[] = { &cause };
	const char *head = "{\"id\":0,\"event\":{\"subscription_id\":3,\"state\":null,";
	struct capture c;
	const char *text;

	ev.subscription_id = 3;
	ev.causes = causes;
	ev.n_causes = 1;
	cause.source = VMCHECK__V1__CAUSE__SOURCE__UEVENT;
	cause.devpath = "/devices/virtual/block/loop0";
	rsp.kind_case = VMCHECK__V1__RESPONSE__KIND_EVENT;
	rsp.event = &ev;

	cap_open(&c);
	CU_ASSERT_EQUAL(vmc_json_print(c.fp, &rsp.base), 0);
	text = cap_text(&c);
	/* Of a oneof, only the member set: no "hello": null and the like. */
	CU_ASSERT_EQUAL(strncmp(text, head, strlen(head)), 0);
	ASSERT_HAS(text, "\"source\":\"UEVENT\"");
	ASSERT_HAS(text, "\"devpath\":\"/devices/virtual/block/loop0\"");
	ASSERT_HAS(text, "\"kernel_mono_ns\":0}}\n");
	CU_ASSERT_PTR_NULL(strstr(text, "hello"));
	CU_ASSERT_EQUAL(strchr(text, '\n'), text + strlen(text) - 1); /* one line */
	cap_free(&c);
}

static void json_bytes_are_hex_and_unknown_enums_numbers(void)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Probe probe = VMCHECK__V1__PROBE__INIT;
	Vmcheck__V1__DiskProbe disk = VMCHECK__V1__DISK_PROBE__INIT;
	Vmcheck__V1__Link link = VMCHECK__V1__LINK__INIT;
	uint8_t pattern[] = { 0xde, 0xad, 0x00, 0x0f };
	uint64_t offsets[] = { 0, 4096 };
	struct json_object *o, *d;

	disk.pattern.data = pattern;
	disk.pattern.len = sizeof(pattern);
	disk.offsets = offsets;
	disk.n_offsets = 2;
	probe.kind_case = VMCHECK__V1__PROBE__KIND_DISK;
	probe.disk = &disk;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_PROBE;
	req.probe = &probe;
	o = vmc_json_from_message(&req.base);
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	d = get(get(o, "probe"), "disk");
	CU_ASSERT_STRING_EQUAL(json_object_get_string(get(d, "pattern")), "dead000f");
	CU_ASSERT_EQUAL(json_object_get_int(json_object_array_get_idx(get(d, "offsets"), 1)), 4096);
	CU_ASSERT_STRING_EQUAL(json_object_get_string(get(d, "device")), "");
	CU_ASSERT_FALSE(json_object_object_get_ex(o, "hello", NULL));
	json_object_put(o);

	link.carrier = 42;
	o = vmc_json_from_message(&link.base);
	CU_ASSERT_EQUAL(json_object_get_int(get(o, "carrier")), 42);
	json_object_put(o);
	CU_ASSERT_PTR_NULL(vmc_json_from_message(NULL));
}

static void human_sizes_match_lsblk(void)
{
	char b[16];

	CU_ASSERT_STRING_EQUAL(vmc_human_size(0, b), "0B");
	CU_ASSERT_STRING_EQUAL(vmc_human_size(512, b), "512B");
	CU_ASSERT_STRING_EQUAL(vmc_human_size(1024, b), "1K");
	CU_ASSERT_STRING_EQUAL(vmc_human_size(1536, b), "1.5K");
	CU_ASSERT_STRING_EQUAL(vmc_human_size(128ull << 20, b), "128M");
	CU_ASSERT_STRING_EQUAL(vmc_human_size(3ull << 30, b), "3G");
	CU_ASSERT_STRING_EQUAL(vmc_human_size(21ull << 30, b), "21G");
	CU_ASSERT_STRING_EQUAL(vmc_human_size(3113851289ull, b), "2.9G");
	/* Rounding carries into the integer part, as util-linux does. */
	CU_ASSERT_STRING_EQUAL(vmc_human_size(1048575, b), "1024K");
	CU_ASSERT_STRING_EQUAL(vmc_human_size(1ull << 40, b), "1T");
	CU_ASSERT_STRING_EQUAL(vmc_human_size(UINT64_MAX, b), "16E");
}

static void text_survives_empty_and_partial_states(void)
{
	Vmcheck__V1__State st = VMCHECK__V1__STATE__INIT;
	Vmcheck__V1__Link link = VMCHECK__V1__LINK__INIT;
	Vmcheck__V1__Block blk = VMCHECK__V1__BLOCK__INIT;
	Vmcheck__V1__Link *links[] = { &link, NULL };
	Vmcheck__V1__Block *blocks[] = { NULL, &blk };
	struct capture c;
	const char *text;

	/* Every section claimed, none sent. */
	st.sections = VMC_SECTION_ALL;
	cap_open(&c);
	vmc_print_state(c.fp, &st);
	vmc_print_summary(c.fp, &st);
	vmc_print_section_errors(c.fp, &st);
	text = cap_text(&c);
	ASSERT_HAS(text, "[system]\n(no system information)\n");
	ASSERT_HAS(text, "[links]\nNAME IFINDEX MAC MTU OPERSTATE CARRIER DRIVER PCI ADDRESSES\n");
	ASSERT_HAS(text, "[blocks]\nNAME MAJ:MIN SIZE RO RM TYPE SERIAL PCI\n");
	ASSERT_HAS(text, "(no memory information)");
	ASSERT_HAS(text, "(no cpu information)");
	ASSERT_HAS(text, "(no pci information)");
	ASSERT_HAS(text, "(no crash information)");
	ASSERT_HAS(text, "generation 0, boot_id -,");
	cap_free(&c);

	/* NULL strings everywhere, NULL array entries. */
	link.name = NULL;
	link.mac = NULL;
	link.operstate = NULL;
	blk.name = NULL;
	blk.type = NULL;
	blk.parent = NULL;
	st.links = links;
	st.n_links = 2;
	st.blocks = blocks;
	st.n_blocks = 2;
	st.sections = VMCHECK__V1__SECTION__SECTION_LINKS | VMCHECK__V1__SECTION__SECTION_BLOCKS;
	cap_open(&c);
	vmc_print_state(c.fp, &st);
	vmc_print_summary(c.fp, &st);
	text = cap_text(&c);
	ASSERT_HAS(text, "-          0 -     0 -         unknown -      -   -\n");
	ASSERT_HAS(text, "-    0:0       0B  0  0 -    -      -\n");
	ASSERT_HAS(text, "  links: 2 (- ?)\n");
	cap_free(&c);

	/* Only the section asked for: no title. */
	st.sections = VMCHECK__V1__SECTION__SECTION_BLOCKS;
	cap_open(&c);
	vmc_print_state(c.fp, &st);
	text = cap_text(&c);
	CU_ASSERT_EQUAL(strncmp(text, "NAME MAJ:MIN", 12), 0);
	cap_free(&c);
}

static void text_tables_look_like_the_tools(void)
{
	Vmcheck__V1__State st = VMCHECK__V1__STATE__INIT;
	Vmcheck__V1__Block vda = VMCHECK__V1__BLOCK__INIT, vda1 = VMCHECK__V1__BLOCK__INIT,
			   vda2 = VMCHECK__V1__BLOCK__INIT, vdb = VMCHECK__V1__BLOCK__INIT;
	Vmcheck__V1__Block *blocks[] = { &vda, &vda1, &vda2, &vdb };
	char *vda_parts[] = { "vda1", "vda2" }, *vdb_parts[] = { "vdb1" };
	Vmcheck__V1__Memory mem = VMCHECK__V1__MEMORY__INIT;
	Vmcheck__V1__MemoryRange r0 = VMCHECK__V1__MEMORY_RANGE__INIT;
	Vmcheck__V1__MemoryRange *ranges[] = { &r0 };
	Vmcheck__V1__Cpus cpus = VMCHECK__V1__CPUS__INIT;
	Vmcheck__V1__Cpu c0 = VMCHECK__V1__CPU__INIT, c1 = VMCHECK__V1__CPU__INIT;
	Vmcheck__V1__Cpu *cpuv[] = { &c0, &c1 };
	Vmcheck__V1__SectionError se = VMCHECK__V1__SECTION_ERROR__INIT;
	Vmcheck__V1__SectionError *errs[] = { &se };
	struct capture c;
	const char *text;

	vda.name = "vda";
	vda.major = 254;
	vda.size_bytes = 1ull << 30;
	vda.type = "disk";
	vda.serial = "disk0";
	vda.pci_address = "0000:01:00.0";
	vda.partitions = vda_parts;
	vda.n_partitions = 2;
	vda1.name = "vda1";
	vda1.major = 254;
	vda1.minor = 1;
	vda1.size_bytes = 512ull << 20;
	vda1.type = "part";
	vda1.parent = "vda";
	vda2 = vda1;
	vda2.name = "vda2";
	vda2.minor = 2;
	vdb.name = "vdb";
	vdb.major = 254;
	vdb.minor = 16;
	vdb.ro = true;
	vdb.type = "disk";
	vdb.partitions = vdb_parts;
	vdb.n_partitions = 1;
	st.blocks = blocks;
	st.n_blocks = 4;

	r0.start = 0;
	r0.end = (3ull << 30) - 1;
	r0.size = 3ull << 30;
	r0.state = "online";
	r0.removable = true;
	r0.first_block = 0;
	r0.last_block = 23;
	mem.ranges = ranges;
	mem.n_ranges = 1;
	mem.block_size = 128ull << 20;
	mem.online_bytes = 3ull << 30;
	st.memory = &mem;

	c0.online = true;
	c1.id = 1;
	c1.core_id = 1;
	c1.node = -1;
	c1.package_id = c1.die_id = -1;
	c1.thread_siblings = "1";
	c0.thread_siblings = "0";
	cpus.cpus = cpuv;
	cpus.n_cpus = 2;
	cpus.online = "0";
	cpus.offline = "1";
	st.cpus = &cpus;

	se.section = VMCHECK__V1__SECTION__SECTION_CRASH;
	se.message = "reading crash: Permission denied";
	st.errors = errs;
	st.n_errors = 1;
	st.sections = VMCHECK__V1__SECTION__SECTION_BLOCKS | VMCHECK__V1__SECTION__SECTION_MEMORY |
		      VMCHECK__V1__SECTION__SECTION_CPUS;

	cap_open(&c);
	vmc_print_state(c.fp, &st);
	vmc_print_section_errors(c.fp, &st);
	text = cap_text(&c);
	ASSERT_HAS(text, "NAME   MAJ:MIN SIZE RO RM TYPE SERIAL PCI\n"
			 "vda    254:0     1G  0  0 disk disk0  0000:01:00.0\n"
			 "├─vda1 254:1   512M  0  0 part -      -\n"
			 "└─vda2 254:2   512M  0  0 part -      -\n"
			 "vdb    254:16    0B  1  0 disk -      -\n"
			 "└─vdb1 -          -  -  - -    -      -\n");
	ASSERT_HAS(text, "RANGE                                 SIZE  STATE REMOVABLE BLOCK\n"
			 "0x0000000000000000-0x00000000bfffffff   3G online       yes  0-23\n"
			 "\n"
			 "Memory block size:       128M\n"
			 "Total online memory:       3G\n"
			 "Total offline memory:      0B\n");
	ASSERT_HAS(text, "On-line CPU(s) list:   0\n");
	ASSERT_HAS(text, "Off-line CPU(s) list:  1\n");
	ASSERT_HAS(text, "Socket(s):             1\n");
	ASSERT_HAS(text, "CPU ONLINE CORE SOCKET DIE NODE SIBLINGS\n"
			 "  0 yes       0      0   0    0 0\n"
			 "  1 no        1      -   -    - 1\n");
	ASSERT_HAS(text, "vmcheck: agent: reading crash: Permission denied\n");
	cap_free(&c);
}

static void diff_matches_by_identity(void)
{
	Vmcheck__V1__State a = VMCHECK__V1__STATE__INIT, b = VMCHECK__V1__STATE__INIT;
	Vmcheck__V1__Link eth0 = VMCHECK__V1__LINK__INIT, eth0b, vmct0 = VMCHECK__V1__LINK__INIT;
	Vmcheck__V1__Block loop0 = VMCHECK__V1__BLOCK__INIT;
	Vmcheck__V1__Memory ma = VMCHECK__V1__MEMORY__INIT, mb = VMCHECK__V1__MEMORY__INIT;
	Vmcheck__V1__MemoryBlock m40 = VMCHECK__V1__MEMORY_BLOCK__INIT, m40b, m41;
	Vmcheck__V1__Cpus ca = VMCHECK__V1__CPUS__INIT, cb = VMCHECK__V1__CPUS__INIT;
	Vmcheck__V1__Cpu cpu1 = VMCHECK__V1__CPU__INIT, cpu1b;
	Vmcheck__V1__Link *la[] = { &eth0 }, *lb[] = { &vmct0, &eth0b };
	Vmcheck__V1__Block *ba[] = { &loop0 };
	Vmcheck__V1__MemoryBlock *mba[] = { &m40, &m41 }, *mbb[] = { &m41, &m40b };
	Vmcheck__V1__Cpu *cpa[] = { &cpu1 }, *cpb[] = { &cpu1b };
	struct capture c;
	const char *text;

	eth0.name = "eth0";
	eth0.ifindex = 2;
	eth0.mtu = 1500;
	eth0b = eth0;
	eth0b.mtu = 9000;
	vmct0.name = "vmct0";
	vmct0.ifindex = 7;
	vmct0.mac = "02:00:00:00:00:07";
	loop0.name = "loop0";
	loop0.major = 7;
	m40.index = 40;
	m40.state = VMCHECK__V1__MEMORY_BLOCK__STATE__OFFLINE;
	m40b = m40;
	m40b.state = VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE;
	m41 = m40;
	m41.index = 41;
	cpu1.id = 1;
	cpu1b = cpu1;
	cpu1b.online = true;

	a.links = la;
	a.n_links = 1;
	b.links = lb;
	b.n_links = 2;
	a.blocks = ba;
	a.n_blocks = 1;
	ma.blocks = mba;
	ma.n_blocks = 2;
	mb.blocks = mbb;
	mb.n_blocks = 2;
	a.memory = &ma;
	b.memory = &mb;
	ca.cpus = cpa;
	ca.n_cpus = 1;
	cb.cpus = cpb;
	cb.n_cpus = 1;
	a.cpus = &ca;
	b.cpus = &cb;
	a.sections = b.sections = VMC_SECTION_ALL & ~(uint32_t)VMCHECK__V1__SECTION__SECTION_SYSTEM;

	cap_open(&c);
	CU_ASSERT_EQUAL(vmc_state_diff_write(c.fp, &a, &b), 5);
	text = cap_text(&c);
	ASSERT_HAS(text, "  ~ link eth0 (ifindex 2): mtu 1500 -> 9000\n");
	ASSERT_HAS(text, "  + link vmct0 (ifindex 7, mac 02:00:00:00:00:07, pci -, driver -)\n");
	ASSERT_HAS(text, "  - block loop0\n");
	ASSERT_HAS(text, "  ~ memory block 40: offline -> online\n");
	ASSERT_HAS(text, "  ~ cpu 1: online no -> yes\n");
	CU_ASSERT_PTR_NULL(strstr(text, "memory block 41"));
	cap_free(&c);

	/* A section missing on one side is not a change. */
	b.sections &= ~(uint32_t)VMCHECK__V1__SECTION__SECTION_BLOCKS;
	cap_open(&c);
	CU_ASSERT_EQUAL(vmc_state_diff_write(c.fp, &a, &b), 4);
	cap_text(&c);
	cap_free(&c);

	/* Bounded, as evidence is: the first lines, then how many more there were. */
	cap_open(&c);
	CU_ASSERT_EQUAL(vmc_state_diff_write_max(c.fp, &a, &b, 2), 4);
	text = cap_text(&c);
	ASSERT_HAS(text, "  ~ link eth0 (ifindex 2): mtu 1500 -> 9000\n");
	ASSERT_HAS(text, "  ... and 2 more changes, not shown (at most 2 lines are kept)\n");
	CU_ASSERT_PTR_NULL(strstr(text, "cpu 1"));
	cap_free(&c);
}

/* What the diff told, one line per callback: "+ link vmct0 (...)". */
struct told {
	char lines[8][300];
	unsigned n;
};

static void told_line(void *arg, char kind, const char *what, const char *label,
		      const char *changes)
{
	struct told *t = arg;

	CU_ASSERT_FATAL(t->n < ARRAY_SIZE(t->lines));
	snprintf(t->lines[t->n++], sizeof(t->lines[0]), "%c %s|%s|%s", kind, what,
		 label ? label : "(null)", changes ? changes : "");
}

static void told_added(void *arg, const char *what, const char *label)
{
	told_line(arg, '+', what, label, NULL);
}

static void told_removed(void *arg, const char *what, const char *label)
{
	told_line(arg, '-', what, label, NULL);
}

static void told_changed(void *arg, const char *what, const char *label, const char *changes)
{
	told_line(arg, '~', what, label, changes);
}

static void told_failed(void *arg, const char *what, int err)
{
	told_line(arg, '!', what, NULL, strerror(-err));
}

static void diff_tells_each_item_through_callbacks(void)
{
	static const struct vmc_state_diff_ops ops = {
		.added = told_added,
		.removed = told_removed,
		.changed = told_changed,
		.failed = told_failed,
	};
	Vmcheck__V1__State a = VMCHECK__V1__STATE__INIT, b = VMCHECK__V1__STATE__INIT;
	Vmcheck__V1__System sa = VMCHECK__V1__SYSTEM__INIT, sb;
	Vmcheck__V1__Link eth0 = VMCHECK__V1__LINK__INIT, eth0b;
	Vmcheck__V1__Block loop0 = VMCHECK__V1__BLOCK__INIT;
	Vmcheck__V1__Link *la[] = { &eth0 }, *lb[] = { &eth0b };
	Vmcheck__V1__Block *bb[] = { &loop0 };
	struct told t = { .n = 0 };

	sa.boot_id = "b1";
	sb = sa;
	sb.boot_id = "b2";
	eth0.name = "eth0";
	eth0.ifindex = 2;
	eth0b = eth0;
	eth0b.carrier = VMCHECK__V1__LINK__CARRIER__CARRIER_UP;
	loop0.name = "loop0";
	loop0.major = 7;
	loop0.size_bytes = 1ull << 30;
	a.system = &sa;
	b.system = &sb;
	a.links = la;
	a.n_links = 1;
	b.links = lb;
	b.n_links = 1;
	b.blocks = bb;
	b.n_blocks = 1;
	a.sections = b.sections = VMCHECK__V1__SECTION__SECTION_SYSTEM |
				  VMCHECK__V1__SECTION__SECTION_LINKS |
				  VMCHECK__V1__SECTION__SECTION_BLOCKS;

	CU_ASSERT_EQUAL(vmc_state_diff(&a, &b, &ops, &t), 3);
	CU_ASSERT_EQUAL_FATAL(t.n, 3);
	CU_ASSERT_STRING_EQUAL(t.lines[0], "~ system|(null)|boot_id b1 -> b2");
	CU_ASSERT_STRING_EQUAL(t.lines[1], "~ link|eth0 (ifindex 2)|carrier unknown -> up");
	CU_ASSERT_STRING_EQUAL(t.lines[2], "+ block|loop0 (7:0, 1G, -, serial -, pci -)|");

	/* Nothing told when nothing changed. */
	t.n = 0;
	CU_ASSERT_EQUAL(vmc_state_diff(&b, &b, &ops, &t), 0);
	CU_ASSERT_EQUAL(t.n, 0);
}

static void event_shows_times_causes_and_changes(void)
{
	Vmcheck__V1__Event ev = VMCHECK__V1__EVENT__INIT;
	Vmcheck__V1__State prev = VMCHECK__V1__STATE__INIT, st = VMCHECK__V1__STATE__INIT;
	Vmcheck__V1__Cause c1 = VMCHECK__V1__CAUSE__INIT, c2 = VMCHECK__V1__CAUSE__INIT;
	Vmcheck__V1__Cause *causes[] = { &c1, &c2 };
	Vmcheck__V1__Block loop0 = VMCHECK__V1__BLOCK__INIT;
	Vmcheck__V1__Block *blocks[] = { &loop0 };
	struct capture c;
	const char *text;

	c1.source = VMCHECK__V1__CAUSE__SOURCE__UEVENT;
	c1.action = "add";
	c1.subsystem = "block";
	c1.name = "loop0";
	c2.source = VMCHECK__V1__CAUSE__SOURCE__RTNETLINK;
	c2.action = "newlink";
	c2.subsystem = "net";
	c2.name = "vmct0";
	ev.causes = causes;
	ev.n_causes = 2;
	ev.kernel_mono_ns = 999000000;
	ev.state = &st;
	st.generation = 8;
	st.mono_ns = 1000000000;
	st.read_ns = 500000;
	loop0.name = "loop0";
	loop0.major = 7;
	loop0.size_bytes = 1ull << 30;
	loop0.type = "loop";
	st.blocks = blocks;
	st.n_blocks = 1;
	prev.sections = st.sections = VMCHECK__V1__SECTION__SECTION_BLOCKS;

	cap_open(&c);
	vmc_print_event(c.fp, &ev, &prev, 1700000000123456789ll);
	text = cap_text(&c);
	ASSERT_HAS(text, ".123456 event generation 8: kernel 0.999000, read 1.000000 +500 us, "
			 "latency 1.500 ms\n");
	ASSERT_HAS(text, "  cause: uevent add block loop0\n  cause: rtnetlink newlink net vmct0\n");
	ASSERT_HAS(text, "  + block loop0 (7:0, 1G, loop, serial -, pci -)\n");
	cap_free(&c);

	/* Nothing changed; no previous state; no state at all. */
	cap_open(&c);
	vmc_print_event(c.fp, &ev, &st, 0);
	vmc_print_event(c.fp, &ev, NULL, 0);
	ev.state = NULL;
	vmc_print_event(c.fp, &ev, &prev, 0);
	text = cap_text(&c);
	ASSERT_HAS(text, "  (no change)\n");
	ASSERT_HAS(text, "event without a state (subscription 0)\n");
	cap_free(&c);
}

/* No byte of @t is a control other than newline, and what is not ASCII is valid UTF-8. */
static bool terminal_safe(const char *t)
{
	char *again = vmc_esc_str(t, VMC_ESC_LINES);
	bool ok = again && !strcmp(again, t) && !strchr(t, '\t');

	free(again);
	return ok;
}

/*
 * A guest that puts control sequences and broken UTF-8 in every string:
 * tables, summary, section errors, diff and event lines print them as
 * text, and the JSON line stays valid UTF-8.
 */
static void text_and_json_escape_hostile_strings(void)
{
	static const char title[] = "\x1b]0;pwned\x07\x1b[2J";
	Vmcheck__V1__State a = VMCHECK__V1__STATE__INIT, b = VMCHECK__V1__STATE__INIT;
	Vmcheck__V1__System sys = VMCHECK__V1__SYSTEM__INIT, sys2 = VMCHECK__V1__SYSTEM__INIT;
	Vmcheck__V1__Link link = VMCHECK__V1__LINK__INIT, link2 = VMCHECK__V1__LINK__INIT;
	Vmcheck__V1__Block blk = VMCHECK__V1__BLOCK__INIT;
	Vmcheck__V1__Crash crash = VMCHECK__V1__CRASH__INIT;
	Vmcheck__V1__CrashDir dir = VMCHECK__V1__CRASH_DIR__INIT;
	Vmcheck__V1__CrashDump dump = VMCHECK__V1__CRASH_DUMP__INIT;
	Vmcheck__V1__SectionError se = VMCHECK__V1__SECTION_ERROR__INIT;
	Vmcheck__V1__Event ev = VMCHECK__V1__EVENT__INIT;
	Vmcheck__V1__Cause cause = VMCHECK__V1__CAUSE__INIT;
	Vmcheck__V1__Link *links_a[] = { &link }, *links_b[] = { &link2 };
	Vmcheck__V1__Block *blocks[] = { &blk };
	Vmcheck__V1__CrashDir *dirs[] = { &dir };
	Vmcheck__V1__CrashDump *dumps[] = { &dump };
	Vmcheck__V1__SectionError *errs[] = { &se };
	Vmcheck__V1__Cause *causes[] = { &cause };
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;
	struct capture c;
	const char *t;

	a.sections = b.sections =
		VMCHECK__V1__SECTION__SECTION_SYSTEM | VMCHECK__V1__SECTION__SECTION_LINKS |
		VMCHECK__V1__SECTION__SECTION_BLOCKS | VMCHECK__V1__SECTION__SECTION_CRASH;
	a.system = &sys;
	sys.hostname = (char *)title;
	sys.kernel_release = "6.1\x9b"
			     "2J";
	sys.os_pretty_name = "\xd0\x94\xd0\xb5\xd0\xb1\xd0\xb8\xd0\xb0\xd0\xbd \xc2\x9b"
			     "31m";
	sys.boot_id = a.boot_id = "b\\e";
	b.system = &sys2;
	sys2.hostname = "\xd1\x85\xd0\xbe\xd1\x81\xd1\x82";
	a.links = links_a;
	a.n_links = 1;
	b.links = links_b;
	b.n_links = 1;
	link.name = link2.name = "eth\xff\x1b[8m";
	link.ifindex = link2.ifindex = 2;
	link.operstate = "up\x1b[1A";
	link2.operstate = "down\n  ok fake line";
	link.driver = link2.driver = "virtio\xe2\x80\xae"
				     "net";
	link.mac = link2.mac = "52:54\x07";
	a.blocks = b.blocks = blocks;
	a.n_blocks = b.n_blocks = 1;
	blk.name = "vd\x1b"
		   "a";
	blk.serial = "ser\xed\xa0\x80";
	blk.type = "disk";
	a.crash = b.crash = &crash;
	crash.dirs = dirs;
	crash.n_dirs = 1;
	dir.path = "/var/crash\x1b[2J";
	dir.dumps = dumps;
	dir.n_dumps = 1;
	dump.name = "127.0.0.1-\x1b]0;x\x07";
	a.errors = errs;
	a.n_errors = 1;
	se.section = VMCHECK__V1__SECTION__SECTION_PCI;
	se.message = "reading pci: \x1b[2J\r";
	ev.state = &b;
	ev.causes = causes;
	ev.n_causes = 1;
	cause.action = "add\x1b[K";
	cause.subsystem = "net";
	cause.name = "eth\x1b";

	cap_open(&c);
	vmc_print_state(c.fp, &a);
	vmc_print_summary(c.fp, &a);
	vmc_print_section_errors(c.fp, &a);
	vmc_print_event(c.fp, &ev, &a, 0);
	t = cap_text(&c);
	CU_ASSERT(terminal_safe(t));
	ASSERT_HAS(t, "\\e]0;pwned\\x07\\e[2J");
	ASSERT_HAS(t, "6.1\\x9b2J");
	/* Printable UTF-8 stays; C1 from UTF-8 and a bidi override do not. */
	ASSERT_HAS(t, "\xd0\x94\xd0\xb5\xd0\xb1\xd0\xb8\xd0\xb0\xd0\xbd \\u009b31m");
	ASSERT_HAS(t, "virtio\\u202enet");
	ASSERT_HAS(t, "eth\\xff\\e[8m");
	ASSERT_HAS(t, "UP\\e[1A");
	ASSERT_HAS(t, "vd\\ea");
	ASSERT_HAS(t, "ser\\xed\\xa0\\x80");
	ASSERT_HAS(t, "/var/crash\\e[2J: missing, 1 dump\n");
	ASSERT_HAS(t, "127.0.0.1-\\e]0;x\\x07");
	ASSERT_HAS(t, "boot_id b\\\\e, read");
	ASSERT_HAS(t, "vmcheck: agent: reading pci: \\e[2J\\r\n");
	ASSERT_HAS(t, "  cause: unknown add\\e[K net eth\\e\n");
	/* A newline in a guest string cannot forge a line of its own. */
	ASSERT_HAS(t, "operstate up\\e[1A -> down\\n  ok fake line");
	ASSERT_HAS(t, "hostname \\e]0;pwned\\x07\\e[2J -> \xd1\x85\xd0\xbe\xd1\x81\xd1\x82");
	cap_free(&c);

	cap_open(&c);
	CU_ASSERT_EQUAL(vmc_json_print(c.fp, &a.base), 0);
	t = cap_text(&c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, t, (int)strlen(t) - 1);
	CU_ASSERT_PTR_NOT_NULL(o);
	CU_ASSERT_PTR_NULL(memchr(t, 0x1b, strlen(t)));
	if (o) {
		struct json_object *s = get(o, "system");

		/* The hostname keeps its value; the kernel's stray byte is U+FFFD. */
		CU_ASSERT_STRING_EQUAL(json_object_get_string(get(s, "hostname")), title);
		CU_ASSERT_STRING_EQUAL(json_object_get_string(get(s, "kernel_release")),
				       "6.1\xef\xbf\xbd"
				       "2J");
		json_object_put(o);
	}
	json_tokener_free(tok);
	cap_free(&c);
}

VMC_SUITE(print, NULL, NULL, VMC_TEST(json_has_every_field_with_proto_names),
	  VMC_TEST(json_line_is_plain_and_unescaped),
	  VMC_TEST(json_bytes_are_hex_and_unknown_enums_numbers), VMC_TEST(human_sizes_match_lsblk),
	  VMC_TEST(text_survives_empty_and_partial_states),
	  VMC_TEST(text_tables_look_like_the_tools), VMC_TEST(diff_matches_by_identity),
	  VMC_TEST(diff_tells_each_item_through_callbacks),
	  VMC_TEST(event_shows_times_causes_and_changes),
	  VMC_TEST(text_and_json_escape_hostile_strings))
