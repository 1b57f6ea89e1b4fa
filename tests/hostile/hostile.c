/* SPDX-License-Identifier: MIT */
/*
 * vmcheck-hostile: a fake agent that attacks the host through the real
 * protocol, one attack per run (--mode NAME), on its stdin and stdout
 * (vmcheck --agent "exec:build/vmcheck-hostile --mode links") or on the
 * first connection to a unix socket (--listen PATH; then the host's peak
 * RSS is the host's alone). For tests of the host's bounds only: never part
 * of all, install or the packages.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "pb.h"

enum mode {
	M_LINKS,       /* a State of 100000 links */
	M_HOSTNAME,    /* a hostname of 1 MiB */
	M_ESCAPES,     /* terminal escape sequences in every string */
	M_UTF8,        /* invalid UTF-8 in every string */
	M_FLOOD,       /* after the first request past Hello, pushes at full speed, forever */
	M_FLOOD_BIG,   /* the same, each push (and reply) the largest frame the host accepts */
	M_WRONG_IDS,   /* every reply with an id nobody asked for */
	M_UNSOLICITED, /* after Hello, replies to no request, at full speed, forever */
	M_FUTURE,      /* a Hello claiming protocol 2 */
	M_MAX_FRAME,   /* every reply exactly the largest frame the host accepts */
	M_OVER_MAX,    /* a reply one byte over that */
};

static const char *const mode_names[] = {
	"links",     "hostname",    "escapes", "utf8",      "flood",    "flood-big",
	"wrong-ids", "unsolicited", "future",  "max-frame", "over-max",
};

static enum mode mode;
static int in_fd = STDIN_FILENO, out_fd = STDOUT_FILENO;
/* Set by send_response() instead of writing (a frame to repeat without end). */
static uint8_t **keep_frame;
static size_t keep_len;
static unsigned serial; /* numbers the strings, so that every one differs */

#define LINKS_N 100000
#define HOSTNAME_BYTES ((size_t)1 << 20)

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("vmcheck-hostile: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		die("out of memory");
	return p;
}

/* A string for a field: the mode's poison, numbered. Never freed (one short run). */
static char *str(const char *plain)
{
	char *s;
	int r;

	switch (mode) {
	case M_ESCAPES:
		r = asprintf(&s, "\x1b]0;pwned %u\x07\x1b[2J\x1b[31m%s\x1b[0m\r\b\x7f\x9b",
			     serial++, plain);
		break;
	case M_UTF8:
		r = asprintf(&s, "%s\xff\xfe\xc3\x28\xed\xa0\x80\xf4\x90\x80\x80%u", plain,
			     serial++);
		break;
	default:
		r = asprintf(&s, "%s", plain);
		break;
	}
	if (r < 0)
		die("out of memory");
	return s;
}

static Vmcheck__V1__Link *link_new(unsigned i, bool rich)
{
	Vmcheck__V1__Link *l = xcalloc(1, sizeof(*l));
	char name[32];

	vmcheck__v1__link__init(l);
	snprintf(name, sizeof(name), "h%u", i);
	l->name = rich ? str(name) : strdup(name);
	l->ifindex = i + 1;
	if (rich) {
		Vmcheck__V1__Address *a = xcalloc(1, sizeof(*a));

		vmcheck__v1__address__init(a);
		a->family = 2;
		a->address = str("10.0.2.15");
		a->prefixlen = 24;
		a->scope = str("global");
		l->mac = str("52:54:00:12:34:56");
		l->operstate = str("up");
		l->carrier = VMCHECK__V1__LINK__CARRIER__CARRIER_UP;
		l->mtu = 1500;
		l->driver = str("virtio_net");
		l->pci_address = str("0000:00:03.0");
		l->devpath = str("devices/pci0000:00/0000:00:03.0/virtio0/net/eth0");
		l->addresses = xcalloc(1, sizeof(*l->addresses));
		l->addresses[0] = a;
		l->n_addresses = 1;
	}
	return l;
}

