/* SPDX-License-Identifier: MIT */
/*
 * NIC hotplug: virtio-net-pci devices on free root ports, each found in the
 * guest by its MAC and by the PCI function behind its port, bound to
 * virtio_net; then used: the agent brings the link up, gives it an address
 * and sends a token over TCP bound to that link alone to a listener this
 * host opened for the step, which must receive it (the host's own
 * listener judges, not the agent's word); then each unplugged: the link
 * gone, and QEMU (and libvirt) let go of it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check-util.h"
#include "clock.h"
#include "escape.h"

#define CHECK "nic"
#define TOKEN_LEN 32 /* hex characters */

struct nic {
	char id[16];
	char mac[18];
	const struct vmc_hv_slot *slot;
	struct vmc_chk_nic want;
	bool added; /* the hypervisor has it: unplug it whatever the guest saw */
};

/* NetProbe.timeout_ms's maximum in the protocol (proto/vmcheck.proto). */
#define NET_PROBE_MAX_MS 30000u

static void ladder(struct vmc_step *s, const struct nic *n, bool gone)
{
	const char *pci = *n->want.pci ? n->want.pci : n->want.port;
	char kobj[32];

	snprintf(kobj, sizeof(kobj), "link %s", n->mac);
	/* Before the function shows, the ladder starts from the port it should sit behind. */
	if (gone)
		vmc_step_ladder_gone(s, n->id, pci, kobj);
	else
		vmc_step_ladder(s, n->id, pci, kobj);
}

/*
 * The host's end of the traffic probe: one TCP listener for one step,
 * served by a thread while the agent's probe runs. It takes the first
 * connection, reads at most the token's length, echoes what it read and
 * records it; nothing the guest sends can make it hold more.
 */
struct listener {
	int fd, stop[2];
	uint64_t deadline;
	size_t want;         /* the token's length */
	char got[TOKEN_LEN]; /* what arrived, at most the token's length */
	size_t got_len;
	char peer[64]; /* "127.0.0.1:41234": where the connection came from */
	uint64_t t_accept, t_echo;
	char error[128];
	pthread_t thread;
};

/* Wait for @fd (or the stop pipe) until the deadline: 1 ready, 0 stopped or late. */
static int wait_fd(struct listener *l, int fd, short events)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = events },
				       { .fd = l->stop[0], .events = POLLIN } };
		uint64_t now = vmc_mono_ns();
		int r;

		if (now >= l->deadline)
			return 0;
		r = poll(p, 2, (int)((l->deadline - now) / 1000000 + 1));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || p[1].revents)
			return 0;
		if (p[0].revents)
			return 1;
	}
}

static void *serve(void *arg)
{
	struct listener *l = arg;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int c = -1;

	if (wait_fd(l, l->fd, POLLIN) == 1)
		c = accept4(l->fd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (c < 0)
		return NULL;
	l->t_accept = vmc_mono_ns();
	snprintf(l->peer, sizeof(l->peer), "%s:%u", inet_ntoa(sa.sin_addr), ntohs(sa.sin_port));
	while (l->got_len < l->want && wait_fd(l, c, POLLIN) == 1) {
		ssize_t n = read(c, l->got + l->got_len, l->want - l->got_len);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno != EAGAIN)
				snprintf(l->error, sizeof(l->error), "read: %s", strerror(errno));
			if (n == 0 || errno != EAGAIN)
				break;
			continue;
		}
		l->got_len += (size_t)n;
	}
	if (l->got_len && wait_fd(l, c, POLLOUT) == 1 &&
	    write(c, l->got, l->got_len) == (ssize_t)l->got_len)
		l->t_echo = vmc_mono_ns();
	close(c);
	return NULL;
}

/* Listen on @addr:0 until @deadline; the thread starts serving. 0 or -errno with @err. */
static int listener_start(struct listener *l, const char *addr, uint64_t deadline, size_t want,
			  struct vmc_error *err)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	sigset_t all, old;
	int r;

	memset(l, 0, sizeof(*l));
	l->fd = l->stop[0] = l->stop[1] = -1;
	l->deadline = deadline;
	l->want = want;
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return vmc_error_set(err, -EINVAL, "listener: \"%s\" is no IPv4 address", addr);
	l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l->fd < 0 || pipe2(l->stop, O_CLOEXEC) < 0 ||
	    bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l->fd, 4) < 0 ||
	    getsockname(l->fd, (struct sockaddr *)&sa, &sl) < 0) {
		r = vmc_error_set(err, -errno, "listening on %s: %m", addr);
		goto fail;
	}
	/* The run's signals belong to its signalfd, not to this thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&l->thread, NULL, serve, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0)
		return ntohs(sa.sin_port);
	vmc_error_set(err, r, "listener thread: %s", strerror(-r));
fail:
	if (l->fd >= 0)
		close(l->fd);
	if (l->stop[0] >= 0) {
		close(l->stop[0]);
		close(l->stop[1]);
	}
	return r;
}

/* Stop serving (the probe is over: a connection it made has been served). */
static void listener_stop(struct listener *l)
{
	char c = 1;

	if (write(l->stop[1], &c, 1) < 0) {
		/* The thread still ends at the deadline. */
	}
	pthread_join(l->thread, NULL);
	close(l->fd);
	close(l->stop[0]);
	close(l->stop[1]);
}

