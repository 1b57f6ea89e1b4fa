/* SPDX-License-Identifier: MIT */
/*
 * The liar's lies on States read from the committed fixture trees, without
 * a VM: each lie changes what it names and nothing else. The reboot lie
 * runs with a counting stand-in for reboot(2).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "harness.h"
#include "liar.h"
#include "probe.h"

#define S(x) VMCHECK__V1__SECTION__SECTION_##x
#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x
#define MEM "sys/devices/system/memory/"
#define BS (128ull << 20)

static const uint32_t sections[] = { S(SYSTEM), S(LINKS), S(BLOCKS), S(MEMORY),
				     S(CPUS),   S(PCI),   S(CRASH) };

/* A whole snapshot of a fixture tree. */
struct snap {
	struct vmc_sysroot root;
	struct vmc_state_opts o;
	struct vmc_arena a;
	Vmcheck__V1__State *st;
};

static void snap_read(struct snap *s, const char *fixture, uint32_t mask)
{
	fx_open_committed(fixture, &s->root);
	s->o = (struct vmc_state_opts){ .root = s->root };
	s->a = (struct vmc_arena)VMC_ARENA_INIT;
	CU_ASSERT_EQUAL_FATAL(vmc_state_read(&s->o, mask, 1, &s->a, &s->st), 0);
}

static void snap_done(struct snap *s)
{
	vmc_arena_free(&s->a);
	vmc_sysroot_close(&s->root);
}

/* @st with only section @bit (0: with none, the top-level fields), packed into @a. */
static ProtobufCBinaryData pack_section(struct vmc_arena *a, const Vmcheck__V1__State *st,
					uint32_t bit)
{
	Vmcheck__V1__State v = *st;
	ProtobufCBinaryData b;

	if (bit != S(SYSTEM))
		v.system = NULL;
	if (bit != S(LINKS))
		v.n_links = 0;
	if (bit != S(BLOCKS))
		v.n_blocks = 0;
	if (bit != S(MEMORY))
		v.memory = NULL;
	if (bit != S(CPUS))
		v.cpus = NULL;
	if (bit != S(PCI))
		v.pci = NULL;
	if (bit != S(CRASH))
		v.crash = NULL;
	if (bit) {
		v.n_errors = 0;
		v.sections = 0;
	}
	b.len = protobuf_c_message_get_packed_size(&v.base);
	b.data = vmc_arena_alloc(a, b.len + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b.data);
	protobuf_c_message_pack(&v.base, b.data);
	return b;
}

/* Every section packed, [0] the top-level fields: the state as the host would get it. */
static void pack_all(struct vmc_arena *a, const Vmcheck__V1__State *st,
		     ProtobufCBinaryData out[1 + ARRAY_SIZE(sections)])
{
	out[0] = pack_section(a, st, 0);
	for (size_t i = 0; i < ARRAY_SIZE(sections); i++)
		out[1 + i] = pack_section(a, st, sections[i]);
}

/* The sections whose bytes differ (bit 0x80: the top-level fields). */
static uint32_t changed(const ProtobufCBinaryData *x, const ProtobufCBinaryData *y)
{
	uint32_t m = 0;

	for (size_t i = 0; i <= ARRAY_SIZE(sections); i++)
		if (x[i].len != y[i].len || memcmp(x[i].data, y[i].data, x[i].len))
			m |= i ? sections[i - 1] : 0x80;
	return m;
}

/* A liar telling @lie, started on @root (which decides the boot memory blocks). */
static void liar_start(struct vmc_liar *l, enum vmc_liar_lie lie, const struct vmc_sysroot *root)
{
	vmc_liar_init(l);
	l->lie = lie;
	l->quiet = true;
	CU_ASSERT_EQUAL_FATAL(vmc_liar_start(l, root), 0);
}

/* A scratch root whose only memory block is memory0: every other block is hot-added. */
static void boot_with_block0(struct fx *f)
{
	fx_init(f);
	fx_write(f, MEM "block_size_bytes", "8000000\n");
	fx_write(f, MEM "memory0/state", "online\n");
	fx_write(f, MEM "memory0/removable", "1\n");
}