/* The State every reply and push carries, poisoned as the mode says. */
static Vmcheck__V1__State *state_new(void)
{
	Vmcheck__V1__State *st = xcalloc(1, sizeof(*st));
	Vmcheck__V1__System *sys = xcalloc(1, sizeof(*sys));
	bool rich = mode == M_ESCAPES || mode == M_UTF8;
	size_t n_links = mode == M_LINKS ? LINKS_N : 2;

	vmcheck__v1__state__init(st);
	vmcheck__v1__system__init(sys);
	st->generation = ++serial;
	st->boot_id = str("00000000-0000-4000-8000-000000000000");
	sys->boot_id = st->boot_id;
	sys->uptime_ms = 1000;
	sys->kernel_release = str("6.1.0-hostile");
	sys->kernel_version = str("#1 SMP PREEMPT_DYNAMIC");
	sys->machine = str("x86_64");
	sys->os_id = str("debian");
	sys->os_version_id = str("12");
	sys->os_pretty_name = str("Debian GNU/Linux 12 (bookworm)");
	sys->power_states = str("freeze mem");
	sys->mem_sleep = str("s2idle [deep]");
	if (mode == M_HOSTNAME) {
		sys->hostname = xcalloc(1, HOSTNAME_BYTES + 1);
		memset(sys->hostname, 'h', HOSTNAME_BYTES);
	} else {
		sys->hostname = str("hostile");
	}
	st->system = sys;
	st->links = xcalloc(n_links, sizeof(*st->links));
	for (size_t i = 0; i < n_links; i++)
		st->links[i] = link_new((unsigned)i, rich);
	st->n_links = n_links;
	st->sections = VMCHECK__V1__SECTION__SECTION_SYSTEM | VMCHECK__V1__SECTION__SECTION_LINKS;
	if (rich) {
		Vmcheck__V1__Block *b = xcalloc(1, sizeof(*b));
		Vmcheck__V1__Cpus *cpus = xcalloc(1, sizeof(*cpus));
		Vmcheck__V1__Cpu *cpu = xcalloc(1, sizeof(*cpu));
		Vmcheck__V1__Pci *pci = xcalloc(1, sizeof(*pci));
		Vmcheck__V1__PciFunction *fn = xcalloc(1, sizeof(*fn));

		vmcheck__v1__block__init(b);
		b->name = str("vda");
		b->type = str("disk");
		b->serial = str("serial");
		b->model = str("model");
		b->driver = str("virtio_blk");
		b->pci_address = str("0000:00:04.0");
		b->size_bytes = 1 << 30;
		b->partitions = xcalloc(1, sizeof(char *));
		b->partitions[0] = str("vda1");
		b->n_partitions = 1;
		st->blocks = xcalloc(1, sizeof(*st->blocks));
		st->blocks[0] = b;
		st->n_blocks = 1;
		vmcheck__v1__cpus__init(cpus);
		vmcheck__v1__cpu__init(cpu);
		cpu->online = cpu->present = true;
		cpu->thread_siblings = str("0");
		cpus->possible = str("0");
		cpus->present = str("0");
		cpus->online = str("0");
		cpus->offline = str("");
		cpus->cpus = xcalloc(1, sizeof(*cpus->cpus));
		cpus->cpus[0] = cpu;
		cpus->n_cpus = 1;
		st->cpus = cpus;
		vmcheck__v1__pci__init(pci);
		vmcheck__v1__pci_function__init(fn);
		fn->address = str("0000:00:03.0");
		fn->vendor = 0x1af4;
		fn->device = 0x1041;
		fn->driver = str("virtio-pci");
		fn->virtio_device = str("virtio0");
		fn->virtio_driver = str("virtio_net");
		pci->functions = xcalloc(1, sizeof(*pci->functions));
		pci->functions[0] = fn;
		pci->n_functions = 1;
		st->pci = pci;
		st->sections |= VMCHECK__V1__SECTION__SECTION_BLOCKS |
				VMCHECK__V1__SECTION__SECTION_CPUS |
				VMCHECK__V1__SECTION__SECTION_PCI;
	}
	return st;
}

/*
 * Write @r as one frame. In max-frame mode an unknown field (number 1000,
 * which the host keeps and ignores) pads the payload to exactly the largest
 * the host accepts. A write that fails means the host hung up: exit.
 */
