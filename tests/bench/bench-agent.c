/* SPDX-License-Identifier: MIT */
/*
 * bench-agent - vmcheck-agent against qemu-ga on the same machine
 *
 * For each pair of equivalent operations, N requests (after a warm-up) go
 * one after the other on one unix-socket connection per agent; each round
 * trip, from the request's write to the last byte of its reply, is timed
 * with CLOCK_MONOTONIC. Replies are checked (id, kind, no error) outside
 * the timed region. qemu-ga speaks JSON lines: one {"execute":...} per
 * request, one {"return":...} line per reply.
 *
 * Prints one table (p50/p99 latency, requests/s, qemu-ga p50 / vmcheck p50),
 * then each agent's RSS and binary. Exit status: 0, 1 when an agent failed
 * or a reply was wrong, 2 on usage errors.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "frame.h"
#include "macro.h"
#include "pb.h"

#define REPLY_TIMEOUT_MS 10000
/* The agent never sends more than its --max-frame, which is at most 1 GiB. */
#define MAX_REPLY (1u << 30)

struct op {
	const char *name;
	bool hello;        /* vmcheck: Hello, else GetState */
	uint32_t sections; /* GetState.sections; 0 = all */
	const char *qga;   /* the equivalent qemu-ga command */
};

enum {
	OP_PING,
	OP_SNAPSHOT,
	OP_LINKS,
	N_OPS
};

static const struct op ops[N_OPS] = {
	[OP_PING] = { "ping / guest-ping", true, 0, "guest-ping" },
	[OP_SNAPSHOT] = { "state, all sections / guest-get-memory-blocks", false, 0,
			  "guest-get-memory-blocks" },
	[OP_LINKS] = { "state, links / guest-network-get-interfaces", false,
		       VMCHECK__V1__SECTION__SECTION_LINKS, "guest-network-get-interfaces" },
};

struct conn {
	const char *what; /* "vmcheck-agent", "qemu-ga": for messages */
	int fd;
	struct vmc_frame_reader rd; /* vmcheck replies */
	char *line;                 /* qemu-ga replies */
	size_t cap, len, used;      /* used: bytes of the last line, newline included */
	uint64_t next_id;
};

struct stats {
	double p50_us, p99_us, rps;
};

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* Read what is there, waiting at most REPLY_TIMEOUT_MS for it. 0: EOF. */
static ssize_t read_some(int fd, void *buf, size_t n)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int r = TEMP_FAILURE_RETRY(poll(&pfd, 1, REPLY_TIMEOUT_MS));

	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	r = TEMP_FAILURE_RETRY(read(fd, buf, n));
	return r < 0 ? -errno : r;
}

/* Send one request; return once its whole reply frame is in c->rd. */
static int vmcheck_call(struct conn *c, const struct op *op, uint64_t id, const uint8_t **payload,
			size_t *len)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Hello hello = VMCHECK__V1__HELLO__INIT;
	Vmcheck__V1__GetState gs = VMCHECK__V1__GET_STATE__INIT;
	_cleanup_free_ uint8_t *f = NULL;
	uint8_t buf[65536];
	size_t n;
	int r;

	req.id = id;
	if (op->hello) {
		hello.protocol_version = 1;
		hello.client = "bench-agent";
		req.kind_case = VMCHECK__V1__REQUEST__KIND_HELLO;
		req.hello = &hello;
	} else {
		gs.sections = op->sections;
		req.kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
		req.get_state = &gs;
	}
	r = vmc_pb_frame(&req.base, VMC_FRAME_MAX_DEFAULT, &f, &n);
	if (r < 0)
		return r;
	r = vmc_write_all(c->fd, f, n, VMC_WRITE_TIMEOUT_MS, NULL);
	if (r < 0)
		return r;
	while ((r = vmc_frame_next(&c->rd, payload, len)) == 0) {
		ssize_t k = read_some(c->fd, buf, sizeof(buf));

		if (k <= 0)
			return k ? (int)k : -ECONNRESET;
		r = vmc_frame_feed(&c->rd, buf, (size_t)k);
		if (r < 0)
			return r;
	}
	return r < 0 ? r : 0;
}

