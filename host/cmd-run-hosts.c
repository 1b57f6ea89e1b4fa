/* SPDX-License-Identifier: MIT */
/*
 * vmcheck run --hosts: fork one child per host, read each one's JSON lines
 * report and stderr from pipes, merge the steps into the parent's reports.
 * Fork without exec keeps the child on exactly the single-host path; it is
 * safe only while this process holds no libvirt state (its event thread
 * would not survive the fork), hence "before any libvirt call".
 */
#include "cmd-run-hosts.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "cmd.h"
#include "escape.h"

/* A step with its evidence fits many times over; a stderr line is a message. */
#define JSON_LINE_MAX (16u << 20)
#define ERR_LINE_MAX (64u << 10)

char *vmc_hosts_label(const char *uri)
{
	const char *p = strstr(uri, "://"), *end, *at;

	if (!p)
		return strdup(uri);
	p += 3;
	end = p + strcspn(p, "/?#");
	at = memrchr(p, '@', (size_t)(end - p));
	if (at)
		p = at + 1;
	return end > p ? strndup(p, (size_t)(end - p)) : strdup(uri);
}

void vmc_hosts_free(struct vmc_hosts *h)
{
	for (size_t i = 0; i < h->n; i++) {
		free(h->uris[i]);
		free(h->labels[i]);
	}
	free(h->uris);
	free(h->labels);
	memset(h, 0, sizeof(*h));
}

/* Label @i of @h: its host's, with "#N" if N-1 earlier URIs have the same one. */
static int label(struct vmc_hosts *h, size_t i)
{
	char *base = vmc_hosts_label(h->uris[i]);
	unsigned same = 1;

	if (!base)
		return -ENOMEM;
	for (size_t k = 0; k < i; k++) {
		char *other = vmc_hosts_label(h->uris[k]);

		if (!other) {
			free(base);
			return -ENOMEM;
		}
		same += !strcmp(base, other);
		free(other);
	}
	if (same == 1) {
		h->labels[i] = base;
		return 0;
	}
	if (asprintf(&h->labels[i], "%s#%u", base, same) < 0)
		h->labels[i] = NULL;
	free(base);
	return h->labels[i] ? 0 : -ENOMEM;
}

int vmc_hosts_parse(const char *list, bool twice_ok, struct vmc_hosts *out, struct vmc_error *err)
{
	struct vmc_hosts h = { 0 };
	size_t n = 1;
	int r = 0;

	for (const char *p = list; *p; p++)
		n += *p == ',';
	h.uris = calloc(n, sizeof(*h.uris));
	h.labels = calloc(n, sizeof(*h.labels));
	if (!h.uris || !h.labels)
		r = -ENOMEM;
	for (const char *p = list; !r && h.n < n; p += strcspn(p, ",") + 1) {
		size_t len = strcspn(p, ",");

		if (!len) {
			r = vmc_error_set(err, -EINVAL, "--hosts \"%s\": an empty entry", list);
			break;
		}
		h.uris[h.n] = strndup(p, len);
		if (!h.uris[h.n]) {
			r = -ENOMEM;
			break;
		}
		for (size_t k = 0; k < h.n && !twice_ok; k++)
			if (!strcmp(h.uris[k], h.uris[h.n]))
				r = vmc_error_set(err, -EINVAL,
						  "--hosts: %s given twice, with --domain (one "
						  "domain, one run)",
						  h.uris[k]);
		h.n++;
		if (!r)
			r = label(&h, h.n - 1);
	}
	if (r == -ENOMEM)
		vmc_error_set(err, r, "--hosts: out of memory");
	if (r < 0) {
		/* Free what was filled: labels may lag the URIs by one. */
		for (size_t i = 0; i < h.n; i++)
			free(h.labels[i]);
		for (size_t i = 0; i < h.n; i++)
			free(h.uris[i]);
		free(h.uris);
		free(h.labels);
		return r;
	}
	*out = h;
	return 0;
}

/* ------------------------------------------------------------ the run */

/* A pipe from a child, read a line at a time. */
struct lines {
	int fd; /* read end, non-blocking; -1 once closed */
	char *buf;
	size_t len, cap, max;
	bool skip; /* the rest of an overlong line is being dropped */
};

struct child {
	const char *uri, *label;
	pid_t pid;        /* 0: not running (never started, or reaped) */
	int pidfd;        /* readable when it ends; -1: none (reaped, or no pidfd here) */
	struct lines out; /* its JSON lines report */
	struct lines err; /* its stderr */
	char *last;       /* its last stderr line */
	unsigned steps, failed;
};

