/* SPDX-License-Identifier: MIT */
/*
 * libvirt-channel:DOMAIN/URI: the agent's virtio-serial channel
 * (org.vmcheck.agent.0) through libvirt's own connection, so that it works
 * wherever the connection reaches, not only where the channel's unix socket
 * is (vserial:PATH needs libvirtd on this host).
 *
 * virDomainOpenChannel() ties a non-blocking virStream to the channel; a
 * pump moves its bytes to and from one end of a socketpair, whose other end
 * is the transport's fd, so the client polls and reads a plain stream as
 * with every other transport. The pump is no thread of ours: it is the
 * callbacks of the stream, of a handle on our end of the pair and of a
 * liveness timer, run by libvirt's event loop (libvirt-shared.c).
 *
 * Both directions are bounded. The client's bytes wait in the socketpair
 * while the pump's buffer for the stream is full, and go into the stream
 * only while the guest has not left too much unanswered (WINDOW_BYTES).
 * The guest's bytes are taken from libvirt as they come, since libvirt
 * would queue them without bound anyway, and the stream is cut off when
 * the client leaves more than IN_MAX of them unread.
 *
 * The stream's end (EOF, libvirt's error, the connection gone) is recorded,
 * what was received before it is handed on, then our end of the pair is
 * shut down: the client reads EOF and describe_eof() says why in libvirt's
 * words.
 *
 * The link is shared by the opener's thread and the event loop's: a mutex
 * guards it and the callbacks hold it throughout. close() first tells them
 * to touch nothing more, removes them and releases the stream, the domain
 * and the connection; the link's memory and socket go once libvirt has
 * dropped the callbacks too (each registration's free function holds a
 * reference).
 */
#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "agent-client.h"
#include "frame.h"
#include "hv-libvirt-xml.h"
#include "libvirt-shared.h"

/*
 * The guest's bytes the client has not taken yet. libvirt's RPC client
 * queues whatever the daemon relays, without bound, whether the stream is
 * read or not: to bound what a guest can make this process hold, the pump
 * reads the stream as it comes and cuts it off past this (four of the
 * agent's largest frames; a client that reads holds a few KiB here).
 */
#define IN_MAX (4 * (size_t)VMC_FRAME_MAX_DEFAULT)
#define IN_FIRST (64u << 10)
/* The client's bytes not yet sent: while full, the socketpair is not read. */
#define OUT_BUF (64u << 10)
/* The most one virStreamSend() carries: one RPC packet of libvirt's usual size. */
#define SEND_MAX (64u << 10)
/*
 * Sent with nothing received since. libvirtd writes each packet into the
 * channel's socket and stops reading the whole connection while 5
 * (max_client_requests) wait for a guest that does not read its port (a
 * reboot, a stopped agent); 30 s later its keepalive closes the connection,
 * the backend's too (doc/facts.md, "The agent over libvirt's channel
 * stream"). The window keeps what a silent guest leaves unread within what
 * that socket's buffer takes at once.
 */
#define WINDOW_BYTES (64u << 10)
#define WINDOW_SENDS 32u
/* How often the pump asks whether the connection to libvirt still lives. */
#define ALIVE_MS 500

/*
 * Without FORCE libvirt refuses a second stream on a channel that has one
 * ("Active channel stream exists for this domain"); with it, libvirt aborts
 * the other one, whose client then reads "stream had I/O failure", possibly
 * in the middle of a frame. vmcheck does not force: a second vmcheck on the
 * domain is told so instead of breaking the first; our own reconnect needs
 * no force, as close() aborts the stream and waits for the daemon to confirm.
 */
#define OPEN_FLAGS 0u

enum end {
	END_NONE,
	END_EOF,   /* libvirt said the stream ended */
	END_ERROR, /* libvirt reported an error on the stream */
	END_LOST,  /* the connection to libvirt closed */
	END_FLOOD, /* the guest sent more than IN_MAX the client did not take */
};

