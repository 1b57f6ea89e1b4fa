/* SPDX-License-Identifier: MIT */
/*
 * Launching QEMU and owning the process: command line, spawn, the QMP
 * connection, the KVM probe, and the guarantee that no QEMU, socket or
 * workdir outlives us (free(), failure paths and fatal signals alike).
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
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"

#define GREETING_MS 20000
#define QUIT_MS 3000
#define TERM_MS 2000
#define START_EXIT_MS 2000 /* for the status of a QEMU that reset our connection */
#define STDERR_LINES 20
#define REG_MAX 32
#define AGENT_PORT "org.vmcheck.agent.0"

enum { F_QMP, F_AGENT, F_CONSOLE, F_STDERR, F_CRASH, F_ROOT, F_N };
static const char *const file_names[F_N] = {"qmp.sock", "agent.sock", "console.log", "qemu.stderr",
					    "crash-disk.img", "root-overlay.qcow2"};

struct vmc_qemu_proc {
	pid_t pid;
	uint64_t started_ns; /* CLOCK_MONOTONIC at fork */
	int pidfd;
	bool reaped;
	int status; /* wait status once reaped */
	char *workdir;
	bool own_dir; /* we created it: remove it */
	bool keep;    /* keep the logs and the directory */
	char *files[F_N];
};

/* ---- the registry the signal handler works from */

static const int fatal_signals[] = {SIGINT, SIGTERM, SIGHUP};
static struct sigaction old_actions[ARRAY_SIZE(fatal_signals)];
static bool handlers_installed;
static struct vmc_qemu_proc *volatile registry[REG_MAX];

static void block_fatal(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(fatal_signals); i++)
		sigaddset(&set, fatal_signals[i]);
	sigprocmask(SIG_BLOCK, &set, old);
}

/* Async-signal-safe: unlink and rmdir only. */
static void remove_files(const struct vmc_qemu_proc *p)
{
	unlink(p->files[F_QMP]);
	unlink(p->files[F_AGENT]);
	if (p->keep)
		return;
	unlink(p->files[F_CONSOLE]);
	unlink(p->files[F_STDERR]);
	unlink(p->files[F_CRASH]);
	unlink(p->files[F_ROOT]);
	if (p->own_dir)
		rmdir(p->workdir); /* fails, harmlessly, if someone put files there */
}

/*
 * SIGINT/SIGTERM/SIGHUP: kill and reap every QEMU we own, remove its
 * sockets, then let the signal do what it did before we were installed.
 */
static void on_fatal_signal(int sig)
{
	int saved = errno;

	for (size_t i = 0; i < REG_MAX; i++) {
		struct vmc_qemu_proc *p = registry[i];

		if (!p)
			continue;
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		remove_files(p);
		registry[i] = NULL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(fatal_signals); i++)
		sigaction(fatal_signals[i], &old_actions[i], NULL);
	handlers_installed = false;
	raise(sig);
	errno = saved;
}

static void install_handlers(void)
{
	struct sigaction sa = {.sa_handler = on_fatal_signal};

	if (handlers_installed)
		return;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(fatal_signals); i++)
		sigaddset(&sa.sa_mask, fatal_signals[i]);
	for (size_t i = 0; i < ARRAY_SIZE(fatal_signals); i++)
		sigaction(fatal_signals[i], &sa, &old_actions[i]);
	handlers_installed = true;
}

/* Called with the fatal signals blocked. */
static void unregister(struct vmc_qemu_proc *p)
{
	for (size_t i = 0; i < REG_MAX; i++)
		if (registry[i] == p)
			registry[i] = NULL;
}

/* ---- the process */

/*
 * Collect the exit status if the process ended. Reaping and unregistering
 * happen with signals blocked, so the handler never kills a reaped pid
 * (which the kernel may have given to someone else).
 */
static bool try_reap(struct vmc_qemu_proc *p, int flags)
{
	sigset_t old;
	int st;

	if (p->reaped)
		return true;
	block_fatal(&old);
	if (TEMP_FAILURE_RETRY(waitpid(p->pid, &st, flags)) == p->pid) {
		p->reaped = true;
		p->status = st;
		unregister(p);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	return p->reaped;
}

static bool wait_exit(struct vmc_qemu_proc *p, int ms)
{
	struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};

	if (try_reap(p, WNOHANG) || ms == 0)
		return p->reaped;
	TEMP_FAILURE_RETRY(poll(&pfd, 1, ms));
	return try_reap(p, WNOHANG);
}