static int vmcheck_check(const struct op *op, uint64_t id, const uint8_t *payload, size_t len)
{
	Vmcheck__V1__Response__KindCase want = op->hello ? VMCHECK__V1__RESPONSE__KIND_HELLO
							 : VMCHECK__V1__RESPONSE__KIND_STATE;
	struct vmc_pb_budget b;
	Vmcheck__V1__Response *resp;
	int r = 0;

	vmc_pb_budget_init(&b, 64u << 20);
	resp = vmc_pb_response_unpack(&b, payload, len);
	if (!resp) {
		fprintf(stderr,
			"bench-agent: vmcheck-agent: a reply of %zu bytes does not decode\n", len);
		return -EBADMSG;
	}
	if (resp->id != id || resp->kind_case != want) {
		bool err = resp->kind_case == VMCHECK__V1__RESPONSE__KIND_ERROR;

		fprintf(stderr,
			"bench-agent: vmcheck-agent: request %llu got reply %llu of kind %d%s%s\n",
			(unsigned long long)id, (unsigned long long)resp->id, resp->kind_case,
			err ? ": " : "", err ? resp->error->message : "");
		r = -EPROTO;
	}
	vmcheck__v1__response__free_unpacked(resp, &b.alloc);
	return r;
}

/* Send one command; return once its whole reply line is in c->line. */
static int qga_call(struct conn *c, const struct op *op)
{
	char cmd[128];
	int n = snprintf(cmd, sizeof(cmd), "{\"execute\":\"%s\"}\n", op->qga);
	char *nl;
	int r;

	/* Drop the previous reply. */
	memmove(c->line, c->line + c->used, c->len - c->used);
	c->len -= c->used;
	c->used = 0;
	r = vmc_write_all(c->fd, cmd, (size_t)n, VMC_WRITE_TIMEOUT_MS, NULL);
	if (r < 0)
		return r;
	while (!(nl = memchr(c->line, '\n', c->len))) {
		ssize_t k;

		if (c->len == c->cap) {
			char *p;

			if (c->cap >= MAX_REPLY)
				return -EMSGSIZE;
			p = realloc(c->line, c->cap * 2);
			if (!p)
				return -ENOMEM;
			c->line = p;
			c->cap *= 2;
		}
		k = read_some(c->fd, c->line + c->len, c->cap - c->len);
		if (k <= 0)
			return k ? (int)k : -ECONNRESET;
		c->len += (size_t)k;
	}
	c->used = (size_t)(nl - c->line) + 1;
	return 0;
}

