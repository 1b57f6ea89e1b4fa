/* SPDX-License-Identifier: MIT */
/*
 * The net probe: a new link is usable when a TCP connection over that link
 * alone reaches the host's listener and the token comes back. It acts on
 * the running kernel through rtnetlink: the link is found by MAC on the
 * same socket that then changes it, so the link looked up and the link
 * acted on are in the same network namespace whatever sysfs shows. What it
 * changed (link up, address) is undone on every path, in bounded time.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "probe.h"

#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x
#define NS_PER_MS 1000000ull
/* Enough for one netlink dump message: the kernel caps them at 32 KiB. */
#define NL_BUF 32768
/* Interrupted link dumps are retried this many times. */
#define NL_ATTEMPTS 4
/*
 * Undoing runs after the deadline too (a probe that timed out still
 * removes its address): each netlink call of the cleanup gets this long.
 */
#define CLEANUP_MS 1000u

/* Two probes on one link would undo each other's work: one at a time. */
static pthread_mutex_t net_lock = PTHREAD_MUTEX_INITIALIZER;

struct nl {
	int fd;
	uint32_t seq;
	char *buf; /* NL_BUF bytes */
};

/* The probe's arguments, checked, and what it changed, for the undoing. */
struct net {
	uint8_t mac[6];
	char mac_s[18];
	struct in_addr addr, peer;
	unsigned prefixlen, port;
	char addr_s[INET_ADDRSTRLEN], peer_s[INET_ADDRSTRLEN];
	uint64_t deadline; /* CLOCK_MONOTONIC ns */
	unsigned timeout_ms;
	int ifindex;
	char ifname[IF_NAMESIZE];
	bool slave; /* the link found is enslaved (bond, failover) */
	bool was_up, brought_up, added;
};

/* Called for every message of a reply but the final ACK or DONE. */
typedef int (*nl_msg_fn)(const struct nlmsghdr *nh, void *ctx);

static int parse_mac(const char *s, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++, s += 3) {
		char hex[3] = { s[0], s[0] ? s[1] : '\0', '\0' };

		if (!isxdigit((unsigned char)hex[0]) || !isxdigit((unsigned char)hex[1]) ||
		    s[2] != (i < 5 ? ':' : '\0'))
			return -EINVAL;
		mac[i] = (uint8_t)strtoul(hex, NULL, 16);
	}
	return 0;
}

/* A dotted-quad unicast address (not 0.0.0.0, multicast or broadcast). */
static bool parse_ipv4(const char *s, struct in_addr *a)
{
	uint32_t h;

	if (inet_pton(AF_INET, s, a) != 1)
		return false;
	h = ntohl(a->s_addr);
	return h != 0 && !IN_MULTICAST(h) && h != INADDR_BROADCAST;
}

int vmc_probe_net_check(const Vmcheck__V1__NetProbe *p, struct vmc_outcome *o)
{
	struct net n;

	if (parse_mac(p->mac, n.mac) < 0)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"'%.32s' is not a MAC address (xx:xx:xx:xx:xx:xx)", p->mac);
	if (!parse_ipv4(p->address, &n.addr))
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"address '%.32s' is not a dotted IPv4 unicast address",
					p->address);
	if (p->prefixlen < 1 || p->prefixlen > 32)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0, "prefixlen %u: want 1 to 32",
					p->prefixlen);
	if (!parse_ipv4(p->peer, &n.peer))
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"peer '%.32s' is not a dotted IPv4 unicast address",
					p->peer);
	if (n.peer.s_addr == n.addr.s_addr)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"peer %s is the probe's own address", p->peer);
	if (p->port < 1 || p->port > 65535)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0, "port %u: want 1 to 65535",
					p->port);
	if (p->token.len < 1 || p->token.len > VMC_PROBE_TOKEN_MAX)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"a token of %zu bytes: want 1 to %u", p->token.len,
					VMC_PROBE_TOKEN_MAX);
	if (p->timeout_ms > VMC_PROBE_NET_MAX_MS)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"timeout_ms %u is over the limit of %u", p->timeout_ms,
					VMC_PROBE_NET_MAX_MS);
	return 0;
}

