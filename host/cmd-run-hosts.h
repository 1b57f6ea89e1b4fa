/* SPDX-License-Identifier: MIT */
/*
 * vmcheck run --hosts: the suite on several libvirt hosts at once. One
 * child process per host runs the single-host path and writes its JSON
 * lines report to a pipe; the parent reads every child's steps back, tags
 * them with the host and feeds its own reports as they arrive.
 */
#ifndef VMC_CMD_RUN_HOSTS_H
#define VMC_CMD_RUN_HOSTS_H

#include <stdbool.h>
#include <stdio.h>

#include "report.h"

struct vmc_hosts {
	size_t n;
	char **uris;   /* as given */
	char **labels; /* short and unique: "a.example", "a.example#2", a local URI whole */
};

/*
 * vmc_hosts_label - the label of @uri in reports: its host (with a port if
 * any, without a user: qemu+ssh://root@a.example:2222/system gives
 * "a.example:2222"), or the whole URI when it names no host
 * (qemu:///system). Returns a string to free, NULL on ENOMEM.
 */
char *vmc_hosts_label(const char *uri);

/*
 * vmc_hosts_parse - split @list ("URI1,URI2,...") into @out, with labels
 * (a label already taken gets "#2", "#3", ...).
 * @twice_ok: may a URI be given twice (two transient domains on one daemon
 * are fine; one --domain twice is not).
 * Returns 0; -EINVAL with @err set (an empty entry, a URI twice), or
 * -ENOMEM. @out is untouched on failure; release it with vmc_hosts_free().
 */
int vmc_hosts_parse(const char *list, bool twice_ok, struct vmc_hosts *out, struct vmc_error *err);

void vmc_hosts_free(struct vmc_hosts *h);

struct vmc_hosts_job {
	/*
	 * Runs in the child for host @uri: the suite with a JSON lines report
	 * on @json_fd (taken over) and no other report; returns the exit code.
	 * The child's stdin and stdout are /dev/null, its stderr goes to the
	 * parent, its signal mask is the caller's; SIGTERM comes when the
	 * parent dies.
	 */
	int (*run)(const char *uri, int json_fd, void *arg);
	void *arg;
	struct vmc_report *const *reports; /* the parent's: every host's steps */
	size_t n_reports;
	FILE *log; /* the children's stderr, each line prefixed "[LABEL] " */
};

/*
 * vmc_hosts_run - run @job on every host of @h at once and wait for all.
 * Call it before anything of libvirt's is set up in this process (the
 * children fork without exec). Every step of every host reaches every
 * report with rec->host set to the host's label. A child that ends without
 * its own verdict (exit status 2: no connection, no domain; another status
 * without a failed step; a signal) adds one failed step, check "host":
 * "connect" if it reported no step, "exit" otherwise; a line that is not a
 * step adds a failed step "report". SIGINT and SIGTERM are forwarded to the
 * children, which stop cleanly; the reports are finished when every child
 * has been reaped. The signal mask is restored on return.
 * Returns VMC_EXIT_OK if no step failed, VMC_EXIT_FAIL otherwise.
 */
int vmc_hosts_run(const struct vmc_hosts *h, const struct vmc_hosts_job *job);

#endif
