/* SPDX-License-Identifier: MIT */
/*
 * The fake QEMU: a thread that plays a transcript on its end of a socketpair
 * and keeps the first mismatch with what the client sent.
 */
#include "qmp-replay.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "macro.h"

struct reader {
	int fd;
	char buf[65536];
	size_t len;
};

static void _printf_(2, 3) mismatch(struct replay *r, const char *fmt, ...)
{
	va_list ap;

	if (r->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

/* One line from the client into @line (NUL-terminated); false at EOF. */
static bool read_line(struct reader *rd, char *line, size_t size)
{
	for (;;) {
		char *nl = memchr(rd->buf, '\n', rd->len);
		ssize_t n;

		if (nl) {
			size_t len = (size_t)(nl - rd->buf);

			snprintf(line, size, "%.*s", (int)len, rd->buf);
			memmove(rd->buf, nl + 1, rd->len - len - 1);
			rd->len -= len + 1;
			return true;
		}
		if (rd->len == sizeof(rd->buf))
			return false;
		n = TEMP_FAILURE_RETRY(read(rd->fd, rd->buf + rd->len, sizeof(rd->buf) - rd->len));
		if (n <= 0)
			return false;
		rd->len += (size_t)n;
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void write_pieces(int fd, const char *s, size_t len, size_t piece)
{
	while (len > 0) {
		size_t n = len < piece ? len : piece;

		if (send(fd, s, n, MSG_NOSIGNAL) < 0)
			return;
		s += n;
		len -= n;
		if (len)
			sleep_ms(2);
	}
}

/* C: check the next command against @want. */
static bool expect_command(struct replay *r, struct reader *rd, const char *want, char *id,
			   size_t idsize)
{
	char line[65536];
	json_object *got, *exp, *v, *g = NULL, *e = NULL;
	bool ok;

	exp = json_tokener_parse(want);
	if (!exp) {
		mismatch(r, "transcript: bad C: line %s", want);
		return false;
	}
	if (!read_line(rd, line, sizeof(line))) {
		mismatch(r, "client closed; expected %s", want);
		json_object_put(exp);
		return false;
	}
	got = json_tokener_parse(line);
	if (got && json_object_object_get_ex(got, "id", &v))
		snprintf(id, idsize, "%s", json_object_get_string(v));
	json_object_object_get_ex(got, "execute", &v);
	json_object_object_get_ex(exp, "execute", &e);
	ok = got && v && e && !strcmp(json_object_get_string(v), json_object_get_string(e));
	json_object_object_get_ex(got, "arguments", &g);
	json_object_object_get_ex(exp, "arguments", &e);
	ok = ok && ((!g && !e) || (g && e && json_object_equal(g, e)));
	if (!ok)
		mismatch(r, "expected %s, got %s", want, line);
	json_object_put(got);
	json_object_put(exp);
	return ok;
}

/*
 * S: the line as recorded (QEMU's own spacing), with a reply's "id" value
 * replaced by the last command's.
 */
static char *server_line(const char *text, const char *id)
{
	json_object *o = json_tokener_parse(text), *v;
	char needle[256], *s = NULL;
	const char *at;

	if (!o)
		return NULL;
	if (json_object_object_get_ex(o, "id", &v)) {
		snprintf(needle, sizeof(needle), "\"id\": \"%s\"", json_object_get_string(v));
		at = strstr(text, needle);
		if (at && asprintf(&s, "%.*s\"id\": \"%s\"%s\r\n", (int)(at - text), text, id,
				   at + strlen(needle)) < 0)
			s = NULL;
	} else if (asprintf(&s, "%s\r\n", text) < 0) {
		s = NULL;
	}
	json_object_put(o);
	return s;
}

static void *play(void *arg)
{
	struct replay *r = arg;
	struct reader rd = { .fd = r->fd };
	char id[128] = "", line[256];
	size_t split = 0;
	long cut = -1;
	bool open = true;

	for (char *l = r->script; open && *l != '\x01'; l += strlen(l) + 1) {
		if (!*l || *l == '#')
			continue;
		if (!strncmp(l, "C: ", 3)) {
			open = expect_command(r, &rd, l + 3, id, sizeof(id));
		} else if (!strncmp(l, "S: ", 3)) {
			_cleanup_free_ char *s = server_line(l + 3, id);

			if (!s) {
				mismatch(r, "transcript: bad S: line %s", l);
				break;
			}
			if (cut >= 0) {
				write_pieces(r->fd, s, (size_t)cut, (size_t)cut);
				open = false;
			} else {
				write_pieces(r->fd, s, strlen(s), split ? split : strlen(s));
			}
			split = 0;
		} else if (!strncmp(l, "!split ", 7)) {
			split = strtoul(l + 7, NULL, 10);
		} else if (!strncmp(l, "!cut ", 5)) {
			cut = strtol(l + 5, NULL, 10);
		} else if (!strncmp(l, "!raw ", 5)) {
			write_pieces(r->fd, l + 5, strlen(l + 5), strlen(l + 5));
			write_pieces(r->fd, "\r\n", 2, 2);
		} else if (!strcmp(l, "!close")) {
			open = false;
		} else if (!strncmp(l, "!sleep ", 7)) {
			sleep_ms(strtol(l + 7, NULL, 10));
		} else {
			mismatch(r, "transcript: unknown line %s", l);
			break;
		}
	}
	if (open && read_line(&rd, line, sizeof(line)))
		mismatch(r, "command after the transcript's end: %s", line);
	close(r->fd);
	r->fd = -1;
	return NULL;
}

void replay_start(struct replay *r, const char *name, int *client)
{
	char path[4096];
	int sv[2];
	FILE *f;
	long size;

	memset(r, 0, sizeof(*r));
	snprintf(path, sizeof(path), "%s/../unit/transcripts/%s.txt", fx_fixtures_dir(), name);
	f = fopen(path, "re");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	r->script = calloc(1, (size_t)size + 2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r->script);
	CU_ASSERT_EQUAL_FATAL(fread(r->script, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	/* Lines become strings; \x01 marks the end. */
	for (char *c = r->script; c < r->script + size; c++)
		if (*c == '\n')
			*c = '\0';
	r->script[size] = '\0';
	r->script[size + 1] = '\x01';
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	r->fd = sv[0];
	*client = sv[1];
	CU_ASSERT_EQUAL_FATAL(pthread_create(&r->thread, NULL, play, r), 0);
}

const char *replay_finish(struct replay *r)
{
	pthread_join(r->thread, NULL);
	free(r->script);
	r->script = NULL;
	return r->error;
}