/* The last @n lines of @path, indented, or NULL. */
static char *tail_lines(const char *path, unsigned n)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char buf[16384], *s, *out = NULL;
	ssize_t len;
	off_t size;
	FILE *f;
	size_t outlen;

	if (fd < 0 || (size = lseek(fd, 0, SEEK_END)) < 0)
		return NULL;
	len = pread(fd, buf, sizeof(buf) - 1,
		    size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0);
	if (len < 0)
		return NULL;
	while (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len == 0)
		return NULL;
	buf[len] = '\0';
	s = buf + len;
	while (s > buf && n > 0)
		if (*--s == '\n')
			n--;
	if (*s == '\n')
		s++;
	f = open_memstream(&out, &outlen);
	if (!f)
		return NULL;
	for (char *save, *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		fprintf(f, "\n  %s", line);
	fclose(f);
	return out;
}

/* "QEMU exited on signal 6 (Aborted); last QMP command: ...; its stderr ends: ..." */
static int describe_exit(struct vmc_qemu_proc *p, int code, const char *last_cmd,
			 struct vmc_error *err)
{
	_cleanup_free_ char *tail = tail_lines(p->files[F_STDERR], STDERR_LINES);
	char how[128];

	if (WIFSIGNALED(p->status))
		snprintf(how, sizeof(how), "QEMU exited on signal %d (%s)%s", WTERMSIG(p->status),
			 strsignal(WTERMSIG(p->status)),
			 WCOREDUMP(p->status) ? ", core dumped" : "");
	else
		snprintf(how, sizeof(how), "QEMU exited with status %d", WEXITSTATUS(p->status));
	return vmc_error_set(err, code, "%s%s%s; %s%s", how,
			     last_cmd && *last_cmd ? "; last QMP command: " : "",
			     last_cmd ? last_cmd : "",
			     tail ? "its stderr ends:" : "its stderr is empty", tail ? tail : "");
}

int vmc_qemu_proc_status(struct vmc_qemu_proc *p, int wait_ms, const char *last_cmd,
			 struct vmc_error *err)
{
	if (!wait_exit(p, wait_ms))
		return 0;
	return describe_exit(p, -ESRCH, last_cmd, err);
}

int vmc_qemu_proc_ended(struct vmc_qemu_proc *p, int wait_ms, const char *last_cmd,
			struct vmc_error *err)
{
	if (!wait_exit(p, wait_ms))
		return vmc_error_set(err, -EBUSY, "QEMU (pid %d) has not exited", (int)p->pid);
	if (WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0)
		return 0;
	return describe_exit(p, -EIO, last_cmd, err);
}

const char *vmc_qemu_proc_console(const struct vmc_qemu_proc *p)
{
	return p->files[F_CONSOLE];
}

void vmc_qemu_proc_kill(struct vmc_qemu_proc *p, struct vmc_qmp *q)
{
	if (!p->reaped && q)
		vmc_qmp_command(q, "quit", NULL, QUIT_MS, NULL, NULL);
	if (wait_exit(p, QUIT_MS))
		return;
	kill(p->pid, SIGTERM);
	if (wait_exit(p, TERM_MS))
		return;
	kill(p->pid, SIGKILL);
	try_reap(p, 0);
}

static void proc_free(struct vmc_qemu_proc *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	for (size_t i = 0; i < F_N; i++)
		free(p->files[i]);
	free(p->workdir);
	free(p);
}

void vmc_qemu_proc_stop(struct vmc_qemu_proc *p, struct vmc_qmp *q)
{
	if (!p)
		return;
	vmc_qemu_proc_kill(p, q);
	remove_files(p);
	proc_free(p);
}

const char *vmc_qemu_proc_workdir(const struct vmc_qemu_proc *p)
{
	return p->workdir;
}

pid_t vmc_qemu_proc_pid(const struct vmc_qemu_proc *p)
{
	return p->pid;
}

uint64_t vmc_qemu_proc_started_ns(const struct vmc_qemu_proc *p)
{
	return p->started_ns;
}

/* ---- configuration */

