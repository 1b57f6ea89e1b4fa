/* SPDX-License-Identifier: MIT */
/*
 * Usage probes. The disk probe runs on a fixture whose dev/vdb is a regular
 * file standing in for the device; the CPU probe pins a thread on this
 * machine's CPU 0, and is refused for CPUs a fixture says are offline.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "probe.h"
#include "sha256.h"

#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x
#define DISK_BYTES (1u << 20)
#define MOUNTS                                         \
	"22 1 0:21 / /proc rw,nosuid - proc proc rw\n" \
	"25 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n"

static struct fx fx;
static struct vmc_arena arena = VMC_ARENA_INIT;
static Vmcheck__V1__ProbeResult res;
static struct vmc_outcome out;

/* A 1 MiB vdb (254:16) in sysfs, and a file of zeros standing for /dev/vdb. */
static void setup_disk(void)
{
	char p[PATH_MAX + 16];
	int fd;

	fx_init(&fx);
	fx_write(&fx, "sys/block/vdb/dev", "254:16\n");
	fx_write(&fx, "sys/block/vdb/size", "2048\n");
	fx_write(&fx, "sys/block/vdb/ro", "0\n");
	fx_mkdir(&fx, "sys/block/vdb/holders");
	fx_write(&fx, "proc/self/mountinfo", MOUNTS);
	fx_mkdir(&fx, "dev");
	snprintf(p, sizeof(p), "%s/dev/vdb", fx.path);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL_FATAL(ftruncate(fd, DISK_BYTES), 0);
	close(fd);
	vmcheck__v1__probe_result__init(&res);
	memset(&out, 0, sizeof(out));
}

static void teardown(void)
{
	vmc_arena_free(&arena);
	fx_cleanup(&fx);
}

