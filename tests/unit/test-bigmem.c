/* SPDX-License-Identifier: MIT */
/*
 * The large-memory boot without a big VM: size parsing, the refusal
 * arithmetic, the q35 address-width rule, /proc reads, and the exact count
 * of the guest's memory blocks against the configured size, on States the
 * guest's memory reader makes from scratch sysfs trees shaped like what a
 * 64 GiB q35 guest shows (blocks 0 and 2-32 of 2 GiB; doc/facts.md, "Big
 * guests").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "check-bigmem.h"
#include "harness.h"
#include "state.h"

#define GIB (1ULL << 30)
#define MEM "sys/devices/system/memory/"

static void sizes_parse_with_a_binary_unit(void)
{
	static const struct {
		const char *s;
		uint64_t bytes;
	} ok[] = {
		{ "64G", 64 * GIB },      { "512G", 512 * GIB },  { "1T", 1024 * GIB },
		{ "65536M", 64 * GIB },   { "64GiB", 64 * GIB },  { "2t", 2048 * GIB },
		{ "128M", 128ULL << 20 }, { "64T", 64ULL << 40 }, { "4096T", 1ULL << 52 },
	};
	static const struct {
		const char *s;
		int r;
	} bad[] = {
		{ "64", -EINVAL }, /* no unit: bytes or MB? */
		{ "", -EINVAL },
		{ "G", -EINVAL },
		{ "-1G", -EINVAL },
		{ " 64G", -EINVAL },
		{ "64X", -EINVAL },
		{ "64G ", -EINVAL },
		{ "1.5T", -EINVAL },
		{ "200M", -EINVAL }, /* not whole 128 MiB blocks */
		{ "0G", -ERANGE },
		{ "64M", -ERANGE },
		{ "4097T", -ERANGE },
		{ "99999999999999999999G", -ERANGE },
		{ "18014398509481984M", -ERANGE },
	};
	uint64_t b;

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		b = 0;
		CU_ASSERT_EQUAL(vmc_bigmem_parse(ok[i].s, &b), 0);
		CU_ASSERT_EQUAL(b, ok[i].bytes);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		b = 7;
		if (vmc_bigmem_parse(bad[i].s, &b) != bad[i].r)
			fprintf(stderr, "\n\"%s\": want %d\n", bad[i].s, bad[i].r);
		CU_ASSERT_EQUAL(vmc_bigmem_parse(bad[i].s, &b), bad[i].r);
		CU_ASSERT_EQUAL(b, 7);
	}
}

static void refusal_states_the_arithmetic(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	uint64_t need64 = vmc_bigmem_rss_need(64 * GIB);

	/* Measured: 1.69 GB at 64 GiB, 18.23 GB at 1 TiB. */
	CU_ASSERT_EQUAL(need64, 700000000ULL + 64 * 17200000ULL);
	CU_ASSERT_EQUAL(vmc_bigmem_rss_need(1024 * GIB), 700000000ULL + 1024 * 17200000ULL);
	/* No overflow at the largest size. */
	CU_ASSERT_EQUAL(vmc_bigmem_rss_need(1ULL << 52), 700000000ULL + 4194304ULL * 17200000ULL);

	CU_ASSERT_EQUAL(vmc_bigmem_fits(64 * GIB, need64, &err), 0);
	CU_ASSERT_PTR_NULL(err.msg);
	CU_ASSERT_EQUAL(vmc_bigmem_fits(64 * GIB, need64 - 1, &err), -ENOMEM);
	vmc_error_clear(&err);
	/* The 24 GiB host and an absurd guest. */
	CU_ASSERT_EQUAL(vmc_bigmem_fits(64ULL << 40, 24 * GIB, &err), -ENOMEM);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "a guest of 64 TiB needs about 1127.9 GB"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "(0.7 GB + 65536 GiB x 17.2 MB: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "struct page array"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "this host has 25.8 GB available (MemAvailable)"));
	vmc_error_clear(&err);
	/* 1 TiB on the lab's 24 GiB host: 18.3 GB of ~23 GB available fits. */
	CU_ASSERT_EQUAL(vmc_bigmem_fits(1024 * GIB, 23 * GIB, &err), 0);
}

