/* SPDX-License-Identifier: MIT */
/*
 * The kdump check's verdicts (check-kdump.c) against hand-built crash
 * sections: readiness, which dump is new, a dump followed while it is
 * written, the dump found after the reboot, and the deadline arithmetic.
 */
#include <stdio.h>
#include <string.h>

#include "check-kdump.h"
#include "harness.h"

#define FMT(x) VMCHECK__V1__CRASH_DUMP__FORMAT__FORMAT_##x
#define MS 1000000ull
#define GIB (1ull << 30)

static struct vmc_why why;

static void why_has(const char *needle)
{
	if (!strstr(why.text, needle))
		fprintf(stderr, "\nmissing \"%s\" in: %s\n", needle, why.text);
	CU_ASSERT_PTR_NOT_NULL(strstr(why.text, needle));
}

/* A guest with two crash dirs and up to three dumps in the first. */
struct guest {
	Vmcheck__V1__Crash c;
	Vmcheck__V1__CrashDir d0, d1, *dirs[2];
	Vmcheck__V1__CrashDump u[3], *dumps[3];
};

static void guest_init(struct guest *g)
{
	vmcheck__v1__crash__init(&g->c);
	vmcheck__v1__crash_dir__init(&g->d0);
	vmcheck__v1__crash_dir__init(&g->d1);
	g->c.kexec_crash_loaded = true;
	g->c.crash_size = 96 << 20;
	g->c.cmdline = "console=ttyS0 crashkernel=96M";
	g->d0.path = "/var/crash";
	g->d0.exists = g->d0.writable = true;
	g->d0.mount_point = "/var/crash";
	g->d0.fs_type = "ext4";
	g->d0.mount_source = "/dev/vda";
	g->d1.path = "/var/oled/crash";
	g->dirs[0] = &g->d0;
	g->dirs[1] = &g->d1;
	g->c.dirs = g->dirs;
	g->c.n_dirs = 2;
	for (int i = 0; i < 3; i++) {
		vmcheck__v1__crash_dump__init(&g->u[i]);
		g->dumps[i] = &g->u[i];
	}
	g->d0.dumps = g->dumps;
}

/* Dump @i named @name, whole, KDUMP, @size bytes, made at @mtime. */
static void dump(struct guest *g, int i, const char *name, uint64_t size, int64_t mtime)
{
	Vmcheck__V1__CrashDump *u = &g->u[i];

	u->name = (char *)name;
	u->has_vmcore = true;
	u->format = FMT(KDUMP);
	u->vmcore_size = size;
	u->mtime_s = mtime;
	u->n_files = 2;
	if (g->d0.n_dumps <= (size_t)i)
		g->d0.n_dumps = (size_t)i + 1;
}

static void deadlines_scale_with_memory(void)
{
	struct vmc_kdump_deadlines d;

	vmc_kdump_deadlines(512ull << 20, 30000, &d);
	CU_ASSERT_EQUAL(d.capture_ms, 30000);
	CU_ASSERT_EQUAL(d.save_ms, 20000 + 2000);
	CU_ASSERT_EQUAL(d.reboot_ms, 30000 + 50);
	/* Every started GiB counts. */
	vmc_kdump_deadlines(GIB, 30000, &d);
	CU_ASSERT_EQUAL(d.save_ms, 22000);
	vmc_kdump_deadlines(GIB + 1, 30000, &d);
	CU_ASSERT_EQUAL(d.save_ms, 24000);
	CU_ASSERT_EQUAL(d.reboot_ms, 30100);
	/* Unknown memory counts as 1 GiB. */
	vmc_kdump_deadlines(0, 1000, &d);
	CU_ASSERT_EQUAL(d.save_ms, 22000);
	CU_ASSERT_EQUAL(d.reboot_ms, 1050);
	vmc_kdump_deadlines(1ull << 40, 30000, &d);
	CU_ASSERT_EQUAL(d.save_ms, 20000 + 1024 * 2000);
	CU_ASSERT_EQUAL(d.reboot_ms, 30000 + 1024 * 50);
	/* Absurd sizes saturate instead of wrapping to a short deadline. */
	vmc_kdump_deadlines(1ull << 62, 30000, &d);
	CU_ASSERT_EQUAL(d.save_ms, UINT32_MAX);
	CU_ASSERT_EQUAL(d.reboot_ms, UINT32_MAX);
}

