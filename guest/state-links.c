/* SPDX-License-Identifier: MIT */
/*
 * The links section: one Link per entry of /sys/class/net, and on the live
 * system the IPv4/IPv6 addresses from one RTM_GETADDR dump. Links come and go
 * while we read (hotplug is what we are here to watch): a link whose
 * attributes vanish half way is left out, never a failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "parse.h"
#include "state.h"

/* Enough for one netlink dump message: the kernel caps them at 32 KiB. */
#define NL_BUF 32768
/* Dumps interrupted by a concurrent change are retried this many times. */
#define NL_ATTEMPTS 4

struct slot {
	uint32_t ifindex;
	Vmcheck__V1__Link *link;
	struct vmc_ptrvec addrs;
};

/*
 * A required attribute of the netdev at @dev. While a netdev unregisters its
 * attributes answer EINVAL, then ENODEV or ENOENT: all mean -ENOENT here.
 */
static int read_u32(int fd, const char *dev, const char *attr, int base, uint32_t *out)
{
	char buf[32];
	uint64_t v;
	int r;

	r = vmc_sysroot_read_strf(fd, buf, sizeof(buf), "%s/%s", dev, attr);
	if (r == -EINVAL || r == -ENODEV)
		return -ENOENT;
	if (r < 0)
		return r;
	r = vmc_parse_u64(buf, base, &v);
	if (r < 0)
		return r;
	if (v > UINT32_MAX)
		return -ERANGE;
	*out = (uint32_t)v;
	return 0;
}

/* An optional string attribute: "" when it cannot be read. */
static int read_opt(int fd, struct vmc_arena *a, char **field, const char *dev, const char *attr)
{
	char buf[256];
	char *s;

	if (vmc_sysroot_read_strf(fd, buf, sizeof(buf), "%s/%s", dev, attr) < 0)
		return 0;
	s = vmc_arena_strdup(a, buf);
	if (!s)
		return -ENOMEM;
	*field = s;
	return 0;
}

/*
 * Read the link @name. Returns 0 with *@out set, 0 with *@out NULL when the
 * link is gone (or the entry is no link, like bonding_masters), or -errno.
 */
static int read_link(int fd, struct vmc_arena *a, const char *name, Vmcheck__V1__Link **out)
{
	char path[PATH_MAX], dev[PATH_MAX], buf[256], pci[13];
	Vmcheck__V1__Link *l;
	int r;

	*out = NULL;
	r = vmc_sysroot_resolve_linkf(fd, path, sizeof(path), "sys/class/net/%s", name);
	if (r == -ENOENT || r == -EINVAL)
		return 0;
	if (r < 0)
		return r;
	l = vmc_arena_alloc(a, sizeof(*l));
	if (!l)
		return -ENOMEM;
	vmcheck__v1__link__init(l);
	if ((r = read_u32(fd, path, "ifindex", 10, &l->ifindex)) < 0 ||
	    (r = read_u32(fd, path, "mtu", 10, &l->mtu)) < 0 ||
	    (r = read_u32(fd, path, "flags", 16, &l->flags)) < 0 ||
	    (r = read_u32(fd, path, "type", 10, &l->type)) < 0)
		return r == -ENOENT ? 0 : r;
	if ((r = read_opt(fd, a, &l->mac, path, "address")) < 0 ||
	    (r = read_opt(fd, a, &l->operstate, path, "operstate")) < 0)
		return r;

	/* The kernel answers EINVAL while the link is down: it does not know. */
	if (vmc_sysroot_read_strf(fd, buf, sizeof(buf), "%s/carrier", path) >= 0) {
		if (!strcmp(buf, "1"))
			l->carrier = VMCHECK__V1__LINK__CARRIER__CARRIER_UP;
		else if (!strcmp(buf, "0"))
			l->carrier = VMCHECK__V1__LINK__CARRIER__CARRIER_DOWN;
	}

	/* Virtual links have no device: driver and PCI address stay "". */
	if (vmc_sysroot_link_basef(fd, buf, sizeof(buf), "%s/device/driver", path) == 0 &&
	    !(l->driver = vmc_arena_strdup(a, buf)))
		return -ENOMEM;
	if (vmc_sysroot_resolve_linkf(fd, dev, sizeof(dev), "%s/device", path) == 0 &&
	    vmc_parse_pci_of_path(dev, pci, NULL) == 0 &&
	    !(l->pci_address = vmc_arena_strdup(a, pci)))
		return -ENOMEM;

	l->name = vmc_arena_strdup(a, name);
	l->devpath = vmc_arena_strdup(a, strncmp(path, "sys/", 4) ? path : path + 4);
	if (!l->name || !l->devpath)
		return -ENOMEM;
	*out = l;
	return 0;
}

static int slot_cmp(const void *a, const void *b)
{
	const struct slot *x = a, *y = b;

	return (x->ifindex > y->ifindex) - (x->ifindex < y->ifindex);
}