/* @n bytes of the stand-in device at @off. */
static void device_bytes(uint64_t off, void *buf, size_t n)
{
	char p[PATH_MAX + 16];
	int fd;

	snprintf(p, sizeof(p), "%s/dev/vdb", fx.path);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL_FATAL(pread(fd, buf, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static int probe(const char *dev, const char *pattern, size_t plen, uint64_t *offsets, size_t n)
{
	Vmcheck__V1__DiskProbe p = VMCHECK__V1__DISK_PROBE__INIT;

	p.device = (char *)dev;
	p.pattern.data = (uint8_t *)pattern;
	p.pattern.len = plen;
	p.offsets = offsets;
	p.n_offsets = n;
	return vmc_probe_disk(&fx.root, &p, &arena, &res, &out);
}

/* Refused with @code and a message containing @why; the device untouched. */
static void expect_refused(int r, Vmcheck__V1__Error__Code code, const char *why)
{
	static const uint8_t zero[512];
	uint8_t got[512];

	CU_ASSERT(r < 0);
	CU_ASSERT_EQUAL(out.code, code);
	if (!strstr(out.msg, why))
		fprintf(stderr, "\n  refusal '%s' does not say '%s'\n", out.msg, why);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.msg, why));
	CU_ASSERT_EQUAL(res.n_regions, 0);
	device_bytes(0, got, sizeof(got));
	CU_ASSERT_EQUAL(memcmp(got, zero, sizeof(zero)), 0);
}

static void the_pattern_round_trips_at_every_offset(void)
{
	static const char pattern[] = "vmcheck disk probe pattern";
	uint64_t offsets[] = { 0, 4096, DISK_BYTES - 1024 };
	uint8_t padded[512] = { 0 }, got[512];
	char want[VMC_SHA256_HEX];

	setup_disk();
	CU_ASSERT_EQUAL_FATAL(probe("vdb", pattern, sizeof(pattern) - 1, offsets, 3), 0);
	memcpy(padded, pattern, sizeof(pattern) - 1);
	vmc_sha256_hex(padded, sizeof(padded), want);
	CU_ASSERT_EQUAL_FATAL(res.n_regions, 3);
	for (size_t i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(res.regions[i]->offset, offsets[i]);
		CU_ASSERT_EQUAL(res.regions[i]->length, 512);
		CU_ASSERT_STRING_EQUAL(res.regions[i]->written_sha256, want);
		CU_ASSERT_STRING_EQUAL(res.regions[i]->read_sha256, want);
		/* And it really is on the "device", zero-padded. */
		device_bytes(offsets[i], got, sizeof(got));
		CU_ASSERT_EQUAL(memcmp(got, padded, sizeof(got)), 0);
	}
	/* Nothing between the regions was touched. */
	device_bytes(512, got, sizeof(got));
	CU_ASSERT_EQUAL(got[0] | got[511], 0);
	CU_ASSERT(res.duration_ns > 0);
	teardown();
}

static void a_pattern_over_one_sector_spans_several(void)
{
	static char pattern[1300];
	uint64_t off = 8192;

	setup_disk();
	memset(pattern, 0xa5, sizeof(pattern));
	CU_ASSERT_EQUAL_FATAL(probe("vdb", pattern, sizeof(pattern), &off, 1), 0);
	CU_ASSERT_EQUAL_FATAL(res.n_regions, 1);
	CU_ASSERT_EQUAL(res.regions[0]->length, 1536);
	CU_ASSERT_STRING_EQUAL(res.regions[0]->written_sha256, res.regions[0]->read_sha256);
	teardown();
}

static void four_kib_logical_blocks_go_through_the_page_cache(void)
{
	uint64_t off = 512;
	uint8_t got[512];

	/* 512-aligned but not 4096-aligned: O_DIRECT would fail, so it is not used. */
	setup_disk();
	fx_write(&fx, "sys/block/vdb/queue/logical_block_size", "4096\n");
	CU_ASSERT_EQUAL_FATAL(probe("vdb", "page cache", 10, &off, 1), 0);
	CU_ASSERT_FALSE(res.direct_io);
	CU_ASSERT_EQUAL_FATAL(res.n_regions, 1);
	CU_ASSERT_STRING_EQUAL(res.regions[0]->written_sha256, res.regions[0]->read_sha256);
	device_bytes(off, got, sizeof(got));
	CU_ASSERT_EQUAL(memcmp(got, "page cache", 10), 0);
	CU_ASSERT_EQUAL(got[10] | got[511], 0);
	teardown();
}

static void a_mounted_disk_or_partition_is_refused(void)
{
	uint64_t off = 0;

	setup_disk();
	fx_write(&fx, "proc/self/mountinfo", MOUNTS "30 25 254:16 / /mnt rw - ext4 /dev/vdb rw\n");
	expect_refused(probe("vdb", "x", 1, &off, 1), ECODE(NOT_PERMITTED), "vdb is mounted");
	/* A mounted partition is named as such, not just "has partitions". */
	fx_write(&fx, "sys/block/vdb/vdb1/partition", "1\n");
	fx_write(&fx, "sys/block/vdb/vdb1/dev", "254:17\n");
	fx_write(&fx, "proc/self/mountinfo", MOUNTS "30 25 254:17 / /mnt rw - ext4 /dev/vdb1 rw\n");
	expect_refused(probe("vdb", "x", 1, &off, 1), ECODE(NOT_PERMITTED), "vdb1 is mounted");
	/* Without mountinfo nobody can tell: refused as well. */
	fx_remove(&fx, "proc/self/mountinfo");
	expect_refused(probe("vdb", "x", 1, &off, 1), ECODE(NOT_FOUND),
		       "cannot tell whether vdb is mounted");
	teardown();
}

static void partitions_holders_and_read_only_are_refused(void)
{
	uint64_t off = 0;

	setup_disk();
	fx_write(&fx, "sys/block/vdb/ro", "1\n");
	expect_refused(probe("vdb", "x", 1, &off, 1), ECODE(NOT_PERMITTED), "vdb is read-only");
	fx_write(&fx, "sys/block/vdb/ro", "0\n");
	fx_write(&fx, "sys/block/vdb/vdb1/partition", "1\n");
	fx_write(&fx, "sys/block/vdb/vdb1/dev", "254:17\n");
	fx_mkdir(&fx, "sys/block/vdb/vdb1/holders");
	expect_refused(probe("vdb", "x", 1, &off, 1), ECODE(NOT_PERMITTED),
		       "vdb holds 1 partition(s) (vdb1)");
	fx_symlink(&fx, "../../../dm-0", "sys/block/vdb/vdb1/holders/dm-0");
	expect_refused(probe("vdb", "x", 1, &off, 1), ECODE(NOT_PERMITTED), "vdb1 is held by dm-0");
	teardown();
}

static void bad_requests_are_refused(void)
{
	static char big[VMC_PROBE_PATTERN_MAX + 1];
	uint64_t unaligned = 100, beyond = DISK_BYTES - 512, overlap[] = { 0, 512, 1024 };
	uint64_t many[VMC_PROBE_REGIONS_MAX + 1] = { 0 };

	setup_disk();
	expect_refused(probe("vdb", "x", 1, &unaligned, 1), ECODE(BAD_ARGUMENT),
		       "offset 100 is not a multiple of 512");
	expect_refused(probe("vdb", big, 1024, &beyond, 1), ECODE(BAD_ARGUMENT),
		       "ends beyond vdb (1048576 bytes)");
	expect_refused(probe("vdb", big, 600, overlap, 3), ECODE(BAD_ARGUMENT),
		       "at offsets 0 and 512 overlap");
	expect_refused(probe("vdb", "", 0, overlap, 1), ECODE(BAD_ARGUMENT), "a pattern of 0");
	expect_refused(probe("vdb", big, sizeof(big), overlap, 1), ECODE(BAD_ARGUMENT),
		       "a pattern of 1048577 bytes");
	expect_refused(probe("vdb", "x", 1, overlap, 0), ECODE(BAD_ARGUMENT), "0 offsets");
	expect_refused(probe("vdb", "x", 1, many, ARRAY_SIZE(many)), ECODE(BAD_ARGUMENT),
		       "65 offsets");
	expect_refused(probe("vdc", "x", 1, overlap, 1), ECODE(NOT_FOUND),
		       "vdc: no such block device");
	expect_refused(probe("../vdb", "x", 1, overlap, 1), ECODE(BAD_ARGUMENT),
		       "is not a disk name");
	teardown();
}

static void a_device_node_of_another_disk_is_refused(void)
{
	uint64_t off = 0;

	/* dev/vdb is a character device here (/dev/null's numbers): not 254:16. */
	setup_disk();
	fx_remove(&fx, "dev/vdb");
	fx_symlink(&fx, "/dev/null", "dev/vdb");
	CU_ASSERT(probe("vdb", "x", 1, &off, 1) < 0);
	CU_ASSERT_EQUAL(out.code, ECODE(NOT_PERMITTED));
	CU_ASSERT_STRING_EQUAL(out.msg, "dev/vdb is not the block device 254:16");
	teardown();
}

static void the_cpu_probe_runs_on_cpu0_of_this_machine(void)
{
	Vmcheck__V1__CpuProbe p = VMCHECK__V1__CPU_PROBE__INIT;
	struct vmc_sysroot live;

	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&live, "/"), 0);
	vmcheck__v1__probe_result__init(&res);
	p.cpu = 0;
	p.duration_ms = 20;
	CU_ASSERT_EQUAL_FATAL(vmc_probe_cpu(live.fd, &p, &res, &out), 0);
	CU_ASSERT_EQUAL(res.cpu_ran_on, 0);
	CU_ASSERT(res.duration_ns >= 20000000u);
	CU_ASSERT(res.duration_ns < 2000000000u);
	vmc_sysroot_close(&live);
}