static void guest_memory_from_blocks_else_memtotal(void)
{
	Vmcheck__V1__State st = VMCHECK__V1__STATE__INIT;
	Vmcheck__V1__Memory m = VMCHECK__V1__MEMORY__INIT;

	Vmcheck__V1__MemoryBlock b0 = VMCHECK__V1__MEMORY_BLOCK__INIT,
				 b8 = VMCHECK__V1__MEMORY_BLOCK__INIT, *blocks[2] = { &b0, &b8 };

	CU_ASSERT_EQUAL(vmc_kdump_guest_bytes(&st, 0), 0);
	st.memory = &m;
	m.mem_total_kb = 400000;
	CU_ASSERT_EQUAL(vmc_kdump_guest_bytes(&st, 0), 400000ull << 10);
	m.online_bytes = 384ull << 20;
	m.offline_bytes = 128ull << 20;
	CU_ASSERT_EQUAL(vmc_kdump_guest_bytes(&st, 0), 512ull << 20);
	/* arm virt: block 0 is UEFI's flash, below the RAM at 1 GiB: not the guest's memory. */
	b0.index = 0;
	b8.index = 8;
	m.block_size = 128ull << 20;
	m.blocks = blocks;
	m.n_blocks = 2;
	CU_ASSERT_EQUAL(vmc_kdump_guest_bytes(&st, 1ull << 30), 384ull << 20);
	CU_ASSERT_EQUAL(vmc_kdump_guest_bytes(&st, 0), 512ull << 20);
}

static void ready_needs_a_loaded_crash_kernel(void)
{
	struct vmc_kdump_ready r;
	struct guest g;

	guest_init(&g);
	dump(&g, 0, "old", 100, 1);
	g.c.kexec_crash_loaded = false;
	g.c.crash_size = 0;
	g.c.cmdline = "console=ttyS0 panic=-1";
	CU_ASSERT_FALSE(vmc_kdump_ready(&g.c, &r, &why));
	CU_ASSERT_EQUAL(strncmp(why.text, "kdump not armed", 15), 0);
	why_has("kexec_crash_loaded is 0");
	why_has("no crashkernel= on the command line");
	/* The baseline is kept whatever the verdict. */
	CU_ASSERT_EQUAL(r.n_before, 1);
	vmc_kdump_ready_free(&r);

	g.c.crash_size = 96 << 20;
	g.c.cmdline = "console=ttyS0 crashkernel=96M panic=-1";
	CU_ASSERT_FALSE(vmc_kdump_ready(&g.c, &r, &why));
	why_has("kdump not armed");
	why_has("100663296 bytes reserved");
	why_has("crashkernel=96M)");
	vmc_kdump_ready_free(&r);

	g.c.kexec_crash_loaded = true;
	g.c.crash_size = 0;
	CU_ASSERT_FALSE(vmc_kdump_ready(&g.c, &r, &why));
	why_has("no memory is reserved");
	vmc_kdump_ready_free(&r);

	CU_ASSERT_FALSE(vmc_kdump_ready(NULL, &r, &why));
	why_has("no crash section");
	vmc_kdump_ready_free(&r);
}

static void ready_needs_a_dir_that_survives_the_reboot(void)
{
	struct vmc_kdump_ready r;
	struct guest g;

	guest_init(&g);
	/* The initramfs: writable, but in RAM. */
	g.d0.fs_type = "rootfs";
	g.d0.mount_point = "/";
	g.d0.mount_source = "rootfs";
	CU_ASSERT_FALSE(vmc_kdump_ready(&g.c, &r, &why));
	why_has("/var/crash, on rootfs (rootfs) mounted on /: in RAM");
	why_has("/var/oled/crash");
	why_has(": missing");
	vmc_kdump_ready_free(&r);

	g.d0.fs_type = "ext4";
	g.d0.writable = false;
	CU_ASSERT_FALSE(vmc_kdump_ready(&g.c, &r, &why));
	why_has("not writable");
	vmc_kdump_ready_free(&r);

	/* The second dir will do. */
	g.d1.exists = g.d1.writable = true;
	g.d1.fs_type = "xfs";
	g.d1.mount_point = "/var/oled";
	g.d1.mount_source = "/dev/sdb1";
	CU_ASSERT_TRUE(vmc_kdump_ready(&g.c, &r, &why));
	CU_ASSERT_STRING_EQUAL(r.dir, "/var/oled/crash");
	CU_ASSERT_STRING_EQUAL(r.where, "/var/oled/crash, on /dev/sdb1 (xfs) mounted on /var/oled");
	CU_ASSERT_EQUAL(r.crash_size, 96 << 20);
	vmc_kdump_ready_free(&r);
}