static void lies_are_named_one_by_one(void)
{
	static const char *const all[] = { "section-error", "dimm-address", "zone-normal",
					   "cpu-topology",  "net-silent",   "reboot" };
	enum vmc_liar_lie lie;

	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		CU_ASSERT_EQUAL(vmc_liar_parse(all[i], &lie), 0);
		CU_ASSERT_STRING_EQUAL(vmc_liar_name(lie), all[i]);
		CU_ASSERT_PTR_NOT_NULL(strstr(vmc_liar_names(), all[i]));
	}
	CU_ASSERT_EQUAL(vmc_liar_parse("none", &lie), -EINVAL);
	CU_ASSERT_EQUAL(vmc_liar_parse("", &lie), -EINVAL);
	CU_ASSERT_EQUAL(vmc_liar_parse("reboot ", &lie), -EINVAL);
}

static void the_kernel_command_line_names_the_lie(void)
{
	struct vmc_liar l;
	struct fx f;

	fx_init(&f);
	/* No proc/cmdline, or no word on it: the truth. */
	liar_start(&l, VMC_LIAR_NONE, &f.root);
	CU_ASSERT_EQUAL(l.lie, VMC_LIAR_NONE);
	vmc_liar_stop(&l);
	fx_write(&f, "proc/cmdline", "console=ttyS0 vmcheck.lie= vmcheck.liar=reboot\n");
	liar_start(&l, VMC_LIAR_NONE, &f.root);
	CU_ASSERT_EQUAL(l.lie, VMC_LIAR_NONE);
	vmc_liar_stop(&l);
	/* The last word wins, as the kernel's own parameters do. */
	fx_write(&f, "proc/cmdline",
		 "BOOT_IMAGE=/vmlinuz vmcheck.lie=net-silent console=ttyS0 vmcheck.lie=cpu-topology"
		 " quiet\n");
	liar_start(&l, VMC_LIAR_NONE, &f.root);
	CU_ASSERT_EQUAL(l.lie, VMC_LIAR_CPU_TOPOLOGY);
	vmc_liar_stop(&l);
	/* --lie comes first. */
	liar_start(&l, VMC_LIAR_REBOOT, &f.root);
	CU_ASSERT_EQUAL(l.lie, VMC_LIAR_REBOOT);
	vmc_liar_stop(&l);
	fx_write(&f, "proc/cmdline", "vmcheck.lie=fib\n");
	vmc_liar_init(&l);
	l.quiet = true;
	CU_ASSERT_EQUAL(vmc_liar_start(&l, &f.root), -EINVAL);
	vmc_liar_stop(&l);
	fx_cleanup(&f);
}

static void section_error_hides_the_memory_section(void)
{
	ProtobufCBinaryData before[8], after[8];
	Vmcheck__V1__SectionError *e;
	struct vmc_liar l;
	struct snap s;

	snap_read(&s, "debian12-host", 0);
	CU_ASSERT_FATAL(s.st->sections & S(MEMORY));
	CU_ASSERT_EQUAL_FATAL(s.st->n_errors, 0);
	liar_start(&l, VMC_LIAR_SECTION_ERROR, &s.root);
	pack_all(&s.a, s.st, before);
	CU_ASSERT_EQUAL_FATAL(vmc_liar_state(&l, &s.a, s.st), 0);
	pack_all(&s.a, s.st, after);
	CU_ASSERT_EQUAL(s.st->sections, VMC_SECTION_ALL & ~S(MEMORY));
	CU_ASSERT_PTR_NULL(s.st->memory);
	CU_ASSERT_EQUAL_FATAL(s.st->n_errors, 1);
	e = s.st->errors[0];
	CU_ASSERT_EQUAL(e->section, S(MEMORY));
	CU_ASSERT_EQUAL(e->errno_value, EIO);
	CU_ASSERT_STRING_EQUAL(e->message, "reading memory: Input/output error "
					   "(vmcheck-agent-liar: section-error)");
	/* Every other section as read. */
	CU_ASSERT_EQUAL(changed(before, after), 0x80 | S(MEMORY));
	vmc_liar_stop(&l);
	snap_done(&s);

	/* Memory not asked for: nothing to lie about. */
	snap_read(&s, "debian12-host", S(CPUS));
	liar_start(&l, VMC_LIAR_SECTION_ERROR, &s.root);
	CU_ASSERT_EQUAL_FATAL(vmc_liar_state(&l, &s.a, s.st), 0);
	CU_ASSERT_EQUAL(s.st->sections, S(CPUS));
	CU_ASSERT_EQUAL(s.st->n_errors, 0);
	vmc_liar_stop(&l);
	snap_done(&s);
}

