/* SPDX-License-Identifier: MIT */
/*
 * vmcheck run: launch the embedded test guest (or attach to a running VM)
 * and run the sanity suite against it, with reports.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "check-bigmem.h"
#include "cmd-run-hosts.h"
#include "cmd-run.h"
#include "cmd.h"
#include "hv-libvirt.h"
#include "hv-qmp.h"
#include "libvirt-shared.h"
#include "qemu.h"
#include "suite.h"
#include "parse.h"

/* The guest kit: build/guest in a source tree; make install sets its own. */
#ifndef GUEST_DIR
#define GUEST_DIR "build/guest"
#endif
#define DEFAULT_DEADLINE_MS 10000
/* A distribution's boot (systemd) under TCG takes 3-4x the initramfs guest's. */
#define IMAGE_DEADLINE_MS 20000
/* The first agent answer comes after a whole boot (and a KVM probe's). */
#define CONNECT_DEADLINE_MS 60000
/*
 * An --image guest's first boot (systemd, under TCG): 26-58 s through
 * libvirt on a 2-core host also running other guests, past 60 s once.
 */
#define IMAGE_CONNECT_DEADLINE_MS 120000
/* The cleanup of an attached VM waits for its devices as long as a vCPU unplug may take. */
#define CLEANUP_DEADLINE_FACTOR 3

