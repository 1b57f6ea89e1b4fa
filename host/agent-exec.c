/* SPDX-License-Identifier: MIT */
/*
 * exec:COMMAND: /bin/sh -c COMMAND (the agent named alone gets --stdio)
 * with one end of a socketpair as its stdin and stdout; stderr is
 * inherited so the agent's complaints reach the user. The child leads its
 * own process group: a ^C at the terminal is the controller's to handle
 * (it unsubscribes and closes), and closing can signal the shell and the
 * agent together.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-client.h"
#include "agent-exec.h"

/* Voluntary exit after EOF, then after SIGTERM, before SIGKILL. */
#define EXIT_WAIT_MS 1000
/* How long an EOF waits for the child's status, to say why it went. */
#define EOF_WAIT_MS 200
/* What makes a command line more than plain words to /bin/sh. */
#define SHELL_SPECIAL "|&;<>()$`\\\"'#{}!\n"

/* The agent's long options (guest/agent-main.c), as far as exec: cares. */
struct agent_opt {
	const char *name;
	bool arg;       /* takes the next word, unless given as --NAME=VALUE */
	bool transport; /* picks the transport */
};

static const struct agent_opt agent_opts[] = {
	{ "stdio", false, true },        { "listen", true, true },
	{ "virtio-port", false, true }, /* its NAME is optional */
	{ "sysroot", true, false },      { "crash-dir", true, false },
	{ "max-frame", true, false },    { "coalesce-ms", true, false },
	{ "allow-crash", false, false }, { "version", false, false },
	{ "help", false, false },
};

/*
 * The agent's option that --NAME means (NAME: the first @len bytes of
 * @name) as getopt_long() reads it: exact, or an unambiguous prefix.
 * NULL if none.
 */
static const struct agent_opt *agent_opt(const char *name, size_t len)
{
	const struct agent_opt *found = NULL;
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(agent_opts); i++) {
		if (strncmp(agent_opts[i].name, name, len))
			continue;
		if (!agent_opts[i].name[len])
			return &agent_opts[i]; /* exact */
		found = &agent_opts[i];
		n++;
	}
	return len && n == 1 ? found : NULL;
}

/* Is @word the agent, as a command? */
static bool is_agent(const char *word)
{
	const char *base = strrchr(word, '/');

	return !strcmp(base ? base + 1 : word, "vmcheck-agent");
}

/* Does plain command line @line run the agent without a transport option? */
static bool wants_stdio(const char *line)
{
	_cleanup_free_ char *copy = strdup(line);
	char *save = NULL, *w = copy ? strtok_r(copy, " \t", &save) : NULL;
	bool skip = false;

	if (!w || line[strcspn(line, SHELL_SPECIAL)] || !is_agent(w))
		return false;
	while ((w = strtok_r(NULL, " \t", &save))) {
		const struct agent_opt *o;

		if (skip) { /* an option's argument */
			skip = false;
			continue;
		}
		if (!strcmp(w, "--"))
			return false;
		if (strncmp(w, "--", 2))
			continue;
		o = agent_opt(w + 2, strcspn(w + 2, "="));
		if (o && o->transport)
			return false;
		skip = o && o->arg && !strchr(w, '=');
	}
	return true;
}

char *vmc_agent_exec_command(const char *cmd)
{
	char *line;

	if (!wants_stdio(cmd))
		return strdup(cmd);
	return asprintf(&line, "%s --stdio", cmd) < 0 ? NULL : line;
}