/*
 * A dir whose filesystem the agent could not tell (no mountinfo entry, or
 * an agent that does not report mounts) is not proven to keep a dump over
 * the reboot: refused, named, with the reason; the next dir still counts.
 */
static void ready_refuses_a_dir_on_an_unknown_filesystem(void)
{
	struct vmc_kdump_ready r;
	struct guest g;

	guest_init(&g);
	g.d0.fs_type = "";
	g.d0.mount_point = "";
	g.d0.mount_source = "";
	CU_ASSERT_FALSE(vmc_kdump_ready(&g.c, &r, &why));
	why_has("no crash dir a dump could be saved to: /var/crash: filesystem unknown (no "
		"mountinfo entry): a dump there is not proven to survive the reboot; "
		"/var/oled/crash: missing");
	CU_ASSERT_STRING_EQUAL(r.dir, "");
	vmc_kdump_ready_free(&r);

	/* No fs_type at all (NULL, as an older agent leaves it): the same. */
	g.d0.fs_type = NULL;
	CU_ASSERT_FALSE(vmc_kdump_ready(&g.c, &r, &why));
	why_has("/var/crash: filesystem unknown (no mountinfo entry): a dump there is not proven "
		"to survive the reboot");
	vmc_kdump_ready_free(&r);

	/* A second dir on a known disk is taken instead. */
	g.d1.exists = g.d1.writable = true;
	g.d1.fs_type = "xfs";
	g.d1.mount_point = "/var/oled";
	g.d1.mount_source = "/dev/sdb1";
	CU_ASSERT_TRUE(vmc_kdump_ready(&g.c, &r, &why));
	CU_ASSERT_STRING_EQUAL(r.dir, "/var/oled/crash");
	vmc_kdump_ready_free(&r);
}

static void the_new_dump_is_one_not_there_before(void)
{
	const Vmcheck__V1__CrashDump *d;
	struct vmc_kdump_ready r;
	const char *dir = NULL;
	struct guest g;

	guest_init(&g);
	dump(&g, 0, "2024-08-22-01:49:50", 100, 1000);
	CU_ASSERT_TRUE(vmc_kdump_ready(&g.c, &r, &why));
	CU_ASSERT_EQUAL_FATAL(r.n_before, 1);
	CU_ASSERT_STRING_EQUAL(r.before[0], "/var/crash/2024-08-22-01:49:50");
	CU_ASSERT_PTR_NULL(vmc_kdump_new_dump(&g.c, &r, &dir));

	/* Two new ones: the later one; the old one, though newer, is no candidate. */
	dump(&g, 1, "b", 200, 500);
	dump(&g, 2, "c", 300, 600);
	g.u[0].mtime_s = 9999;
	d = vmc_kdump_new_dump(&g.c, &r, &dir);
	CU_ASSERT_PTR_EQUAL(d, &g.u[2]);
	CU_ASSERT_STRING_EQUAL(dir, "/var/crash");
	/* Same mtime: the last listed. */
	g.u[2].mtime_s = 500;
	CU_ASSERT_PTR_EQUAL(vmc_kdump_new_dump(&g.c, &r, &dir), &g.u[2]);
	vmc_kdump_ready_free(&r);

	/* A name from the baseline in another dir is new there. */
	guest_init(&g);
	dump(&g, 0, "a", 100, 1);
	CU_ASSERT_TRUE(vmc_kdump_ready(&g.c, &r, &why));
	g.d0.n_dumps = 0;
	g.d1.dumps = g.dumps;
	g.d1.n_dumps = 1;
	CU_ASSERT_PTR_EQUAL(vmc_kdump_new_dump(&g.c, &r, &dir), &g.u[0]);
	CU_ASSERT_STRING_EQUAL(dir, "/var/oled/crash");
	vmc_kdump_ready_free(&r);
}