struct lv_link {
	pthread_mutex_t mu;
	unsigned refs; /* the transport's, and one per registration with libvirt */
	virConnectPtr conn;
	virDomainPtr dom;
	virStreamPtr st;
	char *name, *uri;
	int mine;         /* the pump's end of the pair */
	int watch;        /* the handle on @mine, or -1 */
	int timer;        /* the liveness timer, or -1 */
	bool st_cb;       /* the stream callback is registered */
	bool closing;     /* close() began: the callbacks touch nothing */
	int st_events;    /* what the stream callback asks for */
	int fd_events;    /* what the handle asks for */
	bool client_gone; /* the client closed its end or cannot be written */
	bool shut;        /* our end is shut down: the client sees EOF */
	enum end end;
	char why[320];     /* libvirt's words for END_ERROR */
	size_t unanswered; /* bytes sent since the stream last gave any */
	unsigned sends;    /* virStreamSend() calls since then */
	char *in;          /* from the stream, for the client */
	size_t in_len, in_cap;
	size_t out_len;
	char out[OUT_BUF]; /* from the client, for the stream */
};

/* The link's own memory and socket; its libvirt objects are released by then. */
static void link_free(struct lv_link *l)
{
	if (l->mine >= 0)
		close(l->mine);
	pthread_mutex_destroy(&l->mu);
	free(l->in);
	free(l->name);
	free(l->uri);
	free(l);
}

/* Drop one reference; the last frees the link. Also the registrations' free function. */
static void unref(void *opaque)
{
	struct lv_link *l = opaque;
	bool last;

	pthread_mutex_lock(&l->mu);
	last = --l->refs == 0;
	pthread_mutex_unlock(&l->mu);
	if (last)
		link_free(l);
}

/* libvirt's last error on this thread as "libvirt error CODE/DOMAIN: MESSAGE", then reset. */
static void libvirt_words(char *buf, size_t size)
{
	const virError *e = virGetLastError();

	if (e)
		snprintf(buf, size, "libvirt error %d/%d: %s", e->code, e->domain,
			 e->message ? e->message : "(no message)");
	else
		snprintf(buf, size, "libvirt gave no error");
	virResetLastError();
}

static void end_stream(struct lv_link *l, enum end why)
{
	if (l->end != END_NONE)
		return;
	l->end = why;
	if (why == END_ERROR)
		libvirt_words(l->why, sizeof(l->why));
}

/* Room for at least one more byte from the stream, up to IN_MAX; false at the bound. */
static bool in_room(struct lv_link *l)
{
	size_t cap;
	char *p;

	if (l->in_len < l->in_cap)
		return true;
	if (l->in_cap >= IN_MAX)
		return false;
	cap = l->in_cap ? 2 * l->in_cap : IN_FIRST;
	p = realloc(l->in, cap);
	if (!p)
		return false;
	l->in = p;
	l->in_cap = cap;
	return true;
}

/* Move what can move without waiting, both ways. Called with l->mu held. */
static bool pump_once(struct lv_link *l)
{
	bool moved = false;

	/* The stream into the client's buffer, as it comes (see IN_MAX). */
	while (l->end == END_NONE) {
		int n;

		if (!in_room(l)) {
			/* Over the bound; a failed realloc ends it the same way. */
			end_stream(l, END_FLOOD);
			moved = true;
			break;
		}
		n = virStreamRecv(l->st, l->in + l->in_len, l->in_cap - l->in_len);
		if (n == -2)
			break;
		if (n == 0)
			end_stream(l, END_EOF);
		else if (n < 0)
			end_stream(l, END_ERROR);
		else
			l->in_len += (size_t)n;
		l->unanswered = 0;
		l->sends = 0;
		moved = true;
	}
	if (l->client_gone)
		l->in_len = 0; /* nobody to hand it to */
	if (l->in_len) {
		ssize_t w = send(l->mine, l->in, l->in_len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0) {
			memmove(l->in, l->in + w, l->in_len - (size_t)w);
			l->in_len -= (size_t)w;
			moved = true;
		} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
			l->client_gone = true;
			l->in_len = 0;
		}
	}
	/* The client's requests into the stream's buffer, while the stream lives. */
	if (l->end == END_NONE && !l->client_gone && l->out_len < sizeof(l->out)) {
		ssize_t n = recv(l->mine, l->out + l->out_len, sizeof(l->out) - l->out_len,
				 MSG_DONTWAIT);

		if (n > 0) {
			l->out_len += (size_t)n;
			moved = true;
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			l->client_gone = true;
		}
	}
	if (l->end == END_NONE && l->out_len && l->unanswered < WINDOW_BYTES &&
	    l->sends < WINDOW_SENDS) {
		int n = virStreamSend(l->st, l->out, l->out_len < SEND_MAX ? l->out_len : SEND_MAX);

		if (n > 0) {
			memmove(l->out, l->out + n, l->out_len - (size_t)n);
			l->out_len -= (size_t)n;
			l->unanswered += (size_t)n;
			l->sends++;
			moved = true;
		} else if (n != -2) {
			/* -2: the stream cannot take it yet; WRITABLE says when. */
			end_stream(l, END_ERROR);
			moved = true;
		}
	}
	return moved;
}

