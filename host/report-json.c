/* SPDX-License-Identifier: MIT */
/*
 * JSON lines: one object per step, written and flushed as the step ends.
 * Keys: check, step, operation, status ("passed", "failed", "skipped"),
 * message, notes, evidence (strings or null), timeline (ns since the start
 * of the run, null when not recorded: begin, action, reply, kernel, confirm,
 * event, end), latency_ms (null when not confirmed).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "report.h"

struct json_report {
	struct vmc_report base;
	FILE *fp;
};

/* @s cleaned for JSON, or null. Sets *@ok false on ENOMEM. */
static struct json_object *jstr(const char *s, bool *ok)
{
	struct json_object *o;
	char *c;

	if (!s)
		return NULL;
	c = vmc_report_clean(s);
	o = c ? json_object_new_string(c) : NULL;
	free(c);
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
	const char *keys[] = { "begin", "action", "reply", "kernel", "confirm", "event", "end" };
	const uint64_t ts[] = { rec->t_begin,   rec->t_action, rec->t_reply, rec->t_kernel,
				rec->t_confirm, rec->t_event,  rec->t_end };
	bool ok = o && tl;
	int ret = 0;

	for (size_t i = 0; ok && i < ARRAY_SIZE(keys); i++)
		put(tl, keys[i], jtime(ts[i], rec->t_zero, &ok), &ok);
	if (ok) {
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
	if (ok && fprintf(j->fp, "%s\n",
			  json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								    JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		ret = -EIO;
	if (!ok)
		ret = -ENOMEM;
	json_object_put(o);
	json_object_put(tl);
	if (fflush(j->fp) == EOF && !ret)
		ret = -errno;
	return ret;
}

static int json_finish(struct vmc_report *r)
{
	struct json_report *j = (struct json_report *)r;

	return fflush(j->fp) == EOF ? -errno : 0;
}

static void json_free(struct vmc_report *r)
{
	struct json_report *j = (struct json_report *)r;

	fclose(j->fp);
	free(j);
}

static const struct vmc_report_ops json_ops = {
	.step = json_step,
	.finish = json_finish,
	.free = json_free,
};

int vmc_report_json_new(const char *path, struct vmc_report **out, struct vmc_error *err)
{
	struct json_report *j = calloc(1, sizeof(*j));

	if (!j)
		return vmc_error_set(err, -ENOMEM, "json report: out of memory");
	j->fp = fopen(path, "we");
	if (!j->fp) {
		int e = errno;

		free(j);
		return vmc_error_set(err, -e, "json report %s: %s", path, strerror(e));
	}
	j->base.ops = &json_ops;
	*out = &j->base;
	return 0;
}