static void phys_bits_follow_qemus_q35_map(void)
{
	CU_ASSERT_EQUAL(vmc_bigmem_phys_bits(2 * GIB), 0); /* all below 4 GiB */
	CU_ASSERT_EQUAL(vmc_bigmem_phys_bits(64 * GIB), 0);
	CU_ASSERT_EQUAL(vmc_bigmem_phys_bits(512 * GIB), 0);
	/* 4 + 958 GiB of RAM + 32 GiB of PCI hole stays below the HT hole at 1012 GiB. */
	CU_ASSERT_EQUAL(vmc_bigmem_phys_bits(960 * GIB), 0);
	/* Above it QEMU moves the RAM to 1 TiB: 1 TiB + 998 GiB + 32 GiB needs 42 bits. */
	CU_ASSERT_EQUAL(vmc_bigmem_phys_bits(1000 * GIB), 42);
	/* 1 TiB needs 42 (doc/facts.md, "Big guests"). */
	CU_ASSERT_EQUAL(vmc_bigmem_phys_bits(1024 * GIB), 42);
	CU_ASSERT_EQUAL(vmc_bigmem_phys_bits(4096 * GIB), 43);
}

static void proc_figures_are_read_strictly(void)
{
	struct fx f;
	uint64_t v = 0, rss = 0, hwm = 0;

	fx_init(&f);
	fx_write(&f, "proc/meminfo",
		 "MemTotal:       24591480 kB\nMemFree:        23000000 kB\n"
		 "MemAvailable:   23820376 kB\nBuffers:            1234 kB\n");
	CU_ASSERT_EQUAL(vmc_bigmem_mem_available(f.root.fd, &v), 0);
	CU_ASSERT_EQUAL(v, 23820376ULL * 1024);
	fx_write(&f, "proc/4242/status",
		 "Name:\tqemu-system-x86\nVmPeak:\t70000000 kB\nVmHWM:\t 1494788 kB\n"
		 "VmRSS:\t 1400000 kB\nThreads:\t4\n");
	CU_ASSERT_EQUAL(vmc_bigmem_rss(f.root.fd, 4242, &rss, &hwm), 0);
	CU_ASSERT_EQUAL(rss, 1400000ULL * 1024);
	CU_ASSERT_EQUAL(hwm, 1494788ULL * 1024);
	/* "VmRSSx" is not VmRSS; a value without kB is malformed; a gone process is ENOENT. */
	fx_write(&f, "proc/4243/status", "VmRSSx:\t1 kB\nVmHWM:\t1 kB\n");
	CU_ASSERT_EQUAL(vmc_bigmem_rss(f.root.fd, 4243, &rss, &hwm), -ENOENT);
	fx_write(&f, "proc/4243/status", "VmRSS:\t12\nVmHWM:\t1 kB\n");
	CU_ASSERT_EQUAL(vmc_bigmem_rss(f.root.fd, 4243, &rss, &hwm), -EINVAL);
	CU_ASSERT_EQUAL(vmc_bigmem_rss(f.root.fd, 4244, &rss, &hwm), -ENOENT);
	CU_ASSERT_EQUAL(rss, 1400000ULL * 1024);
	fx_write(&f, "proc/meminfo", "MemTotal:       24591480 kB\n");
	CU_ASSERT_EQUAL(vmc_bigmem_mem_available(f.root.fd, &v), -ENOENT);
	fx_cleanup(&f);
}

/* A 64 GiB q35 guest's memory sysfs: 2 GiB blocks 0 and 2-32, the PCI hole between. */
static void guest_tree(struct fx *f, const char *skip_state_of)
{
	char p[96];

	fx_write(f, MEM "block_size_bytes", "80000000\n");
	fx_write(f, MEM "auto_online_blocks", "online\n");
	for (unsigned i = 0; i <= 32; i++) {
		if (i == 1)
			continue;
		snprintf(p, sizeof(p), MEM "memory%u/state", i);
		fx_write(f, p,
			 skip_state_of && !strcmp(p, skip_state_of) ? "offline\n" : "online\n");
	}
	fx_write(f, "proc/meminfo", "MemTotal:       65861364 kB\nMemAvailable:   65000000 kB\n");
}

static void count_tree(struct fx *f, struct vmc_bigmem_want *w, bool want_ok, const char *why_has)
{
	struct fx_run t;
	struct vmc_why why = { .text = "" };

	fx_run(&t, f->root, vmc_state_read_memory);
	CU_ASSERT_EQUAL_FATAL(t.r, 0);
	CU_ASSERT_EQUAL(vmc_bigmem_memory_ok(&t.st, w, &why), want_ok);
	if (why_has && !strstr(why.text, why_has))
		fprintf(stderr, "\nmissing \"%s\" in: %s\n", why_has, why.text);
	if (why_has)
		CU_ASSERT_PTR_NOT_NULL(strstr(why.text, why_has));
	fx_run_done(&t, false);
}