/*
 * Pump until nothing moves, hand the end on once the client has all that
 * came before it, and ask libvirt for the events that can move more.
 * Called with l->mu held, on the event loop's thread.
 */
static void pump(struct lv_link *l)
{
	bool window_open;
	int st_ev = 0, fd_ev = 0;

	if (l->closing)
		return;
	while (pump_once(l))
		;
	if (l->end != END_NONE && (!l->in_len || l->client_gone) && !l->shut) {
		shutdown(l->mine, SHUT_RDWR);
		l->shut = true;
		l->out_len = 0;
	}
	window_open = l->unanswered < WINDOW_BYTES && l->sends < WINDOW_SENDS;
	if (l->end == END_NONE) {
		st_ev = VIR_STREAM_EVENT_READABLE | VIR_STREAM_EVENT_ERROR |
			VIR_STREAM_EVENT_HANGUP;
		/* A closed window opens with the guest's next byte: READABLE. */
		if (l->out_len && window_open)
			st_ev |= VIR_STREAM_EVENT_WRITABLE;
	}
	if (!l->client_gone && !l->shut) {
		if (l->end == END_NONE && l->out_len < sizeof(l->out))
			fd_ev |= VIR_EVENT_HANDLE_READABLE;
		if (l->in_len)
			fd_ev |= VIR_EVENT_HANDLE_WRITABLE;
	}
	if (l->st_cb && st_ev != l->st_events) {
		if (virStreamEventUpdateCallback(l->st, st_ev) < 0)
			virResetLastError(); /* the stream is gone: its end says why */
		l->st_events = st_ev;
	}
	if (l->watch >= 0 && fd_ev != l->fd_events) {
		virEventUpdateHandle(l->watch, fd_ev);
		l->fd_events = fd_ev;
	}
}

static void on_stream(virStreamPtr st, int events, void *opaque)
{
	struct lv_link *l = opaque;

	pthread_mutex_lock(&l->mu);
	pump(l);
	if (!l->closing && l->end == END_NONE &&
	    (events & (VIR_STREAM_EVENT_ERROR | VIR_STREAM_EVENT_HANGUP))) {
		/* Nothing to read and no error from a read: say what libvirt said. */
		end_stream(l, END_ERROR);
		if (!strcmp(l->why, "libvirt gave no error"))
			snprintf(l->why, sizeof(l->why), "the stream reported %s",
				 events & VIR_STREAM_EVENT_HANGUP ? "a hangup" : "an error");
		pump(l);
	}
	pthread_mutex_unlock(&l->mu);
}

static void on_client(int watch, int fd, int events, void *opaque)
{
	struct lv_link *l = opaque;

	pthread_mutex_lock(&l->mu);
	if (!l->closing && (events & (VIR_EVENT_HANDLE_ERROR | VIR_EVENT_HANDLE_HANGUP)) &&
	    !(events & VIR_EVENT_HANDLE_READABLE))
		l->client_gone = true;
	pump(l);
	pthread_mutex_unlock(&l->mu);
}