static int qga_check(const struct conn *c, const struct op *op)
{
	static const char ok[] = "{\"return\":";
	char reply[201];
	size_t i, n = 0;

	/* Compare without the blanks qemu-ga may put after braces and colons. */
	for (i = 0; i < c->used && n < sizeof(reply) - 1; i++)
		if (c->line[i] != ' ')
			reply[n++] = c->line[i];
	reply[n] = '\0';
	if (strncmp(reply, ok, sizeof(ok) - 1)) {
		fprintf(stderr, "bench-agent: qemu-ga: %s answered: %.200s", op->qga, reply);
		return -EPROTO;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile @p of the sorted @v. */
static double percentile_us(const uint64_t *v, size_t n, unsigned p)
{
	size_t rank = (n * p + 99) / 100;

	return v[rank ? rank - 1 : 0] / 1e3;
}

/* @warm untimed requests, then @n timed ones; the stats of the timed ones. */
static int measure(struct conn *c, bool vmcheck, const struct op *op, unsigned warm, unsigned n,
		   struct stats *st)
{
	_cleanup_free_ uint64_t *lat = calloc(n, sizeof(*lat));
	uint64_t sum = 0;

	if (!lat)
		return -ENOMEM;
	for (unsigned i = 0; i < warm + n; i++) {
		uint64_t id = ++c->next_id, t0 = vmc_mono_ns(), t1;
		const uint8_t *payload;
		size_t len;
		int r = vmcheck ? vmcheck_call(c, op, id, &payload, &len) : qga_call(c, op);

		t1 = vmc_mono_ns();
		if (r < 0) {
			fprintf(stderr, "bench-agent: %s: %s request %u: %s\n", c->what,
				vmcheck ? op->name : op->qga, i, strerror(-r));
			return r;
		}
		r = vmcheck ? vmcheck_check(op, id, payload, len) : qga_check(c, op);
		if (r < 0)
			return r;
		if (i >= warm) {
			lat[i - warm] = t1 - t0;
			sum += t1 - t0;
		}
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	st->p50_us = percentile_us(lat, n, 50);
	st->p99_us = percentile_us(lat, n, 99);
	st->rps = n / (sum / 1e9);
	return 0;
}

/* VmRSS and VmHWM of @pid in KiB. */
static int read_rss(pid_t pid, unsigned long *rss, unsigned long *hwm)
{
	char path[64], line[256];
	int found = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return -errno;
	while (fgets(line, sizeof(line), fp))
		found += sscanf(line, "VmRSS: %lu kB", rss) == 1 ||
			 sscanf(line, "VmHWM: %lu kB", hwm) == 1;
	fclose(fp);
	return found == 2 ? 0 : -ENODATA;
}

/* Size of the ELF file behind @path (symlinks resolved); static if it has no PT_INTERP. */
static int read_binary(const char *path, char *real, off_t *size, bool *is_static)
{
	_cleanup_close_ int fd = -1;
	Elf64_Ehdr eh;
	struct stat st;

	if (!realpath(path, real))
		return -errno;
	fd = open(real, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
		return -ENOEXEC;
	*is_static = true;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) != sizeof(ph))
			return -ENOEXEC;
		if (ph.p_type == PT_INTERP)
			*is_static = false;
	}
	*size = st.st_size;
	return 0;
}

struct proc {
	const char *what;
	unsigned long rss, hwm; /* KiB */
	char real[PATH_MAX];    /* the binary, symlinks resolved */
	off_t size;
	bool is_static;
};

static int read_proc(struct proc *p, pid_t pid, const char *bin)
{
	int r = read_rss(pid, &p->rss, &p->hwm);

	if (r < 0) {
		fprintf(stderr, "bench-agent: %s (pid %d): %s\n", p->what, (int)pid, strerror(-r));
		return r;
	}
	r = read_binary(bin, p->real, &p->size, &p->is_static);
	if (r < 0)
		fprintf(stderr, "bench-agent: %s binary %s: %s\n", p->what, bin, strerror(-r));
	return r;
}

static void print_proc(const struct proc *p)
{
	printf("| %-13s | %8lu KiB | %8lu KiB | %9lld B | %-7s | %s\n", p->what, p->rss, p->hwm,
	       (long long)p->size, p->is_static ? "static" : "dynamic", p->real);
}

static void usage(FILE *fp)
{
	fprintf(fp,
		"Usage: bench-agent --vmcheck SOCKET --qga SOCKET --vmcheck-pid PID --qga-pid PID\n"
		"                   --vmcheck-bin FILE --qga-bin FILE [-n N] [-w N]\n"
		"\n"
		"  --vmcheck SOCKET   vmcheck-agent --listen unix:SOCKET\n"
		"  --qga SOCKET       qemu-ga -m unix-listen -p SOCKET\n"
		"  --*-pid, --*-bin   the agents' processes (RSS) and ELF files (size)\n"
		"  -n N               timed requests per operation and agent (default 2000)\n"
		"  -w N               warm-up requests before them (default 50)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vmcheck", required_argument, NULL, 'V' },
		{ "qga", required_argument, NULL, 'Q' },
		{ "vmcheck-pid", required_argument, NULL, 'p' },
		{ "qga-pid", required_argument, NULL, 'P' },
		{ "vmcheck-bin", required_argument, NULL, 'b' },
		{ "qga-bin", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *vsock = NULL, *qsock = NULL, *vbin = NULL, *qbin = NULL;
	struct conn v = { .what = "vmcheck-agent", .fd = -1 }, q = { .what = "qemu-ga", .fd = -1 };
	struct stats sv[N_OPS], sq[N_OPS];
	struct proc pv = { .what = "vmcheck-agent" }, pq = { .what = "qemu-ga" };
	long vpid = 0, qpid = 0, n = 2000, warm = 50;
	int c, r = 0;

	while ((c = getopt_long(argc, argv, "n:w:h", opts, NULL)) != -1) {
		char *end = NULL;

		switch (c) {
		case 'V':
			vsock = optarg;
			break;
		case 'Q':
			qsock = optarg;
			break;
		case 'b':
			vbin = optarg;
			break;
		case 'B':
			qbin = optarg;
			break;
		case 'p':
			vpid = strtol(optarg, &end, 10);
			break;
		case 'P':
			qpid = strtol(optarg, &end, 10);
			break;
		case 'n':
			n = strtol(optarg, &end, 10);
			break;
		case 'w':
			warm = strtol(optarg, &end, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (end && (*end || end == optarg)) {
			fprintf(stderr, "bench-agent: '%s' is not a number\n", optarg);
			return 2;
		}
	}
	if (!vsock || !qsock || !vbin || !qbin || vpid <= 0 || qpid <= 0 || n < 1 || n > 10000000 ||
	    warm < 0 || warm > 10000000 || optind < argc) {
		usage(stderr);
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	vmc_frame_reader_init(&v.rd, MAX_REPLY);
	q.cap = 4096;
	q.line = malloc(q.cap);
	if (!q.line)
		return 1;
	v.fd = connect_unix(vsock);
	q.fd = connect_unix(qsock);
	if (v.fd < 0 || q.fd < 0) {
		fprintf(stderr, "bench-agent: connecting to %s: %s\n", v.fd < 0 ? vsock : qsock,
			strerror(-(v.fd < 0 ? v.fd : q.fd)));
		return 1;
	}
	for (size_t i = 0; i < N_OPS && r == 0; i++) {
		r = measure(&v, true, &ops[i], (unsigned)warm, (unsigned)n, &sv[i]);
		if (r == 0)
			r = measure(&q, false, &ops[i], (unsigned)warm, (unsigned)n, &sq[i]);
	}
	if (r < 0)
		return 1;

	printf("%ld sequential requests per operation and agent on one unix-socket connection,\n"
	       "after %ld warm-up; latency = request written to reply fully read.\n\n",
	       n, warm);
	printf("| %-46s | vmcheck p50 µs |   p99 µs |   req/s | qemu-ga p50 µs |   p99 µs |   req/s "
	       "| ratio |\n",
	       "operation (vmcheck / qemu-ga)");
	printf("|%.48s|---------------:|---------:|--------:|---------------:|---------:|--------:"
	       "|------:|\n",
	       "------------------------------------------------");
	for (size_t i = 0; i < N_OPS; i++)
		printf("| %-46s | %14.1f | %8.1f | %7.0f | %14.1f | %8.1f | %7.0f | %5.2f |\n",
		       ops[i].name, sv[i].p50_us, sv[i].p99_us, sv[i].rps, sq[i].p50_us,
		       sq[i].p99_us, sq[i].rps, sq[i].p50_us / sv[i].p50_us);
	if (read_proc(&pv, (pid_t)vpid, vbin) < 0 || read_proc(&pq, (pid_t)qpid, qbin) < 0)
		return 1;
	printf("\n| %-13s | %12s | %12s | %11s | %-7s | %s\n", "agent", "RSS (VmRSS)",
	       "peak (VmHWM)", "binary", "linkage", "file");
	printf("|---------------|-------------:|-------------:|------------:|---------|------\n");
	print_proc(&pv);
	print_proc(&pq);
	/* The goals; reported, not enforced: timings vary with the machine. */
	printf("\ngoal: full snapshot faster than qemu-ga's memory blocks alone: %s "
	       "(p50 %.1f vs %.1f µs)\n",
	       sv[OP_SNAPSHOT].p50_us < sq[OP_SNAPSHOT].p50_us ? "met" : "NOT MET",
	       sv[OP_SNAPSHOT].p50_us, sq[OP_SNAPSHOT].p50_us);
	printf("goal: smaller RSS than qemu-ga: %s (%lu vs %lu KiB)\n",
	       pv.rss < pq.rss ? "met" : "NOT MET", pv.rss, pq.rss);
	close(v.fd);
	close(q.fd);
	vmc_frame_reader_free(&v.rd);
	free(q.line);
	return 0;
}
