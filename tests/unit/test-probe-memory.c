/* SPDX-License-Identifier: MIT */
/*
 * The memory probe on this machine's own memory: the whole physical range
 * verifies, a range with no RAM finds nothing without allocating past the
 * bound or the deadline, and every byte is given back. The bound's
 * MemAvailable comes from proc/meminfo under the root, so a fixture root
 * pins it; the allocation and pagemap are real either way. Frame numbers
 * need root (CAP_SYS_ADMIN): without it only the refusal is checked.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "probe.h"

#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x
#define MIB (1ull << 20)
/* Far beyond any RAM this machine has: 32 TiB. */
#define NO_RAM (1ull << 45)

static Vmcheck__V1__ProbeResult res;
static struct vmc_outcome out;

static Vmcheck__V1__MemoryProbe args(uint64_t start, uint64_t size)
{
	Vmcheck__V1__MemoryProbe p = VMCHECK__V1__MEMORY_PROBE__INIT;

	p.phys_start = start;
	p.size = size;
	return p;
}

static int probe(const struct vmc_sysroot *root, const Vmcheck__V1__MemoryProbe *p)
{
	vmcheck__v1__probe_result__init(&res);
	memset(&out, 0, sizeof(out));
	return vmc_probe_memory(root, p, &res, &out);
}

/* A "Key: N kB" value of /proc/self/status, in bytes. */
static uint64_t status_bytes(const char *key)
{
	char line[256];
	unsigned long long kb = 0;
	size_t klen = strlen(key);
	FILE *fp = fopen("/proc/self/status", "r");

	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	while (fgets(line, sizeof(line), fp))
		if (!strncmp(line, key, klen) && line[klen] == ':')
			sscanf(line + klen + 1, "%llu", &kb);
	fclose(fp);
	return kb * 1024;
}

/* Reset the peak RSS (VmHWM) to the current one (Linux 4.0). */
static void reset_peak(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, "5", 1), 1);
	close(fd);
}

static bool have_frames(void)
{
	if (geteuid() == 0)
		return true;
	CU_PASS("skipped: frame numbers in pagemap need root");
	return false;
}

static void the_whole_physical_range_verifies_and_is_given_back(void)
{
	Vmcheck__V1__MemoryProbe p = args(0, 1ull << 46);
	struct vmc_sysroot root;
	uint64_t rss;

	if (!have_frames())
		return;
	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&root, "/"), 0);
	rss = status_bytes("RssAnon");
	if (probe(&root, &p) < 0)
		fprintf(stderr, "memory probe: %s\n", out.msg);
	CU_ASSERT_EQUAL_FATAL(out.code, 0);
	/* Every page is in [0, 2^46): the first 16 MiB (the default want) suffice. */
	CU_ASSERT_EQUAL(res.allocated_bytes, 16 * MIB);
	CU_ASSERT_EQUAL(res.in_range_bytes, res.allocated_bytes);
	CU_ASSERT(res.verified_bytes > 0);
	CU_ASSERT_EQUAL(res.mismatched_pages, 0);
	CU_ASSERT_EQUAL(res.verified_bytes + res.moved_pages * (uint64_t)getpagesize(),
			res.in_range_bytes);
	CU_ASSERT(res.duration_ns > 0);
	/* Unmapped before the reply: the process holds what it held before. */
	CU_ASSERT(status_bytes("RssAnon") < rss + 4 * MIB);
	vmc_sysroot_close(&root);
}

/* Nothing found; allocation stops at the bound (size + 64 MiB) and is given back. */
static void a_range_without_ram_stops_at_the_bound(void)
{
	Vmcheck__V1__MemoryProbe p = args(NO_RAM, 64 * MIB);
	struct vmc_sysroot root;
	uint64_t rss;

	if (!have_frames())
		return;
	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&root, "/"), 0);
	p.timeout_ms = 3000;
	rss = status_bytes("VmRSS");
	reset_peak();
	CU_ASSERT_EQUAL_FATAL(probe(&root, &p), 0);
	CU_ASSERT_EQUAL(res.in_range_bytes, 0);
	CU_ASSERT_EQUAL(res.verified_bytes, 0);
	CU_ASSERT_EQUAL(res.mismatched_pages, 0);
	CU_ASSERT_EQUAL(res.allocated_bytes, 128 * MIB);
	CU_ASSERT(res.duration_ns < 3000 * 1000000ull);
	/* The peak never went beyond the bound (plus the probe's small bookkeeping). */
	CU_ASSERT(status_bytes("VmHWM") < rss + 128 * MIB + 8 * MIB);
	CU_ASSERT(status_bytes("VmRSS") < rss + 4 * MIB);
	vmc_sysroot_close(&root);
}

static void max_alloc_bytes_is_the_bound(void)
{
	Vmcheck__V1__MemoryProbe p = args(NO_RAM, 64 * MIB);
	struct vmc_sysroot root;

	if (!have_frames())
		return;
	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&root, "/"), 0);
	p.max_alloc_bytes = 10 * MIB + 100; /* rounded down to whole pages */
	CU_ASSERT_EQUAL_FATAL(probe(&root, &p), 0);
	CU_ASSERT_EQUAL(res.allocated_bytes, 10 * MIB);
	CU_ASSERT_EQUAL(res.in_range_bytes, 0);
	vmc_sysroot_close(&root);
}