/*
 * A stream raises no event when the connection under it closes (libvirtd
 * stopped, the SSH link died and keepalive gave up): without this a client
 * waiting for the agent would wait out its whole deadline.
 */
static void on_tick(int timer, void *opaque)
{
	struct lv_link *l = opaque;

	pthread_mutex_lock(&l->mu);
	if (!l->closing && l->end == END_NONE && virConnectIsAlive(l->conn) != 1) {
		virResetLastError();
		end_stream(l, END_LOST);
		pump(l);
	}
	pthread_mutex_unlock(&l->mu);
}

/* @err for @what failing on the link's domain, with libvirt's words. */
static int open_error(struct vmc_error *err, int code, const struct lv_link *l, const char *what)
{
	const virError *e = virGetLastError();
	bool busy = e && e->code == VIR_ERR_OPERATION_FAILED && e->message &&
		    strstr(e->message, "Active channel stream exists");
	char words[320];

	libvirt_words(words, sizeof(words));
	if (busy)
		return vmc_error_set(err, -EBUSY,
				     "the agent channel of domain %s on %s: %s: %s (another "
				     "client holds the channel's stream: is another vmcheck "
				     "using this domain?)",
				     l->name, l->uri, what, words);
	return vmc_error_set(err, code, "the agent channel of domain %s on %s: %s: %s", l->name,
			     l->uri, what, words);
}

/* Release the link's stream, domain and connection (what it has of them). */
static void release(struct lv_link *l)
{
	if (l->st)
		virStreamFree(l->st);
	if (l->dom)
		virDomainFree(l->dom);
	if (l->conn)
		virConnectClose(l->conn);
	l->st = NULL;
	l->dom = NULL;
	l->conn = NULL;
}

/*
 * Stop the pump and release the link. Once closing is set under the mutex
 * no callback touches the stream or the connection again (each holds the
 * mutex throughout), so they can be released here, on the closer's thread;
 * the registrations are removed first and their free functions drop their
 * references at once, or once a running callback returned. The daemon is
 * told we are done (finish after its EOF, else abort, which it confirms),
 * so the channel is free for the next stream at once.
 */
static void teardown(struct lv_link *l)
{
	enum end end;

	pthread_mutex_lock(&l->mu);
	l->closing = true;
	end = l->end;
	pthread_mutex_unlock(&l->mu);
	if (l->timer >= 0)
		virEventRemoveTimeout(l->timer);
	if (l->watch >= 0)
		virEventRemoveHandle(l->watch);
	if (l->st_cb && virStreamEventRemoveCallback(l->st) < 0)
		virResetLastError();
	if ((end == END_EOF ? virStreamFinish(l->st) : virStreamAbort(l->st)) < 0)
		virResetLastError();
	release(l);
	unref(l);
}

/*
 * Register the pump's callbacks. They may run as soon as each is
 * registered: the mutex keeps them waiting until all are. libvirt holds
 * none of its locks while it runs a callback, so holding ours across these
 * calls cannot deadlock. Each registration takes a reference.
 */
static int start_pump(struct lv_link *l, struct vmc_error *err)
{
	int r = 0;

	pthread_mutex_lock(&l->mu);
	l->st_events = VIR_STREAM_EVENT_READABLE | VIR_STREAM_EVENT_ERROR | VIR_STREAM_EVENT_HANGUP;
	if (virStreamEventAddCallback(l->st, l->st_events, on_stream, l, unref) < 0) {
		r = open_error(err, -EIO, l, "watching the stream");
		goto out;
	}
	l->refs++;
	l->st_cb = true;
	l->fd_events = VIR_EVENT_HANDLE_READABLE;
	l->watch = virEventAddHandle(l->mine, l->fd_events, on_client, l, unref);
	if (l->watch < 0) {
		r = open_error(err, -EIO, l, "watching the socketpair");
		goto out;
	}
	l->refs++;
	l->timer = virEventAddTimeout(ALIVE_MS, on_tick, l, unref);
	if (l->timer < 0) {
		r = open_error(err, -EIO, l, "adding a timer");
		goto out;
	}
	l->refs++;
out:
	pthread_mutex_unlock(&l->mu);
	return r;
}

