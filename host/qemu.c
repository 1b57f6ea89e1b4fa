/* SPDX-License-Identifier: MIT */
/*
 * Launching QEMU: configuration, command line, disks, start and the QMP
 * connection. The process itself is owned by qemu-proc.c, the choice of
 * accelerator is accel.c's; no QEMU, socket or workdir outlives us
 * (free(), failure paths and fatal signals alike).
 *
 * The QMP and agent sockets are bound and listening before QEMU starts and
 * handed to it as fds: connect() cannot race QEMU's startup, and a QEMU that
 * dies before accepting resets our connection at once instead of leaving a
 * retry loop to time out.
 */
#include "qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "accel.h"
#include "hv-qmp.h"
#include "qemu-proc.h"

#define GREETING_MS 20000
#define START_EXIT_MS 2000 /* for the status of a QEMU that reset our connection */
#define AGENT_PORT "org.vmcheck.agent.0"

/* ---- configuration */

struct launch {
	const struct vmc_arch *arch;
	char *qemu; /* resolved path */
	const char *kernel, *initrd;
	char *append;
	unsigned mem_mb, mem_slots, maxmem_mb, cpus, maxcpus, ports;
	const char *accel;
	char *workdir;
	bool own_dir, keep;
	const char *const *extra;
	const char *image; /* the root disk, or NULL (the initramfs guest) */
	uint64_t ram_bytes;
	unsigned phys_bits;
	bool agent_ssh;
	unsigned ssh_port; /* agent_ssh: forwarded to the guest's port 22 */
};

static void launch_free(struct launch *l)
{
	free(l->qemu);
	free(l->append);
	free(l->workdir);
}

static char *find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	char *s;

	if (strchr(name, '/'))
		return access(name, X_OK) ? NULL : strdup(name);
	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		size_t n = strcspn(p, ":");

		if (asprintf(&s, "%.*s/%s", (int)n, p, name) < 0)
			return NULL;
		if (!access(s, X_OK))
			return s;
		free(s);
		p += n + (p[n] == ':');
	}
	return NULL;
}

