/* SPDX-License-Identifier: MIT */
/*
 * vmcheck run: the rules on which modes and options go together, each
 * accepted and refused, with the words the user is told.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd-run.h"
#include "harness.h"

#define HOSTS_EXCLUDE "run: --hosts excludes --libvirt, --qmp and --agent"
#define DOMAIN_NEEDS "run: --domain and --libvirt-network need --libvirt or --hosts"
#define LIBVIRT_QMP "run: --libvirt and --qmp exclude each other"
#define AGENT_NEEDS_DOMAIN                                                                      \
	"run: --agent with --libvirt needs --domain (without it only --agent libvirt-channel: " \
	"is allowed)"
#define QMP_AGENT "run: --qmp and --agent go together (attach mode)"
#define BIGMEM_LAUNCH \
	"run: bigmem boots a VM of its own: launch mode only (no --libvirt, --qmp, --hosts)"
#define IMAGE_LAUNCH                                                                         \
	"run: --image boots a VM of its own: launch mode or --libvirt without --domain (no " \
	"--qmp, --hosts)"
#define TRANSPORT_LAUNCH "run: --agent-transport is for launch mode (attached: --agent ssh://...)"
#define ARCH_ATTACHED \
	"run: --arch is for a VM started here (an attached VM's comes from QEMU or libvirt)"

static void accepted(const struct vmc_run_args *a)
{
	struct vmc_error err = VMC_ERROR_INIT;
	int r = vmc_cmd_run_validate(a, &err);

	if (r)
		fprintf(stderr, "refused: %s\n", err.msg ? err.msg : "(no message)");
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT_PTR_NULL(err.msg);
	vmc_error_clear(&err);
}

static void refused(const struct vmc_run_args *a, const char *want)
{
	struct vmc_error err = VMC_ERROR_INIT;

	CU_ASSERT_EQUAL(vmc_cmd_run_validate(a, &err), -EINVAL);
	CU_ASSERT_EQUAL(err.code, -EINVAL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
	if (strcmp(err.msg, want))
		fprintf(stderr, "message: %s\nwanted:  %s\n", err.msg, want);
	CU_ASSERT_STRING_EQUAL(err.msg, want);
	vmc_error_clear(&err);
}

static void launch_mode_takes_its_own_options(void)
{
	accepted(&(struct vmc_run_args){ 0 });
	accepted(&(struct vmc_run_args){ .only = "nic,disk", .junit = "j", .json = "x" });
	accepted(&(struct vmc_run_args){ .qemu.image = "disk.qcow2" });
	accepted(&(struct vmc_run_args){ .qemu.agent_ssh = true });
	accepted(&(struct vmc_run_args){ .opts.bigmem_bytes = 64ULL << 30 });
	accepted(&(struct vmc_run_args){ .only = "bigmem" });
	accepted(&(struct vmc_run_args){
		.qemu = { .image = "disk.qcow2", .agent_ssh = true },
		.opts = { .bigmem_bytes = 1ULL << 40, .repeat = 3 },
	});
}

static void attach_mode_is_qmp_and_agent_together(void)
{
	accepted(&(struct vmc_run_args){ .qmp = "/q", .agent = "vserial:/a" });
	accepted(&(struct vmc_run_args){ .qmp = "/q", .agent = "ssh://root@h", .only = "nic" });
	refused(&(struct vmc_run_args){ .qmp = "/q" }, QMP_AGENT);
	refused(&(struct vmc_run_args){ .agent = "vserial:/a" }, QMP_AGENT);
}

static void libvirt_mode_excludes_qmp(void)
{
	accepted(&(struct vmc_run_args){ .libvirt = "qemu:///system" });
	accepted(&(struct vmc_run_args){ .libvirt = "qemu:///system", .network = "default" });
	refused(&(struct vmc_run_args){ .libvirt = "qemu:///system", .qmp = "/q" }, LIBVIRT_QMP);
	refused(&(struct vmc_run_args){ .libvirt = "u", .qmp = "/q", .agent = "vserial:/a" },
		LIBVIRT_QMP);
}

static void libvirt_agent_needs_a_domain(void)
{
	accepted(&(struct vmc_run_args){ .libvirt = "u", .domain = "vm1" });
	accepted(&(struct vmc_run_args){ .libvirt = "u", .domain = "vm1", .agent = "ssh://h" });
	refused(&(struct vmc_run_args){ .libvirt = "u", .agent = "ssh://h" }, AGENT_NEEDS_DOMAIN);
}

/*
 * "libvirt-channel:" alone names how to reach the domain's own channel, so
 * it needs no --domain; a whole spec names a domain, which the transient
 * one is not.
 */