static void check_block(const Vmcheck__V1__MemoryBlock *b, uint64_t index, const char *zones)
{
	CU_ASSERT_EQUAL(b->index, index);
	CU_ASSERT_EQUAL(b->phys_start, index * BS);
	CU_ASSERT_STRING_EQUAL(b->valid_zones, zones);
}

/* hotplug-mem: blocks 0-3 booted, a 1 GiB DIMM at 4 GiB (blocks 32-39) hot-added. */
static void dimm_address_moves_hot_added_blocks_up(void)
{
	ProtobufCBinaryData before[8], after[8];
	Vmcheck__V1__Memory *m;
	struct vmc_liar l;
	struct snap s;
	struct fx boot;

	fx_init(&boot);
	fx_write(&boot, MEM "block_size_bytes", "8000000\n");
	for (int i = 0; i < 4; i++) {
		char p[64];

		snprintf(p, sizeof(p), MEM "memory%d/state", i);
		fx_write(&boot, p, "online\n");
	}
	liar_start(&l, VMC_LIAR_DIMM_ADDRESS, &boot.root);
	snap_read(&s, "hotplug-mem", S(MEMORY));
	pack_all(&s.a, s.st, before);
	CU_ASSERT_EQUAL_FATAL(vmc_liar_state(&l, &s.a, s.st), 0);
	pack_all(&s.a, s.st, after);
	CU_ASSERT_EQUAL(changed(before, after), S(MEMORY));
	m = s.st->memory;
	CU_ASSERT_EQUAL_FATAL(m->n_blocks, 12);
	check_block(m->blocks[0], 0, "none");
	check_block(m->blocks[3], 3, "DMA32");
	for (size_t i = 4; i < 12; i++)
		check_block(m->blocks[i], 40 + i - 4, "Normal Movable");
	/* The ranges say the same: the DIMM at 5 GiB instead of 4 GiB. */
	CU_ASSERT_EQUAL_FATAL(m->n_ranges, 2);
	CU_ASSERT_EQUAL(m->ranges[0]->first_block, 0);
	CU_ASSERT_EQUAL(m->ranges[0]->last_block, 3);
	CU_ASSERT_EQUAL(m->ranges[1]->first_block, 40);
	CU_ASSERT_EQUAL(m->ranges[1]->last_block, 47);
	CU_ASSERT_EQUAL(m->ranges[1]->start, 0x140000000ULL);
	CU_ASSERT_EQUAL(m->ranges[1]->end, 0x17fffffffULL);
	CU_ASSERT_EQUAL(m->ranges[1]->size, 1ULL << 30);
	CU_ASSERT_STRING_EQUAL(m->ranges[1]->state, "offline");
	CU_ASSERT_EQUAL(m->online_bytes, 512ULL << 20);
	CU_ASSERT_EQUAL(m->offline_bytes, 1ULL << 30);
	vmc_liar_stop(&l);
	snap_done(&s);

	/* Started after the DIMM came: nothing hot-added, nothing to lie about. */
	snap_read(&s, "hotplug-mem", S(MEMORY));
	liar_start(&l, VMC_LIAR_DIMM_ADDRESS, &s.root);
	pack_all(&s.a, s.st, before);
	CU_ASSERT_EQUAL_FATAL(vmc_liar_state(&l, &s.a, s.st), 0);
	pack_all(&s.a, s.st, after);
	CU_ASSERT_EQUAL(changed(before, after), 0);
	vmc_liar_stop(&l);
	snap_done(&s);
	fx_cleanup(&boot);
}