static const char usage[] =
	"usage: vmcheck run [OPTIONS]\n"
	"       vmcheck run --qmp PATH --agent vserial:PATH [OPTIONS]\n"
	"       vmcheck run --libvirt URI [--domain NAME] [--agent SPEC] [OPTIONS]\n"
	"       vmcheck run --hosts URI1,URI2,... [--domain NAME] [OPTIONS]\n"
	"\n"
	"Run the sanity suite: lifecycle (stop/cont, S3, reset, reboot), NIC, disk,\n"
	"memory and vCPU hotplug and unplug, kdump (crash, dump saved, found after\n"
	"the reboot), powerdown; every action cross-checked against the guest's own\n"
	"view. Without --qmp, boots the embedded test guest\n"
	"from " GUEST_DIR "/ (make guest; an aarch64 guest from " GUEST_DIR "-aarch64/,\n"
	"make guest ARCH=aarch64) under QEMU.\n"
	"\n"
	"Guest and VM (launch mode):\n"
	"      --arch ARCH          the guest's architecture: x86_64 (default) or aarch64\n"
	"                           (Debian's amd64, arm64 too); qemu-system-aarch64 as\n"
	"                           --qemu implies aarch64. An aarch64 guest is arm virt\n"
	"                           (GICv3, cortex-a57) booted through UEFI\n"
	"                           (qemu-efi-aarch64), under TCG on an x86_64 host\n"
	"      --kernel FILE        kernel (default the kit's vmlinuz: " GUEST_DIR "/,\n"
	"                           " GUEST_DIR "-aarch64/ for aarch64)\n"
	"      --initrd FILE        initramfs (default the kit's initrd.img)\n"
	"      --append TEXT        kernel command line (default: the file cmdline\n"
	"                           next to the kernel)\n"
	"      --image FILE         boot a disk image (make image: Debian with systemd\n"
	"                           and the vmcheck-agent .deb) instead of the initramfs\n"
	"                           guest, as its root disk (virtio-blk, serial\n"
	"                           vmcheck-root); the image is never written (a qcow2\n"
	"                           overlay in the workdir takes the guest's writes;\n"
	"                           with --libvirt, a volume of the run's pool over the\n"
	"                           image, uploaded there first on a remote host).\n"
	"                           Kernel, initrd and command line default to vmlinuz,\n"
	"                           initrd.img and cmdline in FILE's directory; kdump\n"
	"                           runs on it only when named in --only\n"
	"      --qemu BIN           QEMU binary (default qemu-system-x86_64, or\n"
	"                           qemu-system-aarch64 with --arch aarch64)\n"
	"      --accel A            auto (KVM if it really boots, else TCG; TCG at once\n"
	"                           for a guest of another arch than the host's), kvm,\n"
	"                           tcg\n"
	"      --mem MB             boot memory (default 512)\n"
	"      --maxmem MB          memory hotplug ceiling (default 4096)\n"
	"      --slots N            DIMM slots (default 4)\n"
	"      --smp N              boot vCPUs (default 1)\n"
	"      --maxcpus N          vCPU hotplug ceiling (default 4)\n"
	"      --ports N            hotplug root ports (default 8)\n"
	"      --keep-workdir       keep the console log and QEMU's stderr\n"
	"      --agent-transport T  vserial (default) or ssh: the agent over SSH to the\n"
	"                           guest's dropbear on a forwarded 127.0.0.1 port, with\n"
	"                           ssh/id_ed25519 and ssh/known_hosts next to the kernel\n"
	"Attach mode:\n"
	"      --qmp PATH           QMP socket of a running VM (its architecture is\n"
	"                           QEMU's target: x86_64 or aarch64)\n"
	"      --agent SPEC         its agent, e.g. vserial:PATH or ssh://root@HOST:PORT\n"
	"                           (required with --qmp)\n"
	"libvirt:\n"
	"      --libvirt URI        drive the VM through libvirt (qemu:///system, ...);\n"
	"                           without --domain a transient domain of the embedded\n"
	"                           guest, destroyed at the end (type kvm with --accel kvm)\n"
	"      --domain NAME        an existing running domain; its agent is its\n"
	"                           org.vmcheck.agent.0 channel (through the channel's\n"
	"                           unix socket on a local URI, through libvirt's\n"
	"                           connection on a remote one: a URI with a host)\n"
	"                           unless --agent names another (any spec)\n"
	"      --agent libvirt-channel:\n"
	"                           that channel through libvirt's connection\n"
	"                           (virDomainOpenChannel) on a local URI too, also\n"
	"                           for the transient domain\n"
	"      --libvirt-network N  attach NICs to libvirt network N (default type='user')\n"
	"      --hosts URI,...      run on several libvirt URIs at once, one process each\n"
	"                           (the other options apply to every host); one merged\n"
	"                           report: lines prefixed [HOST], a summary and a JUnit\n"
	"                           testsuite per host; a host that cannot connect or\n"
	"                           start its domain is a failed step (exit status 1)\n" VMC_CMD_SSH_USAGE
	"Suite:\n"
	"      --only LIST          checks to run: lifecycle, nic, vfio, disk, memory,\n"
	"                           kdump, vcpu, powerdown, bigmem (lifecycle includes\n"
	"                           powerdown; in attach mode powerdown runs only when\n"
	"                           named; kdump crashes the guest: unnamed, it runs\n"
	"                           only on the guest started here, also through\n"
	"                           libvirt)\n"
	"      --nics N             NICs per cycle (default 2)\n"
	"      --disks N            disks per cycle (default 2)\n"
	"      --dimms N            DIMMs per cycle (default 2)\n"
	"      --dimm-mb N          size of each DIMM (default 128)\n"
	"      --disk-mb N          size of each disk (default 64)\n"
	"      --cpus N             vCPUs per cycle (default 2)\n"
	"      --repeat R           hotplug cycles per check (default 1)\n"
	"      --deadline-ms N      per guest-visible change (default 10000, 20000\n"
	"                           with --image; a new boot and a vCPU unplug get 3x;\n"
	"                           the first boot at least 60 s, 120 s with --image)\n"
	"      --junit FILE         JUnit XML report, rewritten after every step\n"
	"      --json FILE          JSON lines report, one object per step\n"
	"      --bigmem SIZE        first boot a VM of SIZE RAM (64G, 512G, 1T; launch\n"
	"                           mode) and check the guest counts exactly SIZE\n"
	"                           online; refused up front when the host cannot hold\n"
	"                           it (--only bigmem alone: 64G)\n"
	"      --vfio ADDR,...      host SR-IOV VFs to hot-plug through VFIO (default:\n"
	"                           the first usable VF; none: the check is skipped)\n"
	"  -v, --verbose            print every step's notes\n"
	"  -h, --help               this text\n"
	"\n"
	"Exit status:\n"
	"  0  every step passed or was skipped; a step is skipped only for what the\n"
	"     host or the hypervisor cannot provide (no VF, too few free slots or\n"
	"     vCPU positions, an operation the hypervisor does not offer, an agent\n"
	"     too old for a probe) or what the options asked (--nics 0), each with\n"
	"     its reason\n"
	"  1  a step failed, or could not run because something failed before it\n"
	"     (the VM died, no agent answered, no VM after --bigmem's, no fresh VM\n"
	"     for powerdown), or a report file could not be written to the end\n"
	"     (stderr names it and the error; every step is still on stdout)\n"
	"  2  usage error, a report file that cannot be created, or the VM could\n"
	"     not be launched or attached\n"
	"  130, 143  stopped by SIGINT (Ctrl-C) or SIGTERM: the step under way fails\n"
	"     as interrupted, the rest are skipped, the reports are completed. A VM\n"
	"     started here goes with its workdir (a libvirt domain with its pool);\n"
	"     on an attached VM every device and backend object the run added is\n"
	"     removed first (waiting up to 3x --deadline-ms for the guest), listed\n"
	"     in the \"cleanup\" step. A second signal cuts that short and says what\n"
	"     it left\n";

struct entry {
	const char *only; /* the --only name selecting it */
	struct vmc_check check;
};

/*
 * The default order runs clear of QEMU 7.2's defects (doc/facts.md, "QEMU 7.2 defects"; the
 * reasons: doc/design.md, "The order of the suite"): S3 then reset first, vCPU last.
 * bigmem runs only with --bigmem, first, on a VM of its own (run_suite()).
 */
static const struct entry suite_order[] = {
	{ "bigmem", { "bigmem", vmc_check_bigmem } },
	{ "lifecycle", { "lifecycle", vmc_check_lifecycle_s3 } },
	{ "lifecycle", { "lifecycle", vmc_check_lifecycle_reboot } },
	{ "nic", { "nic", vmc_check_nic } },
	{ "vfio", { "vfio", vmc_check_vfio } },
	{ "disk", { "disk", vmc_check_disk } },
	{ "memory", { "memory", vmc_check_memory } },
	/* Before vcpu: QEMU 7.2 aborts on a reset after a vCPU unplug (the capture kernel resets). */
	{ "kdump", { "kdump", vmc_check_kdump } },
	{ "vcpu", { "vcpu", vmc_check_vcpu } },
	{ "powerdown", { "lifecycle", vmc_check_lifecycle_powerdown } },
};