static void net_init(struct net *n, const Vmcheck__V1__NetProbe *p, uint64_t start)
{
	memset(n, 0, sizeof(*n));
	parse_mac(p->mac, n->mac);
	snprintf(n->mac_s, sizeof(n->mac_s), "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1],
		 n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
	parse_ipv4(p->address, &n->addr);
	parse_ipv4(p->peer, &n->peer);
	inet_ntop(AF_INET, &n->addr, n->addr_s, sizeof(n->addr_s));
	inet_ntop(AF_INET, &n->peer, n->peer_s, sizeof(n->peer_s));
	n->prefixlen = p->prefixlen;
	n->port = p->port;
	n->timeout_ms = p->timeout_ms ? p->timeout_ms : VMC_PROBE_NET_DEFAULT_MS;
	n->deadline = start + n->timeout_ms * NS_PER_MS;
}

/* Milliseconds left until @deadline, rounded up; 0 once it has passed. */
static int ms_left(uint64_t deadline)
{
	uint64_t now = vmc_mono_ns();

	if (now >= deadline)
		return 0;
	return (int)((deadline - now + NS_PER_MS - 1) / NS_PER_MS);
}

static int nl_open(struct nl *nl)
{
	nl->seq = 0;
	nl->buf = malloc(NL_BUF);
	if (!nl->buf)
		return -ENOMEM;
	nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl->fd < 0) {
		int err = -errno;

		free(nl->buf);
		return err;
	}
	return 0;
}

static void nl_close(struct nl *nl)
{
	close(nl->fd);
	free(nl->buf);
}

static void nl_attr(struct nlmsghdr *nh, unsigned short type, const void *data, size_t len)
{
	struct rtattr *rta = (struct rtattr *)((char *)nh + NLMSG_ALIGN(nh->nlmsg_len));

	rta->rta_type = type;
	rta->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(rta), data, len);
	nh->nlmsg_len = NLMSG_ALIGN(nh->nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

/* One reply message of @seq: 1 when it ends the reply, 0 to go on, -errno. */
static int nl_one(const struct nlmsghdr *nh, nl_msg_fn fn, void *ctx, bool *intr)
{
	if (nh->nlmsg_flags & NLM_F_DUMP_INTR)
		*intr = true;
	if (nh->nlmsg_type == NLMSG_DONE)
		return 1;
	if (nh->nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = NLMSG_DATA(nh);

		if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)) || e->error > 0)
			return -EBADMSG;
		/* error 0 is the ACK. */
		return e->error ? e->error : 1;
	}
	return fn ? fn(nh, ctx) : 0;
}

/*
 * Send @req and read its reply until the ACK, error or end of dump, each
 * receive waiting at most @ms (at least 1). Returns 0, -ETIMEDOUT, or the
 * kernel's -errno. *@intr tells whether a dump was interrupted by a change.
 */
static int nl_call(struct nl *nl, struct nlmsghdr *req, int ms, nl_msg_fn fn, void *ctx, bool *intr)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	/* A zero SO_RCVTIMEO would wait forever. */
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = ms > 0 ? (ms % 1000) * 1000 : 1000 };

	*intr = false;
	req->nlmsg_seq = ++nl->seq;
	req->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	if (setsockopt(nl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    TEMP_FAILURE_RETRY(sendto(nl->fd, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel,
				      sizeof(kernel))) < 0)
		return -errno;
	for (;;) {
		struct sockaddr_nl from;
		socklen_t fl = sizeof(from);
		ssize_t len = TEMP_FAILURE_RETRY(recvfrom(nl->fd, nl->buf, NL_BUF, MSG_TRUNC,
							  (struct sockaddr *)&from, &fl));
		int left, r = 0;

		if (len < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		if (len > NL_BUF)
			return -EMSGSIZE;
		if (from.nl_pid != 0)
			continue;
		left = (int)len;
		for (struct nlmsghdr *nh = (struct nlmsghdr *)nl->buf; r == 0 && NLMSG_OK(nh, left);
		     nh = NLMSG_NEXT(nh, left))
			if (nh->nlmsg_seq == nl->seq)
				r = nl_one(nh, fn, ctx, intr);
		if (r != 0)
			return r < 0 ? r : 0;
	}
}

/*
 * One RTM_NEWLINK of the dump: keep it if it carries the MAC. A VLAN
 * shares its parent's MAC and failover or bond slaves their master's: a
 * link that is nobody's slave wins, then the lowest index (the parent).
 */
static int match_link(const struct nlmsghdr *nh, void *ctx)
{
	struct net *n = ctx;
	const struct ifinfomsg *ifi = NLMSG_DATA(nh);
	const char *name = NULL;
	bool mac = false, slave = false;
	int len;

	if (nh->nlmsg_type != RTM_NEWLINK || nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)))
		return 0;
	len = (int)IFLA_PAYLOAD(nh);
	for (struct rtattr *rta = IFLA_RTA(ifi); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
		size_t plen = RTA_PAYLOAD(rta);

		if (rta->rta_type == IFLA_ADDRESS && plen == sizeof(n->mac))
			mac = !memcmp(RTA_DATA(rta), n->mac, sizeof(n->mac));
		else if (rta->rta_type == IFLA_IFNAME && plen <= IF_NAMESIZE &&
			 memchr(RTA_DATA(rta), '\0', plen))
			name = RTA_DATA(rta);
		else if (rta->rta_type == IFLA_MASTER)
			slave = true;
	}
	if (!mac || !name)
		return 0;
	if (n->ifindex && (slave > n->slave || (slave == n->slave && ifi->ifi_index > n->ifindex)))
		return 0;
	n->ifindex = ifi->ifi_index;
	n->slave = slave;
	n->was_up = ifi->ifi_flags & IFF_UP;
	snprintf(n->ifname, sizeof(n->ifname), "%s", name);
	return 0;
}

