/* SPDX-License-Identifier: MIT */
/*
 * Owning a QEMU process: spawn, signals, reaping through a pidfd, how it
 * ended, and the removal of its sockets and files on every path out.
 */
#include "qemu-proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "hv-qmp-client.h"
#include "macro.h"

#define QUIT_MS 3000
#define TERM_MS 2000
#define STDERR_LINES 20
#define REG_MAX 32

static const char *const file_names[VMC_QEMU_FILE_N] = {
	"qmp.sock",       "agent.sock",         "console.log", "qemu.stderr",
	"crash-disk.img", "root-overlay.qcow2", "efi-vars.fd",
};

struct vmc_qemu_proc {
	pid_t pid;
	uint64_t started_ns; /* CLOCK_MONOTONIC at fork */
	int pidfd;
	bool reaped;
	int status; /* wait status once reaped */
	char *workdir;
	bool own_dir; /* we created it: remove it */
	bool keep;    /* keep the logs and the directory */
	char *files[VMC_QEMU_FILE_N];
};

/* ---- the registry the signal handler works from */

static const int fatal_signals[] = { SIGINT, SIGTERM, SIGHUP };
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
	unlink(p->files[VMC_QEMU_FILE_QMP]);
	unlink(p->files[VMC_QEMU_FILE_AGENT]);
	if (p->keep)
		return;
	unlink(p->files[VMC_QEMU_FILE_CONSOLE]);
	unlink(p->files[VMC_QEMU_FILE_STDERR]);
	unlink(p->files[VMC_QEMU_FILE_CRASH]);
	unlink(p->files[VMC_QEMU_FILE_ROOT]);
	unlink(p->files[VMC_QEMU_FILE_VARS]);
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
	struct sigaction sa = { .sa_handler = on_fatal_signal };

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
	struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };

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
	_cleanup_free_ char *tail = tail_lines(p->files[VMC_QEMU_FILE_STDERR], STDERR_LINES);
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
	return p->files[VMC_QEMU_FILE_CONSOLE];
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
	for (size_t i = 0; i < VMC_QEMU_FILE_N; i++)
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

void vmc_qemu_proc_discard(struct vmc_qemu_proc *p)
{
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

/* ---- spawning */

/* In the child: async-signal-safe calls only, then exec. */
static _Noreturn void exec_qemu(char **argv, char **envp, int errfd, int qmp_fd, int agent_fd,
				pid_t parent)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
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
 * an aborted QEMU (doc/facts.md, "Defect 1: a vCPU unplug corrupts QEMU's
 * heap") would lack its cause.
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

int vmc_qemu_proc_spawn(struct vmc_qemu_proc *p, char **argv, int qmp_fd, int agent_fd,
			struct vmc_error *err)
{
	_cleanup_close_ int errfd = open(p->files[VMC_QEMU_FILE_STDERR],
					 O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	_cleanup_free_ char **envp = qemu_env();
	pid_t parent = getpid(), pid;
	sigset_t old;
	size_t slot;

	if (errfd < 0)
		return vmc_error_set(err, -errno, "%s: %s", p->files[VMC_QEMU_FILE_STDERR],
				     strerror(errno));
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

struct vmc_qemu_proc *vmc_qemu_proc_new(const char *workdir, bool own_dir, bool keep)
{
	struct vmc_qemu_proc *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->pidfd = -1;
	p->own_dir = own_dir;
	p->keep = keep;
	p->workdir = strdup(workdir);
	for (size_t i = 0; i < VMC_QEMU_FILE_N; i++)
		if (asprintf(&p->files[i], "%s/%s", workdir, file_names[i]) < 0)
			p->files[i] = NULL;
	for (size_t i = 0; i < VMC_QEMU_FILE_N; i++)
		if (!p->files[i] || !p->workdir) {
			proc_free(p);
			return NULL;
		}
	return p;
}

void vmc_qemu_proc_set_cleanup(struct vmc_qemu_proc *p, bool own_dir, bool keep)
{
	p->own_dir = own_dir;
	p->keep = keep;
}

const char *vmc_qemu_proc_file(const struct vmc_qemu_proc *p, enum vmc_qemu_file f)
{
	return p->files[f];
}

const char *vmc_qemu_proc_file_name(enum vmc_qemu_file f)
{
	return file_names[f];
}