/* A bound far out of reach in 20 ms: the deadline ends the allocation. */
static void the_deadline_ends_the_allocation(void)
{
	Vmcheck__V1__MemoryProbe p = args(NO_RAM, 64 * MIB);
	struct vmc_sysroot root;

	if (!have_frames())
		return;
	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&root, "/"), 0);
	p.max_alloc_bytes = 64ull << 30;
	p.timeout_ms = 20;
	CU_ASSERT_EQUAL_FATAL(probe(&root, &p), 0);
	CU_ASSERT(res.allocated_bytes > 0);
	CU_ASSERT(res.allocated_bytes < 2048 * MIB);
	/* 15 ms of allocation, then the unmapping of what was had. */
	CU_ASSERT(res.duration_ns < 300 * 1000000ull);
	vmc_sysroot_close(&root);
}

/* A fixture's MemAvailable lowers the bound: 64 MiB of it stay free. */
static void mem_available_lowers_the_bound(void)
{
	Vmcheck__V1__MemoryProbe p = args(NO_RAM, 64 * MIB);
	struct fx fx;

	if (!have_frames())
		return;
	fx_init(&fx);
	fx_write(&fx, "proc/meminfo",
		 "MemTotal:        1000000 kB\nMemFree:          500000 kB\n"
		 "MemAvailable:      73728 kB\nBuffers:            1000 kB\n");
	CU_ASSERT_EQUAL_FATAL(probe(&fx.root, &p), 0);
	CU_ASSERT_EQUAL(res.allocated_bytes, 8 * MIB);
	fx_write(&fx, "proc/meminfo", "MemTotal: 1000000 kB\nMemAvailable: 65536 kB\n");
	CU_ASSERT_EQUAL(probe(&fx.root, &p), -ENOMEM);
	CU_ASSERT_EQUAL(out.code, ECODE(INTERNAL));
	CU_ASSERT_STRING_EQUAL(out.msg, "only 64 MiB available, and the probe leaves 64 MiB free");
	fx_write(&fx, "proc/meminfo", "MemTotal: 1000000 kB\n");
	CU_ASSERT_EQUAL(probe(&fx.root, &p), -ENOENT);
	CU_ASSERT_STRING_EQUAL(out.msg,
			       "reading MemAvailable from proc/meminfo: No such file or directory");
	fx_cleanup(&fx);
}

/* Without CAP_SYS_ADMIN pagemap reads frame 0 everywhere: NOT_PERMITTED. */
static void hidden_frames_are_not_permitted(void)
{
	Vmcheck__V1__MemoryProbe p = args(0, 1ull << 46);
	struct vmc_sysroot root;
	int fds[2], code = -1, st;
	pid_t pid;

	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&root, "/"), 0);
	CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		/*
		 * nobody: no capabilities left. Changing uid makes the process
		 * undumpable, its /proc files root's: make them its own again.
		 */
		if (geteuid() == 0 &&
		    (setresuid(65534, 65534, 65534) < 0 || prctl(PR_SET_DUMPABLE, 1) < 0))
			_exit(1);
		probe(&root, &p);
		if (write(fds[1], &out, sizeof(out)) != sizeof(out))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	CU_ASSERT_EQUAL(read(fds[0], &out, sizeof(out)), (ssize_t)sizeof(out));
	close(fds[0]);
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	code = out.code;
	CU_ASSERT_EQUAL(code, ECODE(NOT_PERMITTED));
	CU_ASSERT_STRING_EQUAL(out.msg, "/proc/self/pagemap shows no frame numbers: the agent "
					"lacks CAP_SYS_ADMIN");
	vmc_sysroot_close(&root);
}

static void bad_arguments_are_refused(void)
{
	static const struct {
		uint64_t start, size, want;
		unsigned timeout;
		const char *why;
	} bad[] = {
		{ 100, 4096, 0, 0, "multiples of the page size" },
		{ 0, 4097, 0, 0, "multiples of the page size" },
		{ 0, 0, 0, 0, "want a size > 0" },
		{ UINT64_MAX - 4095, 8192, 0, 0, "ends beyond 2^64" },
		{ 0, 8192, 8193, 0, "want_bytes 8193 is over the range's 8192 bytes" },
		{ 0, 8192, 0, 60001, "timeout_ms 60001 is over the limit of 60000" },
	};
	Vmcheck__V1__MemoryProbe p;
	struct fx fx;

	fx_init(&fx);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		p = args(bad[i].start, bad[i].size);
		p.want_bytes = bad[i].want;
		p.timeout_ms = bad[i].timeout;
		CU_ASSERT_EQUAL(probe(&fx.root, &p), -EINVAL);
		CU_ASSERT_EQUAL(out.code, ECODE(BAD_ARGUMENT));
		if (!strstr(out.msg, bad[i].why))
			fprintf(stderr, "case %zu: '%s' lacks '%s'\n", i, out.msg, bad[i].why);
		CU_ASSERT_PTR_NOT_NULL(strstr(out.msg, bad[i].why));
	}
	fx_cleanup(&fx);
}

VMC_SUITE(probe_memory, NULL, NULL, VMC_TEST(the_whole_physical_range_verifies_and_is_given_back),
	  VMC_TEST(a_range_without_ram_stops_at_the_bound), VMC_TEST(max_alloc_bytes_is_the_bound),
	  VMC_TEST(the_deadline_ends_the_allocation), VMC_TEST(mem_available_lowers_the_bound),
	  VMC_TEST(hidden_frames_are_not_permitted), VMC_TEST(bad_arguments_are_refused))