static int find_link(struct nl *nl, struct net *n, struct vmc_outcome *o)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req;
	bool intr = true;
	int r = 0;

	/* A dump interrupted by a change may have missed the link: look again. */
	for (int i = 0; i < NL_ATTEMPTS && intr && !n->ifindex; i++) {
		memset(&req, 0, sizeof(req));
		req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifi));
		req.nh.nlmsg_type = RTM_GETLINK;
		req.nh.nlmsg_flags = NLM_F_DUMP;
		req.ifi.ifi_family = AF_UNSPEC;
		r = nl_call(nl, &req.nh, ms_left(n->deadline), match_link, n, &intr);
		if (r < 0)
			return vmc_outcome_fail(o, ECODE(INTERNAL), -r,
						"listing links (looking for MAC %s): %s", n->mac_s,
						strerror(-r));
	}
	if (!n->ifindex)
		return vmc_outcome_fail(o, ECODE(NOT_FOUND), 0, "no link with MAC %s", n->mac_s);
	return 0;
}

static int set_link_up(struct nl *nl, const struct net *n, bool up, int ms)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req;
	bool intr;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifi));
	req.nh.nlmsg_type = RTM_NEWLINK;
	req.ifi.ifi_family = AF_UNSPEC;
	req.ifi.ifi_index = n->ifindex;
	req.ifi.ifi_flags = up ? IFF_UP : 0;
	req.ifi.ifi_change = IFF_UP;
	return nl_call(nl, &req.nh, ms, NULL, NULL, &intr);
}

/* RTM_NEWADDR or RTM_DELADDR of exactly address/prefixlen on the link. */
static int change_addr(struct nl *nl, const struct net *n, unsigned short type,
		       unsigned short flags, int ms)
{
	struct {
		struct nlmsghdr nh;
		struct ifaddrmsg ifa;
		char attrs[2 * RTA_SPACE(sizeof(struct in_addr))];
	} req;
	bool intr;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifa));
	req.nh.nlmsg_type = type;
	req.nh.nlmsg_flags = flags;
	req.ifa.ifa_family = AF_INET;
	req.ifa.ifa_prefixlen = (unsigned char)n->prefixlen;
	req.ifa.ifa_index = (unsigned)n->ifindex;
	req.ifa.ifa_scope = RT_SCOPE_UNIVERSE;
	/* IFA_ADDRESS with the prefix length makes RTM_DELADDR match this one only. */
	nl_attr(&req.nh, IFA_LOCAL, &n->addr, sizeof(n->addr));
	nl_attr(&req.nh, IFA_ADDRESS, &n->addr, sizeof(n->addr));
	return nl_call(nl, &req.nh, ms, NULL, NULL, &intr);
}

/* Bring the link up if it is down and give it the address, noting what was done. */
static int prepare_link(struct nl *nl, struct net *n, struct vmc_outcome *o)
{
	int r;

	if (!n->was_up) {
		r = set_link_up(nl, n, true, ms_left(n->deadline));
		if (r < 0)
			return vmc_outcome_fail(o, vmc_outcome_code_of(-r), -r,
						"bringing %s up: %s", n->ifname, strerror(-r));
		n->brought_up = true;
	}
	r = change_addr(nl, n, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ms_left(n->deadline));
	/* EEXIST: the link had exactly this address already; it keeps it. */
	if (r < 0 && r != -EEXIST)
		return vmc_outcome_fail(o, vmc_outcome_code_of(-r), -r, "adding %s/%u to %s: %s",
					n->addr_s, n->prefixlen, n->ifname, strerror(-r));
	n->added = r == 0;
	return 0;
}

