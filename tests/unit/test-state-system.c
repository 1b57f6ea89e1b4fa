/* SPDX-License-Identifier: MIT */
/* Tests of the system section reader. */
#include <string.h>
#include <sys/utsname.h>

#include "harness.h"
#include "state.h"

static Vmcheck__V1__System *read_system(const struct vmc_sysroot *root, struct vmc_arena *a)
{
	struct vmc_state_opts o = { .root = *root };
	Vmcheck__V1__State st = VMCHECK__V1__STATE__INIT;

	CU_ASSERT_EQUAL_FATAL(vmc_state_read_system(&o, a, &st), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st.system);
	return st.system;
}

static void reads_the_committed_guest(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	struct vmc_sysroot root;
	Vmcheck__V1__System *s;

	fx_open_committed("kdump-guest", &root);
	s = read_system(&root, &a);
	CU_ASSERT_STRING_EQUAL(s->boot_id, "3c9b1f8e-6d2a-4f0b-9e57-1a2b3c4d5e6f");
	/* 12.29 s: a double would give 12289 ms. */
	CU_ASSERT_EQUAL(s->uptime_ms, 12290);
	CU_ASSERT_STRING_EQUAL(s->kernel_release, "6.1.0-25-cloud-amd64");
	CU_ASSERT_STRING_EQUAL(s->kernel_version,
			       "#1 SMP PREEMPT_DYNAMIC Debian 6.1.106-3 (2024-08-26)");
	CU_ASSERT_STRING_EQUAL(s->machine, ""); /* uname() is not the fixture's */
	CU_ASSERT_STRING_EQUAL(s->hostname, "kdump-guest");
	CU_ASSERT_STRING_EQUAL(s->os_id, "debian");
	CU_ASSERT_STRING_EQUAL(s->os_version_id, "12");
	CU_ASSERT_STRING_EQUAL(s->os_pretty_name, "Debian GNU/Linux 12 (bookworm)");
	CU_ASSERT_TRUE(s->has_suspend_stats);
	CU_ASSERT_EQUAL(s->suspend_success, 3);
	CU_ASSERT_EQUAL(s->suspend_fail, 1);
	CU_ASSERT_STRING_EQUAL(s->power_states, "freeze mem disk");
	vmc_arena_free(&a);
	vmc_sysroot_close(&root);
}

static void os_release_quoting_is_stripped(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__System *s;
	struct fx f;

	fx_init(&f);
	fx_write(&f, "etc/os-release",
		 "# ID=commented\n"
		 "  ID='my os'  \n"
		 "VERSION_ID=1\\ beta\n"
		 "PRETTY_NAME=\"Say \\\"hi\\\" for \\$5 \\n\"\n"
		 "NAME=\"unterminated\n");
	s = read_system(&f.root, &a);
	CU_ASSERT_STRING_EQUAL(s->os_id, "my os");
	CU_ASSERT_STRING_EQUAL(s->os_version_id, "1 beta");
	CU_ASSERT_STRING_EQUAL(s->os_pretty_name, "Say \"hi\" for $5 \\n");

	/* Malformed values are left out, a later line wins. */
	fx_write(&f, "etc/os-release",
		 "ID=\"open\nVERSION_ID=two words\n"
		 "PRETTY_NAME=first\nPRETTY_NAME=second\n");
	s = read_system(&f.root, &a);
	CU_ASSERT_STRING_EQUAL(s->os_id, "");
	CU_ASSERT_STRING_EQUAL(s->os_version_id, "");
	CU_ASSERT_STRING_EQUAL(s->os_pretty_name, "second");

	/* Without etc/os-release, usr/lib/os-release is read. */
	fx_remove(&f, "etc/os-release");
	fx_write(&f, "usr/lib/os-release", "ID=fedora\nVERSION_ID=40");
	s = read_system(&f.root, &a);
	CU_ASSERT_STRING_EQUAL(s->os_id, "fedora");
	CU_ASSERT_STRING_EQUAL(s->os_version_id, "40");
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

static uint64_t uptime_of(struct fx *f, const char *content)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	uint64_t ms;

	fx_write(f, "proc/uptime", content);
	ms = read_system(&f->root, &a)->uptime_ms;
	vmc_arena_free(&a);
	return ms;
}