static void a_growing_dump_is_in_progress_past_the_deadline(void)
{
	struct vmc_kdump_track t;
	uint64_t t0 = 1000 * MS;
	struct guest g;
	Vmcheck__V1__CrashDump *d;

	guest_init(&g);
	vmc_kdump_track_init(&t, t0, 10000, 3000);
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, NULL, t0 + 9000 * MS, &why), VMC_KDUMP_WAITING);

	/* The directory exists, makedumpfile has not opened its file yet. */
	dump(&g, 0, "2026-11-22-01:28:59", 0, 1);
	d = &g.u[0];
	d->has_vmcore = false;
	d->n_files = 0;
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 9500 * MS, &why), VMC_KDUMP_WAITING);

	d->has_vmcore = true;
	d->incomplete = true;
	d->vmcore_size = 4096;
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 9900 * MS, &why), VMC_KDUMP_WRITING);
	why_has("4096 bytes");
	/* Past the deadline, still growing: in progress, not failed. */
	d->vmcore_size = 1 << 20;
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 12000 * MS, &why), VMC_KDUMP_WRITING);
	d->vmcore_size = 2 << 20;
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 14900 * MS, &why), VMC_KDUMP_WRITING);
	/* Not growing, but not for stall_ms yet. */
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 17800 * MS, &why), VMC_KDUMP_WRITING);
	d->vmcore_size = 3 << 20;
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 17900 * MS, &why), VMC_KDUMP_WRITING);
	/* Renamed: saved, however late. */
	d->incomplete = false;
	d->vmcore_size = 4 << 20;
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 60000 * MS, &why), VMC_KDUMP_SAVED);
}

static void a_dump_that_stops_growing_has_stalled(void)
{
	struct vmc_kdump_track t;
	uint64_t t0 = 5 * MS;
	struct guest g;
	Vmcheck__V1__CrashDump *d;

	guest_init(&g);
	dump(&g, 0, "d", 8192, 1);
	d = &g.u[0];
	d->incomplete = true;
	vmc_kdump_track_init(&t, t0, 60000, 3000);
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 100 * MS, &why), VMC_KDUMP_WRITING);
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 3099 * MS, &why), VMC_KDUMP_WRITING);
	/* Well within the deadline, but 3 s without growth. */
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 3100 * MS, &why), VMC_KDUMP_STALLED);
	why_has("d: the incomplete vmcore has stayed at 8192 bytes for 3.0 s");
	/* Shrinking is no progress either. */
	vmc_kdump_track_init(&t, t0, 60000, 3000);
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0, &why), VMC_KDUMP_WRITING);
	d->vmcore_size = 100;
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 3000 * MS, &why), VMC_KDUMP_STALLED);
}

static void nothing_written_by_the_deadline_is_late(void)
{
	struct vmc_kdump_track t;
	struct guest g;

	guest_init(&g);
	vmc_kdump_track_init(&t, 0, 2000, 3000);
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, NULL, 1999 * MS, &why), VMC_KDUMP_WAITING);
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, NULL, 2000 * MS, &why), VMC_KDUMP_LATE);
	why_has("no new dump directory within 2.0 s");
	dump(&g, 0, "empty", 0, 1);
	g.u[0].has_vmcore = false;
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, &g.u[0], 2500 * MS, &why), VMC_KDUMP_LATE);
	why_has("empty: no vmcore written in it within 2.5 s");
}

/*
 * How long a wait for the next push may last: before a dump is seen
 * writing, until the deadline but never more than stall_ms (a dump seen
 * meanwhile could stall no sooner); then stall_ms after its last growth,
 * moving on as it grows. Judged at that time with nothing new, the dump
 * is late, stalled or, early on, still awaited.
 */