static void blocks_add_up_to_the_size_exactly(void)
{
	struct vmc_bigmem_want w = { .bytes = 64 * GIB };
	struct fx f;

	fx_init(&f);
	guest_tree(&f, NULL);
	count_tree(&f, &w, true, NULL);
	CU_ASSERT_PTR_NOT_NULL(
		strstr(w.arithmetic, "block size 2 GiB (block_size_bytes 80000000)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(w.arithmetic,
				      " 0-0 [0x0-0x7fffffff] 2 GiB, no RAM in "
				      "0x80000000-0xffffffff (2 GiB: the 32-bit PCI "
				      "hole), 2-32 [0x100000000-0x107fffffff] 62 GiB;"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(w.arithmetic, "32 blocks x 2 GiB = 64 GiB online = the configured 64 GiB"));
	/* 64 GiB - 65861364 kB = 1.19 GiB, 1 GiB of it struct pages. */
	CU_ASSERT_PTR_NOT_NULL(strstr(w.arithmetic, "MemTotal 62.81 GiB, 1.19 GiB less: 1.00 GiB"));

	/* Asked for 66 GiB, the guest has 64: the count says so, no tolerance. */
	w.bytes = 66 * GIB;
	count_tree(&f, &w, false, "32 memory blocks x 2 GiB = 64 GiB, configured 66 GiB");
	/* A block missing in the middle is 2 GiB short. */
	w.bytes = 64 * GIB;
	fx_remove(&f, MEM "memory17");
	count_tree(&f, &w, false, "31 memory blocks x 2 GiB = 62 GiB, configured 64 GiB");
	fx_cleanup(&f);
}

static void every_block_must_be_online(void)
{
	struct vmc_bigmem_want w = { .bytes = 64 * GIB };
	struct fx f;

	fx_init(&f);
	guest_tree(&f, MEM "memory7/state");
	count_tree(&f, &w, false, "1 of 32 memory blocks not online (first: memory7)");
	fx_cleanup(&f);
}

static void memtotal_above_the_size_or_no_blocks_fail(void)
{
	struct vmc_bigmem_want w = { .bytes = 64 * GIB };
	Vmcheck__V1__State st;
	Vmcheck__V1__Memory m;
	Vmcheck__V1__MemoryBlock b0, b1, *blocks[2] = { &b1, &b0 };
	struct vmc_why why = { .text = "" };

	vmcheck__v1__state__init(&st);
	CU_ASSERT_FALSE(vmc_bigmem_memory_ok(&st, &w, &why));
	CU_ASSERT_PTR_NOT_NULL(strstr(why.text, "no memory blocks"));
	/* Two 32 GiB blocks given in reverse order: the runs are sorted. */
	vmcheck__v1__memory__init(&m);
	vmcheck__v1__memory_block__init(&b0);
	vmcheck__v1__memory_block__init(&b1);
	b0.index = 0;
	b1.index = 1;
	b0.state = b1.state = VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE;
	m.block_size = 32 * GIB;
	m.blocks = blocks;
	m.n_blocks = 2;
	m.mem_total_kb = 64ULL << 20;
	st.memory = &m;
	CU_ASSERT_TRUE(vmc_bigmem_memory_ok(&st, &w, &why));
	CU_ASSERT_PTR_NOT_NULL(strstr(w.arithmetic, "RAM in blocks 0-1 [0x0-0xfffffffff] 64 GiB;"));
	m.mem_total_kb++;
	CU_ASSERT_FALSE(vmc_bigmem_memory_ok(&st, &w, &why));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(why.text, "MemTotal 67108865 kB exceeds the configured 64 GiB"));
}