struct run {
	const struct vmc_hosts_job *job;
	struct child *c;
	size_t n;
	uint64_t t_zero;
	unsigned failed;
};

static void record(struct run *m, struct child *c, const struct vmc_step_record *rec)
{
	c->steps++;
	if (rec->status == VMC_STEP_FAILED) {
		c->failed++;
		m->failed++;
	}
	for (size_t i = 0; i < m->job->n_reports; i++) {
		int r = m->job->reports[i]->ops->step(m->job->reports[i], rec);

		if (r < 0)
			fprintf(m->job->log, "vmcheck: writing a report: %s\n", strerror(-r));
	}
}

/* A failed step "host" @name of @c, made up here: the child could not say it itself. */
static void _printf_(5, 6) host_fail(struct run *m, struct child *c, const char *name,
				     const char *notes, const char *fmt, ...)
{
	char *msg = NULL, op[32];
	struct vmc_step_record rec = {
		.host = c->label,
		.check = "host",
		.name = name,
		.operation = op,
		.status = VMC_STEP_FAILED,
		.notes = notes,
		.t_zero = m->t_zero,
		.t_begin = m->t_zero,
		.t_end = vmc_mono_ns(),
		.latency_ns = -1,
	};
	va_list ap;

	snprintf(op, sizeof(op), "host %s", name);
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	rec.message = msg ? msg : name;
	record(m, c, &rec);
	free(msg);
}

static void json_line(struct run *m, struct child *c, const char *line)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_report_json_step s;

	if (vmc_report_json_parse(line, m->t_zero, &s, &err) < 0) {
		host_fail(m, c, "report", NULL, "%s: %.200s",
			  err.msg ? err.msg : "report line: out of memory", line);
		vmc_error_clear(&err);
		return;
	}
	s.rec.host = c->label;
	record(m, c, &s.rec);
	vmc_report_json_step_free(&s);
}

static void err_line(struct run *m, struct child *c, const char *line)
{
	char *copy = strdup(line);

	/* The child escaped its stderr already; this pass only stops what it did not. */
	fprintf(m->job->log, "[%s] ", c->label);
	vmc_esc_fputs(m->job->log, line, 0);
	fputc('\n', m->job->log);
	fflush(m->job->log);
	if (copy) {
		free(c->last);
		c->last = copy;
	}
}

/* Append @n bytes to @l's line; -ENOMEM drops the line. */
static int append(struct lines *l, const char *p, size_t n)
{
	if (l->len + n + 1 > l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 8192;
		char *b;

		while (cap < l->len + n + 1)
			cap *= 2;
		if (cap > l->max + 1)
			cap = l->max + 1;
		b = realloc(l->buf, cap);
		if (!b) {
			l->len = 0;
			l->skip = true;
			return -ENOMEM;
		}
		l->buf = b;
		l->cap = cap;
	}
	memcpy(l->buf + l->len, p, n);
	l->len += n;
	return 0;
}

static void emit(struct run *m, struct child *c, struct lines *l)
{
	l->buf[l->len] = '\0';
	if (l == &c->out)
		json_line(m, c, l->buf);
	else
		err_line(m, c, l->buf);
	l->len = 0;
}

/* Pass @n bytes read from @l's pipe on, a line at a time; an overlong line is cut at l->max. */
static void feed(struct run *m, struct child *c, struct lines *l, const char *p, size_t n)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t seg = nl ? (size_t)(nl - p) : n, room = l->max - l->len;

		if (!l->skip && seg > room) {
			if (append(l, p, room) == 0)
				emit(m, c, l);
			l->skip = true; /* the rest, up to the newline */
		} else if (!l->skip) {
			append(l, p, seg);
		}
		if (nl) {
			if (!l->skip)
				emit(m, c, l);
			l->skip = false;
			l->len = 0;
			seg++;
		}
		p += seg;
		n -= seg;
	}
}

static void close_lines(struct run *m, struct child *c, struct lines *l)
{
	if (l->len && !l->skip)
		emit(m, c, l); /* a last line without its newline */
	close(l->fd);
	l->fd = -1;
	l->len = 0;
	l->skip = false;
}