static void the_wait_for_news_ends_when_the_dump_would_be_late_or_stalled(void)
{
	struct vmc_kdump_track t;
	uint64_t t0 = 7 * MS;
	struct guest g;
	Vmcheck__V1__CrashDump *d;

	guest_init(&g);
	/* Deadline 20 s, stall 15 s: the first wait ends at 15 s, the next at 20 s. */
	vmc_kdump_track_init(&t, t0, 20000, 15000);
	CU_ASSERT_EQUAL(vmc_kdump_track_due(&t, t0), t0 + 15000 * MS);
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, NULL, t0 + 15000 * MS, &why), VMC_KDUMP_WAITING);
	CU_ASSERT_EQUAL(vmc_kdump_track_due(&t, t0 + 15000 * MS), t0 + 20000 * MS);
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, NULL, t0 + 20000 * MS, &why), VMC_KDUMP_LATE);

	/* Seen writing at 1 s: stalled at 16 s, not at the 20 s deadline. */
	vmc_kdump_track_init(&t, t0, 20000, 15000);
	dump(&g, 0, "d", 4096, 1);
	d = &g.u[0];
	d->incomplete = true;
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 1000 * MS, &why), VMC_KDUMP_WRITING);
	CU_ASSERT_EQUAL(vmc_kdump_track_due(&t, t0 + 1000 * MS), t0 + 16000 * MS);
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 16000 * MS, &why), VMC_KDUMP_STALLED);

	/* It grew at 19 s: the bound moves past the deadline. */
	vmc_kdump_track_init(&t, t0, 20000, 15000);
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 1000 * MS, &why), VMC_KDUMP_WRITING);
	d->vmcore_size = 8192;
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 19000 * MS, &why), VMC_KDUMP_WRITING);
	CU_ASSERT_EQUAL(vmc_kdump_track_due(&t, t0 + 19000 * MS), t0 + 34000 * MS);
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 33999 * MS, &why), VMC_KDUMP_WRITING);
	CU_ASSERT_EQUAL(vmc_kdump_track(&t, d, t0 + 34000 * MS, &why), VMC_KDUMP_STALLED);
}

static void the_dump_found_must_be_whole_and_a_dump(void)
{
	struct guest g;
	Vmcheck__V1__CrashDump *d;

	guest_init(&g);
	dump(&g, 0, "x", 22944693, 1);
	d = &g.u[0];
	CU_ASSERT_TRUE(vmc_kdump_dump_ok(d, &why));
	why_has("x: vmcore 22944693 bytes, makedumpfile (KDUMP) header, 2 files");
	d->format = FMT(ELF);
	CU_ASSERT_TRUE(vmc_kdump_dump_ok(d, &why));
	why_has("ELF core");

	d->incomplete = true;
	CU_ASSERT_FALSE(vmc_kdump_dump_ok(d, &why));
	why_has("still incomplete after the reboot");
	d->incomplete = false;
	d->format = FMT(UNKNOWN);
	CU_ASSERT_FALSE(vmc_kdump_dump_ok(d, &why));
	why_has("neither ELF nor makedumpfile");
	d->format = FMT(KDUMP);
	d->vmcore_size = 0;
	CU_ASSERT_FALSE(vmc_kdump_dump_ok(d, &why));
	why_has("the vmcore is empty");
	d->has_vmcore = false;
	d->format = FMT(NONE);
	CU_ASSERT_FALSE(vmc_kdump_dump_ok(d, &why));
	why_has("no vmcore in it");
}

VMC_SUITE(kdump, NULL, NULL, VMC_TEST(deadlines_scale_with_memory),
	  VMC_TEST(guest_memory_from_blocks_else_memtotal),
	  VMC_TEST(ready_needs_a_loaded_crash_kernel),
	  VMC_TEST(ready_needs_a_dir_that_survives_the_reboot),
	  VMC_TEST(ready_refuses_a_dir_on_an_unknown_filesystem),
	  VMC_TEST(the_new_dump_is_one_not_there_before),
	  VMC_TEST(a_growing_dump_is_in_progress_past_the_deadline),
	  VMC_TEST(a_dump_that_stops_growing_has_stalled),
	  VMC_TEST(nothing_written_by_the_deadline_is_late),
	  VMC_TEST(the_wait_for_news_ends_when_the_dump_would_be_late_or_stalled),
	  VMC_TEST(the_dump_found_must_be_whole_and_a_dump))