/* 1 TiB as QEMU maps it (measured): 2 GiB low, the rest from 1 TiB on. */
static void ram_moved_above_1tib_is_explained(void)
{
	static Vmcheck__V1__MemoryBlock b[512];
	static Vmcheck__V1__MemoryBlock *blocks[512];
	struct vmc_bigmem_want w = { .bytes = 1024 * GIB };
	struct vmc_why why = { .text = "" };
	Vmcheck__V1__State st;
	Vmcheck__V1__Memory m;

	vmcheck__v1__state__init(&st);
	vmcheck__v1__memory__init(&m);
	for (unsigned i = 0; i < 512; i++) {
		vmcheck__v1__memory_block__init(&b[i]);
		b[i].index = i ? 511 + i : 0;
		b[i].state = VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE;
		blocks[i] = &b[i];
	}
	m.block_size = 2 * GIB;
	m.blocks = blocks;
	m.n_blocks = 512;
	st.memory = &m;
	CU_ASSERT_TRUE_FATAL(vmc_bigmem_memory_ok(&st, &w, &why));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(w.arithmetic,
		       " 0-0 [0x0-0x7fffffff] 2 GiB, no RAM in 0x80000000-0xffffffffff "
		       "(1022 GiB: the 32-bit PCI hole, then QEMU put the RAM above 1 TiB, "
		       "past the AMD HyperTransport hole), 512-1022 "
		       "[0x10000000000-0x1ff7fffffff] 1022 GiB;"));
	CU_ASSERT_PTR_NOT_NULL(strstr(w.arithmetic, "512 blocks x 2 GiB = 1 TiB online"));
}

/*
 * 64 GiB on arm virt (measured): 128 MiB blocks 8-519 from the RAM's start
 * at 1 GiB, and block 0, UEFI's variable flash, which is no RAM.
 */
static void blocks_below_the_ram_are_not_counted(void)
{
	static Vmcheck__V1__MemoryBlock b[513];
	static Vmcheck__V1__MemoryBlock *blocks[513];
	struct vmc_bigmem_want w = { .bytes = 64 * GIB, .ram_base = GIB };
	struct vmc_why why = { .text = "" };
	Vmcheck__V1__State st;
	Vmcheck__V1__Memory m;

	vmcheck__v1__state__init(&st);
	vmcheck__v1__memory__init(&m);
	for (unsigned i = 0; i < 513; i++) {
		vmcheck__v1__memory_block__init(&b[i]);
		b[i].index = i ? 7 + i : 0;
		b[i].state = VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE;
		blocks[i] = &b[i];
	}
	m.block_size = 128 << 20;
	m.blocks = blocks;
	m.n_blocks = 513;
	st.memory = &m;
	CU_ASSERT_TRUE_FATAL(vmc_bigmem_memory_ok(&st, &w, &why));
	CU_ASSERT_PTR_NOT_NULL(strstr(w.arithmetic,
				      "1 block below the RAM's start at "
				      "0x40000000, not RAM, not counted; RAM in "
				      "blocks 8-519 [0x40000000-0x103fffffff] 64 GiB;"));
	CU_ASSERT_PTR_NOT_NULL(strstr(w.arithmetic, "512 blocks x 128 MiB = 64 GiB online"));
	/* Offline or not, what lies below the RAM is not judged. */
	b[0].state = VMCHECK__V1__MEMORY_BLOCK__STATE__OFFLINE;
	CU_ASSERT_TRUE(vmc_bigmem_memory_ok(&st, &w, &why));
	/* Counted as RAM (q35's rule), the flash is 128 MiB too many. */
	w.ram_base = 0;
	CU_ASSERT_FALSE(vmc_bigmem_memory_ok(&st, &w, &why));
	b[0].state = VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE;
	CU_ASSERT_FALSE(vmc_bigmem_memory_ok(&st, &w, &why));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(why.text, "513 memory blocks x 128 MiB = 65664 MiB, configured 64 GiB"));
	/* A block missing from the RAM is still missed. */
	w.ram_base = GIB;
	m.n_blocks = 512;
	CU_ASSERT_FALSE(vmc_bigmem_memory_ok(&st, &w, &why));
	CU_ASSERT_PTR_NOT_NULL(strstr(why.text, "511 memory blocks x 128 MiB = 65408 MiB from the "
						"RAM's start on, configured 64 GiB"));
}

VMC_SUITE(bigmem, NULL, NULL, VMC_TEST(sizes_parse_with_a_binary_unit),
	  VMC_TEST(refusal_states_the_arithmetic), VMC_TEST(phys_bits_follow_qemus_q35_map),
	  VMC_TEST(proc_figures_are_read_strictly), VMC_TEST(blocks_add_up_to_the_size_exactly),
	  VMC_TEST(every_block_must_be_online), VMC_TEST(memtotal_above_the_size_or_no_blocks_fail),
	  VMC_TEST(ram_moved_above_1tib_is_explained),
	  VMC_TEST(blocks_below_the_ram_are_not_counted))
