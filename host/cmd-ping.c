/* SPDX-License-Identifier: MIT */
/* vmcheck ping: Hello round trips, the cheapest request there is. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cmd.h"
#include "escape.h"
#include "print.h"

static const char usage[] =
	"usage: vmcheck ping --agent SPEC [--count N] [--json]\n"
	"\n"
	"Measure the round trip to the agent: after the first Hello, N more Hello\n"
	"requests one after the other; print min, p50, p99 and max in microseconds\n"
	"and the request rate.\n"
	"\n"
	"  -a, --agent SPEC   unix:PATH, vserial:PATH, exec:COMMAND,\n"
	"                     ssh://USER@HOST[:PORT][/PATH] or\n"
	"                     libvirt-channel:DOMAIN/URI\n"
	"  -n, --count N      round trips (default 100)\n"
	"  -j, --json         one JSON object\n"
	"  -h, --help         this text\n" VMC_CMD_SSH_USAGE;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile @p of the @n sorted samples. */
static uint64_t percentile(const uint64_t *v, size_t n, unsigned p)
{
	size_t rank = (n * p + 99) / 100;

	return v[rank ? rank - 1 : 0];
}

struct ping_result {
	const char *spec, *agent_version, *transport;
	size_t n;
	uint64_t min, p50, p99, max, total; /* ns */
};

/* @v with one decimal, as JSON: json-c would print every digit of the double. */
static struct json_object *json_decimal(double v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.1f", v);
	return json_object_new_double_s(v, buf);
}

static void print_json(const struct ping_result *r)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return;
	json_object_object_add(o, "agent", json_object_new_string(r->spec));
	json_object_object_add(o, "agent_version", json_object_new_string(r->agent_version));
	json_object_object_add(o, "transport", json_object_new_string(r->transport));
	json_object_object_add(o, "count", json_object_new_uint64(r->n));
	json_object_object_add(o, "min_us", json_decimal(r->min / 1e3));
	json_object_object_add(o, "p50_us", json_decimal(r->p50 / 1e3));
	json_object_object_add(o, "p99_us", json_decimal(r->p99 / 1e3));
	json_object_object_add(o, "max_us", json_decimal(r->max / 1e3));
	json_object_object_add(o, "requests_per_s", json_decimal(r->n / (r->total / 1e9)));
	vmc_esc_json(stdout,
		     json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
	putchar('\n');
	json_object_put(o);
}

static void print_text(const struct ping_result *r)
{
	/* The version and transport are the agent's words. */
	vmc_esc_line(stdout, "PING %s (agent %s over %s)", r->spec, r->agent_version, r->transport);
	printf("%zu round trips in %.1f ms, %.0f requests/s\n", r->n, r->total / 1e6,
	       r->n / (r->total / 1e9));
	printf("rtt min/p50/p99/max = %.1f/%.1f/%.1f/%.1f us\n", r->min / 1e3, r->p50 / 1e3,
	       r->p99 / 1e3, r->max / 1e3);
}

/* @n Hello round trips into @rtt (ns). Returns the exit code. */
static int ping(struct vmc_agent_conn *c, uint64_t *rtt, size_t n)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Hello hello = VMCHECK__V1__HELLO__INIT;
	struct vmc_error err = VMC_ERROR_INIT;

	hello.protocol_version = 1;
	hello.client = "vmcheck " VMC_VERSION " ping";
	req.kind_case = VMCHECK__V1__REQUEST__KIND_HELLO;
	req.hello = &hello;
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = vmc_mono_ns();
		Vmcheck__V1__Response *rsp;
		int r = vmc_agent_call(c, &req, VMC_CMD_TIMEOUT_MS, &rsp, &err);

		if (r < 0)
			return vmc_cmd_fail(&err, VMC_EXIT_FAIL);
		rtt[i] = vmc_mono_ns() - t0;
		r = vmc_agent_expect(c, rsp, VMCHECK__V1__RESPONSE__KIND_HELLO, "hello", &err);
		vmc_agent_response_free(c, rsp);
		if (r < 0)
			return vmc_cmd_fail(&err, VMC_EXIT_FAIL);
	}
	return VMC_EXIT_OK;
}

struct ping_opts {
	uint64_t count;
	bool json;
};

/* An option of ping's own (struct vmc_cmd_parser): 0, or -EINVAL after saying why. */
static int ping_option(int opt, const char *arg, void *ctx)
{
	struct ping_opts *o = ctx;

	switch (opt) {
	case 'n':
		return vmc_cmd_number("--count", arg, 1, 10000000, &o->count);
	case 'j':
		o->json = true;
		return 0;
	default:
		return -EINVAL;
	}
}

int vmc_cmd_ping(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		VMC_CMD_AGENT_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct ping_opts o = { .count = 100 };
	const struct vmc_cmd_parser parser = {
		.shortopts = "a:n:jh",
		.longopts = opts,
		.usage = usage,
		.option = ping_option,
		.ctx = &o,
	};
	Vmcheck__V1__Response *hello = NULL;
	struct vmc_agent_conn *c = NULL;
	struct ping_result res = { 0 };
	_cleanup_free_ uint64_t *rtt = NULL;
	const char *spec;
	uint64_t count;
	int code;

	code = vmc_cmd_parse_agent(argc, argv, &parser, &spec);
	if (code != VMC_CMD_PARSED)
		return code;
	count = o.count;
	rtt = calloc(count, sizeof(*rtt));
	if (!rtt) {
		fprintf(stderr, "vmcheck: ping: %s\n", strerror(ENOMEM));
		return VMC_EXIT_FAIL;
	}

	code = vmc_cmd_open(spec, &c, &hello);
	if (code)
		return code;
	code = ping(c, rtt, count);
	if (code == VMC_EXIT_OK) {
		res.spec = spec;
		res.agent_version = hello->hello->agent_version;
		res.transport = hello->hello->transport;
		res.n = count;
		for (size_t i = 0; i < count; i++)
			res.total += rtt[i];
		qsort(rtt, count, sizeof(*rtt), cmp_u64);
		res.min = rtt[0];
		res.p50 = percentile(rtt, count, 50);
		res.p99 = percentile(rtt, count, 99);
		res.max = rtt[count - 1];
		if (o.json)
			print_json(&res);
		else
			print_text(&res);
	}
	vmc_agent_response_free(c, hello);
	vmc_agent_close(c);
	return code;
}
