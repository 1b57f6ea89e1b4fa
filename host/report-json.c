/* SPDX-License-Identifier: MIT */
/*
 * JSON lines: one object per step, written and flushed as the step ends.
 * Keys: host (only in a --hosts run), check, step, operation, status
 * ("passed", "failed", "skipped"), message, notes, evidence (strings or
 * null), timeline (ns since the start of the run, null when not recorded:
 * begin, action, reply, kernel, confirm, event, end), latency_ms (null when
 * not confirmed). The parser next to the writer reads a line back: a
 * --hosts run merges its hosts' reports with it.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <json-c/json.h>

#include "escape.h"
#include "report.h"

struct json_report {
	struct vmc_report base;
	FILE *fp;
	char *path; /* NULL: a fd */
};

/*
 * Append @line and a newline, whole or not at all: on a full file system
 * the part that went is cut off again, so every line in the file stays a
 * whole object (a pipe cannot be cut: its reader sees the line end short).
 */
static int write_line(struct json_report *j, const char *line)
{
	int fd = fileno(j->fp);
	off_t at = lseek(fd, 0, SEEK_END);
	size_t len = strlen(line), done = 0;
	struct iovec v[2] = { { (void *)line, len }, { "\n", 1 } };
	int e;

	while (done < len + 1) {
		ssize_t n;

		if (done < len) {
			v[0] = (struct iovec){ (char *)line + done, len - done };
			n = writev(fd, v, 2);
		} else {
			n = write(fd, "\n", 1);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n < 0 ? errno : EIO;
			if (at >= 0 && ftruncate(fd, at) == 0)
				lseek(fd, at, SEEK_SET);
			return -e;
		}
		done += (size_t)n;
	}
	return 0;
}

/* The timeline's members and the record's times they hold: one table for writer and parser. */
static const struct {
	const char *key;
	size_t off;
} timeline[] = {
	{ "begin", offsetof(struct vmc_step_record, t_begin) },
	{ "action", offsetof(struct vmc_step_record, t_action) },
	{ "reply", offsetof(struct vmc_step_record, t_reply) },
	{ "kernel", offsetof(struct vmc_step_record, t_kernel) },
	{ "confirm", offsetof(struct vmc_step_record, t_confirm) },
	{ "event", offsetof(struct vmc_step_record, t_event) },
	{ "end", offsetof(struct vmc_step_record, t_end) },
};

static uint64_t *time_of(struct vmc_step_record *rec, size_t i)
{
	return (uint64_t *)((char *)rec + timeline[i].off);
}

/*
 * @s as a JSON string, or null. Sets *@ok false on ENOMEM. Kept as it is:
 * the line is made valid UTF-8 as it is written (vmc_esc_json()).
 */
static struct json_object *jstr(const char *s, bool *ok)
{
	struct json_object *o;

	if (!s)
		return NULL;
	o = json_object_new_string(s);
	if (!o)
		*ok = false;
	return o;
}

static struct json_object *jtime(uint64_t t, uint64_t zero, bool *ok)
{
	struct json_object *o;

	if (!t)
		return NULL;
	o = json_object_new_int64(t >= zero ? (int64_t)(t - zero) : -(int64_t)(zero - t));
	if (!o)
		*ok = false;
	return o;
}

static void put(struct json_object *obj, const char *key, struct json_object *v, bool *ok)
{
	if (json_object_object_add(obj, key, v) < 0) {
		json_object_put(v);
		*ok = false;
	}
}