struct launch {
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

static int launch_init(const struct vmc_qemu_config *cfg, struct launch *l, struct vmc_error *err)
{
	const char *qemu = cfg->qemu ? cfg->qemu : "qemu-system-x86_64";
	int r;

	*l = (struct launch){
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
	if (l->image && access(l->image, R_OK))
		return vmc_error_set(err, -ENOENT, "%s: %s (build one with 'make image')", l->image,
				     strerror(errno));
	if (access(l->kernel, R_OK) || access(l->initrd, R_OK))
		return vmc_error_set(err, -ENOENT, "%s: %s (build the guest with 'make %s')",
				     access(l->kernel, R_OK) ? l->kernel : l->initrd,
				     strerror(errno), l->image ? "image" : "guest");
	l->qemu = find_in_path(qemu);
	if (!l->qemu)
		return vmc_error_set(
		    err, -ENOENT, "%s: not found in PATH (apt-get install qemu-system-x86)", qemu);
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
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
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

static int build_argv(const struct launch *l, const char *accel, int qmp_fd, int agent_fd,
		      struct argv *a)
{
	_cleanup_free_ char *console = NULL, *path = NULL, *crash = NULL, *crash_path = NULL;
	_cleanup_free_ char *root = NULL, *root_path = NULL;

	if (asprintf(&path, "%s/console.log", l->workdir) < 0 || !(console = opt_escape(path)))
		return -ENOMEM;
	if (asprintf(&crash_path, "%s/%s", l->workdir, file_names[F_CRASH]) < 0 ||
	    !(crash = opt_escape(crash_path)))
		return -ENOMEM;
	if (asprintf(&root_path, "%s/%s", l->workdir, file_names[F_ROOT]) < 0 ||
	    !(root = opt_escape(root_path)))
		return -ENOMEM;
	arg(a, "%s", l->qemu);
	arg(a, "-name");
	arg(a, "vmcheck");
	arg(a, "-machine");
	arg(a, "q35%s", l->ram_bytes ? ",memory-backend=ram0" : "");
	arg(a, "-accel");
	arg(a, "%s", accel);
	arg(a, "-cpu");
	if (l->phys_bits)
		arg(a, "qemu64,phys-bits=%u", l->phys_bits);
	else
		arg(a, "qemu64");
	if (l->ram_bytes) {
		/* reserve=off: no swap/overcommit accounting for RAM the guest never touches. */
		arg(a, "-object");
		arg(a, "memory-backend-ram,id=ram0,size=%llu,reserve=off",
		    (unsigned long long)l->ram_bytes);
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
	arg(a, "-global");
	arg(a, "ICH9-LPC.disable_s3=0"); /* S3 is off on q35 unless asked for */
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
	arg(a, "pvpanic");
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
static int make_crash_disk(const struct launch *l, const char *path, struct vmc_error *err)
{
	static const char *const where[] = {"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"};
	static const char *const opts[] = {"-q", "-F",	   "-L", VMC_QEMU_CRASH_SERIAL,
					   "-m", "0",	   "-N", "1024",
					   "-J", "size=4", "-E", "lazy_itable_init=0,nodiscard"};
	uint64_t ram = l->ram_bytes ? l->ram_bytes : (uint64_t)l->maxmem_mb << 20;
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
	return run_quiet((char *[]){qemu_img, "create", "-q", "-f", "qcow2", "-F",
				    (char *)image_format(image), "-b", image, (char *)path, NULL},
			 what, err);
}

/* ---- spawning */

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
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
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
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

/* In the child: async-signal-safe calls only, then exec. */
static _Noreturn void exec_qemu(char **argv, char **envp, int errfd, int qmp_fd, int agent_fd,
				pid_t parent)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	/* Its own group: a Ctrl-C at the terminal reaches us, not QEMU directly. */
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	for (size_t i = 0; i < ARRAY_SIZE(fatal_signals); i++)
		sigaction(fatal_signals[i], &dfl, NULL);
	sigaction(SIGPIPE, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (null < 0 || dup2(null, 0) < 0 || dup2(errfd, 1) < 0 || dup2(errfd, 2) < 0 ||
	    fcntl(qmp_fd, F_SETFD, 0) < 0 || fcntl(agent_fd, F_SETFD, 0) < 0)
		_exit(127);
	execve(argv[0], argv, envp);
	dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/*
 * Our environment plus LIBC_FATAL_STDERR_=1: glibc otherwise writes "double
 * free or corruption" to the terminal, not to qemu.stderr, and the report of
 * an aborted QEMU (LAB.md, defect 1) would lack its cause.
 */
static char **qemu_env(void)
{
	extern char **environ;
	size_t n = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	memcpy(env, environ, n * sizeof(*env));
	env[n] = (char *)"LIBC_FATAL_STDERR_=1";
	return env;
}

static int spawn(char **argv, int qmp_fd, int agent_fd, struct vmc_qemu_proc *p,
		 struct vmc_error *err)
{
	_cleanup_close_ int errfd =
	    open(p->files[F_STDERR], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	_cleanup_free_ char **envp = qemu_env();
	pid_t parent = getpid(), pid;
	sigset_t old;
	size_t slot;

	if (errfd < 0)
		return vmc_error_set(err, -errno, "%s: %s", p->files[F_STDERR], strerror(errno));
	if (!envp)
		return vmc_error_set(err, -ENOMEM, "launching QEMU: out of memory");
	for (slot = 0; slot < REG_MAX && registry[slot]; slot++)
		;
	if (slot == REG_MAX)
		return vmc_error_set(err, -EMFILE, "launching QEMU: %d already running", REG_MAX);
	install_handlers();
	/* A signal between fork and registration must not miss the child. */
	block_fatal(&old);
	pid = fork();
	if (pid == 0)
		exec_qemu(argv, envp, errfd, qmp_fd, agent_fd, parent);
	if (pid < 0) {
		int e = errno;

		sigprocmask(SIG_SETMASK, &old, NULL);
		return vmc_error_set(err, -e, "launching QEMU: fork: %s", strerror(e));
	}
	p->pid = pid;
	p->started_ns = vmc_mono_ns();
	p->pidfd = pidfd_open(pid, 0);
	registry[slot] = p;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (p->pidfd < 0) {
		int e = errno;

		vmc_qemu_proc_kill(p, NULL);
		return vmc_error_set(err, -e, "launching QEMU: pidfd_open: %s", strerror(e));
	}
	return 0;
}

static struct vmc_qemu_proc *proc_new(const struct launch *l)
{
	struct vmc_qemu_proc *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->pidfd = -1;
	p->own_dir = l->own_dir;
	p->keep = l->keep;
	p->workdir = strdup(l->workdir);
	for (size_t i = 0; i < F_N; i++)
		if (asprintf(&p->files[i], "%s/%s", l->workdir, file_names[i]) < 0)
			p->files[i] = NULL;
	for (size_t i = 0; i < F_N; i++)
		if (!p->files[i] || !p->workdir) {
			proc_free(p);
			return NULL;
		}
	return p;
}

/*
 * Start QEMU with @accel and connect QMP. On failure nothing runs and the
 * sockets are gone (the logs stay for the caller to remove or keep).
 */
static int start_vm(const struct launch *l, const char *accel, struct vmc_qemu_proc **out_p,
		    struct vmc_qmp **out_q, struct vmc_error *err)
{
	struct argv a = {0};
	struct vmc_qemu_proc *p = proc_new(l);
	struct vmc_error e = VMC_ERROR_INIT;
	int qmp_fd = -1, agent_fd = -1, fd, r;

	if (!p)
		return vmc_error_set(err, -ENOMEM, "launching QEMU: out of memory");
	qmp_fd = listen_unix(p->files[F_QMP]);
	agent_fd = listen_unix(p->files[F_AGENT]);
	if (qmp_fd < 0 || agent_fd < 0) {
		r = vmc_error_set(err, qmp_fd < 0 ? qmp_fd : agent_fd, "%s: %s",
				  p->files[qmp_fd < 0 ? F_QMP : F_AGENT],
				  strerror(-(qmp_fd < 0 ? qmp_fd : agent_fd)));
		goto fail;
	}
	r = build_argv(l, accel, qmp_fd, agent_fd, &a);
	if (r < 0) {
		vmc_error_set(err, r, "launching QEMU: out of memory");
		goto fail;
	}
	r = make_crash_disk(l, p->files[F_CRASH], err);
	if (r == 0 && l->image)
		r = make_root_overlay(l, p->files[F_ROOT], err);
	if (r < 0)
		goto fail;
	r = spawn(a.v, qmp_fd, agent_fd, p, err);
	/* QEMU holds the listening sockets now; ours would hide its death. */
	close(qmp_fd);
	close(agent_fd);
	qmp_fd = agent_fd = -1;
	if (r < 0)
		goto fail;
	fd = connect_unix(p->files[F_QMP]);
	if (fd < 0) {
		r = vmc_error_set(err, fd, "%s: connect: %s", p->files[F_QMP], strerror(-fd));
		goto fail_kill;
	}
	r = vmc_qmp_open_fd(fd, p->files[F_QMP], GREETING_MS, out_q, &e);
	if (r < 0) {
		if (wait_exit(p, START_EXIT_MS)) {
			r = describe_exit(p, -ECHILD, NULL, err);
			vmc_error_prefix(err, "QEMU (%s) did not start: ", accel);
		} else {
			vmc_error_set(err, r, "QEMU (%s) did not start: %s", accel, e.msg);
		}
		goto fail_kill;
	}
	argv_free(&a);
	*out_p = p;
	return 0;
fail_kill:
	vmc_qemu_proc_kill(p, NULL);
fail:
	vmc_error_clear(&e);
	if (qmp_fd >= 0)
		close(qmp_fd);
	if (agent_fd >= 0)
		close(agent_fd);
	argv_free(&a);
	p->own_dir = false; /* the caller decides about the directory */
	remove_files(p);
	proc_free(p);
	return r;
}

/* ---- the KVM probe (LAB.md: /dev/kvm may exist and hang) */

static char probe_accel[8]; /* "kvm" or "tcg" once decided in this process */
static char probe_why[512];
static bool probe_pending_write; /* decided by a probe, not yet cached */

static void probe_cache_path(char *buf, size_t size)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");

	if (rt && *rt)
		snprintf(buf, size, "%s/vmcheck-kvm-probe", rt);
	else
		snprintf(buf, size, "/tmp/vmcheck-kvm-probe-%u", (unsigned)getuid());
}

/* What the verdict depends on: the host kernel and the QEMU binary. */
static void probe_key(const char *qemu, char *buf, size_t size)
{
	struct utsname u;
	struct stat st;

	if (uname(&u) < 0)
		snprintf(u.release, sizeof(u.release), "?");
	if (stat(qemu, &st) < 0)
		memset(&st, 0, sizeof(st));
	snprintf(buf, size, "linux %s; %s %lld %lld", u.release, qemu, (long long)st.st_size,
		 (long long)st.st_mtime);
}

/* Cache format: one line "KEY\tACCEL\tWHY". Ours only (uid), no symlinks. */
static bool probe_read_cache(const char *qemu)
{
	char path[512], key[512], buf[2048], *tab1, *tab2;
	_cleanup_close_ int fd = -1;
	struct stat st;
	ssize_t n;

	probe_cache_path(path, sizeof(path));
	probe_key(qemu, key, sizeof(key));
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_uid != getuid())
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	tab1 = strchr(buf, '\t');
	tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
	if (!tab2)
		return false;
	*tab1++ = *tab2++ = '\0';
	if (strcmp(buf, key) || (strcmp(tab1, "kvm") && strcmp(tab1, "tcg")))
		return false;
	snprintf(probe_accel, sizeof(probe_accel), "%s", tab1);
	snprintf(probe_why, sizeof(probe_why), "%.280s (cached in %.200s)", tab2, path);
	return true;
}

static void probe_write_cache(const char *qemu)
{
	char path[512], key[512];
	int fd;

	probe_cache_path(path, sizeof(path));
	probe_key(qemu, key, sizeof(key));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return; /* no cache: the next run probes again */
	dprintf(fd, "%s\t%s\t%s\n", key, probe_accel, probe_why);
	close(fd);
}

/* Cache a verdict a probe decided and a VM has run under since. */
static void probe_commit(const char *qemu)
{
	if (probe_pending_write)
		probe_write_cache(qemu);
	probe_pending_write = false;
}

static bool match_open(const struct vmc_qmp_event *ev, void *ctx)
{
	json_object *open;

	return json_object_object_get_ex(ev->data, "open", &open) && json_object_get_boolean(open);
}

static bool console_reached_userspace(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char buf[65536];
	ssize_t n;

	if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "Run /init as init process") != NULL;
}

/*
 * Boot the guest under KVM until its agent port opens. Returns 1 with the
 * VM kept (KVM works), 0 when TCG it is (probe_why says why).
 */
static int probe_kvm(const struct launch *l, struct vmc_qemu_proc **out_p, struct vmc_qmp **out_q)
{
	struct vmc_error e = VMC_ERROR_INIT;
	struct vmc_qmp_event ev;
	struct vmc_qemu_proc *p;
	struct vmc_qmp *q;
	uint64_t t0 = vmc_mono_ns();
	int r;

	r = start_vm(l, "kvm", &p, &q, &e);
	if (r < 0) {
		snprintf(probe_why, sizeof(probe_why), "%.*s", (int)strcspn(e.msg, "\n"), e.msg);
		vmc_error_clear(&e);
		return 0;
	}
	r = vmc_qmp_wait_event(q, "VSERPORT_CHANGE", match_open, NULL,
			       t0 + VMC_QEMU_KVM_PROBE_MS * 1000000ull, &ev, &e);
	vmc_error_clear(&e);
	if (r == 0) {
		vmc_qmp_event_free(&ev);
		snprintf(probe_why, sizeof(probe_why),
			 "the guest's agent came up under KVM in %.1f s",
			 (double)(vmc_mono_ns() - t0) / 1e9);
	} else if (console_reached_userspace(p->files[F_CONSOLE])) {
		snprintf(probe_why, sizeof(probe_why),
			 "the guest reached userspace under KVM (its agent port did not open)");
	} else {
		snprintf(probe_why, sizeof(probe_why),
			 "under KVM the guest did not bring its agent up within %d s",
			 VMC_QEMU_KVM_PROBE_MS / 1000);
		/* Keep the workdir for the TCG run; drop this run's files. */
		p->own_dir = false;
		p->keep = false;
		vmc_qemu_proc_stop(p, q);
		vmc_qmp_close(q);
		return 0;
	}
	*out_p = p;
	*out_q = q;
	return 1;
}

/* Decide between KVM and TCG; may hand back the probe's running VM. */
static void choose_accel(const struct launch *l, struct vmc_qemu_proc **p, struct vmc_qmp **q)
{
	static bool said;

	if (!*probe_accel && !probe_read_cache(l->qemu)) {
		if (access("/dev/kvm", R_OK | W_OK)) {
			snprintf(probe_why, sizeof(probe_why), "/dev/kvm: %s", strerror(errno));
			snprintf(probe_accel, sizeof(probe_accel), "tcg");
		} else {
			snprintf(probe_accel, sizeof(probe_accel), "%s",
				 probe_kvm(l, p, q) ? "kvm" : "tcg");
			probe_pending_write = true;
		}
	}
	if (!said)
		fprintf(stderr, "vmcheck: accelerator %s: %s\n", probe_accel, probe_why);
	said = true;
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
		choose_accel(&l, &p, &q);
		accel = probe_accel;
	}
	if (!q) {
		r = start_vm(&l, accel, &p, &q, err);
		if (r < 0)
			goto out;
	}
	/* Cache only a verdict a VM was then started with. */
	probe_commit(l.qemu);
	r = l.agent_ssh ? asprintf(&spec, "ssh://root@127.0.0.1:%u/sbin/vmcheck-agent-ssh",
				   l.ssh_port)
			: asprintf(&spec, "vserial:%s/agent.sock", l.workdir);
	if (r < 0) {
		vmc_qemu_proc_stop(p, q);
		vmc_qmp_close(q);
		r = vmc_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = vmc_hv_qmp_new(q, spec, p, out, err);
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
	struct launch l;

	if (!*probe_accel && launch_init(cfg, &l, &err) == 0) {
		choose_accel(&l, &p, &q);
		if (q) {
			vmc_qemu_proc_stop(p, q);
			vmc_qmp_close(q);
		}
		/* The probe's own VM ran under the verdict: it is worth caching. */
		probe_commit(l.qemu);
		if (l.own_dir && l.workdir && !l.keep)
			rmdir(l.workdir);
		launch_free(&l);
	}
	if (!*probe_accel) {
		snprintf(probe_why, sizeof(probe_why), "no KVM probe possible: %s",
			 err.msg ? err.msg : "unknown error");
		snprintf(probe_accel, sizeof(probe_accel), "tcg");
	}
	vmc_error_clear(&err);
	*why = probe_why;
	return probe_accel;
}
