/* SPDX-License-Identifier: MIT */
/* vmcheck watch: subscribe and print every snapshot the agent pushes. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "cmd.h"
#include "escape.h"
#include "print.h"

/* Unsubscribing on the way out is a courtesy: do not hang on it. */
#define UNSUBSCRIBE_TIMEOUT_MS 2000

static const char usage[] =
	"usage: vmcheck watch --agent SPEC [--json] [--section LIST]... [--coalesce-ms N]\n"
	"                     [--count N] [--timeout-ms N]\n"
	"\n"
	"Subscribe to the guest's changes: print the baseline, then every snapshot the\n"
	"agent pushes when the guest kernel announces a change (uevent, rtnetlink),\n"
	"with its causes, its latency and what changed since the previous one.\n"
	"\n"
	"  -a, --agent SPEC       unix:PATH, vserial:PATH, exec:COMMAND,\n"
	"                         ssh://USER@HOST[:PORT][/PATH] or\n"
	"                         libvirt-channel:DOMAIN/URI\n"
	"  -j, --json             one JSON object per line: each Response as received\n"
	"  -s, --section LIST     sections to watch (see vmcheck state --help)\n"
	"  -c, --coalesce-ms N    the agent's burst window (default: the agent's, 2 ms)\n"
	"  -n, --count N          exit after N events\n"
	"  -t, --timeout-ms N     fail when no event arrives within N ms\n"
	"  -h, --help             this text\n" VMC_CMD_SSH_USAGE "\n"
	"SIGINT and SIGTERM unsubscribe and exit 0. Exit status: 0 ok, 1 the agent\n"
	"failed or no event came in time, 2 usage or connection error.\n";

struct watch {
	struct vmc_agent_conn *c;
	bool json;
	uint64_t sub_id;
	Vmcheck__V1__Response *prev; /* holds the state the next diff starts from */
};

static const Vmcheck__V1__State *prev_state(const struct watch *w)
{
	if (!w->prev)
		return NULL;
	if (w->prev->kind_case == VMCHECK__V1__RESPONSE__KIND_SUBSCRIBED)
		return w->prev->subscribed->state;
	return w->prev->event->state;
}

static int subscribe(struct watch *w, uint32_t sections, uint32_t coalesce_ms)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Subscribe sub = VMCHECK__V1__SUBSCRIBE__INIT;
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp;
	const Vmcheck__V1__State *st;

	sub.sections = sections;
	sub.coalesce_ms = coalesce_ms;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_SUBSCRIBE;
	req.subscribe = &sub;
	if (vmc_agent_call(w->c, &req, VMC_CMD_TIMEOUT_MS, &rsp, &err) < 0)
		return vmc_cmd_fail(&err, VMC_EXIT_FAIL);
	if (vmc_agent_expect(w->c, rsp, VMCHECK__V1__RESPONSE__KIND_SUBSCRIBED, "subscribe", &err) <
	    0) {
		vmc_agent_response_free(w->c, rsp);
		return vmc_cmd_fail(&err, VMC_EXIT_FAIL);
	}
	w->sub_id = rsp->subscribed->subscription_id;
	w->prev = rsp;
	st = rsp->subscribed->state;
	if (w->json) {
		vmc_json_print(stdout, &rsp->base);
	} else {
		printf("subscribed to %s (subscription %llu)\n", vmc_agent_spec(w->c),
		       (unsigned long long)w->sub_id);
		if (st)
			vmc_print_summary(stdout, st);
		fflush(stdout);
	}
	if (st)
		vmc_print_section_errors(stderr, st);
	return VMC_EXIT_OK;
}

static void unsubscribe(struct watch *w)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Unsubscribe unsub = VMCHECK__V1__UNSUBSCRIBE__INIT;
	Vmcheck__V1__Response *rsp;

	unsub.subscription_id = w->sub_id;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_UNSUBSCRIBE;
	req.unsubscribe = &unsub;
	if (vmc_agent_call(w->c, &req, UNSUBSCRIBE_TIMEOUT_MS, &rsp, NULL) == 0)
		vmc_agent_response_free(w->c, rsp);
}

