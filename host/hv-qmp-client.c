/* SPDX-License-Identifier: MIT */
/*
 * The QMP client: JSON lines over a unix socket, replies matched by id, events
 * queued while waiting, and a ring of the last lines sent and received.
 */
#include "hv-qmp-client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"

#define QMP_LINE_MAX (8u << 20) /* one reply (query-pci can be large) */
#define TRANSCRIPT_MAX 4096     /* lines kept */

struct transcript_line {
	uint64_t ns;
	bool sent;
	char *text;
};

struct vmc_qmp {
	int fd;
	char *name;
	json_tokener *tok;
	char *buf;
	size_t len, cap;
	uint64_t next_id;
	struct vmc_qmp_event *events; /* queue */
	size_t n_events, cap_events;
	struct transcript_line *lines; /* ring */
	size_t n_lines, head_line;
	char *last_cmd;
	char *err_class, *err_desc; /* of the last command QEMU refused */
	vmc_qmp_event_fn on_event;
	void *on_event_ctx;
};

static void transcript_add(struct vmc_qmp *q, bool sent, const char *text, size_t len)
{
	struct transcript_line *l;

	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	if (!q->lines) {
		q->lines = calloc(TRANSCRIPT_MAX, sizeof(*q->lines));
		if (!q->lines)
			return;
	}
	if (q->n_lines == TRANSCRIPT_MAX) {
		l = &q->lines[q->head_line];
		free(l->text);
		q->head_line = (q->head_line + 1) % TRANSCRIPT_MAX;
		q->n_lines--;
	}
	l = &q->lines[(q->head_line + q->n_lines) % TRANSCRIPT_MAX];
	l->ns = vmc_mono_ns();
	l->sent = sent;
	l->text = strndup(text, len);
	q->n_lines++;
}

void vmc_qmp_transcript_since(const struct vmc_qmp *q, uint64_t since_ns, FILE *out)
{
	for (size_t i = 0; i < q->n_lines; i++) {
		const struct transcript_line *l = &q->lines[(q->head_line + i) % TRANSCRIPT_MAX];

		if (l->ns < since_ns || !l->text)
			continue;
		fprintf(out, "%llu.%06llu %s %s\n", (unsigned long long)(l->ns / 1000000000ull),
			(unsigned long long)(l->ns % 1000000000ull / 1000), l->sent ? "->" : "<-",
			l->text);
	}
}

const char *vmc_qmp_last_command(const struct vmc_qmp *q)
{
	return q->last_cmd ? q->last_cmd : "";
}

const char *vmc_qmp_error_class(const struct vmc_qmp *q)
{
	return q->err_class ? q->err_class : "";
}

const char *vmc_qmp_error_desc(const struct vmc_qmp *q)
{
	return q->err_desc ? q->err_desc : "";
}

bool vmc_qmp_no_cpu_hotplug(const char *cls, const char *desc)
{
	static const char *const words[] = {
		"The feature 'query-hotpluggable-cpus' is not enabled",
		"machine does not support hot-plugging CPUs",
	};

	if (!cls || !desc || strcmp(cls, "GenericError"))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (!strcmp(desc, words[i]))
			return true;
	return false;
}

void vmc_qmp_on_event(struct vmc_qmp *q, vmc_qmp_event_fn fn, void *ctx)
{
	q->on_event = fn;
	q->on_event_ctx = ctx;
}

void vmc_qmp_event_free(struct vmc_qmp_event *ev)
{
	free(ev->name);
	json_object_put(ev->data);
	memset(ev, 0, sizeof(*ev));
}