/* Wait for @events on @fd until the deadline: 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int ms = ms_left(deadline), r;

		if (ms == 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, ms);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* A failed step of the connection, named with both ends and the link. */
static int step_fail(struct vmc_outcome *o, const struct net *n, const char *step, int err)
{
	if (err == ETIMEDOUT)
		return vmc_outcome_fail(o, ECODE(INTERNAL), err,
					"%s %s:%u from %s via %s: no answer within the probe's "
					"%u ms",
					step, n->peer_s, n->port, n->addr_s, n->ifname,
					n->timeout_ms);
	return vmc_outcome_fail(o, vmc_outcome_code_of(err), err, "%s %s:%u from %s via %s: %s",
				step, n->peer_s, n->port, n->addr_s, n->ifname, strerror(err));
}

/*
 * SO_BINDTODEVICE by index: udev renames a NIC right after it was plugged
 * (eth1 -> enp2s0), and the name found a moment ago may be gone. Kernels
 * before 5.0 know only the name.
 */
static int bind_to_link(int fd, const struct net *n)
{
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, &n->ifindex, sizeof(n->ifindex)) == 0)
		return 0;
	if (errno != ENOPROTOOPT)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, n->ifname, strlen(n->ifname) + 1) < 0)
		return -errno;
	return 0;
}

/* A non-blocking TCP socket on the link alone, bound to the probe's address. */
static int tcp_open(const struct net *n, struct vmc_outcome *o)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = n->addr };
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return vmc_outcome_fail(o, ECODE(INTERNAL), errno, "opening a TCP socket: %s",
					strerror(errno));
	if (bind_to_link(fd, n) < 0)
		return vmc_outcome_fail(o, vmc_outcome_code_of(errno), errno,
					"binding a TCP socket to %s (SO_BINDTODEVICE): %s",
					n->ifname, strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return vmc_outcome_fail(o, vmc_outcome_code_of(errno), errno,
					"binding a TCP socket to %s on %s: %s", n->addr_s,
					n->ifname, strerror(errno));
	return TAKE_FD(fd);
}

static int tcp_connect(int fd, const struct net *n, uint64_t *ns, struct vmc_outcome *o)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)n->port),
				  .sin_addr = n->peer };
	socklen_t len = sizeof(int);
	uint64_t t0 = vmc_mono_ns();
	int err = 0, r;

	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		err = errno;
	else if ((r = wait_fd(fd, POLLOUT, n->deadline)) < 0)
		err = -r;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		return step_fail(o, n, "connect", err);
	*ns = vmc_mono_ns() - t0;
	return 0;
}

static int send_token(int fd, const struct net *n, const ProtobufCBinaryData *tok,
		      struct vmc_outcome *o)
{
	for (size_t sent = 0; sent < tok->len;) {
		ssize_t k = send(fd, tok->data + sent, tok->len - sent, MSG_NOSIGNAL);
		int r;

		if (k >= 0) {
			sent += (size_t)k;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			r = wait_fd(fd, POLLOUT, n->deadline);
			if (r < 0)
				return step_fail(o, n, "sending the token to", -r);
		} else if (errno != EINTR) {
			return step_fail(o, n, "sending the token to", errno);
		}
	}
	return 0;
}

/* Read until the token's bytes came back; any other byte is a failure. */
static int read_echo(int fd, const struct net *n, const ProtobufCBinaryData *tok,
		     struct vmc_outcome *o)
{
	uint8_t got[VMC_PROBE_TOKEN_MAX];

	for (size_t have = 0; have < tok->len;) {
		int r = wait_fd(fd, POLLIN, n->deadline);
		ssize_t k;

		if (r < 0)
			return step_fail(o, n, "reading the echo from", -r);
		k = recv(fd, got + have, tok->len - have, 0);
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			continue;
		if (k < 0)
			return step_fail(o, n, "reading the echo from", errno);
		if (k == 0)
			return vmc_outcome_fail(o, ECODE(INTERNAL), 0,
						"reading the echo from %s:%u via %s: connection "
						"closed after %zu of %zu bytes",
						n->peer_s, n->port, n->ifname, have, tok->len);
		if (memcmp(got + have, tok->data + have, (size_t)k))
			return vmc_outcome_fail(o, ECODE(INTERNAL), 0,
						"the echo from %s:%u via %s differs from the token "
						"within bytes %zu to %zu",
						n->peer_s, n->port, n->ifname, have,
						have + (size_t)k - 1);
		have += (size_t)k;
	}
	return 0;
}