static bool in_list(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, name, n) && (p[n] == ',' || !p[n]))
			return true;
	return false;
}

/* Every name of @list is a check name; -EINVAL otherwise (with a message). */
static int check_only(const char *list)
{
	char *copy = strdup(list), *save = NULL;
	int r = copy && *copy ? 0 : -EINVAL;

	for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && !r;
	     t = strtok_r(NULL, ",", &save)) {
		bool known = false;

		for (size_t i = 0; i < ARRAY_SIZE(suite_order); i++)
			known |= !strcmp(t, suite_order[i].only);
		if (!known)
			r = -EINVAL;
	}
	free(copy);
	if (r)
		fprintf(stderr,
			"vmcheck: --only \"%s\": expected a comma list of lifecycle, nic, "
			"vfio, disk, memory, kdump, vcpu, powerdown, bigmem\n",
			list);
	return r;
}

/* --vfio: a comma list of host PCI addresses; -EINVAL otherwise (with a message). */
static int check_vfio(const char *list)
{
	for (const char *p = list;; p += strcspn(p, ",") + 1) {
		char addr[16];
		size_t n = strcspn(p, ",");

		snprintf(addr, sizeof(addr), "%.*s", (int)n, p);
		if (n >= sizeof(addr) || !vmc_parse_is_pci_address(addr)) {
			fprintf(stderr,
				"vmcheck: --vfio \"%s\": expected host PCI addresses "
				"like 0000:06:02.0, comma separated\n",
				list);
			return -EINVAL;
		}
		if (!p[n])
			return 0;
	}
}