/* Read what @l's pipe holds (until it is empty if @all); closed at EOF or error. */
static void pump(struct run *m, struct child *c, struct lines *l, bool all)
{
	char chunk[65536];

	while (l->fd >= 0) {
		ssize_t got = read(l->fd, chunk, sizeof(chunk));

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && errno == EAGAIN)
			return;
		if (got <= 0)
			close_lines(m, c, l);
		else
			feed(m, c, l, chunk, (size_t)got);
		if (!all)
			return;
	}
}

/* The child ended (wait status @status): add a failed step unless it gave its own verdict. */
static void judge(struct run *m, struct child *c, int status)
{
	const char *last = c->last;
	_cleanup_free_ char *notes = NULL;
	const char *name = c->steps ? "exit" : "connect";

	/* "vmcheck: " is how the child says it; the report says whose it is. */
	if (last && !strncmp(last, "vmcheck: ", 9))
		last += 9;
	if (WIFEXITED(status)) {
		int code = WEXITSTATUS(status);

		if (code == VMC_EXIT_OK || (code == VMC_EXIT_FAIL && c->failed))
			return;
		/* No connection, no domain, no guest kit: its last words say which. */
		if (code == VMC_EXIT_USAGE && last) {
			host_fail(m, c, name, NULL, "%s", last);
			return;
		}
	}
	if (last && asprintf(&notes, "last on stderr: %s\n", last) < 0)
		notes = NULL;
	if (WIFEXITED(status))
		host_fail(m, c, name, notes, "vmcheck for %s exited with status %d", c->uri,
			  WEXITSTATUS(status));
	else
		host_fail(m, c, name, notes, "vmcheck for %s killed by signal %d (%s)", c->uri,
			  WTERMSIG(status), strsignal(WTERMSIG(status)));
}

/* In the child: become a single-host run of c->uri; never returns. */
static _Noreturn void child(struct run *m, struct child *c, int out, int err, int sfd,
			    const sigset_t *old, pid_t parent)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	/* The parent's ends of every pipe so far, ours too: EOF must come when a child ends. */
	for (size_t i = 0; i < m->n; i++) {
		if (m->c[i].out.fd >= 0)
			close(m->c[i].out.fd);
		if (m->c[i].err.fd >= 0)
			close(m->c[i].err.fd);
		if (m->c[i].pidfd >= 0)
			close(m->c[i].pidfd);
	}
	if (sfd >= 0)
		close(sfd);
	if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
	    dup2(err, STDERR_FILENO) < 0)
		_exit(VMC_EXIT_USAGE);
	close(null);
	close(err);
	/*
	 * Signals as in a single-host run: until the suite takes SIGINT/SIGTERM
	 * on its signalfd they end the process (a connect that hangs, too).
	 */
	sigprocmask(SIG_SETMASK, old, NULL);
	/* A parent gone (even by SIGKILL) stops the run as Ctrl-C would. */
	signal(SIGPIPE, SIG_IGN);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		_exit(VMC_EXIT_FAIL);
	_exit(m->job->run(c->uri, out, m->job->arg));
}

/* Fork the child of @c; a failure to is that host's failed step. */
static void start(struct run *m, struct child *c, int sfd, const sigset_t *old)
{
	int out[2], err[2];
	pid_t parent = getpid();

	if (pipe2(out, O_CLOEXEC) < 0) {
		host_fail(m, c, "connect", NULL, "pipe: %s", strerror(errno));
		return;
	}
	if (pipe2(err, O_CLOEXEC) < 0) {
		host_fail(m, c, "connect", NULL, "pipe: %s", strerror(errno));
		close(out[0]);
		close(out[1]);
		return;
	}
	c->out.fd = out[0];
	c->err.fd = err[0];
	c->pid = fork();
	if (c->pid == 0)
		child(m, c, out[1], err[1], sfd, old, parent);
	close(out[1]);
	close(err[1]);
	if (c->pid < 0) {
		c->pid = 0;
		close(c->out.fd);
		close(c->err.fd);
		c->out.fd = c->err.fd = -1;
		host_fail(m, c, "connect", NULL, "fork: %s", strerror(errno));
		return;
	}
	fcntl(c->out.fd, F_SETFL, O_NONBLOCK);
	fcntl(c->err.fd, F_SETFL, O_NONBLOCK);
	/* Not SIGCHLD: in a process with threads another one may take it and drop it. */
	c->pidfd = pidfd_open(c->pid, 0);
}