/* "cmdline" next to the kernel, as packaging/guest/build-guest writes it. */
static int read_cmdline(const char *kernel, char **out, struct vmc_error *err)
{
	_cleanup_free_ char *dir = strdup(kernel), *path = NULL;
	char buf[4096];
	size_t n;
	FILE *f;

	if (!dir || asprintf(&path, "%s/cmdline", dirname(dir)) < 0)
		return vmc_error_set(err, -ENOMEM, "out of memory");
	f = fopen(path, "re");
	if (!f)
		return vmc_error_set(err, -ENOENT,
				     "no kernel command line: %s: %s (give one with append)", path,
				     strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	*out = strdup(buf);
	return *out ? 0 : vmc_error_set(err, -ENOMEM, "out of memory");
}

static int make_workdir(const struct vmc_qemu_config *cfg, struct launch *l, struct vmc_error *err)
{
	const char *tmp = getenv("TMPDIR");

	if (cfg->workdir) {
		l->workdir = strdup(cfg->workdir);
		if (!l->workdir)
			return vmc_error_set(err, -ENOMEM, "out of memory");
		if (mkdir(l->workdir, 0700) == 0)
			l->own_dir = true;
		else if (errno != EEXIST)
			return vmc_error_set(err, -errno, "workdir %s: %s", l->workdir,
					     strerror(errno));
	} else {
		if (asprintf(&l->workdir, "%s/vmcheck-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
			return vmc_error_set(err, -ENOMEM, "out of memory");
		if (!mkdtemp(l->workdir))
			return vmc_error_set(err, -errno, "workdir %s: %s", l->workdir,
					     strerror(errno));
		l->own_dir = true;
	}
	if (strlen(l->workdir) + sizeof("/agent.sock") >
	    sizeof(((struct sockaddr_un *)0)->sun_path))
		return vmc_error_set(err, -ENAMETOOLONG,
				     "workdir %s: too long for a unix socket path", l->workdir);
	return 0;
}

const struct vmc_arch *vmc_qemu_arch(const struct vmc_qemu_config *cfg)
{
	const struct vmc_arch *named = vmc_arch_of_qemu(cfg->qemu);

	return cfg->arch ? cfg->arch : named ? named : &vmc_arch_x86_64;
}

/* Debian's package of the arch's QEMU binary, for the hint when it is missing. */
static const char *qemu_package(const struct vmc_arch *arch)
{
	return arch == &vmc_arch_aarch64 ? "qemu-system-arm" : "qemu-system-x86";
}

/* The defaults and the rules of @cfg, nothing looked up: @l's strings are not set. */
static int launch_defaults(const struct vmc_qemu_config *cfg, struct launch *l,
			   struct vmc_error *err)
{
	*l = (struct launch){
		.arch = vmc_qemu_arch(cfg),
		.kernel = cfg->kernel,
		.initrd = cfg->initrd,
		.mem_mb = cfg->mem_mb ? cfg->mem_mb : 512,
		.mem_slots = cfg->mem_slots ? cfg->mem_slots : 4,
		.maxmem_mb = cfg->maxmem_mb ? cfg->maxmem_mb : 4096,
		.cpus = cfg->cpus ? cfg->cpus : 1,
		.maxcpus = cfg->maxcpus ? cfg->maxcpus : 4,
		.ports = cfg->hotplug_ports ? cfg->hotplug_ports : 8,
		.accel = cfg->accel ? cfg->accel : "auto",
		.keep = cfg->keep_workdir,
		.extra = cfg->extra_args,
		.image = cfg->image,
		.ram_bytes = cfg->ram_bytes,
		.phys_bits = cfg->phys_bits,
		.agent_ssh = cfg->agent_ssh,
	};
	if (!l->kernel || !l->initrd)
		return vmc_error_set(err, -EINVAL,
				     "launching QEMU: a kernel and an initrd are needed");
	if (l->phys_bits && l->arch != &vmc_arch_x86_64)
		return vmc_error_set(err, -EINVAL,
				     "phys-bits %u: an x86 CPU property, an %s guest has none",
				     l->phys_bits, l->arch->name);
	if (strcmp(l->accel, "auto") && strcmp(l->accel, "kvm") && strcmp(l->accel, "tcg"))
		return vmc_error_set(err, -EINVAL, "accelerator '%s': want auto, kvm or tcg",
				     l->accel);
	if (l->ports > VMC_QEMU_PORTS_MAX)
		return vmc_error_set(err, -EINVAL, "%u hotplug ports: at most %u", l->ports,
				     VMC_QEMU_PORTS_MAX);
	if (l->maxcpus < l->cpus || l->maxmem_mb < l->mem_mb)
		return vmc_error_set(
			err, -EINVAL,
			"cpus %u/maxcpus %u, memory %u/maxmem %u MiB: maximum below start", l->cpus,
			l->maxcpus, l->mem_mb, l->maxmem_mb);
	return 0;
}

static int launch_init(const struct vmc_qemu_config *cfg, struct launch *l, struct vmc_error *err)
{
	const char *qemu, *why, *missing;
	int r;

	r = launch_defaults(cfg, l, err);
	if (r < 0)
		return r;
	qemu = cfg->qemu ? cfg->qemu : l->arch->qemu;
	if (!strcmp(l->accel, "kvm") && vmc_accel_foreign(l->arch, &why))
		return vmc_error_set(err, -EINVAL, "accelerator kvm: %s (use tcg)", why);
	if (l->image && access(l->image, R_OK))
		return vmc_error_set(err, -ENOENT, "%s: %s (build one with 'make image')", l->image,
				     strerror(errno));
	missing = access(l->kernel, R_OK) ? l->kernel : access(l->initrd, R_OK) ? l->initrd : NULL;
	if (missing) {
		/* The kit of another arch is built with ARCH= (make guest ARCH=aarch64). */
		bool other = !l->image && l->arch != &vmc_arch_x86_64;

		return vmc_error_set(err, -ENOENT, "%s: %s (build the guest with 'make %s%s%s')",
				     missing, strerror(errno), l->image ? "image" : "guest",
				     other ? " ARCH=" : "", other ? l->arch->name : "");
	}
	if (l->arch == &vmc_arch_aarch64) {
		const char *fw = access(VMC_QEMU_AAVMF_CODE, R_OK)   ? VMC_QEMU_AAVMF_CODE
				 : access(VMC_QEMU_AAVMF_VARS, R_OK) ? VMC_QEMU_AAVMF_VARS
								     : NULL;

		if (fw)
			return vmc_error_set(err, -ENOENT,
					     "%s: %s (an aarch64 guest boots through UEFI: "
					     "apt-get install qemu-efi-aarch64)",
					     fw, strerror(errno));
	}
	l->qemu = find_in_path(qemu);
	if (!l->qemu)
		return vmc_error_set(err, -ENOENT, "%s: not found in PATH (apt-get install %s)",
				     qemu, qemu_package(l->arch));
	if (cfg->append)
		l->append = strdup(cfg->append);
	else if ((r = read_cmdline(l->kernel, &l->append, err)) < 0)
		return r;
	if (!l->append)
		return vmc_error_set(err, -ENOMEM, "out of memory");
	return make_workdir(cfg, l, err);
}

/*
 * A TCP port of 127.0.0.1 free now, for the SSH forward. Another process
 * may take it before QEMU binds it: QEMU then fails to start, saying so.
 */
static int free_port(unsigned *port, struct vmc_error *err)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return vmc_error_set(err, -errno, "a free port on 127.0.0.1 for SSH: %s",
				     strerror(errno));
	*port = ntohs(sa.sin_port);
	return 0;
}

/* ---- command line */

struct argv {
	char **v;
	size_t n, cap;
	bool failed;
};

static void _printf_(2, 3) arg(struct argv *a, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		char **v = realloc(a->v, cap * sizeof(*v));

		if (!v) {
			a->failed = true;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s) {
		a->failed = true;
		return;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void argv_free(struct argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
}

/* QEMU option values escape ',' as ",,". */
static char *opt_escape(const char *s)
{
	char *out = malloc(strlen(s) * 2 + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		if (*s == ',')
			*o++ = ',';
		*o++ = *s;
	}
	*o = '\0';
	return out;
}

/*
 * @files: the paths of the VM's files (qemu-proc.h). The x86_64 and
 * aarch64 lines differ only in the machine, the CPU, the firmware (q35's
 * SeaBIOS with S3 switched on; the AAVMF pflash pair), the pvpanic and
 * arm's keyboard.
 */
static int build_argv(const struct launch *l, const char *const files[VMC_QEMU_FILE_N],
		      const char *accel, int qmp_fd, int agent_fd, struct argv *a)
{
	_cleanup_free_ char *console = opt_escape(files[VMC_QEMU_FILE_CONSOLE]);
	_cleanup_free_ char *crash = opt_escape(files[VMC_QEMU_FILE_CRASH]);
	_cleanup_free_ char *root = opt_escape(files[VMC_QEMU_FILE_ROOT]);
	_cleanup_free_ char *vars = opt_escape(files[VMC_QEMU_FILE_VARS]);
	bool x86 = l->arch == &vmc_arch_x86_64;

	if (!console || !crash || !root || !vars)
		return -ENOMEM;
	arg(a, "%s", l->qemu);
	arg(a, "-name");
	arg(a, "vmcheck");
	arg(a, "-machine");
	/* doc/facts.md, "aarch64 guests": GICv3, cortex-a57 (max boots 4x slower). */
	arg(a, "%s%s", x86 ? "q35" : "virt,gic-version=3",
	    l->ram_bytes ? ",memory-backend=ram0" : "");
	arg(a, "-accel");
	arg(a, "%s", accel);
	arg(a, "-cpu");
	if (!x86)
		arg(a, "cortex-a57");
	else if (l->phys_bits)
		arg(a, "qemu64,phys-bits=%u", l->phys_bits);
	else
		arg(a, "qemu64");
	if (l->ram_bytes) {
		/* reserve=off: no swap/overcommit accounting for RAM the guest never touches. */
		arg(a, "-object");
		arg(a, "memory-backend-ram,id=ram0,size=%llu,reserve=off",
		    (unsigned long long)l->ram_bytes);
		/*
		 * arm virt sizes its device memory from -m's maxmem, 128 MiB when
		 * -m is not given: below the backend, it refuses ("maxmem/slots too
		 * huge"; doc/facts.md, "aarch64 guests"). q35 needs no -m.
		 */
		if (l->arch != &vmc_arch_x86_64) {
			arg(a, "-m");
			arg(a, "%lluM", (unsigned long long)(l->ram_bytes >> 20));
		}
	} else {
		arg(a, "-m");
		arg(a, "%uM,slots=%u,maxmem=%uM", l->mem_mb, l->mem_slots, l->maxmem_mb);
	}
	arg(a, "-smp");
	arg(a, "%u,maxcpus=%u", l->cpus, l->maxcpus);
	arg(a, "-nodefaults");
	arg(a, "-no-user-config");
	arg(a, "-display");
	arg(a, "none");
	if (x86) {
		arg(a, "-global");
		arg(a, "ICH9-LPC.disable_s3=0"); /* S3 is off on q35 unless asked for */
	} else {
		/* UEFI gives arm virt its ACPI: the power button and DIMM hotplug (GED). */
		arg(a, "-drive");
		arg(a, "if=pflash,format=raw,readonly=on,file=" VMC_QEMU_AAVMF_CODE);
		arg(a, "-drive");
		arg(a, "if=pflash,format=raw,file=%s", vars);
	}
	arg(a, "-kernel");
	arg(a, "%s", l->kernel);
	arg(a, "-initrd");
	arg(a, "%s", l->initrd);
	arg(a, "-append");
	arg(a, "%s", l->append);
	arg(a, "-chardev");
	arg(a, "socket,id=qmp,fd=%d,server=on,wait=off", qmp_fd);
	arg(a, "-mon");
	arg(a, "chardev=qmp,mode=control");
	arg(a, "-chardev");
	arg(a, "file,id=console,path=%s", console);
	arg(a, "-serial");
	arg(a, "chardev:console");
	/* Hotplug ports first: pciroot1 is 00:01.0, as QA numbers them. */
	for (unsigned i = 1; i <= l->ports; i++) {
		arg(a, "-device");
		arg(a, "pcie-root-port,id=pciroot%u,chassis=%u,slot=%u", i, i, i);
	}
	arg(a, "-device");
	arg(a, "pcie-root-port,id=rp-agent,chassis=%u,slot=%u", l->ports + 1, l->ports + 1);
	arg(a, "-device");
	arg(a, "virtio-serial-pci,id=agent-serial,bus=rp-agent");
	arg(a, "-chardev");
	arg(a, "socket,id=agent,fd=%d,server=on,wait=off", agent_fd);
	/* An id makes QEMU report the guest opening the port (VSERPORT_CHANGE). */
	arg(a, "-device");
	arg(a, "virtserialport,id=agent-port,bus=agent-serial.0,chardev=agent,name=" AGENT_PORT);
	arg(a, "-device");
	arg(a, "pcie-root-port,id=rp-net,chassis=%u,slot=%u", l->ports + 2, l->ports + 2);
	arg(a, "-netdev");
	if (l->agent_ssh)
		arg(a, "user,id=boot-net,hostfwd=tcp:127.0.0.1:%u-:22", l->ssh_port);
	else
		arg(a, "user,id=boot-net");
	arg(a, "-device");
	arg(a, "virtio-net-pci,id=boot-nic,netdev=boot-net,bus=rp-net");
	/* kdump: a panic the guest kernel announces is a GUEST_PANICKED event. */
	arg(a, "-device");
	arg(a, "%s", x86 ? "pvpanic" : "pvpanic-pci");
	/* kdump: the crash disk the guest finds by its serial (make_crash_disk()). */
	arg(a, "-device");
	arg(a, "pcie-root-port,id=rp-crash,chassis=%u,slot=%u", l->ports + 3, l->ports + 3);
	arg(a, "-blockdev");
	arg(a, "driver=file,filename=%s,node-name=crash-file", crash);
	arg(a, "-blockdev");
	arg(a, "driver=raw,file=crash-file,node-name=crash-blk");
	arg(a, "-device");
	arg(a, "virtio-blk-pci,id=crash-disk,drive=crash-blk,serial=" VMC_QEMU_CRASH_SERIAL
	       ",bus=rp-crash");
	/*
	 * The guest reboot is ctrl-alt-del from QMP's send-key: q35 has a PS/2
	 * keyboard built in, arm virt has none.
	 */
	if (!x86) {
		arg(a, "-device");
		arg(a, "virtio-keyboard-pci,id=keyboard");
	}
	/*
	 * --image: the root disk, after the root ports so that they keep their
	 * slots; on pcie.0, whose devices Linux probes before those behind
	 * ports, so it is /dev/vda. The disk check's own serials differ.
	 */
	if (l->image) {
		arg(a, "-blockdev");
		arg(a, "driver=qcow2,file.driver=file,file.filename=%s,node-name=root-blk", root);
		arg(a, "-device");
		arg(a, "virtio-blk-pci,id=root-disk,drive=root-blk,serial=" VMC_QEMU_ROOT_SERIAL
		       ",bus=pcie.0");
	}
	for (const char *const *x = l->extra; x && *x; x++)
		arg(a, "%s", *x);
	return a->failed ? -ENOMEM : 0;
}

/*
 * Run @argv (argv[0] a path) to completion, its output captured. Returns 0
 * if it exited 0, else a negative code with @err = "@what failed: OUTPUT".
 */
static int run_quiet(char *const argv[], const char *what, struct vmc_error *err)
{
	char out[512];
	int pfd[2], st, e;
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return vmc_error_set(err, -errno, "%s: pipe: %s", what, strerror(errno));
	pid = fork();
	if (pid == 0) {
		if (dup2(pfd[1], 1) < 0 || dup2(pfd[1], 2) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	e = errno;
	close(pfd[1]);
	while (pid > 0 && n < sizeof(out) - 1 &&
	       (r = TEMP_FAILURE_RETRY(read(pfd[0], out + n, sizeof(out) - 1 - n))) > 0)
		n += (size_t)r;
	close(pfd[0]);
	out[n] = '\0';
	if (pid < 0)
		return vmc_error_set(err, -e, "%s: fork: %s", what, strerror(e));
	if (TEMP_FAILURE_RETRY(waitpid(pid, &st, 0)) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		return vmc_error_set(err, -EIO, "%s failed: %s", what, n ? out : "no output");
	return 0;
}

/*
 * The crash disk kdump saves dumps to: a sparse ext4 image as big as the
 * guest's memory can get plus 1 GiB (a dump is smaller than what it dumps),
 * with a 4 MiB journal and few inodes so that its metadata stays small at
 * any size (0.1 s and 50 MiB on disk for 1 TiB), inode tables written now
 * rather than by the guest.
 */
int vmc_qemu_crash_disk(const char *path, uint64_t ram, struct vmc_error *err)
{
	static const char *const where[] = { "/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4" };
	static const char *const opts[] = { "-q", "-F",     "-L", VMC_QEMU_CRASH_SERIAL,
					    "-m", "0",      "-N", "1024",
					    "-J", "size=4", "-E", "lazy_itable_init=0,nodiscard" };
	_cleanup_free_ char *mkfs = find_in_path("mkfs.ext4");
	char size[32], what[PATH_MAX + 128], *argv[ARRAY_SIZE(opts) + 4];

	for (size_t i = 0; !mkfs && i < ARRAY_SIZE(where); i++)
		if (!access(where[i], X_OK))
			mkfs = strdup(where[i]);
	if (!mkfs)
		return vmc_error_set(err, -ENOENT, "the crash disk: mkfs.ext4 not found (%s)",
				     "apt-get install e2fsprogs");
	snprintf(size, sizeof(size), "%lluk", (unsigned long long)((ram >> 10) + (1ull << 20)));
	argv[0] = mkfs;
	memcpy(argv + 1, opts, sizeof(opts));
	argv[ARRAY_SIZE(opts) + 1] = (char *)path;
	argv[ARRAY_SIZE(opts) + 2] = size;
	argv[ARRAY_SIZE(opts) + 3] = NULL;
	snprintf(what, sizeof(what), "the crash disk: %s %s %s", mkfs, path, size);
	return run_quiet(argv, what, err);
}

static int make_crash_disk(const struct launch *l, const char *path, struct vmc_error *err)
{
	return vmc_qemu_crash_disk(path, l->ram_bytes ? l->ram_bytes : (uint64_t)l->maxmem_mb << 20,
				   err);
}

/* "qcow2" if @path starts with the qcow2 magic, else "raw". */
static const char *image_format(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char magic[4];

	if (fd >= 0 && read(fd, magic, sizeof(magic)) == sizeof(magic) &&
	    !memcmp(magic, "QFI\xfb", sizeof(magic)))
		return "qcow2";
	return "raw";
}

/*
 * --image: the root disk QEMU opens is a qcow2 overlay in the workdir
 * backed by the image (by absolute path), so the image stays as built,
 * runs can share it, and what the guest writes goes with the workdir.
 */
static int make_root_overlay(const struct launch *l, const char *path, struct vmc_error *err)
{
	_cleanup_free_ char *qemu_img = find_in_path("qemu-img");
	_cleanup_free_ char *image = realpath(l->image, NULL);
	char what[2 * PATH_MAX + 64];

	if (!qemu_img)
		return vmc_error_set(err, -ENOENT, "the root disk: qemu-img not found (%s)",
				     "apt-get install qemu-utils");
	if (!image)
		return vmc_error_set(err, -errno, "the root disk: %s: %s", l->image,
				     strerror(errno));
	snprintf(what, sizeof(what), "the root disk: qemu-img create -b %s %s", image, path);
	return run_quiet((char *[]){ qemu_img, "create", "-q", "-f", "qcow2", "-F",
				     (char *)image_format(image), "-b", image, (char *)path, NULL },
			 what, err);
}

int vmc_qemu_efi_vars(const char *from, const char *to, struct vmc_error *err)
{
	_cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int out = -1;
	static const char zeros[65536];
	char buf[sizeof(zeros)];
	off_t size = 0;
	ssize_t n, w;
	int e = errno;

	if (in < 0)
		return vmc_error_set(err, -e, "UEFI variable store %s: %s%s", from, strerror(e),
				     e == ENOENT ? " (apt-get install qemu-efi-aarch64)" : "");
	/* A new file: whatever had the name (a previous run's, a link) is not written through. */
	if (unlink(to) < 0 && errno != ENOENT)
		return vmc_error_set(err, -errno, "UEFI variable store %s: %s", to,
				     strerror(errno));
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return vmc_error_set(err, -errno, "UEFI variable store %s: %s", to,
				     strerror(errno));
	/* The template is 64 MiB of mostly zeros: leave holes, not blocks. */
	while ((n = TEMP_FAILURE_RETRY(read(in, buf, sizeof(buf)))) > 0) {
		if (!memcmp(buf, zeros, (size_t)n)) {
			size += n;
			continue;
		}
		w = pwrite(out, buf, (size_t)n, size);
		if (w != n) {
			e = w < 0 ? errno : EIO;
			return vmc_error_set(err, -e, "UEFI variable store %s: write: %s", to,
					     strerror(e));
		}
		size += n;
	}
	if (n < 0)
		return vmc_error_set(err, -errno, "UEFI variable store %s: read: %s", from,
				     strerror(errno));
	if (ftruncate(out, size) < 0)
		return vmc_error_set(err, -errno, "UEFI variable store %s: %s", to,
				     strerror(errno));
	return 0;
}

/* ---- spawning */

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, e;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 4) == 0)
		return fd;
	e = errno;
	close(fd);
	return -e;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

/*
 * Start QEMU with @accel and connect QMP. On failure nothing runs and the
 * sockets are gone (the logs stay for the caller to remove or keep).
 */
static int start_vm(const struct launch *l, const char *accel, struct vmc_qemu_proc **out_p,
		    struct vmc_qmp **out_q, struct vmc_error *err)
{
	struct argv a = { 0 };
	struct vmc_qemu_proc *p = vmc_qemu_proc_new(l->workdir, l->own_dir, l->keep);
	const char *qmp_path, *agent_path, *files[VMC_QEMU_FILE_N];
	struct vmc_error e = VMC_ERROR_INIT, why = VMC_ERROR_INIT;
	int qmp_fd = -1, agent_fd = -1, fd, r;

	if (!p)
		return vmc_error_set(err, -ENOMEM, "launching QEMU: out of memory");
	qmp_path = vmc_qemu_proc_file(p, VMC_QEMU_FILE_QMP);
	agent_path = vmc_qemu_proc_file(p, VMC_QEMU_FILE_AGENT);
	qmp_fd = listen_unix(qmp_path);
	agent_fd = listen_unix(agent_path);
	if (qmp_fd < 0 || agent_fd < 0) {
		r = vmc_error_set(err, qmp_fd < 0 ? qmp_fd : agent_fd, "%s: %s",
				  qmp_fd < 0 ? qmp_path : agent_path,
				  strerror(-(qmp_fd < 0 ? qmp_fd : agent_fd)));
		goto fail;
	}
	for (size_t i = 0; i < VMC_QEMU_FILE_N; i++)
		files[i] = vmc_qemu_proc_file(p, i);
	r = build_argv(l, files, accel, qmp_fd, agent_fd, &a);
	if (r < 0) {
		vmc_error_set(err, r, "launching QEMU: out of memory");
		goto fail;
	}
	r = make_crash_disk(l, files[VMC_QEMU_FILE_CRASH], err);
	if (r == 0 && l->image)
		r = make_root_overlay(l, files[VMC_QEMU_FILE_ROOT], err);
	/* Each VM its own: UEFI writes the boot entries it makes there. */
	if (r == 0 && l->arch == &vmc_arch_aarch64)
		r = vmc_qemu_efi_vars(VMC_QEMU_AAVMF_VARS, files[VMC_QEMU_FILE_VARS], err);
	if (r < 0)
		goto fail;
	r = vmc_qemu_proc_spawn(p, a.v, qmp_fd, agent_fd, err);
	/* QEMU holds the listening sockets now; ours would hide its death. */
	close(qmp_fd);
	close(agent_fd);
	qmp_fd = agent_fd = -1;
	if (r < 0)
		goto fail;
	fd = connect_unix(qmp_path);
	if (fd < 0) {
		r = vmc_error_set(err, fd, "%s: connect: %s", qmp_path, strerror(-fd));
		goto fail_kill;
	}
	r = vmc_qmp_open_fd(fd, qmp_path, GREETING_MS, out_q, &e);
	if (r < 0) {
		if (vmc_qemu_proc_status(p, START_EXIT_MS, NULL, &why) < 0)
			r = vmc_error_set(err, -ECHILD, "QEMU (%s) did not start: %s", accel,
					  why.msg);
		else
			vmc_error_set(err, r, "QEMU (%s) did not start: %s", accel, e.msg);
		goto fail_kill;
	}
	argv_free(&a);
	*out_p = p;
	return 0;
fail_kill:
	vmc_qemu_proc_kill(p, NULL);
fail:
	vmc_error_clear(&e);
	vmc_error_clear(&why);
	if (qmp_fd >= 0)
		close(qmp_fd);
	if (agent_fd >= 0)
		close(agent_fd);
	argv_free(&a);
	/* The caller decides about the directory. */
	vmc_qemu_proc_set_cleanup(p, false, l->keep);
	vmc_qemu_proc_discard(p);
	return r;
}

/* ---- --accel auto */

/* The KVM probe's boot: this launcher's start with @ctx its launch. */
static int probe_start(void *ctx, const char *accel, struct vmc_qemu_proc **p, struct vmc_qmp **q,
		       struct vmc_error *err)
{
	return start_vm(ctx, accel, p, q, err);
}

int vmc_qemu_launch(const struct vmc_qemu_config *cfg, struct vmc_hv **out, struct vmc_error *err)
{
	struct vmc_qemu_proc *p = NULL;
	struct vmc_qmp *q = NULL;
	_cleanup_free_ char *spec = NULL;
	struct launch l;
	const char *accel;
	int r;

	r = launch_init(cfg, &l, err);
	if (r < 0)
		goto out;
	if (l.agent_ssh && (r = free_port(&l.ssh_port, err)) < 0)
		goto out;
	accel = l.accel;
	if (!strcmp(accel, "auto")) {
		struct vmc_accel_boot boot = { .qemu = l.qemu,
					       .arch = l.arch,
					       .start = probe_start,
					       .ctx = &l };

		accel = vmc_accel_choose(&boot, &p, &q, NULL);
	}
	if (!q) {
		r = start_vm(&l, accel, &p, &q, err);
		if (r < 0)
			goto out;
	}
	/* Cache only a verdict a VM was then started with. */
	vmc_accel_commit(l.qemu);
	r = l.agent_ssh
		    ? asprintf(&spec, "ssh://root@127.0.0.1:%u/sbin/vmcheck-agent-ssh", l.ssh_port)
		    : asprintf(&spec, "vserial:%s/agent.sock", l.workdir);
	if (r < 0) {
		vmc_qemu_proc_stop(p, q);
		vmc_qmp_close(q);
		r = vmc_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = vmc_hv_qmp_new(q, spec, p, l.arch, out, err);
out:
	if (r < 0 && l.own_dir && l.workdir && !l.keep)
		rmdir(l.workdir);
	launch_free(&l);
	return r;
}

const char *vmc_qemu_accel_auto(const struct vmc_qemu_config *cfg, const char **why)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_qemu_proc *p = NULL;
	struct vmc_qmp *q = NULL;
	const char *accel = vmc_accel_foreign(vmc_qemu_arch(cfg), why);
	struct launch l;

	/* Another arch than the host's: no probe can make KVM run it. */
	if (accel)
		return accel;
	accel = vmc_accel_decided(why);
	if (!accel && launch_init(cfg, &l, &err) == 0) {
		struct vmc_accel_boot boot = { .qemu = l.qemu,
					       .arch = l.arch,
					       .start = probe_start,
					       .ctx = &l };

		vmc_accel_choose(&boot, &p, &q, NULL);
		if (q) {
			vmc_qemu_proc_stop(p, q);
			vmc_qmp_close(q);
		}
		/* The probe's own VM ran under the verdict: it is worth caching. */
		vmc_accel_commit(l.qemu);
		if (l.own_dir && l.workdir && !l.keep)
			rmdir(l.workdir);
		launch_free(&l);
	}
	accel = vmc_accel_fallback(err.msg ? err.msg : "unknown error", why);
	vmc_error_clear(&err);
	return accel;
}

int vmc_qemu_argv(const struct vmc_qemu_config *cfg, const struct vmc_qemu_argv_in *in, char ***out,
		  struct vmc_error *err)
{
	char *names[VMC_QEMU_FILE_N] = { NULL };
	const char *files[VMC_QEMU_FILE_N];
	struct argv a = { 0 };
	struct launch l;
	int r;

	r = launch_defaults(cfg, &l, err);
	if (r < 0)
		return r;
	if (!cfg->append || !in->workdir || !in->accel)
		return vmc_error_set(err, -EINVAL, "a QEMU command line: %s needed",
				     !cfg->append   ? "a kernel command line is"
				     : !in->workdir ? "a workdir is"
						    : "an accelerator is");
	l.qemu = strdup(cfg->qemu ? cfg->qemu : l.arch->qemu);
	l.append = strdup(cfg->append);
	l.ssh_port = in->ssh_port;
	r = l.qemu && l.append ? 0 : -ENOMEM;
	for (size_t i = 0; r == 0 && i < VMC_QEMU_FILE_N; i++) {
		if (asprintf(&names[i], "%s/%s", in->workdir, vmc_qemu_proc_file_name(i)) < 0) {
			names[i] = NULL;
			r = -ENOMEM;
		}
		files[i] = names[i];
	}
	if (r == 0)
		r = build_argv(&l, files, in->accel, in->qmp_fd, in->agent_fd, &a);
	launch_free(&l);
	for (size_t i = 0; i < VMC_QEMU_FILE_N; i++)
		free(names[i]);
	if (r < 0) {
		argv_free(&a);
		return vmc_error_set(err, r, "a QEMU command line: out of memory");
	}
	*out = a.v;
	return 0;
}

void vmc_qemu_argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

const char *vmc_qemu_workdir(struct vmc_hv *hv)
{
	struct vmc_qemu_proc *p = vmc_hv_qmp_proc(hv);

	return p ? vmc_qemu_proc_workdir(p) : NULL;
}