/* As iproute2 names them; other scopes are shown as their number. */
static const char *scope_name(unsigned char scope, char buf[4])
{
	switch (scope) {
	case RT_SCOPE_UNIVERSE:
		return "global";
	case RT_SCOPE_SITE:
		return "site";
	case RT_SCOPE_LINK:
		return "link";
	case RT_SCOPE_HOST:
		return "host";
	}
	snprintf(buf, 4, "%u", scope);
	return buf;
}

/* One RTM_NEWADDR: append it to its link's slot; unknown links are ignored. */
static int add_address(struct vmc_arena *a, struct slot *slots, size_t n, const struct nlmsghdr *nh)
{
	const struct ifaddrmsg *ifa = NLMSG_DATA(nh);
	const void *local = NULL, *address = NULL;
	char str[INET6_ADDRSTRLEN], sbuf[4];
	Vmcheck__V1__Address *ad;
	struct slot key, *s;
	struct rtattr *rta;
	size_t alen;
	int rlen;

	if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)))
		return -EBADMSG;
	if (ifa->ifa_family == AF_INET)
		alen = 4;
	else if (ifa->ifa_family == AF_INET6)
		alen = 16;
	else
		return 0;
	key.ifindex = ifa->ifa_index;
	s = bsearch(&key, slots, n, sizeof(*slots), slot_cmp);
	if (!s)
		return 0;

	rlen = (int)IFA_PAYLOAD(nh);
	for (rta = IFA_RTA(ifa); RTA_OK(rta, rlen); rta = RTA_NEXT(rta, rlen)) {
		if (RTA_PAYLOAD(rta) != alen)
			continue;
		if (rta->rta_type == IFA_LOCAL)
			local = RTA_DATA(rta);
		else if (rta->rta_type == IFA_ADDRESS)
			address = RTA_DATA(rta);
	}
	/* On a point-to-point link IFA_ADDRESS is the peer: prefer IFA_LOCAL, as ip does. */
	if (local)
		address = local;
	if (!address || !inet_ntop(ifa->ifa_family, address, str, sizeof(str)))
		return 0;

	ad = vmc_arena_alloc(a, sizeof(*ad));
	if (!ad)
		return -ENOMEM;
	vmcheck__v1__address__init(ad);
	ad->family = ifa->ifa_family;
	ad->prefixlen = ifa->ifa_prefixlen;
	ad->address = vmc_arena_strdup(a, str);
	ad->scope = vmc_arena_strdup(a, scope_name(ifa->ifa_scope, sbuf));
	if (!ad->address || !ad->scope)
		return -ENOMEM;
	return vmc_ptrvec_push(a, &s->addrs, ad);
}

/*
 * The messages of one datagram of the dump @seq. Returns 1 at its end
 * (NLMSG_DONE), 0 for more, -errno; sets *@intr when the kernel flagged a
 * message as part of a dump a concurrent change interrupted.
 */
static int dump_datagram(const char *buf, int left, uint32_t seq, bool *intr, struct vmc_arena *a,
			 struct slot *slots, size_t n)
{
	const struct nlmsghdr *nh;
	int r;

	for (nh = (const struct nlmsghdr *)buf; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
		if (nh->nlmsg_seq != seq)
			continue;
		if (nh->nlmsg_flags & NLM_F_DUMP_INTR)
			*intr = true;
		if (nh->nlmsg_type == NLMSG_DONE)
			return 1;
		if (nh->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(nh);

			if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)) || e->error >= 0)
				return -EBADMSG;
			return e->error;
		}
		if (nh->nlmsg_type == RTM_NEWADDR && (r = add_address(a, slots, n, nh)) < 0)
			return r;
	}
	return left == 0 ? 0 : -EBADMSG;
}

/*
 * One RTM_GETADDR dump with sequence number @seq. Returns 0, -EAGAIN when
 * the kernel flagged it as interrupted by a concurrent change, or -errno.
 */
static int dump_once(const struct vmc_nl_source *nl, uint32_t seq, char *buf, struct vmc_arena *a,
		     struct slot *slots, size_t n)
{
	struct {
		struct nlmsghdr nh;
		struct ifaddrmsg ifa;
	} req = {
		.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg)),
		.nh.nlmsg_type = RTM_GETADDR,
		.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		.nh.nlmsg_seq = seq,
		.ifa.ifa_family = AF_UNSPEC,
	};
	bool intr = false;
	int r;

	r = nl->send(nl->ctx, &req, req.nh.nlmsg_len);
	if (r < 0)
		return r;
	do {
		ssize_t len = nl->recv(nl->ctx, buf, NL_BUF);

		if (len < 0)
			return (int)len;
		r = dump_datagram(buf, (int)len, seq, &intr, a, slots, n);
	} while (r == 0);
	if (r < 0)
		return r;
	return intr ? -EAGAIN : 0;
}