static void make_token(char out[TOKEN_LEN + 1])
{
	uint8_t raw[TOKEN_LEN / 2];
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);

		if (n > 0)
			got += (size_t)n;
		else if (errno != EINTR) /* no entropy at all: the clock still makes it ours */
			break;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x",
			 i < got ? raw[i] : (unsigned)((vmc_mono_ns() >> (i % 8)) & 0xff));
}

/* Judge what the host's listener saw against what the agent said; 0 or the step's failure. */
static int judge_traffic(struct vmc_step *s, const struct nic *n, const struct listener *l,
			 const char *token, const struct vmc_hv_netpath *p, unsigned port,
			 const Vmcheck__V1__ProbeResult *pr, const char *agent_err)
{
	char route[VMC_Q_SIZE + 128];

	snprintf(route, sizeof(route), "%s/%u on %s -> %s:%u, the host's listener %s:%u", p->guest,
		 p->prefixlen, VMC_Q(n->want.name), p->peer, port, p->listen, port);
	if (!l->t_accept) {
		vmc_step_usable(s, false, "no connection reached the host (%s)", route);
		return vmc_step_fail(s, -EIO,
				     "no connection over %s reached the host's listener (%s)%s%s",
				     VMC_Q(n->want.name), route, agent_err ? "; the agent: " : "",
				     agent_err ? agent_err
					       : "; yet the agent reported success: it did not "
						 "send the token");
	}
	if (l->got_len != strlen(token) || memcmp(l->got, token, l->got_len)) {
		vmc_step_usable(s, false, "%zu bytes from %s, not the token", l->got_len, l->peer);
		return vmc_step_fail(s, -EIO,
				     "the host's listener got %zu bytes from %s, not the step's "
				     "token (%s)%s",
				     l->got_len, l->peer, route, l->error[0] ? l->error : "");
	}
	if (agent_err)
		return vmc_step_fail(s, -EIO,
				     "the token reached the host (from %s), but the agent "
				     "failed: %s",
				     l->peer, agent_err);
	vmc_step_note(s,
		      "token from %s over %s (%s): agent connect %.2f ms, round trip %.2f ms; "
		      "%s",
		      l->peer, VMC_Q(pr->link), route, (double)pr->connect_ns / 1e6,
		      (double)pr->rtt_ns / 1e6,
		      pr->link_was_up ? "the link was up already"
				      : "the link is down again, as before");
	return 0;
}

/*
 * Step "use": the NIC carries traffic. Skipped, with the reason, where no
 * path leads from the guest's network to this host (a remote libvirt
 * host) or the agent has no traffic probe (protocol minor 0).
 */
static int use(struct vmc_ctx *c, struct nic *n)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Probe pr = VMCHECK__V1__PROBE__INIT;
	Vmcheck__V1__NetProbe np = VMCHECK__V1__NET_PROBE__INIT;
	Vmcheck__V1__Response *resp = NULL;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_netpath path = { .guest = "" };
	struct listener l;
	char name[VMC_Q_SIZE + 32], token[TOKEN_LEN + 1];
	struct vmc_step *s;
	unsigned dl = c->opts->deadline_ms;
	int r, port;

	snprintf(name, sizeof(name), "use %s (%s)", n->id, VMC_Q(n->want.name));
	if (vmc_agent_minor(c) < 1) {
		vmc_step_skip(c, CHECK, name,
			      "the agent speaks protocol minor %u: it has no traffic probe (minor 1)",
			      vmc_agent_minor(c));
		return 0;
	}
	r = c->hv->ops->nic_path ? c->hv->ops->nic_path(c->hv, n->id, &path, &err) : -ENOTSUP;
	if (r < 0) {
		vmc_step_skip(c, CHECK, name, "no path from the NIC's network to this host: %s",
			      err.msg ? err.msg : "the backend knows none");
		vmc_error_clear(&err);
		return 0;
	}
	s = vmc_step_begin(c, CHECK, "%s", name);
	make_token(token);
	port = listener_start(&l, path.listen, vmc_mono_ns() + dl * 1000000ull, strlen(token),
			      &err);
	if (port < 0) {
		r = vmc_step_end(s, port, "%s", err.msg);
		vmc_error_clear(&err);
		return r;
	}
	np.mac = n->mac;
	np.address = path.guest;
	np.prefixlen = path.prefixlen;
	np.peer = path.peer;
	np.port = (uint32_t)port;
	np.token.data = (uint8_t *)token;
	np.token.len = strlen(token);
	/* The protocol caps a traffic probe at 30 s; a longer --deadline-ms waits on here. */
	np.timeout_ms = dl < NET_PROBE_MAX_MS ? dl : NET_PROBE_MAX_MS;
	pr.kind_case = VMCHECK__V1__PROBE__KIND_NET;
	pr.net = &np;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_PROBE;
	req.probe = &pr;
	/* The agent keeps to the deadline itself: its reply gets a little more. */
	r = vmc_step_agent(s, &req, dl + 2000, &resp);
	listener_stop(&l);
	if (r < 0 && !vmc_chk_fatal(r) && l.t_accept) {
		/* The agent failed after its token arrived: say both. */
		r = judge_traffic(s, n, &l, token, &path, (unsigned)port, NULL,
				  "its reply was an error");
	} else if (r == 0) {
		r = judge_traffic(s, n, &l, token, &path, (unsigned)port, resp->probe, NULL);
		vmc_agent_response_free(vmc_step_conn(s), resp);
	} else if (!vmc_chk_fatal(r)) {
		vmc_step_usable(s, false,
				"the agent's traffic probe failed; nothing reached the host");
	}
	return vmc_step_end(s, r, NULL);
}