static void send_response(Vmcheck__V1__Response *r)
{
	ProtobufCMessageUnknownField pad = { .tag = 1000,
					     .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED };
	uint8_t *frame;
	size_t len;

	if (mode == M_MAX_FRAME || mode == M_FLOOD_BIG) {
		/*
		 * protobuf-c keeps an unknown field's bytes after its tag:
		 * the length varint, then the payload. Tag 1000 takes 2 bytes.
		 */
		size_t room =
			VMC_FRAME_MAX_DEFAULT - protobuf_c_message_get_packed_size(&r->base) - 2;

		for (size_t lb = 1; lb <= 5 && !pad.data; lb++) {
			size_t want = room - lb, k = 0;

			if (want >> (7 * lb) || (lb > 1 && !(want >> (7 * (lb - 1)))))
				continue;
			pad.len = room;
			pad.data = xcalloc(1, room);
			for (size_t v = want;; v >>= 7) {
				pad.data[k++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
				if (v < 0x80)
					break;
			}
		}
		r->base.n_unknown_fields = 1;
		r->base.unknown_fields = &pad;
	}
	if (vmc_pb_frame(&r->base, VMC_FRAME_MAX_DEFAULT, &frame, &len) < 0)
		die("a reply over the frame limit: %zu bytes",
		    protobuf_c_message_get_packed_size(&r->base));
	if (pad.data && len != VMC_FRAME_HDR + VMC_FRAME_MAX_DEFAULT)
		die("max-frame: a frame of %zu bytes", len);
	r->base.n_unknown_fields = 0;
	r->base.unknown_fields = NULL;
	free(pad.data);
	if (keep_frame) {
		*keep_frame = frame;
		keep_len = len;
		return;
	}
	if (vmc_write_all(out_fd, frame, len, -1, NULL) < 0)
		exit(0);
	free(frame);
}

static void send_hello(uint64_t id)
{
	Vmcheck__V1__Response r = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__HelloReply h = VMCHECK__V1__HELLO_REPLY__INIT;
	char *caps[] = { "state", "subscribe" };

	h.protocol_version = mode == M_FUTURE ? 2 : 1;
	h.protocol_minor = mode == M_FUTURE ? 0 : 2;
	h.agent_version = str("vmcheck-hostile 9.9");
	h.capabilities = caps;
	h.n_capabilities = 2;
	h.max_frame = VMC_FRAME_MAX_DEFAULT;
	h.boot_id = str("00000000-0000-4000-8000-000000000000");
	h.transport = str("stdio");
	r.id = id;
	r.kind_case = VMCHECK__V1__RESPONSE__KIND_HELLO;
	r.hello = &h;
	send_response(&r);
}

static void send_state(uint64_t id)
{
	Vmcheck__V1__Response r = VMCHECK__V1__RESPONSE__INIT;

	r.id = id;
	r.kind_case = VMCHECK__V1__RESPONSE__KIND_STATE;
	r.state = state_new();
	send_response(&r);
}

static void send_subscribed(uint64_t id)
{
	Vmcheck__V1__Response r = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__Subscribed s = VMCHECK__V1__SUBSCRIBED__INIT;

	s.subscription_id = 1;
	s.state = state_new();
	r.id = id;
	r.kind_case = VMCHECK__V1__RESPONSE__KIND_SUBSCRIBED;
	r.subscribed = &s;
	send_response(&r);
}

static void send_event(void)
{
	Vmcheck__V1__Response r = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__Event ev = VMCHECK__V1__EVENT__INIT;
	Vmcheck__V1__Cause cause = VMCHECK__V1__CAUSE__INIT;
	Vmcheck__V1__Cause *causes[] = { &cause };

	cause.source = VMCHECK__V1__CAUSE__SOURCE__UEVENT;
	cause.action = str("change");
	cause.subsystem = str("net");
	ev.subscription_id = 1;
	ev.state = state_new();
	ev.causes = causes;
	ev.n_causes = 1;
	r.kind_case = VMCHECK__V1__RESPONSE__KIND_EVENT;
	r.event = &ev;
	send_response(&r);
}

static void send_error(uint64_t id, const char *what)
{
	Vmcheck__V1__Response r = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__Error e = VMCHECK__V1__ERROR__INIT;

	e.code = VMCHECK__V1__ERROR__CODE__UNSUPPORTED;
	e.message = str("not in this fake agent");
	e.request = (char *)what;
	r.id = id;
	r.kind_case = VMCHECK__V1__RESPONSE__KIND_ERROR;
	r.error = &e;
	send_response(&r);
}

/* The next Request on stdin; NULL at its end. */
static Vmcheck__V1__Request *read_request(struct vmc_frame_reader *rd)
{
	for (;;) {
		const uint8_t *p;
		uint8_t buf[65536];
		size_t n;
		ssize_t got;
		int r = vmc_frame_next(rd, &p, &n);

		if (r == 1)
			return vmcheck__v1__request__unpack(NULL, n, p);
		got = read(in_fd, buf, sizeof(buf));
		if (got <= 0)
			return NULL;
		if (vmc_frame_feed(rd, buf, (size_t)got) < 0)
			die("out of memory");
	}
}

/* over-max: a header one byte over the limit, then that many bytes. */
static void send_over_max(void)
{
	size_t n = VMC_FRAME_MAX_DEFAULT + 1;
	uint8_t hdr[VMC_FRAME_HDR], *body = xcalloc(1, n);

	vmc_frame_header(hdr, (uint32_t)n);
	if (vmc_write_all(out_fd, hdr, sizeof(hdr), -1, NULL) < 0 ||
	    vmc_write_all(out_fd, body, n, -1, NULL) < 0)
		exit(0);
	free(body);
}

/*
 * Write the frame @fn sends, again and again, at full speed, until the host
 * hangs up: built once, so the fake's own memory stays flat.
 */
static _Noreturn void repeat(void (*fn)(uint64_t), uint64_t arg)
{
	uint8_t *frame = NULL;

	keep_frame = &frame;
	fn(arg);
	keep_frame = NULL;
	for (;;)
		if (vmc_write_all(out_fd, frame, keep_len, -1, NULL) < 0)
			exit(0);
}

static void send_event_arg(uint64_t unused)
{
	send_event();
}

/* Answer one request as the mode says. */
static void answer(const Vmcheck__V1__Request *req, bool *said_hello)
{
	uint64_t id = mode == M_WRONG_IDS ? req->id + 1000 : req->id;

	if (mode == M_OVER_MAX) {
		send_over_max();
		return;
	}
	if (mode == M_UNSOLICITED && *said_hello) {
		/* Replies to requests never made, until the host hangs up. */
		repeat(send_hello, req->id + 7919);
	}
	switch (req->kind_case) {
	case VMCHECK__V1__REQUEST__KIND_HELLO:
		send_hello(id);
		*said_hello = true;
		break;
	case VMCHECK__V1__REQUEST__KIND_GET_STATE:
		if (mode == M_FLOOD || mode == M_FLOOD_BIG)
			repeat(send_event_arg, 0);
		send_state(id);
		break;
	case VMCHECK__V1__REQUEST__KIND_SUBSCRIBE:
		send_subscribed(id);
		if (mode == M_FLOOD || mode == M_FLOOD_BIG)
			repeat(send_event_arg, 0);
		send_event();
		break;
	case VMCHECK__V1__REQUEST__KIND_UNSUBSCRIBE: {
		Vmcheck__V1__Response r = VMCHECK__V1__RESPONSE__INIT;
		Vmcheck__V1__Unsubscribed u = VMCHECK__V1__UNSUBSCRIBED__INIT;

		u.subscription_id = 1;
		r.id = id;
		r.kind_case = VMCHECK__V1__RESPONSE__KIND_UNSUBSCRIBED;
		r.unsubscribed = &u;
		send_response(&r);
		break;
	}
	default:
		send_error(id, "request");
		break;
	}
}

/*
 * Listen on @path and return the first connection. The socket is bound
 * under a temporary name and renamed: once @path exists, it is listening.
 */
static int accept_one(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char tmp[sizeof(sa.sun_path)];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), conn;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		die("--listen %s: path too long", path);
	memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
	unlink(tmp);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0 ||
	    rename(tmp, path) < 0)
		die("--listen %s: %s", path, strerror(errno));
	conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		die("--listen %s: accept: %s", path, strerror(errno));
	close(fd);
	unlink(path);
	return conn;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "listen", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vmc_frame_reader rd;
	Vmcheck__V1__Request *req;
	bool said_hello = false, found = false;
	const char *listen_path = NULL;
	int opt;

	while ((opt = getopt_long(argc, argv, "m:l:h", opts, NULL)) != -1) {
		if (opt == 'l') {
			listen_path = optarg;
			continue;
		}
		if (opt != 'm') {
			fputs("usage: vmcheck-hostile --mode MODE [--listen PATH]\n"
			      "(the protocol on stdin/stdout, or on the first connection to PATH)\n"
			      "modes:",
			      stderr);
			for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
				fprintf(stderr, " %s", mode_names[i]);
			fputc('\n', stderr);
			return opt == 'h' ? 0 : 2;
		}
		for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
			if (!strcmp(optarg, mode_names[i])) {
				mode = (enum mode)i;
				found = true;
			}
		if (!found)
			die("unknown mode \"%s\"", optarg);
	}
	if (!found)
		die("--mode MODE is required");
	signal(SIGPIPE, SIG_IGN);
	if (listen_path)
		in_fd = out_fd = accept_one(listen_path);
	vmc_frame_reader_init(&rd, 0);
	while ((req = read_request(&rd))) {
		answer(req, &said_hello);
		vmcheck__v1__request__free_unpacked(req, NULL);
	}
	vmc_frame_reader_free(&rd);
	return 0;
}