static int kernel_send(void *ctx, const void *req, size_t len)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int fd = *(int *)ctx;

	if (TEMP_FAILURE_RETRY(
		    sendto(fd, req, len, 0, (struct sockaddr *)&kernel, sizeof(kernel))) < 0)
		return -errno;
	return 0;
}

/* The next datagram from the kernel itself (port 0); others are dropped. */
static ssize_t kernel_recv(void *ctx, void *buf, size_t size)
{
	int fd = *(int *)ctx;

	for (;;) {
		struct sockaddr_nl from;
		struct iovec iov = { .iov_base = buf, .iov_len = size };
		struct msghdr mh = {
			.msg_name = &from,
			.msg_namelen = sizeof(from),
			.msg_iov = &iov,
			.msg_iovlen = 1,
		};
		ssize_t len = TEMP_FAILURE_RETRY(recvmsg(fd, &mh, 0));

		if (len < 0)
			return -errno;
		if (mh.msg_flags & MSG_TRUNC)
			return -EMSGSIZE;
		if (from.nl_pid == 0)
			return len;
	}
}

/*
 * Fill every slot's addrs from one uninterrupted dump of the address
 * table. Returns 0; -EAGAIN when NL_ATTEMPTS dumps in a row were
 * interrupted (the table kept changing: what they held is not a snapshot);
 * -errno.
 */
static int read_addresses(const struct vmc_nl_source *nl, struct vmc_arena *a, struct slot *slots,
			  size_t n)
{
	char *buf = vmc_arena_scratch(a, NL_BUF);
	int r = -EAGAIN;

	if (!buf)
		return -ENOMEM;
	/* An interrupted dump may miss or repeat addresses: start over, but not forever. */
	for (uint32_t seq = 1; seq <= NL_ATTEMPTS && r == -EAGAIN; seq++) {
		for (size_t i = 0; i < n; i++)
			slots[i].addrs = (struct vmc_ptrvec){ 0 };
		r = dump_once(nl, seq, buf, a, slots, n);
	}
	return r;
}

/* read_addresses() from @o->nl, or from a socket of the running kernel. */
static int read_addresses_of(const struct vmc_state_opts *o, struct vmc_arena *a,
			     struct slot *slots, size_t n)
{
	_cleanup_close_ int fd = -1;
	struct vmc_nl_source kernel = { kernel_send, kernel_recv, &fd };

	if (o->nl)
		return read_addresses(o->nl, a, slots, n);
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	return read_addresses(&kernel, a, slots, n);
}

#define STR_(x) #x
#define STR(x) STR_(x)

const char *vmc_state_explain_links(int r)
{
	return r == -EAGAIN ? "address dump interrupted " STR(NL_ATTEMPTS) " times" : NULL;
}

static int read_all(const struct vmc_state_opts *o, struct vmc_arena *a, char **names, int n,
		    Vmcheck__V1__State *st)
{
	_cleanup_free_ struct slot *slots = calloc(n ? (size_t)n : 1, sizeof(*slots));
	struct vmc_ptrvec links = { 0 };
	int r;

	if (!slots)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		Vmcheck__V1__Link *l;

		r = read_link(o->root.fd, a, names[i], &l);
		if (r < 0)
			return r;
		if (!l)
			continue;
		slots[links.n].ifindex = l->ifindex;
		slots[links.n].link = l;
		r = vmc_ptrvec_push(a, &links, l);
		if (r < 0)
			return r;
	}

	/* Addresses exist only in the running kernel, never in a fixture tree. */
	if (o->root.live) {
		qsort(slots, links.n, sizeof(*slots), slot_cmp);
		r = read_addresses_of(o, a, slots, links.n);
		if (r < 0)
			return r;
		for (size_t i = 0; i < links.n; i++) {
			slots[i].link->addresses = (Vmcheck__V1__Address **)slots[i].addrs.items;
			slots[i].link->n_addresses = slots[i].addrs.n;
		}
	}
	st->links = (Vmcheck__V1__Link **)links.items;
	st->n_links = links.n;
	return 0;
}

/*
 * Links from sys/class/net in natural order of their names, with their
 * addresses on a live root. Returns 0; -ENOENT without sys/class/net;
 * -EAGAIN when the address table changed during every dump tried
 * (vmc_state_explain_links() says so); -errno when the dump fails.
 */
int vmc_state_read_links(const struct vmc_state_opts *o, struct vmc_arena *a,
			 Vmcheck__V1__State *st)
{
	char **names;
	int n, r;

	n = vmc_sysroot_list_dirf(o->root.fd, &names, "sys/class/net");
	if (n < 0)
		return n;
	r = read_all(o, a, names, n, st);
	vmc_sysroot_names_free(names, n);
	return r;
}