static int queue_event(struct vmc_qmp *q, json_object *msg)
{
	struct vmc_qmp_event *ev;
	json_object *v, *ts;

	if (q->n_events == q->cap_events) {
		size_t cap = q->cap_events ? q->cap_events * 2 : 16;
		struct vmc_qmp_event *n = realloc(q->events, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		q->events = n;
		q->cap_events = cap;
	}
	ev = &q->events[q->n_events];
	memset(ev, 0, sizeof(*ev));
	json_object_object_get_ex(msg, "event", &v);
	ev->name = strdup(json_object_get_string(v));
	if (!ev->name)
		return -ENOMEM;
	if (json_object_object_get_ex(msg, "data", &v))
		ev->data = json_object_get(v);
	ev->host_ns = vmc_mono_ns();
	if (json_object_object_get_ex(msg, "timestamp", &ts)) {
		json_object *s, *us;

		if (json_object_object_get_ex(ts, "seconds", &s) &&
		    json_object_object_get_ex(ts, "microseconds", &us))
			ev->qemu_us =
				json_object_get_int64(s) * 1000000 + json_object_get_int64(us);
	}
	q->n_events++;
	if (q->on_event)
		q->on_event(ev, q->on_event_ctx);
	return 0;
}

/*
 * Parse every complete JSON object buffered. Replies go to *reply when
 * their id matches @want_id (or any reply for the greeting), events are
 * queued, everything is recorded.
 */
static int parse_buffered(struct vmc_qmp *q, const char *want_id, json_object **reply,
			  struct vmc_error *err)
{
	size_t off = 0;

	while (off < q->len) {
		json_object *msg, *v;
		size_t start;
		enum json_tokener_error jerr;

		while (off < q->len && strchr(" \t\r\n", q->buf[off]))
			off++;
		if (off == q->len)
			break;
		start = off;
		json_tokener_reset(q->tok);
		msg = json_tokener_parse_ex(q->tok, q->buf + off, (int)(q->len - off));
		jerr = json_tokener_get_error(q->tok);
		if (!msg && jerr == json_tokener_continue)
			break; /* incomplete: wait for more */
		if (!msg) {
			return vmc_error_set(err, -EPROTO, "qmp %s: malformed JSON from QEMU: %s",
					     q->name, json_tokener_error_desc(jerr));
		}
		off += (size_t)json_tokener_get_parse_end(q->tok);
		transcript_add(q, false, q->buf + start, off - start);
		if (!json_object_is_type(msg, json_type_object)) {
			json_object_put(msg);
			continue;
		}
		if (json_object_object_get_ex(msg, "event", &v)) {
			int r = queue_event(q, msg);

			json_object_put(msg);
			if (r < 0)
				return vmc_error_set(err, r, "qmp %s: out of memory", q->name);
			continue;
		}
		if (reply && !*reply &&
		    (!want_id || (json_object_object_get_ex(msg, "id", &v) &&
				  !strcmp(json_object_get_string(v), want_id)))) {
			*reply = msg;
			continue;
		}
		/* A reply to a command we gave up on: drop it. */
		json_object_put(msg);
	}
	if (off) {
		memmove(q->buf, q->buf + off, q->len - off);
		q->len -= off;
	}
	return 0;
}

static int read_some(struct vmc_qmp *q, int timeout_ms, struct vmc_error *err)
{
	struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
	ssize_t n;
	int r;

	r = TEMP_FAILURE_RETRY(poll(&pfd, 1, timeout_ms));
	if (r < 0)
		return vmc_error_set(err, -errno, "qmp %s: poll: %s", q->name, strerror(errno));
	if (r == 0)
		return -ETIMEDOUT;
	if (q->cap - q->len < 65536) {
		size_t cap = q->cap ? q->cap * 2 : 131072;
		char *nb;

		if (cap > QMP_LINE_MAX + 65536)
			return vmc_error_set(err, -EMSGSIZE,
					     "qmp %s: a message from QEMU exceeds %u bytes",
					     q->name, QMP_LINE_MAX);
		nb = realloc(q->buf, cap);
		if (!nb)
			return vmc_error_set(err, -ENOMEM, "qmp %s: out of memory", q->name);
		q->buf = nb;
		q->cap = cap;
	}
	n = TEMP_FAILURE_RETRY(read(q->fd, q->buf + q->len, q->cap - q->len));
	if (n < 0 && errno == EAGAIN)
		return 0;
	/* A reset is how a QEMU that died before accepting us shows up. */
	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return vmc_error_set(err, -EPIPE, "qmp %s: QEMU closed the monitor (exited?)",
				     q->name);
	if (n < 0)
		return vmc_error_set(err, -errno, "qmp %s: read: %s", q->name, strerror(errno));
	q->len += (size_t)n;
	return 0;
}

/* Wait for the reply with @id (NULL: any reply, i.e. the greeting). */
static int wait_reply(struct vmc_qmp *q, const char *id, uint64_t deadline, json_object **reply,
		      const char *what, struct vmc_error *err)
{
	*reply = NULL;
	for (;;) {
		int r = parse_buffered(q, id, reply, err);

		if (r < 0)
			return r;
		if (*reply)
			return 0;
		r = read_some(q, vmc_clock_remaining_ms(deadline), err);
		if (r == -ETIMEDOUT)
			return vmc_error_set(err, -ETIMEDOUT, "qmp %s: no reply to %s in time",
					     q->name, what);
		if (r < 0) {
			if (r == -EPIPE)
				vmc_error_prefix(err, "waiting for the reply to %s: ", what);
			return r;
		}
	}
}

/* send(MSG_NOSIGNAL): a QEMU that went away must not kill us with SIGPIPE. */
static int send_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = TEMP_FAILURE_RETRY(send(fd, s, n, MSG_NOSIGNAL));

		if (w < 0)
			return -errno;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_line(struct vmc_qmp *q, const char *s, struct vmc_error *err)
{
	size_t n = strlen(s);
	int r;

	transcript_add(q, true, s, n);
	r = send_all(q->fd, s, n);
	if (r == 0)
		r = send_all(q->fd, "\n", 1);
	if (r == -EPIPE || r == -ECONNRESET)
		return vmc_error_set(err, -EPIPE,
				     "qmp %s: sending %s: QEMU closed the monitor (exited?)",
				     q->name, q->last_cmd ? q->last_cmd : "");
	if (r < 0)
		return vmc_error_set(err, r, "qmp %s: sending: %s", q->name, strerror(-r));
	return 0;
}

int vmc_qmp_command(struct vmc_qmp *q, const char *cmd, json_object *args, int timeout_ms,
		    json_object **ret, struct vmc_error *err)
{
	json_object *msg = json_object_new_object(), *reply = NULL, *v;
	const char *line;
	char id[32];
	int r;

	snprintf(id, sizeof(id), "vmc-%llu", (unsigned long long)++q->next_id);
	json_object_object_add(msg, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(msg, "arguments", args);
	json_object_object_add(msg, "id", json_object_new_string(id));
	/* Unescaped slashes: paths read as paths in the transcript. */
	line = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN |
							   JSON_C_TO_STRING_NOSLASHESCAPE);
	free(q->last_cmd);
	q->last_cmd = strdup(args ? line : cmd);
	r = send_line(q, line, err);
	json_object_put(msg);
	if (r < 0)
		return r;
	r = wait_reply(q, id, vmc_clock_deadline(timeout_ms), &reply, cmd, err);
	if (r < 0)
		return r;
	if (json_object_object_get_ex(reply, "error", &v)) {
		json_object *cls = NULL, *desc = NULL;

		json_object_object_get_ex(v, "class", &cls);
		json_object_object_get_ex(v, "desc", &desc);
		free(q->err_class);
		free(q->err_desc);
		q->err_class = strdup(cls ? json_object_get_string(cls) : "Error");
		q->err_desc = strdup(desc ? json_object_get_string(desc) : "(no description)");
		vmc_error_set(err, VMC_QMP_ECOMMAND, "%s: %s: %s", cmd, vmc_qmp_error_class(q),
			      vmc_qmp_error_desc(q));
		json_object_put(reply);
		return VMC_QMP_ECOMMAND;
	}
	if (ret) {
		*ret = json_object_object_get_ex(reply, "return", &v) ? json_object_get(v) : NULL;
	}
	json_object_put(reply);
	return 0;
}

int vmc_qmp_commandf(struct vmc_qmp *q, json_object **ret, struct vmc_error *err, int timeout_ms,
		     const char *cmd, const char *args_fmt, ...)
{
	json_object *args = NULL;

	if (args_fmt) {
		va_list ap;
		char *s = NULL;

		va_start(ap, args_fmt);
		if (vasprintf(&s, args_fmt, ap) < 0)
			s = NULL;
		va_end(ap);
		if (!s)
			return vmc_error_set(err, -ENOMEM, "%s: out of memory", cmd);
		args = json_tokener_parse(s);
		if (!args) {
			vmc_error_set(err, -EINVAL, "%s: bad arguments (not JSON): %s", cmd, s);
			free(s);
			return -EINVAL;
		}
		free(s);
	}
	return vmc_qmp_command(q, cmd, args, timeout_ms, ret, err);
}

int vmc_qmp_open_fd(int fd, const char *name, int timeout_ms, struct vmc_qmp **out,
		    struct vmc_error *err)
{
	struct vmc_qmp *q = calloc(1, sizeof(*q));
	json_object *greeting = NULL, *v;
	uint64_t deadline = vmc_clock_deadline(timeout_ms);
	int r;

	if (!q) {
		close(fd);
		return vmc_error_set(err, -ENOMEM, "qmp %s: out of memory", name);
	}
	q->fd = fd;
	q->name = strdup(name);
	q->tok = json_tokener_new_ex(64);
	if (!q->name || !q->tok) {
		vmc_qmp_close(q);
		return vmc_error_set(err, -ENOMEM, "qmp %s: out of memory", name);
	}
	r = wait_reply(q, NULL, deadline, &greeting, "the greeting", err);
	if (r < 0)
		goto fail;
	if (!json_object_object_get_ex(greeting, "QMP", &v)) {
		json_object_put(greeting);
		r = vmc_error_set(err, -EPROTO, "qmp %s: no QMP greeting (is this a QMP socket?)",
				  name);
		goto fail;
	}
	json_object_put(greeting);
	r = vmc_qmp_command(q, "qmp_capabilities", NULL, vmc_clock_remaining_ms(deadline), NULL,
			    err);
	if (r < 0)
		goto fail;
	*out = q;
	return 0;
fail:
	vmc_qmp_close(q);
	return r;
}

int vmc_qmp_connect(const char *path, int timeout_ms, struct vmc_qmp **out, struct vmc_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return vmc_error_set(err, -ENAMETOOLONG, "qmp %s: path too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vmc_error_set(err, -errno, "qmp %s: socket: %s", path, strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return vmc_error_set(err, -e, "qmp %s: connect: %s", path, strerror(e));
	}
	return vmc_qmp_open_fd(fd, path, timeout_ms, out, err);
}

void vmc_qmp_close(struct vmc_qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	for (size_t i = 0; i < q->n_events; i++)
		vmc_qmp_event_free(&q->events[i]);
	free(q->events);
	for (size_t i = 0; i < q->n_lines; i++)
		free(q->lines[(q->head_line + i) % TRANSCRIPT_MAX].text);
	free(q->lines);
	if (q->tok)
		json_tokener_free(q->tok);
	free(q->buf);
	free(q->name);
	free(q->last_cmd);
	free(q->err_class);
	free(q->err_desc);
	free(q);
}

static ssize_t find_event(struct vmc_qmp *q, const char *name, vmc_qmp_match_fn match, void *ctx)
{
	for (size_t i = 0; i < q->n_events; i++)
		if (!strcmp(q->events[i].name, name) && (!match || match(&q->events[i], ctx)))
			return (ssize_t)i;
	return -1;
}

bool vmc_qmp_has_event(struct vmc_qmp *q, const char *name, vmc_qmp_match_fn match, void *ctx)
{
	return find_event(q, name, match, ctx) >= 0;
}

int vmc_qmp_wait_event(struct vmc_qmp *q, const char *name, vmc_qmp_match_fn match, void *ctx,
		       uint64_t deadline_ns, struct vmc_qmp_event *out, struct vmc_error *err)
{
	for (;;) {
		ssize_t i = find_event(q, name, match, ctx);
		int r;

		if (i >= 0) {
			*out = q->events[i];
			memmove(&q->events[i], &q->events[i + 1],
				(q->n_events - (size_t)i - 1) * sizeof(*q->events));
			q->n_events--;
			return 0;
		}
		r = read_some(q, vmc_clock_remaining_ms(deadline_ns), err);
		if (r == -ETIMEDOUT)
			return vmc_error_set(err, -ETIMEDOUT, "qmp %s: no %s event in time",
					     q->name, name);
		if (r < 0)
			return r;
		r = parse_buffered(q, "", NULL, err);
		if (r < 0)
			return r;
	}
}

void vmc_qmp_flush_events(struct vmc_qmp *q)
{
	for (size_t i = 0; i < q->n_events; i++)
		vmc_qmp_event_free(&q->events[i]);
	q->n_events = 0;
}

int vmc_qmp_pump(struct vmc_qmp *q, struct vmc_error *err)
{
	for (;;) {
		int r = read_some(q, 0, err);

		if (r == -ETIMEDOUT)
			return 0;
		if (r < 0)
			return r;
		r = parse_buffered(q, "", NULL, err);
		if (r < 0)
			return r;
	}
}

int vmc_qmp_fd(const struct vmc_qmp *q)
{
	return q->fd;
}