/* Connect, send the token, read its echo; the times and source into @res. */
static int exchange(const struct net *n, const ProtobufCBinaryData *tok, struct vmc_arena *a,
		    Vmcheck__V1__ProbeResult *res, struct vmc_outcome *o)
{
	struct sockaddr_in src;
	socklen_t slen = sizeof(src);
	char src_s[INET_ADDRSTRLEN];
	_cleanup_close_ int fd = tcp_open(n, o);
	uint64_t t0;
	int r;

	if (fd < 0)
		return fd;
	r = tcp_connect(fd, n, &res->connect_ns, o);
	if (r < 0)
		return r;
	if (getsockname(fd, (struct sockaddr *)&src, &slen) < 0 ||
	    !inet_ntop(AF_INET, &src.sin_addr, src_s, sizeof(src_s)))
		return vmc_outcome_fail(o, ECODE(INTERNAL), errno, "getsockname: %s",
					strerror(errno));
	res->source = vmc_arena_printf(a, "%s:%u", src_s, ntohs(src.sin_port));
	if (!res->source)
		return vmc_outcome_fail(o, ECODE(INTERNAL), ENOMEM, "out of memory");
	t0 = vmc_mono_ns();
	if ((r = send_token(fd, n, tok, o)) < 0 || (r = read_echo(fd, n, tok, o)) < 0)
		return r;
	res->rtt_ns = vmc_mono_ns() - t0;
	return 0;
}

/*
 * Undo what the probe changed, whatever happened before: the address it
 * added goes, a link it brought up goes down. Something else may have done
 * it already (the link unplugged): that is no failure. Returns @r, or the
 * cleanup's failure when the probe itself succeeded; a failure of both
 * keeps the probe's message and appends the cleanup's.
 */
static int undo(struct nl *nl, const struct net *n, int r, struct vmc_outcome *o)
{
	char what[128] = "";
	int err = 0, e;

	if (n->added) {
		e = change_addr(nl, n, RTM_DELADDR, 0, CLEANUP_MS);
		if (e < 0 && e != -EADDRNOTAVAIL && e != -ENODEV) {
			err = -e;
			snprintf(what, sizeof(what), "removing %s/%u from %s: %s", n->addr_s,
				 n->prefixlen, n->ifname, strerror(err));
		}
	}
	if (n->brought_up) {
		e = set_link_up(nl, n, false, CLEANUP_MS);
		if (e < 0 && e != -ENODEV && !err) {
			err = -e;
			snprintf(what, sizeof(what), "setting %s down again: %s", n->ifname,
				 strerror(err));
		}
	}
	if (!err)
		return r;
	if (r == 0)
		return vmc_outcome_fail(o, ECODE(INTERNAL), err, "%s", what);
	snprintf(o->msg + strlen(o->msg), sizeof(o->msg) - strlen(o->msg), "; then %s", what);
	return r;
}

int vmc_probe_net(const struct vmc_sysroot *root, const Vmcheck__V1__NetProbe *p,
		  struct vmc_arena *a, Vmcheck__V1__ProbeResult *res, struct vmc_outcome *o)
{
	uint64_t start = vmc_mono_ns();
	struct net n;
	struct nl nl;
	int r;

	r = vmc_probe_net_check(p, o);
	if (r < 0)
		return r;
	if (!root->live)
		return vmc_outcome_fail(o, ECODE(UNSUPPORTED), 0,
					"the net probe acts on the running kernel, and this agent "
					"reads a sysroot");
	if (pthread_mutex_trylock(&net_lock))
		return vmc_outcome_fail(o, ECODE(BUSY), 0, "another net probe is under way");
	net_init(&n, p, start);
	r = nl_open(&nl);
	if (r < 0) {
		pthread_mutex_unlock(&net_lock);
		return vmc_outcome_fail(o, ECODE(INTERNAL), -r, "opening rtnetlink: %s",
					strerror(-r));
	}
	if ((r = find_link(&nl, &n, o)) == 0 && (r = prepare_link(&nl, &n, o)) == 0)
		r = exchange(&n, &p->token, a, res, o);
	r = undo(&nl, &n, r, o);
	nl_close(&nl);
	pthread_mutex_unlock(&net_lock);
	if (r < 0)
		return r;
	res->link = vmc_arena_strdup(a, n.ifname);
	if (!res->link)
		return vmc_outcome_fail(o, ECODE(INTERNAL), ENOMEM, "out of memory");
	res->link_was_up = n.was_up;
	res->duration_ns = vmc_mono_ns() - start;
	vmc_outcome_ok(o, "token echoed by %s:%u over %s from %s", n.peer_s, n.port, n.ifname,
		       res->source);
	return 0;
}