static int json_step(struct vmc_report *r, const struct vmc_step_record *rec)
{
	struct json_report *j = (struct json_report *)r;
	struct json_object *o = json_object_new_object(), *tl = json_object_new_object();
	bool ok = o && tl;
	int ret = 0;

	for (size_t i = 0; ok && i < ARRAY_SIZE(timeline); i++)
		put(tl, timeline[i].key,
		    jtime(*time_of((struct vmc_step_record *)rec, i), rec->t_zero, &ok), &ok);
	if (ok) {
		if (rec->host)
			put(o, "host", jstr(rec->host, &ok), &ok);
		put(o, "check", jstr(rec->check, &ok), &ok);
		put(o, "step", jstr(rec->name, &ok), &ok);
		put(o, "operation", jstr(rec->operation, &ok), &ok);
		put(o, "status", json_object_new_string(vmc_step_status_name(rec->status)), &ok);
		put(o, "message", jstr(rec->message, &ok), &ok);
		put(o, "timeline", tl, &ok);
		tl = NULL;
		if (rec->latency_ns >= 0) {
			char ms[32];

			snprintf(ms, sizeof(ms), "%.3f", (double)rec->latency_ns / 1e6);
			put(o, "latency_ms",
			    json_object_new_double_s((double)rec->latency_ns / 1e6, ms), &ok);
		} else {
			put(o, "latency_ms", NULL, &ok);
		}
		put(o, "notes", jstr(rec->notes, &ok), &ok);
		put(o, "evidence", jstr(rec->evidence, &ok), &ok);
	}
	if (ok) {
		_cleanup_free_ char *line = vmc_esc_json_str(
			json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE));

		ret = line ? write_line(j, line) : -ENOMEM;
	} else
		ret = -ENOMEM;
	json_object_put(o);
	json_object_put(tl);
	return ret;
}

/* Each line went out whole with write_line(): nothing is buffered. */
static int json_finish(struct vmc_report *r)
{
	return 0;
}

static void json_free(struct vmc_report *r)
{
	struct json_report *j = (struct json_report *)r;

	fclose(j->fp);
	free(j->path);
	free(j);
}

static const struct vmc_report_ops json_ops = {
	.step = json_step,
	.finish = json_finish,
	.free = json_free,
};

/* A report on @fp (taken over, also on failure). */
static int json_on(FILE *fp, struct vmc_report **out, struct vmc_error *err)
{
	struct json_report *j = calloc(1, sizeof(*j));

	if (!j) {
		fclose(fp);
		return vmc_error_set(err, -ENOMEM, "json report: out of memory");
	}
	j->fp = fp;
	j->base.ops = &json_ops;
	j->base.name = "the JSON lines pipe";
	*out = &j->base;
	return 0;
}

int vmc_report_json_new(const char *path, struct vmc_report **out, struct vmc_error *err)
{
	FILE *fp = fopen(path, "we");
	int e = errno;

	char *copy;
	int r;

	if (!fp)
		return vmc_error_set(err, -e, "json report %s: %s", path, strerror(e));
	copy = strdup(path);
	r = json_on(fp, out, err);
	if (r == 0) {
		((struct json_report *)*out)->path = copy;
		(*out)->name = copy ? copy : "the JSON lines file";
	} else {
		free(copy);
	}
	return r;
}

int vmc_report_json_new_fd(int fd, struct vmc_report **out, struct vmc_error *err)
{
	FILE *fp = fdopen(fd, "w");

	if (!fp) {
		int e = errno;

		close(fd);
		return vmc_error_set(err, -e, "json report on fd %d: %s", fd, strerror(e));
	}
	return json_on(fp, out, err);
}

/* ------------------------------------------------------------- parser */

/* Member @key of @o into *@s: a string, or null if @nullable. */
static bool get_str(struct json_object *o, const char *key, bool nullable, const char **s)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return false;
	*s = v ? json_object_get_string(v) : NULL;
	return v ? json_object_is_type(v, json_type_string) : nullable;
}

/* Member @key of timeline @tl into *@t: @zero + the offset, or 0 for null. */
static bool get_time(struct json_object *tl, const char *key, uint64_t zero, uint64_t *t)
{
	struct json_object *v;

	if (!json_object_object_get_ex(tl, key, &v))
		return false;
	/* Unsigned arithmetic: an offset before the start (negative) wraps back correctly. */
	*t = v ? zero + (uint64_t)json_object_get_int64(v) : 0;
	return !v || json_object_is_type(v, json_type_int);
}