/* Is entry @e selected by --only @only (NULL: the default run)? */
static bool selected(const struct entry *e, const char *only, bool attached)
{
	bool pd = !strcmp(e->only, "powerdown");

	if (only)
		return in_list(only, e->only) || (pd && !attached && in_list(only, "lifecycle"));
	return !pd || !attached; /* never power a user's VM down unasked */
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

int vmc_cmd_run_validate(const struct vmc_run_args *a, struct vmc_error *err)
{
	bool bigmem = a->opts.bigmem_bytes || in_list(a->only, "bigmem");
	bool not_launch = a->libvirt || a->qmp || a->hosts;
	const struct vmc_arch *named = vmc_arch_of_qemu(a->qemu.qemu);

	if (a->hosts && (a->libvirt || a->qmp || a->agent))
		return vmc_error_set(err, -EINVAL,
				     "run: --hosts excludes --libvirt, --qmp and --agent");
	if ((a->domain || a->network) && !a->libvirt && !a->hosts)
		return vmc_error_set(err, -EINVAL,
				     "run: --domain and --libvirt-network need "
				     "--libvirt or --hosts");
	if (a->libvirt && a->qmp)
		return vmc_error_set(err, -EINVAL, "run: --libvirt and --qmp exclude each other");
	/* The transient domain's agent is its channel: only how to reach it may be chosen. */
	if (a->libvirt && a->agent && !a->domain &&
	    strcmp(a->agent, VMC_LIBVIRT_CHANNEL_SCHEME ":"))
		return vmc_error_set(err, -EINVAL,
				     "run: --agent with --libvirt needs --domain (without it only "
				     "--agent " VMC_LIBVIRT_CHANNEL_SCHEME ": is allowed)");
	if (!a->libvirt && !a->qmp != !a->agent)
		return vmc_error_set(err, -EINVAL,
				     "run: --qmp and --agent go together (attach mode)");
	if (bigmem && not_launch)
		return vmc_error_set(err, -EINVAL,
				     "run: bigmem boots a VM of its own: launch mode only "
				     "(no --libvirt, --qmp, --hosts)");
	if (a->qemu.image && (a->qmp || a->hosts || a->domain))
		return vmc_error_set(err, -EINVAL,
				     "run: --image boots a VM of its own: launch mode or "
				     "--libvirt without --domain (no --qmp, --hosts)");
	if (a->qemu.agent_ssh && not_launch)
		return vmc_error_set(err, -EINVAL,
				     "run: --agent-transport is for launch mode "
				     "(attached: --agent ssh://...)");
	if (a->qemu.arch && (a->qmp || a->domain))
		return vmc_error_set(err, -EINVAL,
				     "run: --arch is for a VM started here (an attached VM's "
				     "comes from QEMU or libvirt)");
	if (a->qemu.arch && named && named != a->qemu.arch)
		return vmc_error_set(err, -EINVAL,
				     "run: --arch %s and --qemu %s contradict each other",
				     a->qemu.arch->name, a->qemu.qemu);
	return 0;
}

/* Parse numbered option @opt into *@out (unsigned) within [@min, @max]. */
static int number(const char *opt, unsigned min, unsigned max, unsigned *out)
{
	uint64_t v;

	if (vmc_cmd_number(opt, optarg, min, max, &v) < 0)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int parse(int argc, char **argv, struct vmc_run_args *a)
{
	enum {
		O_KERNEL = 256,
		O_INITRD,
		O_APPEND,
		O_QEMU,
		O_ACCEL,
		O_MEM,
		O_MAXMEM,
		O_SLOTS,
		O_SMP,
		O_MAXCPUS,
		O_PORTS,
		O_KEEP,
		O_QMP,
		O_AGENT,
		O_ONLY,
		O_NICS,
		O_DISKS,
		O_DIMMS,
		O_DIMM_MB,
		O_DISK_MB,
		O_CPUS,
		O_REPEAT,
		O_DEADLINE,
		O_JUNIT,
		O_JSON,
		O_LIBVIRT,
		O_DOMAIN,
		O_NETWORK,
		O_HOSTS,
		O_BIGMEM,
		O_VFIO,
		O_AGENT_TRANSPORT,
		O_IMAGE,
		O_ARCH,
	};
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, O_KERNEL },
		{ "initrd", required_argument, NULL, O_INITRD },
		{ "append", required_argument, NULL, O_APPEND },
		{ "qemu", required_argument, NULL, O_QEMU },
		{ "accel", required_argument, NULL, O_ACCEL },
		{ "mem", required_argument, NULL, O_MEM },
		{ "maxmem", required_argument, NULL, O_MAXMEM },
		{ "slots", required_argument, NULL, O_SLOTS },
		{ "smp", required_argument, NULL, O_SMP },
		{ "maxcpus", required_argument, NULL, O_MAXCPUS },
		{ "ports", required_argument, NULL, O_PORTS },
		{ "keep-workdir", no_argument, NULL, O_KEEP },
		{ "qmp", required_argument, NULL, O_QMP },
		{ "agent", required_argument, NULL, O_AGENT },
		{ "only", required_argument, NULL, O_ONLY },
		{ "nics", required_argument, NULL, O_NICS },
		{ "disks", required_argument, NULL, O_DISKS },
		{ "dimms", required_argument, NULL, O_DIMMS },
		{ "dimm-mb", required_argument, NULL, O_DIMM_MB },
		{ "disk-mb", required_argument, NULL, O_DISK_MB },
		{ "cpus", required_argument, NULL, O_CPUS },
		{ "repeat", required_argument, NULL, O_REPEAT },
		{ "deadline-ms", required_argument, NULL, O_DEADLINE },
		{ "junit", required_argument, NULL, O_JUNIT },
		{ "json", required_argument, NULL, O_JSON },
		{ "libvirt", required_argument, NULL, O_LIBVIRT },
		{ "domain", required_argument, NULL, O_DOMAIN },
		{ "libvirt-network", required_argument, NULL, O_NETWORK },
		{ "hosts", required_argument, NULL, O_HOSTS },
		{ "bigmem", required_argument, NULL, O_BIGMEM },
		{ "vfio", required_argument, NULL, O_VFIO },
		{ "agent-transport", required_argument, NULL, O_AGENT_TRANSPORT },
		{ "image", required_argument, NULL, O_IMAGE },
		{ "arch", required_argument, NULL, O_ARCH },
		VMC_CMD_SSH_OPTIONS,
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vmc_error err = VMC_ERROR_INIT;
	unsigned dimm_mb = 128, disk_mb = 64;
	int opt, r = 0;

	optind = 0;
	while (!r && (opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (opt) {
		case O_KERNEL:
			a->qemu.kernel = optarg;
			break;
		case O_INITRD:
			a->qemu.initrd = optarg;
			break;
		case O_APPEND:
			a->qemu.append = optarg;
			break;
		case O_QEMU:
			a->qemu.qemu = optarg;
			break;
		case O_ARCH:
			a->qemu.arch = vmc_arch_find(optarg);
			if (!a->qemu.arch) {
				fprintf(stderr,
					"vmcheck: --arch \"%s\": expected x86_64 or aarch64 "
					"(or Debian's amd64, arm64)\n",
					optarg);
				r = -EINVAL;
			}
			break;
		case O_ACCEL:
			if (strcmp(optarg, "auto") && strcmp(optarg, "kvm") &&
			    strcmp(optarg, "tcg")) {
				fprintf(stderr,
					"vmcheck: --accel \"%s\": expected auto, kvm or tcg\n",
					optarg);
				r = -EINVAL;
			}
			a->qemu.accel = optarg;
			break;
		case O_MEM:
			r = number("--mem", 64, 1u << 24, &a->qemu.mem_mb);
			break;
		case O_MAXMEM:
			r = number("--maxmem", 64, 1u << 24, &a->qemu.maxmem_mb);
			break;
		case O_SLOTS:
			r = number("--slots", 0, 256, &a->qemu.mem_slots);
			break;
		case O_SMP:
			r = number("--smp", 1, 1024, &a->qemu.cpus);
			break;
		case O_MAXCPUS:
			r = number("--maxcpus", 1, 1024, &a->qemu.maxcpus);
			break;
		case O_PORTS:
			r = number("--ports", 0, VMC_QEMU_PORTS_MAX, &a->qemu.hotplug_ports);
			break;
		case O_KEEP:
			a->qemu.keep_workdir = true;
			break;
		case O_QMP:
			a->qmp = optarg;
			break;
		case O_AGENT:
			a->agent = optarg;
			break;
		case O_ONLY:
			a->only = optarg;
			r = check_only(optarg);
			break;
		case O_NICS:
			r = number("--nics", 0, 64, &a->opts.nics);
			break;
		case O_DISKS:
			r = number("--disks", 0, 64, &a->opts.disks);
			break;
		case O_DIMMS:
			r = number("--dimms", 0, 256, &a->opts.dimms);
			break;
		case O_DIMM_MB:
			r = number("--dimm-mb", 1, 1u << 24, &dimm_mb);
			break;
		case O_DISK_MB:
			r = number("--disk-mb", 1, 1u << 24, &disk_mb);
			break;
		case O_CPUS:
			r = number("--cpus", 0, 1024, &a->opts.cpus);
			break;
		case O_REPEAT:
			r = number("--repeat", 1, 100000, &a->opts.repeat);
			break;
		case O_DEADLINE:
			r = number("--deadline-ms", 1, 3600000, &a->opts.deadline_ms);
			break;
		case O_JUNIT:
			a->junit = optarg;
			break;
		case O_JSON:
			a->json = optarg;
			break;
		case O_LIBVIRT:
			a->libvirt = optarg;
			break;
		case O_DOMAIN:
			a->domain = optarg;
			break;
		case O_NETWORK:
			a->network = optarg;
			break;
		case O_HOSTS:
			a->hosts = optarg;
			break;
		case O_BIGMEM:
			r = vmc_bigmem_parse(optarg, &a->opts.bigmem_bytes);
			if (r)
				fprintf(stderr,
					"vmcheck: --bigmem \"%s\": expected a size with a unit, "
					"M, G or T, a multiple of 128M from 128M to 4096T\n",
					optarg);
			break;
		case O_VFIO:
			a->opts.vfio = optarg;
			r = check_vfio(optarg);
			break;
		case O_IMAGE:
			a->qemu.image = optarg;
			break;
		case O_AGENT_TRANSPORT:
			a->qemu.agent_ssh = !strcmp(optarg, "ssh");
			if (!a->qemu.agent_ssh && strcmp(optarg, "vserial")) {
				fprintf(stderr,
					"vmcheck: --agent-transport \"%s\": expected vserial "
					"or ssh\n",
					optarg);
				r = -EINVAL;
			}
			break;
		case 'v':
			a->opts.verbose = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 1;
		default:
			if (!vmc_cmd_ssh_option(opt, optarg))
				r = -EINVAL;
		}
	}
	if (!r && optind < argc) {
		fprintf(stderr, "vmcheck: run: unexpected argument \"%s\"\n", argv[optind]);
		r = -EINVAL;
	}
	if (!r && vmc_cmd_run_validate(a, &err) < 0)
		r = vmc_cmd_fail(&err, -EINVAL);
	if (!r && !a->opts.bigmem_bytes && in_list(a->only, "bigmem"))
		a->opts.bigmem_bytes = VMC_BIGMEM_DEFAULT;
	a->opts.dimm_bytes = (uint64_t)dimm_mb << 20;
	a->opts.disk_bytes = (uint64_t)disk_mb << 20;
	return r;
}

/*
 * Text on stdout, --junit, --json; with @hosts, testsuites for them. A
 * child of --hosts (@json_fd >= 0) has only its JSON lines, on @json_fd.
 */
static int open_reports(const struct vmc_run_args *a, const struct vmc_hosts *hosts, int json_fd,
			struct vmc_report **reps, size_t *n)
{
	const char *const *labels = hosts ? (const char *const *)hosts->labels : NULL;
	size_t n_labels = hosts ? hosts->n : 0;
	struct vmc_error err = VMC_ERROR_INIT;
	int r;

	*n = 0;
	if (json_fd >= 0) {
		r = vmc_report_json_new_fd(json_fd, &reps[(*n)++], &err);
	} else {
		r = vmc_report_text_new_hosts(stdout, a->opts.verbose, labels, n_labels,
					      &reps[(*n)++], &err);
		/* The text report cuts long evidence lines: say where they are whole. */
		if (!r && (a->json || a->junit) &&
		    vmc_report_text_whole_at(reps[0], "the %s report %s keeps the evidence whole",
					     a->json ? "JSON" : "JUnit",
					     a->json ? a->json : a->junit) < 0)
			r = vmc_error_set(&err, -ENOMEM, "text report: out of memory");
		if (!r && a->junit)
			r = vmc_report_junit_new_hosts(a->junit, labels, n_labels, &reps[(*n)++],
						       &err);
		if (!r && a->json)
			r = vmc_report_json_new(a->json, &reps[(*n)++], &err);
	}
	if (r < 0) {
		(*n)--;
		return vmc_cmd_fail(&err, VMC_EXIT_USAGE);
	}
	return VMC_EXIT_OK;
}

/*
 * A libvirt daemon on this host: the launcher's KVM probe decides, cached
 * (a guest of another arch than the host's: TCG, no probe).
 */
static const char *local_accel(const struct vmc_arch *arch, const char *kernel, const char *initrd,
			       const char *append, const char **why)
{
	struct vmc_qemu_config qc = { .arch = arch,
				      .kernel = kernel,
				      .initrd = initrd,
				      .append = append };

	return vmc_qemu_accel_auto(&qc, why);
}

/*
 * The embedded guest kit of the guest's arch, where --kernel and --initrd
 * do not say: GUEST_DIR, or GUEST_DIR-aarch64 (make guest ARCH=aarch64).
 */
static void default_kit(struct vmc_qemu_config *q)
{
	static char kernel[PATH_MAX], initrd[PATH_MAX];
	const char *suffix = vmc_qemu_arch(q)->kit_suffix;

	snprintf(kernel, sizeof(kernel), "%s%s/vmlinuz", GUEST_DIR, suffix);
	snprintf(initrd, sizeof(initrd), "%s%s/initrd.img", GUEST_DIR, suffix);
	if (!q->kernel)
		q->kernel = kernel;
	if (!q->initrd)
		q->initrd = initrd;
}

/* --libvirt: a transient domain of the guest kit, or --domain. */
static void image_kit(struct vmc_qemu_config *q);

static int start_libvirt(struct vmc_run_args *a, struct vmc_hv **hv, struct vmc_error *err)
{
	struct vmc_libvirt_config c;

	if (a->qemu.image)
		image_kit(&a->qemu);
	default_kit(&a->qemu);
	c = (struct vmc_libvirt_config){
		.uri = a->libvirt,
		.domain = a->domain,
		.agent = a->agent,
		.network = a->network,
		.arch = vmc_qemu_arch(&a->qemu),
		.kernel = a->qemu.kernel,
		.initrd = a->qemu.initrd,
		.append = a->qemu.append,
		.image = a->qemu.image,
		.accel = a->qemu.accel,
		.local_accel = local_accel,
		.mem_mb = a->qemu.mem_mb,
		.maxmem_mb = a->qemu.maxmem_mb,
		.slots = a->qemu.mem_slots,
		.cpus = a->qemu.cpus,
		.maxcpus = a->qemu.maxcpus,
		.ports = a->qemu.hotplug_ports,
	};

	return vmc_libvirt_open(&c, hv, err);
}

/*
 * --agent-transport ssh: the key and known_hosts of the guest kit the kernel
 * comes from (build-guest makes them in ssh/ next to it), unless given.
 */
static void kit_ssh_opts(const char *kernel)
{
	static char key[4096], known_hosts[4096];
	_cleanup_free_ char *copy = strdup(kernel);
	const char *dir = copy ? dirname(copy) : ".";

	snprintf(key, sizeof(key), "%s/ssh/id_ed25519", dir);
	snprintf(known_hosts, sizeof(known_hosts), "%s/ssh/known_hosts", dir);
	if (!vmc_agent_ssh_opts.key)
		vmc_agent_ssh_opts.key = key;
	if (!vmc_agent_ssh_opts.known_hosts)
		vmc_agent_ssh_opts.known_hosts = known_hosts;
}

/*
 * --image: unless given, the kernel and initrd exported next to the image
 * (make image; the command line comes from the cmdline file beside them).
 */
static void image_kit(struct vmc_qemu_config *q)
{
	static char kernel[PATH_MAX], initrd[PATH_MAX];
	_cleanup_free_ char *copy = strdup(q->image);
	const char *dir = copy ? dirname(copy) : ".";

	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", dir);
	snprintf(initrd, sizeof(initrd), "%s/initrd.img", dir);
	if (!q->kernel)
		q->kernel = kernel;
	if (!q->initrd)
		q->initrd = initrd;
}

/* Launch or attach: 0 with *@hv set, or negative with @err saying why. */
static int start_vm(struct vmc_run_args *a, struct vmc_hv **hv, struct vmc_error *err)
{
	if (a->libvirt)
		return start_libvirt(a, hv, err);
	if (a->qmp)
		return vmc_qmp_attach(a->qmp, a->agent, hv, err);
	if (a->qemu.image)
		image_kit(&a->qemu);
	default_kit(&a->qemu);
	if (a->qemu.agent_ssh)
		kit_ssh_opts(a->qemu.kernel);
	return vmc_qemu_launch(&a->qemu, hv, err);
}

static unsigned connect_ms(const struct vmc_run_args *a)
{
	unsigned floor = a->qemu.image ? IMAGE_CONNECT_DEADLINE_MS : CONNECT_DEADLINE_MS;
	unsigned ms = a->opts.deadline_ms > floor ? a->opts.deadline_ms : floor;

	/*
	 * A big guest's boot grows with its RAM (the kernel fills its struct
	 * pages under TCG): 256 GiB took 41 s on a busy 2-core host. Allow
	 * 250 ms per GiB more.
	 */
	return ms + (unsigned)(a->qemu.ram_bytes >> 30) * 250;
}

/*
 * Start the VM anew, the suite attached to it: for powerdown after a check
 * left the VM unfit for it (run_powerdown()), and for the checks after
 * --bigmem's VM. @why goes into the notes; @why_not says why no VM came.
 */
static int fresh_vm(struct vmc_run_args *a, struct vmc_suite *s, struct vmc_hv **hv,
		    const char *why, char *why_not, size_t size)
{
	struct vmc_error err = VMC_ERROR_INIT;

	(*hv)->ops->free(*hv);
	*hv = NULL;
	if (start_vm(a, hv, &err) < 0) {
		snprintf(why_not, size, "no VM could be started for it: %s",
			 err.msg ? err.msg : "launch failed");
		fprintf(stderr, "vmcheck: %s\n", why_not);
		vmc_error_clear(&err);
		return -1;
	}
	a->opts.workdir = vmc_qemu_workdir(*hv);
	vmc_suite_attach(s, *hv, why);
	/* Without an agent the check is reported as not run, with the reason. */
	vmc_suite_connect(s, connect_ms(a));
	return 0;
}

/*
 * --bigmem's VM is the one launched first (vmc_cmd_run() shaped it), so
 * the setup step's wait was its boot: run bigmem on it, then give the
 * other checks (@checks, @n, @last) the usual VM; without one they are
 * reported not run.
 */
static void run_bigmem(struct vmc_run_args *a, struct vmc_suite *s, struct vmc_hv **hv,
		       const struct vmc_check *big, const struct vmc_check *checks, size_t *n,
		       struct vmc_check *last)
{
	struct vmc_ctx c = { .suite = s };
	char why_not[512];
	const char *why;
	bool stop;

	vmc_suite_run(s, big, 1);
	if (!*n && !last->run)
		return;
	a->qemu.ram_bytes = 0;
	a->qemu.phys_bits = 0;
	why = "a VM of the usual size for the other checks: the large-memory one is done";
	stop = vmc_suite_poll_stop(s) != 0;
	if (!stop && fresh_vm(a, s, hv, why, why_not, sizeof(why_not)) == 0)
		return;
	/* Interrupted, the user stopped them; otherwise they failed for want of a VM. */
	for (size_t i = 0; i < *n; i++)
		vmc_step_not_run(&c, checks[i].name, "not run", !stop, "not run: %s",
				 stop ? "the run was interrupted" : why_not);
	if (last->run)
		vmc_step_not_run(&c, last->name, "powerdown", !stop, "not run: %s",
				 stop ? "the run was interrupted" : why_not);
	*n = 0;
	*last = (struct vmc_check){ NULL, NULL };
}

/*
 * Powerdown after the vcpu check (@last). QEMU 7.2 aborts on the first ACPI
 * event after a vCPU unplug (doc/facts.md, "Defect 1: a vCPU unplug corrupts
 * QEMU's heap"; the power button is one such event): when the check unplugged
 * one, the VM is tainted and powerdown runs on a fresh VM, the check the same,
 * the guest new. Otherwise (a machine without vCPU hotplug, as arm virt in
 * QEMU 7.2, --cpus 0, a check that stopped before any unplug) the VM is the
 * one every check before ran on, in the state the suite followed, and a boot
 * is saved; if that VM is gone, powerdown is not run, as any check after it.
 */
static void run_powerdown(struct vmc_run_args *a, struct vmc_suite *s, struct vmc_hv **hv,
			  const struct vmc_check *last)
{
	const char *tainted = vmc_suite_tainted(s);
	char why[512], why_not[512] = "";
	bool stop = vmc_suite_poll_stop(s) != 0;

	if (!stop && !tainted) {
		vmc_suite_run(s, last, 1);
		return;
	}
	if (!stop) {
		/* Copied: attaching to the new VM drops the reason. */
		snprintf(why, sizeof(why), "a fresh VM for powerdown: %s", tainted);
		if (fresh_vm(a, s, hv, why, why_not, sizeof(why_not)) == 0) {
			vmc_suite_run(s, last, 1);
			return;
		}
	}
	vmc_step_not_run(&(struct vmc_ctx){ .suite = s }, last->name, "powerdown", !stop,
			 "not run: %s", stop ? "the run was interrupted" : why_not);
}

static int run_suite(struct vmc_run_args *a, struct vmc_hv **hv, struct vmc_report **reps,
		     size_t n_reps, int sfd)
{
	struct vmc_check checks[ARRAY_SIZE(suite_order)], last = { NULL, NULL },
							  big = { NULL, NULL };
	bool attached = a->qmp || a->domain, unplugs_cpus = false;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_suite *s;
	unsigned counts[3];
	size_t n = 0;
	bool whole;
	int signo;

	for (size_t i = 0; i < ARRAY_SIZE(suite_order); i++) {
		const struct entry *e = &suite_order[i];

		if (!strcmp(e->only, "bigmem")) {
			big = a->opts.bigmem_bytes ? e->check : big;
			continue;
		}
		if (!selected(e, a->only, attached))
			continue;
		/*
		 * Unasked, crash only the embedded guest started here, by the
		 * launcher or as libvirt's transient domain: it has the crash disk
		 * and kdump set up (an --image guest need not).
		 */
		if (!strcmp(e->only, "kdump") && !a->only && (attached || a->qemu.image))
			continue;
		unplugs_cpus |= !strcmp(e->only, "vcpu");
		if (!strcmp(e->only, "powerdown") && unplugs_cpus && !attached)
			last = e->check;
		else
			checks[n++] = e->check;
	}
	if (vmc_suite_new(*hv, &a->opts, reps, n_reps, &s, &err) < 0)
		return vmc_cmd_fail(&err, VMC_EXIT_FAIL);
	vmc_suite_set_stop_fd(s, sfd);
	/* Without an agent the checks are reported as not run, with the reason. */
	vmc_suite_connect(s, connect_ms(a));
	if (big.run)
		run_bigmem(a, s, hv, &big, checks, &n, &last);
	vmc_suite_run(s, checks, n);
	if (last.run)
		run_powerdown(a, s, hv, &last);
	/*
	 * A VM the user started keeps nothing of ours, also when a check
	 * failed or a signal stopped the run (doc/design.md, "Interruption
	 * and cleanup"); a VM started here goes whole.
	 */
	if (attached)
		vmc_suite_cleanup(s, CLEANUP_DEADLINE_FACTOR * a->opts.deadline_ms);
	vmc_suite_finish(s);
	vmc_suite_counts(s, counts);
	signo = vmc_suite_poll_stop(s);
	whole = vmc_suite_reports_whole(s);
	vmc_suite_free(s);
	if (signo)
		return VMC_EXIT_SIGNAL + (signo > 0 ? signo : SIGINT);
	return counts[VMC_STEP_FAILED] || !whole ? VMC_EXIT_FAIL : VMC_EXIT_OK;
}

/* One VM; a child of --hosts has @json_fd for its report. */
static int run_one(struct vmc_run_args *a, int json_fd)
{
	struct vmc_report *reps[3];
	struct vmc_error err = VMC_ERROR_INIT;
	char scratch[] = "/tmp/vmcheck-run-XXXXXX";
	bool own_scratch = false;
	struct vmc_hv *hv = NULL;
	size_t n_reps = 0;
	int code, sfd;

	/*
	 * First of all: threads started later (libvirt's event loop) inherit
	 * the blocked signals, so SIGINT and SIGTERM reach only this fd and
	 * the run ends through its cleanup, never by the default action.
	 */
	sfd = vmc_cmd_signals_fd();
	if (sfd < 0)
		fprintf(stderr, "vmcheck: run: signalfd: %s (Ctrl-C ends the run abruptly)\n",
			strerror(errno));
	code = open_reports(a, NULL, json_fd, reps, &n_reps);
	if (code == VMC_EXIT_OK && start_vm(a, &hv, &err) < 0)
		code = vmc_cmd_fail(&err, VMC_EXIT_USAGE);
	if (code != VMC_EXIT_OK)
		goto out;
	/* Disk images go where the VM's files are; attached, into a scratch dir of ours. */
	a->opts.workdir = vmc_qemu_workdir(hv);
	if (!a->opts.workdir) {
		if (!mkdtemp(scratch)) {
			fprintf(stderr, "vmcheck: run: mkdtemp %s: %s\n", scratch, strerror(errno));
			code = VMC_EXIT_USAGE;
			goto out;
		}
		own_scratch = true;
		a->opts.workdir = scratch;
		/* A domain's QEMU may run as another user (libvirt-qemu): let it reach the images. */
		if (a->libvirt)
			chmod(scratch, 0711);
	}
	/* The suite polls the fd: the run stops cleanly, its reports complete. */
	code = run_suite(a, &hv, reps, n_reps, sfd);
out:
	if (hv)
		hv->ops->free(hv);
	if (own_scratch)
		nftw(scratch, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	for (size_t i = 0; i < n_reps; i++)
		vmc_report_free(reps[i]);
	if (sfd >= 0)
		close(sfd);
	return code;
}

/* The child of host @uri in a --hosts run. */
static int run_host(const char *uri, int json_fd, void *arg)
{
	struct vmc_run_args *a = arg;

	a->libvirt = uri;
	a->hosts = NULL;
	return run_one(a, json_fd);
}

static int run_hosts(struct vmc_run_args *a, const char *cmd)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hosts hosts;
	struct vmc_report *reps[3];
	size_t n_reps = 0;
	int code;

	if (vmc_hosts_parse(a->hosts, !a->domain, &hosts, &err) < 0) {
		fprintf(stderr, "vmcheck: run: %s\n", err.msg);
		vmc_error_clear(&err);
		return vmc_cmd_usage_error(cmd);
	}
	code = open_reports(a, &hosts, -1, reps, &n_reps);
	if (code == VMC_EXIT_OK)
		code = vmc_hosts_run(&hosts, &(struct vmc_hosts_job){
						     .run = run_host,
						     .arg = a,
						     .reports = reps,
						     .n_reports = n_reps,
						     .log = stderr,
					     });
	for (size_t i = 0; i < n_reps; i++)
		vmc_report_free(reps[i]);
	vmc_hosts_free(&hosts);
	return code;
}

int vmc_cmd_run(int argc, char **argv)
{
	struct vmc_run_args a = {
		.opts = { .nics = 2, .disks = 2, .dimms = 2, .cpus = 2, .repeat = 1 },
	};
	struct vmc_error err = VMC_ERROR_INIT;
	int code = parse(argc, argv, &a);

	if (code > 0)
		return VMC_EXIT_OK;
	if (code < 0)
		return vmc_cmd_usage_error(argv[0]);
	/* Not given (--deadline-ms is at least 1): the guest's kind decides. */
	if (!a.opts.deadline_ms)
		a.opts.deadline_ms = a.qemu.image ? IMAGE_DEADLINE_MS : DEFAULT_DEADLINE_MS;
	/* Before anything is launched: a host that cannot hold the guest is told why now. */
	if (a.opts.bigmem_bytes) {
		if (vmc_bigmem_host_check(a.opts.bigmem_bytes, &err) < 0) {
			vmc_error_prefix(&err, "--bigmem refused: ");
			return vmc_cmd_fail(&err, VMC_EXIT_USAGE);
		}
		a.qemu.ram_bytes = a.opts.bigmem_bytes;
		/* An x86 CPU property; arm's cortex-a57 has its 44 bits whatever we say. */
		if (vmc_qemu_arch(&a.qemu) == &vmc_arch_x86_64)
			a.qemu.phys_bits = vmc_bigmem_phys_bits(a.opts.bigmem_bytes);
	}
	return a.hosts ? run_hosts(&a, argv[0]) : run_one(&a, -1);
}