static void libvirt_channel_alone_needs_no_domain(void)
{
	accepted(&(struct vmc_run_args){ .libvirt = "u", .agent = "libvirt-channel:" });
	accepted(&(struct vmc_run_args){ .libvirt = "u",
					 .domain = "vm1",
					 .agent = "libvirt-channel:" });
	accepted(&(struct vmc_run_args){ .libvirt = "u",
					 .domain = "vm1",
					 .agent = "libvirt-channel:vm1/qemu+ssh://h/system" });
	refused(&(struct vmc_run_args){ .libvirt = "u", .agent = "libvirt-channel:vm1/u" },
		AGENT_NEEDS_DOMAIN);
	refused(&(struct vmc_run_args){ .libvirt = "u", .agent = "libvirt-channel" },
		AGENT_NEEDS_DOMAIN);
	refused(&(struct vmc_run_args){ .hosts = "a,b", .agent = "libvirt-channel:" },
		HOSTS_EXCLUDE);
	refused(&(struct vmc_run_args){ .agent = "libvirt-channel:" }, QMP_AGENT);
}

static void domain_and_network_need_libvirt_or_hosts(void)
{
	refused(&(struct vmc_run_args){ .domain = "vm1" }, DOMAIN_NEEDS);
	refused(&(struct vmc_run_args){ .network = "default" }, DOMAIN_NEEDS);
	/* Reported before the attach-mode rule it also breaks. */
	refused(&(struct vmc_run_args){ .domain = "vm1", .qmp = "/q", .agent = "vserial:/a" },
		DOMAIN_NEEDS);
	accepted(&(struct vmc_run_args){ .hosts = "a,b", .domain = "vm1" });
	accepted(&(struct vmc_run_args){ .hosts = "a,b", .network = "default" });
}

static void hosts_excludes_libvirt_qmp_and_agent(void)
{
	accepted(&(struct vmc_run_args){ .hosts = "qemu+ssh://a/system,qemu+ssh://b/system" });
	refused(&(struct vmc_run_args){ .hosts = "a,b", .libvirt = "u" }, HOSTS_EXCLUDE);
	refused(&(struct vmc_run_args){ .hosts = "a,b", .qmp = "/q" }, HOSTS_EXCLUDE);
	refused(&(struct vmc_run_args){ .hosts = "a,b", .agent = "vserial:/a" }, HOSTS_EXCLUDE);
	/* The first rule broken is the one told. */
	refused(&(struct vmc_run_args){ .hosts = "a", .libvirt = "u", .qmp = "/q", .domain = "d" },
		HOSTS_EXCLUDE);
}

static void bigmem_is_launch_mode_only(void)
{
	uint64_t big = 64ULL << 30;

	refused(&(struct vmc_run_args){ .opts.bigmem_bytes = big, .libvirt = "u" }, BIGMEM_LAUNCH);
	refused(&(struct vmc_run_args){ .opts.bigmem_bytes = big, .qmp = "/q", .agent = "v:/a" },
		BIGMEM_LAUNCH);
	refused(&(struct vmc_run_args){ .opts.bigmem_bytes = big, .hosts = "a,b" }, BIGMEM_LAUNCH);
	/* --only bigmem means --bigmem of the default size. */
	refused(&(struct vmc_run_args){ .only = "bigmem", .libvirt = "u" }, BIGMEM_LAUNCH);
	refused(&(struct vmc_run_args){ .only = "nic,bigmem", .hosts = "a" }, BIGMEM_LAUNCH);
	accepted(&(struct vmc_run_args){ .only = "nic,memory", .libvirt = "u" });
}

static void image_boots_a_vm_of_its_own(void)
{
	accepted(&(struct vmc_run_args){ .qemu.image = "i", .libvirt = "u" });
	refused(&(struct vmc_run_args){ .qemu.image = "i", .libvirt = "u", .domain = "d" },
		IMAGE_LAUNCH);
	refused(&(struct vmc_run_args){ .qemu.image = "i", .qmp = "/q", .agent = "v:/a" },
		IMAGE_LAUNCH);
	refused(&(struct vmc_run_args){ .qemu.image = "i", .hosts = "a" }, IMAGE_LAUNCH);
	/* Both launch-only: bigmem is told first. */
	refused(&(struct vmc_run_args){ .qemu.image = "i",
					.opts.bigmem_bytes = 1ULL << 30,
					.libvirt = "u" },
		BIGMEM_LAUNCH);
}