/* SIGINT/SIGTERM: every child stops cleanly and finishes its report. */
static void on_signals(struct run *m, int sfd)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		fprintf(m->job->log, "vmcheck: %s: stopping the run on every host\n",
			strsignal((int)si.ssi_signo));
		for (size_t i = 0; i < m->n; i++)
			if (m->c[i].pid > 0)
				kill(m->c[i].pid, (int)si.ssi_signo);
	}
}

/* Reap the children that ended; what they left in the pipes is read first. */
static void reap(struct run *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct child *c = &m->c[i];
		int status;

		if (c->pid <= 0 || waitpid(c->pid, &status, WNOHANG) != c->pid)
			continue;
		c->pid = 0;
		if (c->pidfd >= 0)
			close(c->pidfd);
		c->pidfd = -1;
		pump(m, c, &c->out, true);
		pump(m, c, &c->err, true);
		/* Still open: a process of its own holds the pipe; the child's part is all read. */
		if (c->out.fd >= 0)
			close_lines(m, c, &c->out);
		if (c->err.fd >= 0)
			close_lines(m, c, &c->err);
		judge(m, c, status);
	}
}

/* Poll timeout: none while every running child has a pidfd; 100 ms if one has not. */
static int poll_ms(const struct run *m, bool *running)
{
	int ms = -1;

	*running = false;
	for (size_t i = 0; i < m->n; i++)
		if (m->c[i].pid > 0) {
			*running = true;
			if (m->c[i].pidfd < 0)
				ms = 100;
		}
	return ms;
}

/* Collect until every child is reaped; @pfd has room for 1 + 3 * m->n. */
static void collect(struct run *m, int sfd, struct pollfd *pfd)
{
	bool running;
	int ms;

	while (ms = poll_ms(m, &running), running) {
		pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		for (size_t i = 0; i < m->n; i++) {
			struct pollfd *p = &pfd[1 + 3 * i];

			p[0] = (struct pollfd){ .fd = m->c[i].out.fd, .events = POLLIN };
			p[1] = (struct pollfd){ .fd = m->c[i].err.fd, .events = POLLIN };
			p[2] = (struct pollfd){ .fd = m->c[i].pidfd, .events = POLLIN };
		}
		if (poll(pfd, 1 + 3 * m->n, ms) < 0)
			continue;
		if (pfd[0].revents)
			on_signals(m, sfd);
		for (size_t i = 0; i < m->n; i++) {
			if (pfd[1 + 3 * i].revents)
				pump(m, &m->c[i], &m->c[i].out, false);
			if (pfd[2 + 3 * i].revents)
				pump(m, &m->c[i], &m->c[i].err, false);
		}
		reap(m);
	}
}

int vmc_hosts_run(const struct vmc_hosts *h, const struct vmc_hosts_job *job)
{
	struct run m = { .job = job, .n = h->n, .t_zero = vmc_mono_ns() };
	struct pollfd *pfd = calloc(1 + 3 * h->n, sizeof(*pfd));
	sigset_t set, old;
	int sfd;

	m.c = calloc(h->n, sizeof(*m.c));
	if (!pfd || !m.c) {
		fprintf(job->log, "vmcheck: run: out of memory\n");
		free(pfd);
		free(m.c);
		return VMC_EXIT_FAIL;
	}
	for (size_t i = 0; i < h->n; i++)
		m.c[i] = (struct child){
			.uri = h->uris[i],
			.label = h->labels[i],
			.pidfd = -1,
			.out = { .fd = -1, .max = JSON_LINE_MAX },
			.err = { .fd = -1, .max = ERR_LINE_MAX },
		};
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, &old);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		fprintf(job->log, "vmcheck: run: signalfd: %s (Ctrl-C ends the run abruptly)\n",
			strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
	/* Buffered output would be written again by every child. */
	fflush(NULL);
	for (size_t i = 0; i < m.n; i++)
		start(&m, &m.c[i], sfd, &old);
	collect(&m, sfd, pfd);
	for (size_t i = 0; i < job->n_reports; i++) {
		int r = job->reports[i]->ops->finish(job->reports[i]);

		if (r < 0)
			fprintf(job->log, "vmcheck: finishing a report: %s\n", strerror(-r));
	}
	if (sfd >= 0)
		close(sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	for (size_t i = 0; i < m.n; i++) {
		free(m.c[i].out.buf);
		free(m.c[i].err.buf);
		free(m.c[i].last);
	}
	free(m.c);
	free(pfd);
	return m.failed ? VMC_EXIT_FAIL : VMC_EXIT_OK;
}