static void zone_normal_claims_hot_added_online_blocks(void)
{
	Vmcheck__V1__State st = VMCHECK__V1__STATE__INIT;
	struct vmc_state_opts o;
	struct vmc_arena a = VMC_ARENA_INIT;
	ProtobufCBinaryData before, after;
	Vmcheck__V1__Memory *m;
	struct vmc_liar l;
	struct fx f;

	boot_with_block0(&f);
	fx_write(&f, MEM "memory0/valid_zones", "none\n");
	liar_start(&l, VMC_LIAR_ZONE_NORMAL, &f.root);
	/* Then a DIMM: two blocks onlined movable, one left offline. */
	fx_write(&f, MEM "memory32/state", "online\n");
	fx_write(&f, MEM "memory32/valid_zones", "Movable\n");
	fx_write(&f, MEM "memory33/state", "offline\n");
	fx_write(&f, MEM "memory33/valid_zones", "Normal Movable\n");
	fx_write(&f, MEM "memory34/state", "online\n");
	fx_write(&f, MEM "memory34/valid_zones", "Movable\n");
	o = (struct vmc_state_opts){ .root = f.root };
	CU_ASSERT_EQUAL_FATAL(vmc_state_read_memory(&o, &a, &st), 0);
	m = st.memory;
	before = pack_section(&a, &st, S(MEMORY));
	CU_ASSERT_EQUAL_FATAL(vmc_liar_state(&l, &a, &st), 0);
	CU_ASSERT_EQUAL_FATAL(m->n_blocks, 4);
	check_block(m->blocks[0], 0, "none");
	check_block(m->blocks[1], 32, "Normal");
	check_block(m->blocks[2], 33, "Normal Movable");
	check_block(m->blocks[3], 34, "Normal");
	/* Only the zones: put them back and the bytes are the truth's. */
	m->blocks[1]->valid_zones = m->blocks[3]->valid_zones = "Movable";
	after = pack_section(&a, &st, S(MEMORY));
	CU_ASSERT_EQUAL(before.len, after.len);
	CU_ASSERT(before.len == after.len && !memcmp(before.data, after.data, before.len));
	vmc_liar_stop(&l);
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

/* offline-cpus: cpu0-1 online on package 0, cpu2-3 offline (no topology). */
static void cpu_topology_moves_cpus_to_the_next_package(void)
{
	ProtobufCBinaryData before[8], after[8];
	Vmcheck__V1__Cpus *c;
	struct vmc_liar l;
	struct snap s;

	snap_read(&s, "offline-cpus", S(CPUS));
	liar_start(&l, VMC_LIAR_CPU_TOPOLOGY, &s.root);
	pack_all(&s.a, s.st, before);
	CU_ASSERT_EQUAL_FATAL(vmc_liar_state(&l, &s.a, s.st), 0);
	pack_all(&s.a, s.st, after);
	CU_ASSERT_EQUAL(changed(before, after), S(CPUS));
	c = s.st->cpus;
	CU_ASSERT_EQUAL_FATAL(c->n_cpus, 4);
	CU_ASSERT_EQUAL(c->cpus[0]->package_id, 0);
	CU_ASSERT_EQUAL(c->cpus[1]->package_id, 1);
	/* Unknown stays unknown: "package 0" would be a second lie. */
	CU_ASSERT_EQUAL(c->cpus[2]->package_id, -1);
	CU_ASSERT_EQUAL(c->cpus[3]->package_id, -1);
	vmc_liar_stop(&l);
	snap_done(&s);
}

/* Each lie on a whole snapshot of a real host: it touches its own section only. */
static void each_lie_changes_its_own_section_only(void)
{
	static const struct {
		enum vmc_liar_lie lie;
		uint32_t changes;
	} want[] = {
		{ VMC_LIAR_NONE, 0 },
		{ VMC_LIAR_SECTION_ERROR, 0x80 | S(MEMORY) },
		{ VMC_LIAR_DIMM_ADDRESS, S(MEMORY) },
		{ VMC_LIAR_ZONE_NORMAL, S(MEMORY) },
		{ VMC_LIAR_CPU_TOPOLOGY, S(CPUS) },
		{ VMC_LIAR_NET_SILENT, 0 },
		{ VMC_LIAR_REBOOT, 0 },
	};
	ProtobufCBinaryData before[8], after[8];
	struct vmc_liar l;
	struct snap s;
	struct fx boot;

	boot_with_block0(&boot);
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		snap_read(&s, "debian12-host", 0);
		liar_start(&l, want[i].lie, &boot.root);
		pack_all(&s.a, s.st, before);
		CU_ASSERT_EQUAL_FATAL(vmc_liar_state(&l, &s.a, s.st), 0);
		pack_all(&s.a, s.st, after);
		if (changed(before, after) != want[i].changes)
			fprintf(stderr, "%s changed 0x%x\n", vmc_liar_name(want[i].lie),
				changed(before, after));
		CU_ASSERT_EQUAL(changed(before, after), want[i].changes);
		vmc_liar_stop(&l);
		snap_done(&s);
	}
	fx_cleanup(&boot);
}