static void agent_transport_is_launch_mode_only(void)
{
	refused(&(struct vmc_run_args){ .qemu.agent_ssh = true, .libvirt = "u" }, TRANSPORT_LAUNCH);
	refused(&(struct vmc_run_args){ .qemu.agent_ssh = true, .qmp = "/q", .agent = "v:/a" },
		TRANSPORT_LAUNCH);
	refused(&(struct vmc_run_args){ .qemu.agent_ssh = true, .hosts = "a" }, TRANSPORT_LAUNCH);
	/* --image goes through libvirt; the SSH transport does not. */
	refused(&(struct vmc_run_args){ .qemu = { .agent_ssh = true, .image = "i" },
					.libvirt = "u" },
		TRANSPORT_LAUNCH);
	refused(&(struct vmc_run_args){ .qemu = { .agent_ssh = true, .image = "i" },
					.qmp = "/q",
					.agent = "v:/a" },
		IMAGE_LAUNCH);
}

static void arch_and_the_qemu_binary_agree(void)
{
	const struct vmc_arch *arm = &vmc_arch_aarch64, *x86 = &vmc_arch_x86_64;

	accepted(&(struct vmc_run_args){ .qemu.arch = arm });
	accepted(&(struct vmc_run_args){ .qemu = { .arch = arm, .qemu = "qemu-system-aarch64" } });
	accepted(&(struct vmc_run_args){
		.qemu = { .arch = x86, .qemu = "/usr/bin/qemu-system-x86_64" } });
	/* --qemu alone says the arch; a name that says none leaves --arch to decide. */
	accepted(&(struct vmc_run_args){ .qemu.qemu = "/usr/bin/qemu-system-aarch64" });
	accepted(&(struct vmc_run_args){ .qemu = { .arch = arm, .qemu = "/opt/qemu-wrapper" } });
	refused(&(struct vmc_run_args){ .qemu = { .arch = x86, .qemu = "qemu-system-aarch64" } },
		"run: --arch x86_64 and --qemu qemu-system-aarch64 contradict each other");
	refused(&(struct vmc_run_args){ .qemu = { .arch = arm,
						  .qemu = "/usr/bin/qemu-system-x86_64" } },
		"run: --arch aarch64 and --qemu /usr/bin/qemu-system-x86_64 contradict each other");
	/* A transient libvirt domain is started here too. */
	accepted(&(struct vmc_run_args){ .qemu.arch = arm, .libvirt = "qemu:///system" });
	accepted(&(struct vmc_run_args){ .qemu.arch = arm, .hosts = "a,b" });
}

static void an_attached_vm_says_its_own_arch(void)
{
	const struct vmc_arch *arm = &vmc_arch_aarch64;

	refused(&(struct vmc_run_args){ .qemu.arch = arm, .qmp = "/q", .agent = "vserial:/a" },
		ARCH_ATTACHED);
	refused(&(struct vmc_run_args){ .qemu.arch = arm, .libvirt = "u", .domain = "vm1" },
		ARCH_ATTACHED);
	refused(&(struct vmc_run_args){ .qemu.arch = arm, .hosts = "a,b", .domain = "vm1" },
		ARCH_ATTACHED);
	/* Attach-mode's own rule comes first. */
	refused(&(struct vmc_run_args){ .qemu.arch = arm, .qmp = "/q" }, QMP_AGENT);
}

static void validating_changes_nothing(void)
{
	struct vmc_run_args a = { .only = "bigmem" };

	/* The default size of --only bigmem is the command's to fill in, later. */
	accepted(&a);
	CU_ASSERT_EQUAL(a.opts.bigmem_bytes, 0);
}

VMC_SUITE(cmd_run, NULL, NULL, VMC_TEST(launch_mode_takes_its_own_options),
	  VMC_TEST(attach_mode_is_qmp_and_agent_together), VMC_TEST(libvirt_mode_excludes_qmp),
	  VMC_TEST(libvirt_agent_needs_a_domain), VMC_TEST(libvirt_channel_alone_needs_no_domain),
	  VMC_TEST(domain_and_network_need_libvirt_or_hosts),
	  VMC_TEST(hosts_excludes_libvirt_qmp_and_agent), VMC_TEST(bigmem_is_launch_mode_only),
	  VMC_TEST(image_boots_a_vm_of_its_own), VMC_TEST(agent_transport_is_launch_mode_only),
	  VMC_TEST(arch_and_the_qemu_binary_agree), VMC_TEST(an_attached_vm_says_its_own_arch),
	  VMC_TEST(validating_changes_nothing))