static int lv_open(struct vmc_agent_transport *t, const char *arg, struct vmc_error *err)
{
	struct lv_link *l = calloc(1, sizeof(*l));
	_cleanup_close_ int theirs = -1;
	int sv[2], r;

	if (!l)
		return vmc_error_set(err, -ENOMEM, "connecting to %s:%s: out of memory",
				     VMC_LIBVIRT_CHANNEL_SCHEME, arg);
	pthread_mutex_init(&l->mu, NULL);
	l->refs = 1;
	l->mine = -1;
	l->watch = -1;
	l->timer = -1;
	r = vmc_libvirt_channel_parse(arg, &l->name, &l->uri, err);
	if (r < 0)
		goto fail;
	r = vmc_libvirt_domain_ref(l->uri, l->name, &l->conn, &l->dom, err);
	if (r < 0) {
		vmc_error_prefix(err, "the agent channel: ");
		goto fail;
	}
	l->st = virStreamNew(l->conn, VIR_STREAM_NONBLOCK);
	if (!l->st) {
		r = open_error(err, -ENOMEM, l, "creating a stream");
		goto fail;
	}
	if (virDomainOpenChannel(l->dom, VMC_LIBVIRT_XML_AGENT_CHANNEL, l->st, OPEN_FLAGS) < 0) {
		r = open_error(err, -ENODEV, l, "opening channel " VMC_LIBVIRT_XML_AGENT_CHANNEL);
		goto fail;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = vmc_error_set(err, -errno,
				  "the agent channel of domain %s on %s: socketpair: %s", l->name,
				  l->uri, strerror(errno));
		goto fail;
	}
	theirs = sv[0];
	l->mine = sv[1];
	if (fcntl(l->mine, F_SETFL, O_NONBLOCK) < 0) {
		r = vmc_error_set(err, -errno, "the agent channel of domain %s on %s: fcntl: %s",
				  l->name, l->uri, strerror(errno));
		goto fail;
	}
	r = start_pump(l, err);
	if (r < 0) {
		teardown(l);
		return r;
	}
	t->fd = TAKE_FD(theirs);
	t->priv = l;
	return 0;
fail:
	/* Before libvirt is initialised (a bad spec) its error calls must not run. */
	if (l->st && virStreamAbort(l->st) < 0)
		virResetLastError();
	release(l);
	unref(l);
	return r;
}

static void lv_describe_eof(struct vmc_agent_transport *t, char *buf, size_t size)
{
	struct lv_link *l = t->priv;

	pthread_mutex_lock(&l->mu);
	switch (l->end) {
	case END_ERROR:
		snprintf(buf, size, "libvirt closed the channel stream: %s", l->why);
		break;
	case END_EOF:
		snprintf(buf, size,
			 "the domain's channel ended (libvirt reported the end of the stream: "
			 "QEMU closed the channel; the domain shut off or was destroyed)");
		break;
	case END_LOST:
		snprintf(buf, size,
			 "the connection to libvirt at %s closed (libvirtd stopped, or the link "
			 "to it died)",
			 l->uri);
		break;
	case END_FLOOD:
		snprintf(buf, size,
			 "the guest sent more than %zu MiB that the host had not read yet: the "
			 "channel stream was cut off",
			 IN_MAX >> 20);
		break;
	default:
		snprintf(buf, size, "the channel stream's pump lost its socket");
	}
	pthread_mutex_unlock(&l->mu);
}

static void lv_close(struct vmc_agent_transport *t)
{
	struct lv_link *l = t->priv;

	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (!l)
		return;
	t->priv = NULL;
	teardown(l);
}

const struct vmc_agent_transport_ops vmc_agent_libvirt_ops = {
	.scheme = VMC_LIBVIRT_CHANNEL_SCHEME,
	.open = lv_open,
	.describe_eof = lv_describe_eof,
	.close = lv_close,
};