static Vmcheck__V1__NetProbe net_args(const char *mac)
{
	Vmcheck__V1__NetProbe p = VMCHECK__V1__NET_PROBE__INIT;

	p.mac = (char *)mac;
	p.address = "10.0.2.15";
	p.prefixlen = 24;
	p.peer = "10.0.2.2";
	p.port = 40000;
	p.token.data = (uint8_t *)"token";
	p.token.len = 5;
	return p;
}

static void net_silent_passes_a_probe_it_never_ran(void)
{
	Vmcheck__V1__Probe probe = VMCHECK__V1__PROBE__INIT;
	Vmcheck__V1__ProbeResult res = VMCHECK__V1__PROBE_RESULT__INIT;
	Vmcheck__V1__NetProbe net = net_args("52:54:00:12:34:56");
	Vmcheck__V1__DiskProbe disk = VMCHECK__V1__DISK_PROBE__INIT;
	struct vmc_arena a = VMC_ARENA_INIT;
	struct vmc_outcome o = { 0 };
	struct vmc_liar l;
	struct fx f;

	fx_init(&f);
	fx_write(&f, "sys/class/net/ens5/address", "52:54:00:12:34:56\n");
	fx_write(&f, "sys/class/net/ens5/flags", "0x1002\n");
	probe.kind_case = VMCHECK__V1__PROBE__KIND_NET;
	probe.net = &net;
	liar_start(&l, VMC_LIAR_NET_SILENT, &f.root);
	CU_ASSERT_EQUAL_FATAL(vmc_liar_probe(&l, &probe, &a, &res, &o), 1);
	/* The link's own name and state, the rest made up. */
	CU_ASSERT_STRING_EQUAL(res.link, "ens5");
	CU_ASSERT_FALSE(res.link_was_up);
	CU_ASSERT_NSTRING_EQUAL(res.source, "10.0.2.15:", 10);
	CU_ASSERT_EQUAL(res.rtt_ns, 1000000);
	CU_ASSERT(res.connect_ns > 0 && res.duration_ns >= res.connect_ns + res.rtt_ns);

	/* An unknown MAC still "passes", over a plausible link. */
	net.mac = "52:54:00:ab:cd:ef";
	vmcheck__v1__probe_result__init(&res);
	CU_ASSERT_EQUAL(vmc_liar_probe(&l, &probe, &a, &res, &o), 1);
	CU_ASSERT_STRING_EQUAL(res.link, "eth1");
	/* Wrong arguments are refused as the agent refuses them. */
	net.port = 0;
	CU_ASSERT_EQUAL(vmc_liar_probe(&l, &probe, &a, &res, &o), -EINVAL);
	CU_ASSERT_EQUAL(o.code, ECODE(BAD_ARGUMENT));
	CU_ASSERT_STRING_EQUAL(o.msg, "port 0: want 1 to 65535");
	/* Other probes are the agent's to run. */
	probe.kind_case = VMCHECK__V1__PROBE__KIND_DISK;
	probe.disk = &disk;
	CU_ASSERT_EQUAL(vmc_liar_probe(&l, &probe, &a, &res, &o), 0);
	vmc_liar_stop(&l);

	/* Another lie: the agent runs its net probe. */
	net.port = 40000;
	probe.kind_case = VMCHECK__V1__PROBE__KIND_NET;
	probe.net = &net;
	liar_start(&l, VMC_LIAR_CPU_TOPOLOGY, &f.root);
	CU_ASSERT_EQUAL(vmc_liar_probe(&l, &probe, &a, &res, &o), 0);
	vmc_liar_stop(&l);
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

/* reboot(2)'s stand-in: counts, and notes when. */
static struct {
	unsigned calls;
	uint64_t at;
} reboots;

static int fake_reboot(void)
{
	reboots.calls++;
	reboots.at = vmc_mono_ns();
	return 0;
}

/* A reboot liar on @root that calls the stand-in @delay_ms after the reply. */
static void reboot_liar(struct vmc_liar *l, const struct vmc_sysroot *root, unsigned delay_ms)
{
	vmc_liar_init(l);
	l->lie = VMC_LIAR_REBOOT;
	l->reboot = fake_reboot;
	l->reboot_delay_ms = delay_ms;
	l->quiet = true;
	CU_ASSERT_EQUAL_FATAL(vmc_liar_start(l, root), 0);
}

static void reboot_comes_once_per_vm_after_a_disk_probe(void)
{
	Vmcheck__V1__Probe disk = VMCHECK__V1__PROBE__INIT, cpu = VMCHECK__V1__PROBE__INIT;
	char buf[8];
	struct vmc_liar l;
	uint64_t sent;
	struct fx f;

	memset(&reboots, 0, sizeof(reboots));
	disk.kind_case = VMCHECK__V1__PROBE__KIND_DISK;
	cpu.kind_case = VMCHECK__V1__PROBE__KIND_CPU;
	fx_init(&f);
	fx_mkdir(&f, "var/crash");
	reboot_liar(&l, &f.root, 100);
	vmc_liar_probe_sent(&l, &cpu);
	sent = vmc_mono_ns();
	vmc_liar_probe_sent(&l, &disk);
	vmc_liar_probe_sent(&l, &disk); /* the first DiskProbe only */
	vmc_liar_stop(&l);
	CU_ASSERT_EQUAL(reboots.calls, 1);
	CU_ASSERT(reboots.at - sent >= 100 * 1000000ull);
	CU_ASSERT_EQUAL(vmc_sysroot_read_str(f.root.fd, VMC_LIAR_REBOOT_MARKER, buf, sizeof(buf)),
			0);

	/* The next boot of that VM: the marker is there, no second reboot. */
	reboot_liar(&l, &f.root, 0);
	vmc_liar_probe_sent(&l, &disk);
	vmc_liar_stop(&l);
	CU_ASSERT_EQUAL(reboots.calls, 1);

	/* No /var/crash to remember it in: reboot all the same. */
	fx_remove(&f, VMC_LIAR_REBOOT_MARKER);
	fx_remove(&f, "var/crash");
	reboot_liar(&l, &f.root, 0);
	vmc_liar_probe_sent(&l, &disk);
	vmc_liar_stop(&l);
	CU_ASSERT_EQUAL(reboots.calls, 2);

	/* Other lies never reboot. */
	vmc_liar_init(&l);
	l.lie = VMC_LIAR_NET_SILENT;
	l.reboot = fake_reboot;
	l.reboot_delay_ms = 0;
	l.quiet = true;
	CU_ASSERT_EQUAL_FATAL(vmc_liar_start(&l, &f.root), 0);
	vmc_liar_probe_sent(&l, &disk);
	vmc_liar_stop(&l);
	CU_ASSERT_EQUAL(reboots.calls, 2);
	fx_cleanup(&f);
}

VMC_SUITE(liar, NULL, NULL, VMC_TEST(lies_are_named_one_by_one),
	  VMC_TEST(the_kernel_command_line_names_the_lie),
	  VMC_TEST(section_error_hides_the_memory_section),
	  VMC_TEST(dimm_address_moves_hot_added_blocks_up),
	  VMC_TEST(zone_normal_claims_hot_added_online_blocks),
	  VMC_TEST(cpu_topology_moves_cpus_to_the_next_package),
	  VMC_TEST(each_lie_changes_its_own_section_only),
	  VMC_TEST(net_silent_passes_a_probe_it_never_ran),
	  VMC_TEST(reboot_comes_once_per_vm_after_a_disk_probe))