static int plug(struct vmc_ctx *c, struct nic *n)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_nic spec = { .id = n->id, .mac = n->mac, .slot = n->slot->id };
	struct vmc_step *s;
	int r;

	s = vmc_step_begin(c, CHECK, "plug %s (%s) on %s", n->id, n->mac, n->slot->id);
	r = vmc_chk_slot_address(n->slot, &err);
	if (r == 0)
		r = hv->ops->nic_add(hv, &spec, &err);
	r = vmc_step_acted(s, r, &err);
	vmc_error_clear(&err);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	n->added = true;
	r = vmc_step_expect(s, vmc_chk_nic_up, &n->want, c->opts->deadline_ms);
	if (r == -ETIMEDOUT)
		ladder(s, n, false);
	else if (r == 0)
		vmc_step_note(s, "%s at %s behind %s", VMC_Q(n->want.name), VMC_Q(n->want.pci),
			      n->slot->address);
	return vmc_step_end(s, r, NULL);
}

/*
 * The guest drops the link before QEMU reports DEVICE_DELETED (~0.4 s on q35): wait in
 * that order, within the architecture's unplug deadline.
 */
static int unplug(struct vmc_ctx *c, struct nic *n)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	unsigned deadline = vmc_chk_unplug_ms(c);
	struct vmc_step *s;
	bool pending = false, shown;
	int r;

	s = vmc_step_begin(c, CHECK, "unplug %s (%s)", n->id, n->mac);
	shown = vmc_chk_shown(c, vmc_chk_nic_gone, &n->want);
	r = vmc_chk_del(s, hv->ops->nic_del(hv, n->id, &err), &err, &pending);
	if (r == 0)
		r = vmc_step_expect(s, vmc_chk_nic_gone, &n->want, deadline);
	if (r == -ETIMEDOUT)
		ladder(s, n, true);
	else if (r == 0)
		r = vmc_chk_removed(c, s, n->id, pending, deadline);
	if (r == 0)
		n->added = false;
	return vmc_step_end(s, vmc_chk_seen_go(s, r, shown, n->id), NULL);
}

/*
 * One plug/unplug cycle over free root ports discovered afresh (a device
 * that did not go away keeps its port). NIC ids and MACs continue across
 * cycles so a late event of one cycle cannot be taken for the next's.
 */
static int cycle(struct vmc_ctx *c, unsigned *seq)
{
	const struct vmc_run_opts *o = c->opts;
	struct vmc_hv_slot *slots = NULL;
	struct nic *nics;
	size_t n_slots = 0;
	int r, rc = 0;

	r = vmc_chk_free_slots(c, CHECK, o->nics, "--nics", &slots, &n_slots);
	if (r <= 0)
		return r;
	nics = calloc(o->nics, sizeof(*nics));
	if (!nics) {
		vmc_hv_slots_free(slots, n_slots);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < o->nics; i++) {
		struct nic *n = &nics[i];

		++*seq;
		snprintf(n->id, sizeof(n->id), "nic%u", *seq);
		vmc_chk_mac(vmc_chk_run_tag(), *seq, n->mac);
		n->slot = &slots[i];
		n->want.mac = n->mac;
		n->want.port = n->slot->address;
		r = plug(c, n);
		if (r == 0)
			r = use(c, n);
		rc = rc ? rc : r;
		if (vmc_chk_fatal(r))
			goto out;
	}
	for (unsigned i = 0; i < o->nics; i++) {
		if (!nics[i].added)
			continue;
		r = unplug(c, &nics[i]);
		rc = rc ? rc : r;
		if (vmc_chk_fatal(r))
			break;
	}
out:
	free(nics);
	vmc_hv_slots_free(slots, n_slots);
	return rc;
}

int vmc_check_nic(struct vmc_ctx *c)
{
	if (!c->opts->nics) {
		vmc_step_skip(c, CHECK, "plug", "--nics 0");
		return 0;
	}
	return vmc_chk_repeat(c, cycle);
}