static int exec_open(struct vmc_agent_transport *t, const char *cmd, struct vmc_error *err)
{
	_cleanup_free_ char *line = vmc_agent_exec_command(cmd);
	char *const argv[] = { "sh", "-c", line, NULL };
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	_cleanup_close_ int mine = -1, theirs = -1;
	int sv[2];
	sigset_t none;
	pid_t pid;

	if (!line)
		return vmc_error_set(err, -ENOMEM, "starting exec:%s: %s", cmd, strerror(ENOMEM));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return vmc_error_set(err, -errno, "starting exec:%s: socketpair: %s", cmd,
				     strerror(errno));
	mine = sv[0];
	theirs = sv[1];
	sigemptyset(&none);
	pid = fork();
	if (pid < 0)
		return vmc_error_set(err, -errno, "starting exec:%s: fork: %s", cmd,
				     strerror(errno));
	if (pid == 0) {
		/*
		 * Only async-signal-safe calls: the parent may have threads. The
		 * agent must not inherit signals blocked for vmcheck's own use.
		 */
		setpgid(0, 0);
		sigprocmask(SIG_SETMASK, &none, NULL);
		sigaction(SIGPIPE, &dfl, NULL); /* an ignored SIGPIPE would survive exec */
		if (dup2(theirs, STDIN_FILENO) < 0 || dup2(theirs, STDOUT_FILENO) < 0)
			_exit(127);
		/* dup2() onto itself keeps FD_CLOEXEC. */
		fcntl(STDIN_FILENO, F_SETFD, 0);
		fcntl(STDOUT_FILENO, F_SETFD, 0);
		execv("/bin/sh", argv);
		_exit(127);
	}
	/* Also here, so killing the group cannot race the child's setpgid(). */
	setpgid(pid, pid);
	t->fd = TAKE_FD(mine);
	t->pid = pid;
	/* The child is ours and not reaped yet: the pid cannot have been reused. */
	t->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	return 0;
}

/* Reap the child if it has exited; returns true once reaped. */
static bool try_reap(struct vmc_agent_transport *t)
{
	int st;
	pid_t r;

	if (t->pid <= 0)
		return true;
	r = waitpid(t->pid, &st, WNOHANG);
	if (r != t->pid && !(r < 0 && errno == ECHILD))
		return false;
	t->status = r == t->pid ? st : -1;
	t->pid = 0;
	if (t->pidfd >= 0)
		close(t->pidfd);
	t->pidfd = -1;
	return true;
}

/*
 * Reap the child if it exits within @ms; returns true once reaped. The
 * pidfd becomes readable when it exits: no polling. (Without pidfds, a
 * kernel before 5.3, the wait is one plain sleep of @ms.)
 */
static bool reap_within(struct vmc_agent_transport *t, int ms)
{
	struct pollfd p = { .fd = t->pidfd, .events = POLLIN };

	if (try_reap(t))
		return true;
	if (t->pidfd >= 0)
		TEMP_FAILURE_RETRY(poll(&p, 1, ms));
	else
		poll(NULL, 0, ms);
	return try_reap(t);
}

static void exec_describe_eof(struct vmc_agent_transport *t, char *buf, size_t size)
{
	reap_within(t, EOF_WAIT_MS);
	if (t->pid > 0)
		snprintf(buf, size, "the agent closed its stdout");
	else if (t->status >= 0 && WIFEXITED(t->status))
		snprintf(buf, size, "agent exited (status %d)", WEXITSTATUS(t->status));
	else if (t->status >= 0 && WIFSIGNALED(t->status))
		snprintf(buf, size, "agent killed by signal %d (%s)", WTERMSIG(t->status),
			 strsignal(WTERMSIG(t->status)));
	else
		snprintf(buf, size, "agent exited");
}

static void exec_close(struct vmc_agent_transport *t)
{
	/* EOF on its stdin is the agent's signal to exit. */
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (reap_within(t, EXIT_WAIT_MS))
		return;
	kill(-t->pid, SIGTERM);
	if (reap_within(t, EXIT_WAIT_MS))
		return;
	kill(-t->pid, SIGKILL);
	if (TEMP_FAILURE_RETRY(waitpid(t->pid, &t->status, 0)) < 0)
		t->status = -1;
	t->pid = 0;
	if (t->pidfd >= 0)
		close(t->pidfd);
	t->pidfd = -1;
}

const struct vmc_agent_transport_ops vmc_agent_exec_ops = {
	.scheme = "exec",
	.open = exec_open,
	.describe_eof = exec_describe_eof,
	.close = exec_close,
};
