/* SPDX-License-Identifier: MIT */
/*
 * Reports of a run: human progress and summary (report-text.c), JUnit XML
 * (report-junit.c), JSON lines (report-json.c). The suite hands every
 * report each step as it ends; each writes it out and flushes at once, so a
 * crash loses nothing already measured.
 */
#ifndef VMC_REPORT_H
#define VMC_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "macro.h"

enum vmc_step_status {
	VMC_STEP_PASSED,
	VMC_STEP_FAILED,
	VMC_STEP_SKIPPED,
};

/*
 * One finished step. Times are host CLOCK_MONOTONIC nanoseconds, 0 when not
 * recorded; @t_zero is the start of the run, for relative times.
 */
struct vmc_step_record {
	const char *host;      /* the host's label in a --hosts run; NULL otherwise */
	const char *check;     /* "nic" */
	const char *name;      /* "plug nic1 (pciroot1, 52:54:00:12:34:01)" */
	const char *operation; /* "nic plug": latencies are summed up per operation */
	enum vmc_step_status status;
	const char *message;  /* why it failed or was skipped; NULL on pass */
	const char *notes;    /* lines added with vmc_step_note(), or NULL */
	const char *evidence; /* on failure: ladder, diff, kernel log, transcript; or NULL */
	uint64_t t_zero;
	uint64_t t_begin;   /* the step began */
	uint64_t t_action;  /* the action was issued */
	uint64_t t_reply;   /* the hypervisor (or agent) answered the action */
	uint64_t t_kernel;  /* the guest kernel saw the change (converted to host time) */
	uint64_t t_confirm; /* the confirming snapshot (or event) arrived */
	uint64_t t_event;   /* the last hypervisor event waited for arrived */
	uint64_t t_end;
	int64_t latency_ns; /* t_confirm - t_action; -1 when not confirmed */
};

struct vmc_report;

struct vmc_report_ops {
	/* A step ended: write it and flush. Returns 0 or -errno. */
	int (*step)(struct vmc_report *r, const struct vmc_step_record *rec);
	/* The run ended (the text report prints its summary). Returns 0 or -errno. */
	int (*finish)(struct vmc_report *r);
	void (*free)(struct vmc_report *r);
};

struct vmc_report {
	const struct vmc_report_ops *ops;
	/* What it writes to, for messages: a file's path, "standard output". */
	const char *name;
	/*
	 * A write failed (a full or read-only file system): the suite writes
	 * no more to it, so that it keeps what it had whole.
	 */
	bool broken;
};

/*
 * vmc_report_text_new - progress on @fp, one line per step, failures with
 * their evidence, and a summary table at the end; @verbose adds each
 * step's notes. @fp is not closed.
 */
int vmc_report_text_new(FILE *fp, bool verbose, struct vmc_report **out, struct vmc_error *err);

/*
 * vmc_report_text_new_hosts - the same for a --hosts run: progress lines
 * prefixed "[HOST] ", and the summary in one block per host (the @n @hosts
 * first, in their order; copied), then the total.
 */
int vmc_report_text_new_hosts(FILE *fp, bool verbose, const char *const *hosts, size_t n,
			      struct vmc_report **out, struct vmc_error *err);

/*
 * vmc_report_junit_new - JUnit XML in @path: one testsuite per check, one
 * testcase per step. Rewritten whole after each step (@path.tmp, then
 * rename), so the file is well-formed whenever it is read. Returns 0 or
 * -errno with @err set (the directory is not writable).
 */
int vmc_report_junit_new(const char *path, struct vmc_report **out, struct vmc_error *err);

/*
 * vmc_report_junit_new_hosts - the same for a --hosts run: one testsuite
 * per host instead (testcase classname: the check), first the @n @hosts
 * in their order (copied; present even before their first step), then
 * any other host of a step in first-seen order. Steps without a host keep
 * their check's testsuite.
 */
int vmc_report_junit_new_hosts(const char *path, const char *const *hosts, size_t n,
			       struct vmc_report **out, struct vmc_error *err);

/*
 * vmc_report_text_whole_at - what the text report says where the whole
 * evidence is, after a failed step's evidence with lines it cut ("the JSON
 * report r.json keeps it whole"): printf @fmt. @r is a text report.
 * Returns 0 or -ENOMEM.
 */
int vmc_report_text_whole_at(struct vmc_report *r, const char *fmt, ...) _printf_(2, 3);

/* vmc_report_json_new - one JSON object per step, a line each, in @path (truncated). */
int vmc_report_json_new(const char *path, struct vmc_report **out, struct vmc_error *err);

/*
 * vmc_report_json_new_fd - the same on @fd (a pipe), which the report takes
 * over: closed by vmc_report_free(), and by this function on failure.
 */
int vmc_report_json_new_fd(int fd, struct vmc_report **out, struct vmc_error *err);

struct json_object;

/* A step read back from a JSON line; the strings of @rec point into @json. */
struct vmc_report_json_step {
	struct vmc_step_record rec;
	struct json_object *json;
};

/*
 * vmc_report_json_parse - one line written by the JSON report back into a
 * record: times become @t_zero + their offset, latency_ns is confirm -
 * action (latency_ms has microseconds only), "host" is read if present.
 * Release @out with vmc_report_json_step_free(). Returns 0, or -EINVAL with
 * @err set when the line is not such an object (missing or mistyped
 * member); @out is untouched on failure.
 */
int vmc_report_json_parse(const char *line, uint64_t t_zero, struct vmc_report_json_step *out,
			  struct vmc_error *err);

/* Drops the JSON object behind @s->rec's strings. */
void vmc_report_json_step_free(struct vmc_report_json_step *s);

/* NULL is a no-op. */
void vmc_report_free(struct vmc_report *r);

/* "ok", "FAIL", "skip" / "passed", "failed", "skipped". */
const char *vmc_step_status_short(enum vmc_step_status st);
const char *vmc_step_status_name(enum vmc_step_status st);

#endif