static void offline_absent_and_overlong_cpu_probes_are_refused(void)
{
	Vmcheck__V1__CpuProbe p = VMCHECK__V1__CPU_PROBE__INIT;

	fx_init(&fx);
	fx_mkdir(&fx, "sys/devices/system/cpu/cpu0");
	fx_write(&fx, "sys/devices/system/cpu/cpu1/online", "0\n");
	vmcheck__v1__probe_result__init(&res);
	p.cpu = 1;
	CU_ASSERT_EQUAL(vmc_probe_cpu(fx.root.fd, &p, &res, &out), -EINVAL);
	CU_ASSERT_EQUAL(out.code, ECODE(BAD_ARGUMENT));
	CU_ASSERT_STRING_EQUAL(out.msg, "cpu1 is offline");
	p.cpu = 5;
	CU_ASSERT_EQUAL(vmc_probe_cpu(fx.root.fd, &p, &res, &out), -EINVAL);
	CU_ASSERT_EQUAL(out.code, ECODE(NOT_FOUND));
	CU_ASSERT_STRING_EQUAL(out.msg, "cpu5: no such CPU (no sys/devices/system/cpu/cpu5)");
	p.cpu = 0;
	p.duration_ms = VMC_PROBE_CPU_MAX_MS + 1;
	CU_ASSERT_EQUAL(vmc_probe_cpu(fx.root.fd, &p, &res, &out), -EINVAL);
	CU_ASSERT_EQUAL(out.code, ECODE(BAD_ARGUMENT));
	CU_ASSERT_EQUAL(res.duration_ns, 0);
	teardown();
}

VMC_SUITE(probe, NULL, NULL, VMC_TEST(the_pattern_round_trips_at_every_offset),
	  VMC_TEST(a_pattern_over_one_sector_spans_several),
	  VMC_TEST(four_kib_logical_blocks_go_through_the_page_cache),
	  VMC_TEST(a_mounted_disk_or_partition_is_refused),
	  VMC_TEST(partitions_holders_and_read_only_are_refused),
	  VMC_TEST(bad_requests_are_refused), VMC_TEST(a_device_node_of_another_disk_is_refused),
	  VMC_TEST(the_cpu_probe_runs_on_cpu0_of_this_machine),
	  VMC_TEST(offline_absent_and_overlong_cpu_probes_are_refused))