/* Print one push; returns true if it was an event of our subscription. */
static bool handle(struct watch *w, Vmcheck__V1__Response *rsp)
{
	const Vmcheck__V1__Event *ev = rsp->event;

	if (rsp->kind_case == VMCHECK__V1__RESPONSE__KIND_ERROR) {
		if (w->json)
			vmc_json_print(stdout, &rsp->base);
		vmc_esc_line(stderr, "vmcheck: %s: agent error: %s", vmc_agent_spec(w->c),
			     rsp->error->message ? rsp->error->message : "");
		vmc_agent_response_free(w->c, rsp);
		return false;
	}
	/* Another kind, or a subscription of an earlier session on the same port. */
	if (rsp->kind_case != VMCHECK__V1__RESPONSE__KIND_EVENT ||
	    ev->subscription_id != w->sub_id) {
		vmc_agent_response_free(w->c, rsp);
		return false;
	}
	if (w->json) {
		vmc_json_print(stdout, &rsp->base);
	} else {
		vmc_print_event(stdout, ev, prev_state(w), vmc_realtime_ns());
		fflush(stdout);
	}
	if (ev->state)
		vmc_print_section_errors(stderr, ev->state);
	/* Keep the newest snapshot that has a state to diff against. */
	if (ev->state) {
		vmc_agent_response_free(w->c, w->prev);
		w->prev = rsp;
	} else {
		vmc_agent_response_free(w->c, rsp);
	}
	return true;
}

/*
 * Print events until @count (0: no limit) have come, a signal arrives or
 * @timeout_ms (-1: none) passes without one. Returns the exit code.
 */
static int follow(struct watch *w, int sfd, uint64_t count, int timeout_ms)
{
	struct vmc_error err = VMC_ERROR_INIT;
	uint64_t seen = 0, last = vmc_mono_ns();

	while (!count || seen < count) {
		struct pollfd pfd[2] = {
			{ .fd = vmc_agent_fd(w->c), .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
		};
		Vmcheck__V1__Response *rsp;
		int r = vmc_agent_next_event(w->c, 0, &rsp, &err), wait = -1;

		if (r == 0) {
			if (handle(w, rsp)) {
				seen++;
				last = vmc_mono_ns();
			}
			continue;
		}
		if (r != -ETIMEDOUT)
			return vmc_cmd_fail(&err, VMC_EXIT_FAIL);
		vmc_error_clear(&err);
		if (timeout_ms >= 0) {
			uint64_t waited = (vmc_mono_ns() - last) / 1000000;

			if (waited >= (uint64_t)timeout_ms) {
				fprintf(stderr, "vmcheck: %s: no event within %d ms\n",
					vmc_agent_spec(w->c), timeout_ms);
				return VMC_EXIT_FAIL;
			}
			wait = timeout_ms - (int)waited;
		}
		r = poll(pfd, 2, wait);
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "vmcheck: watch: poll: %s\n", strerror(errno));
			return VMC_EXIT_FAIL;
		}
		if (pfd[1].revents & POLLIN)
			break;
	}
	return VMC_EXIT_OK;
}

struct watch_opts {
	bool json, has_timeout;
	uint32_t mask;
	uint64_t coalesce, count, timeout;
};

/* An option of watch's own (struct vmc_cmd_parser): 0, or -EINVAL after saying why. */
static int watch_option(int opt, const char *arg, void *ctx)
{
	struct watch_opts *o = ctx;

	switch (opt) {
	case 'j':
		o->json = true;
		return 0;
	case 's':
		return vmc_cmd_sections(arg, &o->mask);
	case 'c':
		return vmc_cmd_number("--coalesce-ms", arg, 0, 60000, &o->coalesce);
	case 'n':
		return vmc_cmd_number("--count", arg, 1, UINT64_MAX, &o->count);
	case 't':
		o->has_timeout = true;
		return vmc_cmd_number("--timeout-ms", arg, 0, INT32_MAX, &o->timeout);
	default:
		return -EINVAL;
	}
}

int vmc_cmd_watch(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "section", required_argument, NULL, 's' },
		{ "coalesce-ms", required_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'n' },
		{ "timeout-ms", required_argument, NULL, 't' },
		VMC_CMD_AGENT_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct watch_opts o = { 0 };
	const struct vmc_cmd_parser parser = {
		.shortopts = "a:js:c:n:t:h",
		.longopts = opts,
		.usage = usage,
		.option = watch_option,
		.ctx = &o,
	};
	struct watch w = { .c = NULL };
	const char *spec;
	int code, sfd;

	code = vmc_cmd_parse_agent(argc, argv, &parser, &spec);
	if (code != VMC_CMD_PARSED)
		return code;
	w.json = o.json;

	code = vmc_cmd_open(spec, &w.c, NULL);
	if (code)
		return code;
	/* From here on a signal means "stop cleanly", never an abrupt death. */
	sfd = vmc_cmd_signals_fd();
	if (sfd < 0) {
		fprintf(stderr, "vmcheck: watch: signalfd: %s\n", strerror(errno));
		vmc_agent_close(w.c);
		return VMC_EXIT_FAIL;
	}
	code = subscribe(&w, o.mask, (uint32_t)o.coalesce);
	if (code == VMC_EXIT_OK) {
		code = follow(&w, sfd, o.count, o.has_timeout ? (int)o.timeout : -1);
		unsubscribe(&w);
	}
	if (w.prev)
		vmc_agent_response_free(w.c, w.prev);
	vmc_agent_close(w.c);
	close(sfd);
	return code;
}