static bool get_status(struct json_object *o, enum vmc_step_status *st)
{
	const char *s;

	if (!get_str(o, "status", false, &s))
		return false;
	for (int i = VMC_STEP_PASSED; i <= VMC_STEP_SKIPPED; i++)
		if (!strcmp(s, vmc_step_status_name(i))) {
			*st = i;
			return true;
		}
	return false;
}

static bool get_latency(struct json_object *o, struct vmc_step_record *rec)
{
	struct json_object *v;
	double ms;

	if (!json_object_object_get_ex(o, "latency_ms", &v))
		return false;
	rec->latency_ns = -1;
	if (!v)
		return true;
	if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
		return false;
	ms = json_object_get_double(v);
	if (!isfinite(ms) || ms < 0 || ms > 1e12)
		return false;
	/* The writer's latency is confirm - action, printed to the microsecond only. */
	if (rec->t_confirm && rec->t_action)
		rec->latency_ns = (int64_t)(rec->t_confirm - rec->t_action);
	else
		rec->latency_ns = (int64_t)(ms * 1e6 + 0.5);
	return true;
}

/* The first member of @o that is missing or mistyped, NULL if none. */
static const char *read_record(struct json_object *o, uint64_t t_zero, struct vmc_step_record *rec)
{
	struct json_object *tl;

	if (!json_object_is_type(o, json_type_object))
		return "(an object)";
	if (json_object_object_get_ex(o, "host", NULL) && !get_str(o, "host", false, &rec->host))
		return "host";
	if (!get_str(o, "check", false, &rec->check))
		return "check";
	if (!get_str(o, "step", false, &rec->name))
		return "step";
	if (!get_str(o, "operation", true, &rec->operation))
		return "operation";
	if (!get_status(o, &rec->status))
		return "status";
	if (!get_str(o, "message", true, &rec->message))
		return "message";
	if (!get_str(o, "notes", true, &rec->notes))
		return "notes";
	if (!get_str(o, "evidence", true, &rec->evidence))
		return "evidence";
	if (!json_object_object_get_ex(o, "timeline", &tl) ||
	    !json_object_is_type(tl, json_type_object))
		return "timeline";
	rec->t_zero = t_zero;
	for (size_t i = 0; i < ARRAY_SIZE(timeline); i++)
		if (!get_time(tl, timeline[i].key, t_zero, time_of(rec, i)))
			return timeline[i].key;
	if (!get_latency(o, rec))
		return "latency_ms";
	return NULL;
}

int vmc_report_json_parse(const char *line, uint64_t t_zero, struct vmc_report_json_step *out,
			  struct vmc_error *err)
{
	struct json_tokener *tok = json_tokener_new();
	struct vmc_step_record rec = { 0 };
	struct json_object *o;
	const char *bad;
	size_t len = strlen(line);

	if (!tok)
		return vmc_error_set(err, -ENOMEM, "report line: out of memory");
	o = json_tokener_parse_ex(tok, line, (int)len);
	if (!o || json_tokener_get_parse_end(tok) != len) {
		enum json_tokener_error e = json_tokener_get_error(tok);

		json_object_put(o);
		json_tokener_free(tok);
		return vmc_error_set(err, -EINVAL, "report line: %s",
				     e == json_tokener_success    ? "junk after the object"
				     : e == json_tokener_continue ? "truncated"
								  : json_tokener_error_desc(e));
	}
	json_tokener_free(tok);
	bad = read_record(o, t_zero, &rec);
	if (bad) {
		json_object_put(o);
		return vmc_error_set(err, -EINVAL, "report line: member %s missing or mistyped",
				     bad);
	}
	out->rec = rec;
	out->json = o;
	return 0;
}

void vmc_report_json_step_free(struct vmc_report_json_step *s)
{
	json_object_put(s->json);
	s->json = NULL;
}