static void uptime_is_parsed_exactly(void)
{
	struct fx f;

	fx_init(&f);
	CU_ASSERT_EQUAL(uptime_of(&f, "0.29 1.00\n"), 290);
	CU_ASSERT_EQUAL(uptime_of(&f, "358.41 668.81\n"), 358410);
	CU_ASSERT_EQUAL(uptime_of(&f, "7.5 1.00\n"), 7500);
	CU_ASSERT_EQUAL(uptime_of(&f, "1.23456 0.00\n"), 1234);
	CU_ASSERT_EQUAL(uptime_of(&f, "42\n"), 42000);
	/* Malformed or out of range: 0, and the section still reads. */
	CU_ASSERT_EQUAL(uptime_of(&f, "12. 1.00\n"), 0);
	CU_ASSERT_EQUAL(uptime_of(&f, "-1.00 1.00\n"), 0);
	CU_ASSERT_EQUAL(uptime_of(&f, "1.00x 1.00\n"), 0);
	CU_ASSERT_EQUAL(uptime_of(&f, "18446744073709552.00 0\n"), 0);
	CU_ASSERT_EQUAL(uptime_of(&f, "18446744073709551.615 0\n"), UINT64_MAX);
	fx_cleanup(&f);
}

static void suspend_stats_are_counted(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__System *s;
	struct fx f;

	fx_init(&f);
	s = read_system(&f.root, &a);
	CU_ASSERT_FALSE(s->has_suspend_stats);

	fx_write(&f, "sys/power/suspend_stats/success", "17\n");
	fx_write(&f, "sys/power/suspend_stats/fail", "junk\n");
	fx_write(&f, "sys/power/state", "freeze mem\n");
	s = read_system(&f.root, &a);
	CU_ASSERT_TRUE(s->has_suspend_stats);
	CU_ASSERT_EQUAL(s->suspend_success, 17);
	CU_ASSERT_EQUAL(s->suspend_fail, 0);
	CU_ASSERT_STRING_EQUAL(s->power_states, "freeze mem");
	/* No mem_sleep (a kernel before 4.10): not known. */
	CU_ASSERT_STRING_EQUAL(s->mem_sleep, "");
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

/*
 * What "mem" does, as the kernel says it: q35 with S3 enabled offers
 * "deep" (S3); arm virt and q35 with disable_s3=1 offer s2idle only
 * (doc/facts.md, "aarch64 guests"), though "mem" is in sys/power/state.
 */
static void mem_sleep_says_what_mem_does(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__System *s;
	struct fx f;

	fx_init(&f);
	fx_write(&f, "sys/power/state", "freeze mem disk\n");
	fx_write(&f, "sys/power/mem_sleep", "s2idle [deep]\n");
	s = read_system(&f.root, &a);
	CU_ASSERT_STRING_EQUAL(s->mem_sleep, "s2idle [deep]");
	fx_write(&f, "sys/power/mem_sleep", "[s2idle]\n");
	s = read_system(&f.root, &a);
	CU_ASSERT_STRING_EQUAL(s->mem_sleep, "[s2idle]");
	CU_ASSERT_STRING_EQUAL(s->power_states, "freeze mem disk");
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

static void empty_tree_gives_empty_fields(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__System *s;
	struct fx f;

	fx_init(&f);
	s = read_system(&f.root, &a);
	CU_ASSERT_STRING_EQUAL(s->boot_id, "");
	CU_ASSERT_STRING_EQUAL(s->kernel_release, "");
	CU_ASSERT_STRING_EQUAL(s->hostname, "");
	CU_ASSERT_STRING_EQUAL(s->os_id, "");
	CU_ASSERT_STRING_EQUAL(s->power_states, "");
	CU_ASSERT_EQUAL(s->uptime_ms, 0);
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

static void live_system_matches_uname(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	struct vmc_sysroot root;
	Vmcheck__V1__System *s;
	struct utsname u;

	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&root, "/"), 0);
	CU_ASSERT_EQUAL_FATAL(uname(&u), 0);
	s = read_system(&root, &a);
	CU_ASSERT_STRING_EQUAL(s->machine, u.machine);
	CU_ASSERT_STRING_EQUAL(s->kernel_release, u.release);
	CU_ASSERT_STRING_EQUAL(s->kernel_version, u.version);
	CU_ASSERT_STRING_EQUAL(s->hostname, u.nodename);
	CU_ASSERT_EQUAL(strlen(s->boot_id), 36);
	CU_ASSERT(s->uptime_ms > 0);
	vmc_arena_free(&a);
	vmc_sysroot_close(&root);
}

VMC_SUITE(state_system, NULL, NULL, VMC_TEST(reads_the_committed_guest),
	  VMC_TEST(os_release_quoting_is_stripped), VMC_TEST(uptime_is_parsed_exactly),
	  VMC_TEST(suspend_stats_are_counted), VMC_TEST(mem_sleep_says_what_mem_does),
	  VMC_TEST(empty_tree_gives_empty_fields), VMC_TEST(live_system_matches_uname))
