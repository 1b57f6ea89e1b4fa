/* SPDX-License-Identifier: MIT */
/*
 * struct vmc_hv_ops over libvirt's C API. libvirt's events arrive on one
 * process-wide thread running virEventRunDefaultImpl(); its callbacks queue
 * them under a mutex and signal an eventfd, which is what ops->fd() returns,
 * so the suite polls libvirt like it polls QMP. Every failure carries
 * libvirt's own code, domain and message.
 */
#include "hv-libvirt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "accel.h"
#include "clock.h"
#include "hv-libvirt-xml.h"
#include "hv-qmp-client.h"
#include "ledger.h"
#include "libvirt-shared.h"
#include "qemu.h"

struct qev {
	struct qev *next;
	struct vmc_hv_event ev;
};

struct tline {
	struct tline *next;
	uint64_t ns;
	char *text;
};

/*
 * What the event thread and the main thread share. Each callback
 * registration holds a reference, the backend one: libvirt may still run a
 * callback after deregistering it, until it calls the free function.
 */
struct evq {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled when the domain stopped */
	int efd;
	int refs;
	bool closed; /* the connection to libvirt closed */
	struct qev *head, **tail;
	struct tline *lines, **ltail;
	/*
	 * How the domain ended, from its lifecycle events (a transient domain
	 * is gone from libvirt once it stops: nothing else can say): the
	 * STOPPED and CRASHED details, -1 when none came.
	 */
	int stopped, crashed;
	/* qemu-guest-agent's channel: the last AGENT_LIFECYCLE state, and how many came. */
	int qga;
	unsigned qga_events;
};

struct lv_console;

struct vcpu_map {
	char *id;
	unsigned vcpu;
};

struct hv_lv {
	struct vmc_hv hv;
	virConnectPtr conn;
	virDomainPtr dom;
	bool owned;                          /* our transient domain: destroyed by free() */
	unsigned char uuid[VIR_UUID_BUFLEN]; /* the domain's, to find it again: reconnect() */
	char *dom_name;                      /* and its name */
	bool local;   /* the daemon runs on this host (a URI without a host part) */
	bool shared;  /* in libvirt-shared's registry: the agent's stream may use conn */
	bool gave_up; /* the connection was lost and did not come back: not tried again mid-run */
	char *notice; /* for the step in flight: the connection was lost (take_notice) */
	char *uri;
	/*
	 * The serial console's log on this host: what QEMU writes for our
	 * transient domain on a local URI; on a remote one what @con reads
	 * through libvirt. NULL: none.
	 */
	char *console;
	struct lv_console *con;
	char *own_dir; /* made for that log when no workdir was given; removed by free() */
	char *agent_spec;
	char *network;
	struct evq *q;
	int cb[8];
	size_t n_cb;
	struct vcpu_map *vcpus;
	size_t n_vcpus;
	virStoragePoolPtr pool; /* ours, for disk images; made on first use */
	char *pool_name;
	char *pool_xml;
	char *pool_path;             /* its directory on the libvirt host */
	const struct vmc_arch *arch; /* the guest's: the config's, or the live XML's */
	char *last_monitor;          /* the last passthrough command and answer in the transcript */
	unsigned same_monitor;       /* how many times since it came again, unwritten */
	/*
	 * What we attached to the domain and have not removed: devices by id
	 * (their alias without VMC_LIBVIRT_XML_ALIAS_PREFIX), vCPUs we enabled
	 * (ids in @vcpus), volumes by path; and the live vCPU count before the
	 * first vCPU we enabled (@vcpus_known).
	 */
	struct vmc_ledger ledger;
	bool vcpus_known;
	int vcpus_before;
};

#define H(hv) ((struct hv_lv *)(hv))

/* ---- the event queue and transcript */

static void evq_unref(void *opaque)
{
	struct evq *q = opaque;
	bool last;

	pthread_mutex_lock(&q->mu);
	last = --q->refs == 0;
	pthread_mutex_unlock(&q->mu);
	if (!last)
		return;
	while (q->head) {
		struct qev *e = q->head;

		q->head = e->next;
		vmc_hv_event_free(&e->ev);
		free(e);
	}
	while (q->lines) {
		struct tline *l = q->lines;

		q->lines = l->next;
		free(l->text);
		free(l);
	}
	close(q->efd);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

/* Append transcript line @text (taken over); q->mu held. Out of memory loses the line only. */
static void line_locked(struct evq *q, uint64_t ns, char *text)
{
	struct tline *l = text ? calloc(1, sizeof(*l)) : NULL;

	if (!l) {
		free(text);
		return;
	}
	l->ns = ns;
	l->text = text;
	*q->ltail = l;
	q->ltail = &l->next;
}

static void _printf_(2, 3) note(struct evq *q, const char *fmt, ...)
{
	char *text;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	pthread_mutex_lock(&q->mu);
	line_locked(q, vmc_mono_ns(), text);
	pthread_mutex_unlock(&q->mu);
}

static void wake(struct evq *q)
{
	uint64_t one = 1;

	/* Only EAGAIN can fail here, and then the counter is already set. */
	if (write(q->efd, &one, sizeof(one)) < 0)
		return;
}

/*
 * Queue event @name (a VMC_EV_* or a libvirt name for the transcript only)
 * about @device, with @reason (SHUTDOWN/RESET) and the detail @fmt.
 * Out of memory loses the event.
 */
static void vpush(struct evq *q, const char *name, const char *device, const char *reason,
		  bool synthesized, const char *fmt, va_list ap)
{
	struct qev *e = calloc(1, sizeof(*e));
	char *text = NULL;

	if (!e)
		return;
	e->ev.host_ns = vmc_mono_ns();
	e->ev.name = strdup(name);
	e->ev.device = device ? strdup(device) : NULL;
	e->ev.reason = reason ? strdup(reason) : NULL;
	e->ev.synthesized = synthesized;
	if (vasprintf(&e->ev.detail, fmt, ap) < 0)
		e->ev.detail = NULL;
	if (!e->ev.name || !e->ev.detail || (device && !e->ev.device) ||
	    (reason && !e->ev.reason)) {
		vmc_hv_event_free(&e->ev);
		free(e);
		return;
	}
	if (asprintf(&text, "event %s%s%s%s%s%s %s", name, device ? " " : "", device ? device : "",
		     reason ? " reason " : "", reason ? reason : "",
		     synthesized ? " (synthesized by vmcheck)" : "", e->ev.detail) < 0)
		text = NULL;
	pthread_mutex_lock(&q->mu);
	*q->tail = e;
	q->tail = &e->next;
	line_locked(q, e->ev.host_ns, text);
	pthread_mutex_unlock(&q->mu);
	wake(q);
}

static void _printf_(5, 6) push(struct evq *q, const char *name, const char *device,
				const char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vpush(q, name, device, reason, false, fmt, ap);
	va_end(ap);
}

/* An event libvirt does not report, made up from an API call's return. */
static void _printf_(3, 4) push_synthesized(struct evq *q, const char *name, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vpush(q, name, NULL, NULL, true, fmt, ap);
	va_end(ap);
}

/* ---- libvirt's callbacks (event thread) */

static const char *const life_names[] = {
	"DEFINED", "UNDEFINED", "STARTED",     "SUSPENDED", "RESUMED",
	"STOPPED", "SHUTDOWN",  "PMSUSPENDED", "CRASHED",
};

/*
 * What libvirt 9.0 sent here (QEMU 7.2, the embedded guest; the monitor's
 * events beside, from libvirtd's debug log):
 *  - ACPI powerdown, the guest powers off: SHUTDOWN/GUEST (QEMU: SHUTDOWN
 *    guest-shutdown) ~2 s after virDomainShutdownFlags, STOPPED/SHUTDOWN
 *    1.5-1.9 s later (libvirt runs QEMU with -no-shutdown and then ends it;
 *    its host-signal SHUTDOWN is not forwarded).
 *  - virDomainDestroy: SHUTDOWN/HOST (QEMU: host-signal), STOPPED/DESTROYED.
 *  - A panic with a pvpanic device, no crash kernel: CRASHED/PANICKED 0.06 s
 *    after sysrq c, STOPPED/CRASHED 2 s later (<on_crash>destroy); no
 *    SHUTDOWN at all.
 *  - QEMU aborting: STOPPED/FAILED.
 *  - ACPI reboot and reset: only REBOOT events, no lifecycle event.
 */
void vmc_libvirt_lifecycle_event(int event, int detail, const char **name, const char **reason)
{
	*name = "LIFECYCLE";
	*reason = NULL;
	switch (event) {
	case VIR_DOMAIN_EVENT_SUSPENDED:
		*name = VMC_EV_STOP;
		break;
	case VIR_DOMAIN_EVENT_RESUMED:
		*name = VMC_EV_RESUME;
		break;
	case VIR_DOMAIN_EVENT_SHUTDOWN:
		*name = VMC_EV_SHUTDOWN;
		/*
		 * libvirt says guest or host, not QEMU's reason. Its QEMU has no
		 * UI and is not sent "quit": a host-initiated SHUTDOWN is the
		 * signal libvirt ends it with (seen as host-signal on the monitor).
		 */
		if (detail == VIR_DOMAIN_EVENT_SHUTDOWN_GUEST)
			*reason = "guest-shutdown";
		else if (detail == VIR_DOMAIN_EVENT_SHUTDOWN_HOST)
			*reason = "host-signal";
		break;
	case VIR_DOMAIN_EVENT_CRASHED:
		*name = detail == VIR_DOMAIN_EVENT_CRASHED_CRASHLOADED ? VMC_EV_GUEST_CRASHLOADED
								       : VMC_EV_GUEST_PANICKED;
		break;
	}
}

/* libvirt's word for @detail of lifecycle event @event, for evidence. */
static const char *detail_word(int event, int detail)
{
	static const char *const stopped[] = {
		"shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from-snapshot",
	};
	static const char *const shutdown[] = { "finished", "guest", "host" };
	static const char *const crashed[] = { "panicked", "crashloaded" };
	const char *const *w = NULL;
	size_t n = 0;

	switch (event) {
	case VIR_DOMAIN_EVENT_STOPPED:
		w = stopped, n = ARRAY_SIZE(stopped);
		break;
	case VIR_DOMAIN_EVENT_SHUTDOWN:
		w = shutdown, n = ARRAY_SIZE(shutdown);
		break;
	case VIR_DOMAIN_EVENT_CRASHED:
		w = crashed, n = ARRAY_SIZE(crashed);
		break;
	}
	return w && detail >= 0 && (size_t)detail < n ? w[detail] : NULL;
}

static int on_lifecycle(virConnectPtr c, virDomainPtr d, int event, int detail, void *opaque)
{
	struct evq *q = opaque;
	const char *life = event >= 0 && (size_t)event < ARRAY_SIZE(life_names) ? life_names[event]
										: "?";
	const char *as, *reason, *word;

	vmc_libvirt_lifecycle_event(event, detail, &as, &reason);
	pthread_mutex_lock(&q->mu);
	if (event == VIR_DOMAIN_EVENT_STOPPED)
		q->stopped = detail;
	else if (event == VIR_DOMAIN_EVENT_CRASHED)
		q->crashed = detail;
	else if (event == VIR_DOMAIN_EVENT_STARTED)
		q->stopped = q->crashed = -1; /* a persistent domain started again */
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	word = detail_word(event, detail);
	push(q, as, NULL, reason, "{\"libvirt\":\"lifecycle %s\",\"detail\":%d%s%s%s}", life,
	     detail, word ? ",\"as\":\"" : "", word ? word : "", word ? "\"" : "");
	return 0;
}

static int on_reboot(virConnectPtr c, virDomainPtr d, void *opaque)
{
	/* libvirt sends REBOOT on QEMU's RESET. */
	push(opaque, VMC_EV_RESET, NULL, NULL, "{\"libvirt\":\"reboot\"}");
	return 0;
}

static int on_pmsuspend(virConnectPtr c, virDomainPtr d, int reason, void *opaque)
{
	push(opaque, VMC_EV_SUSPEND, NULL, NULL, "{\"libvirt\":\"pmsuspend\",\"reason\":%d}",
	     reason);
	return 0;
}

static int on_pmwakeup(virConnectPtr c, virDomainPtr d, int reason, void *opaque)
{
	push(opaque, VMC_EV_WAKEUP, NULL, NULL, "{\"libvirt\":\"pmwakeup\",\"reason\":%d}", reason);
	return 0;
}

/* Our aliases carry VMC_LIBVIRT_XML_ALIAS_PREFIX; the checks know the ids without it. */
static const char *id_of_alias(const char *alias)
{
	size_t n = strlen(VMC_LIBVIRT_XML_ALIAS_PREFIX);

	return strncmp(alias, VMC_LIBVIRT_XML_ALIAS_PREFIX, n) ? alias : alias + n;
}

static int on_removed(virConnectPtr c, virDomainPtr d, const char *alias, void *opaque)
{
	push(opaque, VMC_EV_DEVICE_DELETED, id_of_alias(alias), NULL,
	     "{\"libvirt\":\"device-removed\",\"alias\":\"%s\"}", alias);
	return 0;
}

static int on_removal_failed(virConnectPtr c, virDomainPtr d, const char *alias, void *opaque)
{
	push(opaque, "DEVICE_REMOVAL_FAILED", id_of_alias(alias), NULL,
	     "{\"libvirt\":\"device-removal-failed\",\"alias\":\"%s\"}", alias);
	return 0;
}

/* qemu-guest-agent opened or closed its channel (libvirt follows QEMU's VSERPORT_CHANGE). */
static int on_agent(virConnectPtr c, virDomainPtr d, int state, int reason, void *opaque)
{
	struct evq *q = opaque;

	pthread_mutex_lock(&q->mu);
	q->qga = state;
	q->qga_events++;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	note(q, "event agent-lifecycle: qemu-guest-agent %s (reason %d)",
	     state == VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED ? "connected"
									       : "disconnected",
	     reason);
	return 0;
}

static void on_close(virConnectPtr c, int reason, void *opaque)
{
	struct evq *q = opaque;

	pthread_mutex_lock(&q->mu);
	q->closed = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	note(q, "the connection to libvirt closed (reason %d)", reason);
	wake(q);
}

/* ---- errors */

static int code_of(const virError *e)
{
	if (!e)
		return -EIO;
	switch (e->code) {
	case VIR_ERR_NO_DOMAIN:
		return -ENOENT;
	case VIR_ERR_OPERATION_TIMEOUT:
		return -ETIMEDOUT;
	case VIR_ERR_NO_SUPPORT:
	case VIR_ERR_OPERATION_UNSUPPORTED:
		return -ENOTSUP;
	case VIR_ERR_NO_CONNECT:
	case VIR_ERR_SYSTEM_ERROR:
	case VIR_ERR_RPC:
		return -ECONNREFUSED;
	case VIR_ERR_INVALID_ARG:
	case VIR_ERR_XML_ERROR:
	case VIR_ERR_XML_DETAIL:
		return -EINVAL;
	default:
		return -EIO;
	}
}

/*
 * @what failed: "@what: libvirt error CODE/DOMAIN: MESSAGE", also in the
 * transcript. On a remote URI the message opens with the URI: a run against
 * several hosts (--hosts) must say which one refused.
 */
static int lv_fail(struct hv_lv *h, struct vmc_error *err, const char *what)
{
	const virError *e = virGetLastError();
	bool remote = h && !h->local && h->uri;
	int r = code_of(e);

	if (h)
		note(h->q, "%s: libvirt error %d/%d: %s", what, e ? e->code : 0, e ? e->domain : 0,
		     e && e->message ? e->message : "(no message)");
	vmc_error_set(err, r, "%s%s%s: libvirt error %d/%d: %s", remote ? h->uri : "",
		      remote ? ": " : "", what, e ? e->code : 0, e ? e->domain : 0,
		      e && e->message ? e->message : "(no message)");
	virResetLastError();
	return r;
}

/*
 * vmc_error_prefix() that keeps the remote URI lv_fail() put first where it
 * is: "URI: @fmt...: what failed".
 */
static int _printf_(3, 4) lv_prefix(struct hv_lv *h, struct vmc_error *err, const char *fmt, ...)
{
	size_t n = h->uri ? strlen(h->uri) : 0;
	char *p = NULL, *m = NULL;
	va_list ap;

	if (!err)
		return 0;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		p = NULL;
	va_end(ap);
	if (!p)
		return err->code;
	if (!h->local && n && err->msg && !strncmp(err->msg, h->uri, n) &&
	    !strncmp(err->msg + n, ": ", 2)) {
		if (asprintf(&m, "%s: %s%s", h->uri, p, err->msg + n + 2) >= 0) {
			free(err->msg);
			err->msg = m;
		}
	} else {
		vmc_error_prefix(err, "%s", p);
	}
	free(p);
	return err->code;
}

/*
 * A removal request failed: libvirt's VIR_ERR_OPERATION_TIMEOUT there means
 * it sent the request and stopped waiting for the outcome (libvirt 9.0,
 * vCPU unplug under TCG: error 68/10 "vcpu unplug request timed out. Unplug
 * result must be manually inspected in the domain" after 5 s, while the
 * guest and QEMU had removed the CPU 0.06 s after the request), which is
 * -EINPROGRESS with libvirt's words; anything else fails as lv_fail().
 */
static int fail_pending(struct hv_lv *h, struct vmc_error *err, const char *what)
{
	bool timeout = virGetLastErrorCode() == VIR_ERR_OPERATION_TIMEOUT;
	int r = lv_fail(h, err, what);

	if (!timeout)
		return r;
	if (err)
		err->code = -EINPROGRESS;
	return -EINPROGRESS;
}

/* Log API call @what with its result @r (libvirt's < 0 is failure). */
static int done(struct hv_lv *h, int r, struct vmc_error *err, const char *what)
{
	if (r < 0)
		return lv_fail(h, err, what);
	note(h->q, "%s: ok", what);
	return 0;
}

/* The live domain XML, parsed. */
static int live(struct hv_lv *h, struct vmc_libvirt_xml **x, struct vmc_error *err)
{
	char *xml = virDomainGetXMLDesc(h->dom, 0);
	int r;

	if (!xml)
		return lv_fail(h, err, "virDomainGetXMLDesc");
	r = vmc_libvirt_xml_parse(xml, x, err);
	free(xml);
	return r;
}

/* A URI without a host part ("qemu:///system?socket=...") is a daemon on this host. */
static bool local_uri(const char *uri)
{
	const char *p = strstr(uri, "://");

	return p && p[3] == '/';
}

/*
 * Wait until the guest opens virtio channel @name, reading the live XML
 * (libvirt tracks the state of every channel there). Returns 1 when it is
 * open, 0 when not by @deadline_ns, -ENOENT when the domain has no such
 * channel at all.
 */
static int channel_up(struct hv_lv *h, const char *name, uint64_t deadline_ns)
{
	for (;;) {
		struct vmc_libvirt_xml *x = NULL;
		struct vmc_error e = VMC_ERROR_INIT;
		char *path = NULL;
		int up = 0;

		if (live(h, &x, &e) == 0) {
			path = vmc_libvirt_xml_channel_path(x, name);
			up = !path ? -ENOENT : vmc_libvirt_xml_channel_connected(x, name);
		}
		free(path);
		vmc_libvirt_xml_free(x);
		vmc_error_clear(&e);
		if (up || vmc_mono_ns() >= deadline_ns)
			return up;
		poll(NULL, 0, 100);
	}
}

static int lv_cpus(struct vmc_hv *hv, struct vmc_hv_cpu **out, size_t *n, struct vmc_error *err);

/* ---- the serial console through libvirt's stream */

/*
 * How much of the guest's console a run keeps: the guest is untrusted and
 * can print without end. Past it the stream is still read (libvirt's
 * client queues whatever arrives until it is read) and the bytes dropped.
 */
#define CONSOLE_MAX_BYTES (16u << 20)
/* Read at most this much per callback: a flood must not hold the event thread. */
#define CONSOLE_READS_PER_EVENT 16

/*
 * The serial console of a domain whose daemon runs on another host, read
 * through virDomainOpenConsole on libvirt's event thread and appended to a
 * file of this host. Two references: the backend's and the stream
 * callback's, which libvirt drops through console_unref() once the callback
 * is removed, on the event thread while it holds the stream's own lock:
 * hence an atomic count there and no mutex. @mu serialises the callback
 * against console_close() (the event thread against free()).
 */
struct lv_console {
	pthread_mutex_t mu;
	int refs;         /* atomic */
	virStreamPtr st;  /* NULL once closed: a late callback does nothing */
	int fd;           /* the file; -1 once closed */
	uint64_t bytes;   /* written to it */
	uint64_t dropped; /* past CONSOLE_MAX_BYTES, or after a write error */
	bool write_failed;
	struct evq *q; /* a reference of its own, for the transcript */
	char *path;
};

static void console_unref(void *opaque)
{
	struct lv_console *c = opaque;

	if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL))
		return;
	if (c->fd >= 0)
		close(c->fd);
	if (c->st)
		virStreamFree(c->st);
	pthread_mutex_destroy(&c->mu);
	evq_unref(c->q);
	free(c->path);
	free(c);
}

/*
 * Stop reading and close the file; c->mu held. The stream is dropped, never
 * finished or aborted: each is a call that waits for the daemon's answer,
 * which must not hold libvirt's event thread (the agent's stream and the
 * domain's events run there too) nor free(): after another client took the
 * console with FORCE, libvirt 9.0's daemon may have told our stream nothing
 * and then never answer an abort (doc/facts.md, "The guest kit on a remote
 * libvirt host"). The daemon ends its side when our connection closes,
 * which free() does right after.
 */
static void console_stop_locked(struct lv_console *c)
{
	if (!c->st)
		return;
	virStreamEventRemoveCallback(c->st);
	virStreamFree(c->st);
	c->st = NULL;
	close(c->fd);
	c->fd = -1;
}

/* Append @n bytes the guest printed, within the bound; c->mu held. */
static void console_write_locked(struct lv_console *c, const char *buf, size_t n)
{
	size_t room = c->bytes < CONSOLE_MAX_BYTES ? CONSOLE_MAX_BYTES - c->bytes : 0;
	size_t take = c->write_failed ? 0 : n < room ? n : room;
	size_t done_n = 0;

	while (done_n < take) {
		ssize_t w = write(c->fd, buf + done_n, take - done_n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w < 0)
				note(c->q, "serial console: writing %s: %m: the rest is dropped",
				     c->path);
			else
				note(c->q,
				     "serial console: writing %s: no progress: the rest is "
				     "dropped",
				     c->path);
			c->write_failed = true;
			break;
		}
		done_n += (size_t)w;
	}
	c->bytes += done_n;
	if (done_n < n && !c->dropped && !c->write_failed)
		note(c->q,
		     "serial console: %s reached %u MiB: the rest of the guest's console is "
		     "dropped",
		     c->path, CONSOLE_MAX_BYTES >> 20);
	c->dropped += n - done_n;
}

/* libvirt's event thread: the console's bytes, its end, or its failure. */
static void on_console(virStreamPtr st, int events, void *opaque)
{
	struct lv_console *c = opaque;
	char buf[16384];

	(void)st;
	pthread_mutex_lock(&c->mu);
	for (int i = 0; c->st && i < CONSOLE_READS_PER_EVENT; i++) {
		int n = virStreamRecv(c->st, buf, sizeof(buf));

		if (n == -2)
			break; /* nothing more for now */
		if (n > 0) {
			console_write_locked(c, buf, (size_t)n);
			continue;
		}
		if (n == 0)
			note(c->q, "serial console: the stream ended (%" PRIu64 " bytes kept)",
			     c->bytes);
		else
			note(c->q, "serial console: the stream failed: %s (%" PRIu64 " bytes kept)",
			     virGetLastErrorMessage(), c->bytes);
		console_stop_locked(c);
	}
	if (c->st && (events & (VIR_STREAM_EVENT_ERROR | VIR_STREAM_EVENT_HANGUP))) {
		note(c->q, "serial console: the stream %s (%" PRIu64 " bytes kept)",
		     events & VIR_STREAM_EVENT_ERROR ? "failed" : "hung up", c->bytes);
		console_stop_locked(c);
	}
	pthread_mutex_unlock(&c->mu);
}

/* free(): no more callbacks use the stream once this returns. */
static void console_close(struct lv_console *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	console_stop_locked(c);
	pthread_mutex_unlock(&c->mu);
	console_unref(c);
}

/*
 * Read the domain's first console (a <serial type='pty'>, which libvirt
 * also shows as <console>) through libvirt into local file @path, on a
 * non-blocking stream served by libvirt's event thread. @flags: the
 * virDomainConsoleFlags (see the callers for which). The file is made
 * anew (0600) only once libvirt gave the console. Returns 0 or a negative
 * errno with @err.
 */
static int console_open(struct hv_lv *h, const char *path, unsigned flags, struct vmc_error *err)
{
	struct lv_console *c = calloc(1, sizeof(*c));
	char what[96];

	snprintf(what, sizeof(what), "virDomainOpenConsole (%s)",
		 flags & VIR_DOMAIN_CONSOLE_FORCE ? "force" : "safe");
	if (!c || !(c->path = strdup(path))) {
		free(c);
		return vmc_error_set(err, -ENOMEM, "serial console: out of memory");
	}
	c->fd = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_lock(&h->q->mu);
	h->q->refs++;
	pthread_mutex_unlock(&h->q->mu);
	c->q = h->q;
	c->refs = 1;
	c->st = virStreamNew(h->conn, VIR_STREAM_NONBLOCK);
	if (!c->st || virDomainOpenConsole(h->dom, NULL, c->st, flags) < 0) {
		int r = lv_fail(h, err, what);

		console_unref(c);
		return r;
	}
	c->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (c->fd < 0) {
		int r = vmc_error_set(err, -errno, "serial console: open %s: %m", path);

		virStreamAbort(c->st);
		virResetLastError();
		console_unref(c);
		return r;
	}
	c->refs = 2;
	if (virStreamEventAddCallback(c->st,
				      VIR_STREAM_EVENT_READABLE | VIR_STREAM_EVENT_ERROR |
					      VIR_STREAM_EVENT_HANGUP,
				      on_console, c, console_unref) < 0) {
		int r = lv_fail(h, err, "virStreamEventAddCallback (the serial console)");

		c->refs = 1;
		virStreamAbort(c->st);
		virResetLastError();
		unlink(path);
		console_unref(c);
		return r;
	}
	free(h->console);
	h->console = strdup(path);
	h->con = c;
	note(h->q, "%s: ok, the guest's serial console goes to %s", what, path);
	return h->console ? 0 : vmc_error_set(err, -ENOMEM, "serial console: out of memory");
}

/* ---- lifecycle */

static int lv_reboot(struct vmc_hv *hv, struct vmc_error *err)
{
	/*
	 * ACPI: the guest's acpid powers off; libvirt resets QEMU instead of
	 * ending it (QEMU's SHUTDOWN guest-shutdown, then system_reset).
	 */
	return done(H(hv), virDomainReboot(H(hv)->dom, VIR_DOMAIN_REBOOT_ACPI_POWER_BTN), err,
		    "virDomainReboot acpi");
}

static int lv_reset(struct vmc_hv *hv, struct vmc_error *err)
{
	return done(H(hv), virDomainReset(H(hv)->dom, 0), err, "virDomainReset");
}

static int lv_stop(struct vmc_hv *hv, struct vmc_error *err)
{
	return done(H(hv), virDomainSuspend(H(hv)->dom), err, "virDomainSuspend");
}

static int lv_cont(struct vmc_hv *hv, struct vmc_error *err)
{
	return done(H(hv), virDomainResume(H(hv)->dom), err, "virDomainResume");
}

static int lv_wakeup(struct vmc_hv *hv, struct vmc_error *err)
{
	return done(H(hv), virDomainPMWakeup(H(hv)->dom, 0), err, "virDomainPMWakeup");
}

static int lv_powerdown(struct vmc_hv *hv, struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	int r = done(h, virDomainShutdownFlags(h->dom, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN), err,
		     "virDomainShutdownFlags acpi");

	/*
	 * QEMU emits POWERDOWN when it accepts system_powerdown, which is when
	 * this call returns; libvirt does not forward that event. The queued
	 * POWERDOWN is made up from libvirt's return, and says so.
	 */
	if (r == 0)
		push_synthesized(
			h->q, VMC_EV_POWERDOWN,
			"{\"libvirt\":\"virDomainShutdownFlags(ACPI_POWER_BTN) returned 0\","
			"\"note\":\"libvirt forwards no POWERDOWN event: made up by vmcheck "
			"from that return\"}");
	return r;
}

/*
 * virsh dompmsuspend: libvirt asks qemu-guest-agent in the guest, which
 * starts a few seconds after the boot. The live XML says whether it has
 * its channel open now; if not, wait for libvirt's AGENT_LIFECYCLE event
 * saying it connected, bounded. Without one (no channel, nothing
 * connecting) -ENOTSUP: the check then suspends through vmcheck's agent.
 */
#define QGA_WAIT_MS 20000

/*
 * 1 when qemu-guest-agent has its channel open, 0 when it did not open it
 * by @deadline_ns, -ENOENT when the domain has no such channel.
 */
static int qga_up(struct hv_lv *h, uint64_t deadline_ns)
{
	struct vmc_libvirt_xml *x = NULL;
	struct vmc_error e = VMC_ERROR_INIT;
	struct timespec until = { .tv_sec = (time_t)(deadline_ns / 1000000000),
				  .tv_nsec = (long)(deadline_ns % 1000000000) };
	char *path = NULL;
	unsigned seen;
	int up = 0;

	/* Events counted before the XML is read are older than what it says. */
	pthread_mutex_lock(&h->q->mu);
	seen = h->q->qga_events;
	pthread_mutex_unlock(&h->q->mu);
	if (live(h, &x, &e) == 0) {
		path = vmc_libvirt_xml_channel_path(x, VMC_LIBVIRT_XML_QGA_CHANNEL);
		up = !path ? -ENOENT
			   : vmc_libvirt_xml_channel_connected(x, VMC_LIBVIRT_XML_QGA_CHANNEL);
	}
	free(path);
	vmc_libvirt_xml_free(x);
	vmc_error_clear(&e);
	if (up)
		return up;
	pthread_mutex_lock(&h->q->mu);
	while (!(h->q->qga_events != seen &&
		 h->q->qga == VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED) &&
	       !h->q->closed && pthread_cond_timedwait(&h->q->cv, &h->q->mu, &until) != ETIMEDOUT)
		;
	up = h->q->qga_events != seen &&
	     h->q->qga == VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED;
	pthread_mutex_unlock(&h->q->mu);
	return up;
}

static int lv_pm_suspend(struct vmc_hv *hv, struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	const virError *e;
	int r = qga_up(h, vmc_mono_ns() + QGA_WAIT_MS * 1000000ull);

	if (r < 0)
		return vmc_error_set(err, -ENOTSUP,
				     "the domain has no " VMC_LIBVIRT_XML_QGA_CHANNEL " channel");
	if (r == 0)
		return vmc_error_set(err, -ENOTSUP,
				     "qemu-guest-agent did not open " VMC_LIBVIRT_XML_QGA_CHANNEL
				     " within %d s (no AGENT_LIFECYCLE connected event)",
				     QGA_WAIT_MS / 1000);
	if (virDomainPMSuspendForDuration(h->dom, VIR_NODE_SUSPEND_TARGET_MEM, 0, 0) == 0) {
		note(h->q, "virDomainPMSuspendForDuration mem: ok");
		return 0;
	}
	e = virGetLastError();
	if (e &&
	    (e->code == VIR_ERR_AGENT_UNRESPONSIVE || e->code == VIR_ERR_ARGUMENT_UNSUPPORTED ||
	     e->code == VIR_ERR_OPERATION_UNSUPPORTED)) {
		lv_fail(h, err, "virDomainPMSuspendForDuration mem");
		return -ENOTSUP;
	}
	return lv_fail(h, err, "virDomainPMSuspendForDuration mem");
}

static int lv_destroy(struct vmc_hv *hv, struct vmc_error *err)
{
	return done(H(hv), virDomainDestroy(H(hv)->dom), err, "virDomainDestroy");
}

/* ---- hotplug */

/*
 * Record @id of @kind (used by @device) as ours, to be removed from a
 * user's domain by lv_cleanup(). Out of memory it is only not cleaned up
 * after an interruption: say so on stderr.
 */
static void lv_record(struct hv_lv *h, enum vmc_ledger_kind kind, const char *id,
		      const char *device)
{
	if (vmc_ledger_add(&h->ledger, kind, id, device) < 0)
		fprintf(stderr,
			"vmcheck: out of memory recording %s %s: an interrupted run "
			"will not remove it\n",
			vmc_ledger_kind_name(kind), id);
}

/* Device @id was attached: ours; its disk's volume @path (NULL: none) is now in use by it. */
static int lv_attached(struct hv_lv *h, int r, const char *id, const char *path)
{
	if (r < 0)
		return r;
	lv_record(h, VMC_LEDGER_DEVICE, id, NULL);
	if (path && vmc_ledger_find(&h->ledger, VMC_LEDGER_VOLUME, path))
		lv_record(h, VMC_LEDGER_VOLUME, path, id);
	return r;
}

static bool conn_lost(struct hv_lv *h);
static int heal(struct hv_lv *h, struct vmc_error *err);
static void _printf_(2, 3) set_notice(struct hv_lv *h, const char *fmt, ...);

/*
 * Attach @xml, the device @id. A connection lost under the call leaves its
 * outcome unknown (the daemon may have done it before dying): once
 * connected again, the live XML says. A device that is there is attached,
 * and the step in flight says how that was learned.
 */
static int attach(struct hv_lv *h, const char *id, const char *xml, struct vmc_error *err,
		  const char *what)
{
	struct vmc_libvirt_xml *x = NULL;
	int r, there;

	note(h->q, "%s: %s", what, xml);
	r = done(h, virDomainAttachDeviceFlags(h->dom, xml, VIR_DOMAIN_AFFECT_LIVE), err, what);
	if (r >= 0 || !conn_lost(h) || heal(h, NULL) < 0 || live(h, &x, NULL) < 0)
		return r;
	there = vmc_libvirt_xml_device(x, id, NULL, NULL);
	vmc_libvirt_xml_free(x);
	if (there <= 0)
		return r;
	note(h->q, "%s: done after all: the live XML has alias " VMC_LIBVIRT_XML_ALIAS_PREFIX "%s",
	     what, id);
	set_notice(h, "%s: its reply was lost with the connection (%s), but the live XML has it",
		   what, err && err->msg ? err->msg : "");
	vmc_error_clear(err);
	return 0;
}

/*
 * From the live XML: the bus of root port @slot (-ENOENT with a message)
 * and, if @dev, a virtio disk target no disk uses yet.
 */
static int port_bus(struct hv_lv *h, const char *slot, unsigned *bus, char dev[8],
		    struct vmc_error *err)
{
	struct vmc_libvirt_xml *x = NULL;
	int r = live(h, &x, err);

	if (r == 0 && vmc_libvirt_xml_port_bus(x, slot, bus) < 0)
		r = vmc_error_set(err, -ENOENT, "the domain has no pcie-root-port %s", slot);
	if (r == 0 && dev && vmc_libvirt_xml_free_vd(x, dev) < 0)
		r = vmc_error_set(err, -ENOSPC, "no free virtio disk target vda..vdz");
	vmc_libvirt_xml_free(x);
	return r;
}

static int lv_nic_add(struct vmc_hv *hv, const struct vmc_hv_nic *nic, struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	_cleanup_free_ char *xml = NULL;
	char what[300];
	unsigned bus;

	if (port_bus(h, nic->slot, &bus, NULL, err) < 0)
		return lv_prefix(h, err, "attach-device %s: ", nic->id);
	if (vmc_libvirt_xml_nic(nic, bus, h->network, &xml) < 0)
		return vmc_error_set(err, -ENOMEM, "attach-device %s: out of memory", nic->id);
	snprintf(what, sizeof(what), "attach-device %s on %s", nic->id, nic->slot);
	return lv_attached(h, attach(h, nic->id, xml, err, what), nic->id, NULL);
}

static int lv_disk_add(struct vmc_hv *hv, const struct vmc_hv_disk *d, struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	_cleanup_free_ char *xml = NULL;
	char what[300], dev[8];
	unsigned bus;

	if (port_bus(h, d->slot, &bus, dev, err) < 0)
		return lv_prefix(h, err, "attach-device %s: ", d->id);
	if (vmc_libvirt_xml_disk(d, bus, dev, &xml) < 0)
		return vmc_error_set(err, -ENOMEM, "attach-device %s: out of memory", d->id);
	snprintf(what, sizeof(what), "attach-device %s (%s) on %s", d->id, dev, d->slot);
	return lv_attached(h, attach(h, d->id, xml, err, what), d->id, d->path);
}

static int lv_mem_add(struct vmc_hv *hv, const struct vmc_hv_dimm *m, struct vmc_error *err)
{
	_cleanup_free_ char *xml = NULL;
	char what[300];

	if (vmc_libvirt_xml_dimm(m, &xml) < 0)
		return vmc_error_set(err, -ENOMEM, "attach-device %s: out of memory", m->id);
	snprintf(what, sizeof(what), "attach-device %s (%llu MiB)", m->id,
		 (unsigned long long)(m->size >> 20));
	return lv_attached(H(hv), attach(H(hv), m->id, xml, err, what), m->id, NULL);
}

/*
 * managed='no' leaves the binding to the client: detach the function from
 * its host driver through libvirt first (virsh nodedev-detach), which binds
 * it to vfio-pci and lets a domain take it. It stays there after the unplug.
 */
static int nodedev_detach(struct hv_lv *h, const char *addr, struct vmc_error *err)
{
	virNodeDevicePtr dev;
	char name[32], what[96];
	int r;

	if (vmc_libvirt_xml_nodedev_name(addr, name) < 0)
		return vmc_error_set(err, -EINVAL, "%s: not a PCI address", addr);
	snprintf(what, sizeof(what), "virNodeDeviceLookupByName %s", name);
	dev = virNodeDeviceLookupByName(h->conn, name);
	if (!dev)
		return lv_fail(h, err, what);
	snprintf(what, sizeof(what), "virNodeDeviceDetachFlags %s vfio", name);
	r = done(h, virNodeDeviceDetachFlags(dev, "vfio", 0), err, what);
	virNodeDeviceFree(dev);
	return r;
}

static int lv_vfio_add(struct vmc_hv *hv, const struct vmc_hv_vfio *v, struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	_cleanup_free_ char *xml = NULL;
	char what[300];
	unsigned bus;
	int r = port_bus(h, v->slot, &bus, NULL, err);

	if (r == 0 && (r = vmc_libvirt_xml_hostdev(v, bus, &xml)) < 0)
		vmc_error_set(err, r, "%s",
			      r == -EINVAL ? "host address is no PCI address" : "out of memory");
	if (r == 0 && !v->managed)
		r = nodedev_detach(h, v->host, err);
	if (r < 0)
		return lv_prefix(h, err, "attach-device %s (host %s): ", v->id, v->host);
	snprintf(what, sizeof(what), "attach-device %s (host %s) on %s", v->id, v->host, v->slot);
	return lv_attached(h, attach(h, v->id, xml, err, what), v->id, NULL);
}

/*
 * libvirt 9.0 waits 5 s for QEMU's DEVICE_DELETED and then returns 0 as if
 * the device were gone ("detached successfully"), the device still in its
 * live XML and in QEMU. Measured with native PCIe hotplug (a 5 s attention
 * button delay): detach returned after 5.03 s, the NIC still listed by both;
 * DEVICE_DELETED 1.3 s later, libvirt's DEVICE_REMOVED with it, and the
 * NIC left the live XML. So a removal is over only when the live XML says
 * so: still there after the return is -EINPROGRESS.
 */
static int detach_pending(struct hv_lv *h, const char *id, uint64_t t0, struct vmc_error *err)
{
	struct vmc_libvirt_xml *x = NULL;
	struct vmc_error e = VMC_ERROR_INIT;
	int there = live(h, &x, &e) == 0 ? vmc_libvirt_xml_device(x, id, NULL, NULL) : 0;

	vmc_libvirt_xml_free(x);
	vmc_error_clear(&e);
	if (there <= 0)
		return 0; /* gone, or unknown: the check looks for itself either way */
	note(h->q, "detach-device %s: the live XML still has it after libvirt returned", id);
	return vmc_error_set(err, -EINPROGRESS,
			     "detach-device %s: virDomainDetachDeviceFlags returned 0 after %.1f s "
			     "with the device still in libvirt's live XML: libvirt stopped waiting "
			     "for QEMU's DEVICE_DELETED; the removal may still complete",
			     id, (double)(vmc_mono_ns() - t0) / 1e9);
}

/*
 * Detach by the device's live XML (found by alias): libvirt matches a
 * <memory> by model and size, so two equal DIMMs are told apart only by the
 * address libvirt gave them.
 */
static int lv_detach(struct vmc_hv *hv, const char *id, struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	struct vmc_libvirt_xml *x = NULL;
	_cleanup_free_ char *xml = NULL;
	char what[300];
	uint64_t t0;
	int r = live(h, &x, err);

	if (r == 0)
		r = vmc_libvirt_xml_device(x, id, NULL, &xml);
	vmc_libvirt_xml_free(x);
	if (r == 0)
		return vmc_error_set(err, -ENOENT,
				     "detach-device %s: the domain has no device "
				     "with alias " VMC_LIBVIRT_XML_ALIAS_PREFIX "%s",
				     id, id);
	if (r < 0)
		return lv_prefix(h, err, "detach-device %s: ", id);
	snprintf(what, sizeof(what), "detach-device %s", id);
	note(h->q, "%s: %s", what, xml);
	t0 = vmc_mono_ns();
	if (virDomainDetachDeviceFlags(h->dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0)
		return fail_pending(h, err, what);
	note(h->q, "%s: ok", what);
	return detach_pending(h, id, t0, err);
}

/* libvirt removes a disk's or DIMM's backend with the device: nothing left to release. */
static int lv_release(struct vmc_hv *hv, const char *id, struct vmc_error *err)
{
	return 0;
}

/* ---- disk images: a dir storage pool of our own on the libvirt host */

/*
 * Start the pool on first use, as QA does with pool-define-as/vol-create-as:
 * a transient dir pool, its directory built by libvirt (the host may be
 * remote), named so that runs from several machines never share one.
 */
static int pool_ensure(struct hv_lv *h, struct vmc_error *err)
{
	_cleanup_free_ char *name = NULL, *path = NULL;
	uint32_t tag;

	if (h->pool)
		return 0;
	if (getrandom(&tag, sizeof(tag), 0) != sizeof(tag))
		tag = (uint32_t)vmc_mono_ns();
	if (asprintf(&name, "vmcheck-%d-%08x", (int)getpid(), tag) < 0) {
		name = NULL;
		return vmc_error_set(err, -ENOMEM, "storage pool: out of memory");
	}
	if (asprintf(&path, "/var/tmp/%s", name) < 0) {
		path = NULL;
		return vmc_error_set(err, -ENOMEM, "storage pool: out of memory");
	}
	free(h->pool_path);
	free(h->pool_name);
	h->pool_path = strdup(path);
	h->pool_name = strdup(name);
	if (!h->pool_path || !h->pool_name)
		return vmc_error_set(err, -ENOMEM, "storage pool: out of memory");
	if (vmc_libvirt_xml_pool(name, path, &h->pool_xml) < 0)
		return vmc_error_set(err, -ENOMEM, "storage pool: out of memory");
	h->pool = virStoragePoolCreateXML(h->conn, h->pool_xml, VIR_STORAGE_POOL_CREATE_WITH_BUILD);
	/* A driver that builds nothing (test:///) refuses the flag: it needs no directory. */
	if (!h->pool && virGetLastErrorCode() == VIR_ERR_INVALID_ARG)
		h->pool = virStoragePoolCreateXML(h->conn, h->pool_xml, 0);
	if (!h->pool) {
		char what[300];

		snprintf(what, sizeof(what), "virStoragePoolCreateXML dir pool %s at %s", name,
			 path);
		return lv_fail(h, err, what);
	}
	note(h->q, "virStoragePoolCreateXML dir pool %s at %s: ok", name, path);
	return 0;
}

/*
 * Remove the pool and its directory. A transient pool cannot be deleted,
 * only destroyed; defining it again while inactive lets libvirt remove the
 * (now empty) directory, wherever the host is.
 */
/* At teardown nobody reads the transcript: say on stderr what is left behind. */
static void warn_fail(struct hv_lv *h, const char *what)
{
	struct vmc_error err = VMC_ERROR_INIT;

	lv_fail(h, &err, what);
	fprintf(stderr, "vmcheck: storage pool teardown: %s\n", err.msg ? err.msg : what);
	vmc_error_clear(&err);
}

static void pool_teardown(struct hv_lv *h)
{
	virStorageVolPtr *vols = NULL;
	virStoragePoolPtr p;
	int n;

	if (!h->pool)
		return;
	/* Files libvirt made there itself (a UEFI variable store) become volumes. */
	if (virStoragePoolRefresh(h->pool, 0) < 0)
		warn_fail(h, "virStoragePoolRefresh (teardown)");
	n = virStoragePoolListAllVolumes(h->pool, &vols, 0);
	for (int i = 0; i < n; i++) {
		if (virStorageVolDelete(vols[i], 0) < 0)
			warn_fail(h, "virStorageVolDelete (teardown)");
		virStorageVolFree(vols[i]);
	}
	free(vols);
	if (virStoragePoolDestroy(h->pool) < 0) {
		warn_fail(h, "virStoragePoolDestroy");
	} else if ((p = virStoragePoolDefineXML(h->conn, h->pool_xml, 0))) {
		if (virStoragePoolDelete(p, 0) < 0)
			warn_fail(h, "virStoragePoolDelete (removing its directory)");
		if (virStoragePoolUndefine(p) < 0)
			warn_fail(h, "virStoragePoolUndefine");
		virStoragePoolFree(p);
	} else {
		warn_fail(h, "virStoragePoolDefineXML (to remove its directory)");
	}
	virResetLastError();
	virStoragePoolFree(h->pool);
	h->pool = NULL;
}

static int lv_image_create(struct vmc_hv *hv, const char *name, uint64_t bytes, char **path,
			   uint64_t *size, struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	_cleanup_free_ char *xml = NULL;
	virStorageVolInfo info;
	virStorageVolPtr vol;
	char what[300];
	int r = pool_ensure(h, err);

	if (r < 0)
		return lv_prefix(h, err, "vol-create %s: ", name);
	if (vmc_libvirt_xml_volume(name, bytes, "qcow2", &xml) < 0)
		return vmc_error_set(err, -ENOMEM, "vol-create %s: out of memory", name);
	snprintf(what, sizeof(what), "virStorageVolCreateXML %s (qcow2, %" PRIu64 " bytes)", name,
		 bytes);
	vol = virStorageVolCreateXML(h->pool, xml, 0);
	if (!vol)
		return lv_fail(h, err, what);
	*path = virStorageVolGetPath(vol);
	if (!*path)
		r = lv_fail(h, err, "virStorageVolGetPath");
	else if (virStorageVolGetInfo(vol, &info) < 0)
		r = lv_fail(h, err, "virStorageVolGetInfo");
	else
		*size = info.capacity;
	if (r == 0) {
		note(h->q, "%s: ok, %s", what, *path);
		lv_record(h, VMC_LEDGER_VOLUME, *path, NULL);
	}
	virStorageVolFree(vol);
	if (r < 0) {
		free(*path);
		*path = NULL;
	}
	return r;
}

static int sink(virStreamPtr st, const char *data, size_t n, void *opaque)
{
	size_t done_n = 0;

	(void)st;
	while (done_n < n) {
		ssize_t w = write(*(int *)opaque, data + done_n, n - done_n);

		if (w < 0 && errno != EINTR)
			return -1;
		done_n += w > 0 ? (size_t)w : 0;
	}
	return (int)n;
}

/* virsh vol-download: the image's bytes through libvirt's stream, into @local. */
static int lv_image_fetch(struct vmc_hv *hv, const char *path, const char *local,
			  struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	_cleanup_close_ int fd = -1;
	virStorageVolPtr vol;
	virStreamPtr st;
	char what[PATH_MAX + 64];
	int r = 0;

	snprintf(what, sizeof(what), "virStorageVolDownload %s", path);
	vol = virStorageVolLookupByPath(h->conn, path);
	if (!vol)
		return lv_fail(h, err, what);
	st = virStreamNew(h->conn, 0);
	fd = open(local, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (!st || fd < 0) {
		r = fd < 0 ? vmc_error_set(err, -errno, "%s: open %s: %m", what, local)
			   : lv_fail(h, err, what);
	} else if (virStorageVolDownload(vol, st, 0, 0, 0) < 0) {
		r = lv_fail(h, err, what);
	} else if (virStreamRecvAll(st, sink, &fd) < 0) {
		r = lv_fail(h, err, what);
		virStreamAbort(st);
	} else if (virStreamFinish(st) < 0) {
		r = lv_fail(h, err, what);
	}
	if (r == 0)
		note(h->q, "%s into %s: ok", what, local);
	if (st)
		virStreamFree(st);
	virStorageVolFree(vol);
	return r;
}

static int lv_image_remove(struct vmc_hv *hv, const char *path, struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	virStorageVolPtr vol = virStorageVolLookupByPath(h->conn, path);
	char what[PATH_MAX + 64];
	int r;

	snprintf(what, sizeof(what), "virStorageVolDelete %s", path);
	if (!vol)
		return lv_fail(h, err, what);
	r = done(h, virStorageVolDelete(vol, 0), err, what);
	virStorageVolFree(vol);
	if (r == 0)
		vmc_ledger_drop(&h->ledger, VMC_LEDGER_VOLUME, path);
	return r;
}

/* ---- the crash disk: made here, uploaded into the pool with its holes */

static int up_read(virStreamPtr st, char *data, size_t n, void *opaque)
{
	ssize_t r;

	(void)st;
	do
		r = read(*(int *)opaque, data, n);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -1 : (int)r;
}

/* At the file's offset: data or a hole, and how long it goes on (0 at the end). */
static int up_hole(virStreamPtr st, int *in_data, long long *len, void *opaque)
{
	int fd = *(int *)opaque;
	off_t cur = lseek(fd, 0, SEEK_CUR), end = lseek(fd, 0, SEEK_END), next;

	(void)st;
	if (cur < 0 || end < 0)
		return -1;
	*in_data = 0;
	*len = 0;
	if (cur < end) {
		next = lseek(fd, cur, SEEK_DATA);
		if (next < 0 && errno != ENXIO)
			return -1;
		if (next < 0 || next > cur) {
			*len = (next < 0 ? end : next) - cur;
		} else {
			next = lseek(fd, cur, SEEK_HOLE);
			if (next < 0)
				return -1;
			*in_data = 1;
			*len = next - cur;
		}
	}
	return lseek(fd, cur, SEEK_SET) < 0 ? -1 : 0;
}

static int up_skip(virStreamPtr st, long long len, void *opaque)
{
	(void)st;
	return lseek(*(int *)opaque, len, SEEK_CUR) < 0 ? -1 : 0;
}

/* Upload local file @fd into volume @vol, its holes sent as holes. */
static int upload(struct hv_lv *h, virStorageVolPtr vol, int fd, const char *what,
		  struct vmc_error *err)
{
	virStreamPtr st = virStreamNew(h->conn, 0);
	int r = 0;

	if (!st)
		return lv_fail(h, err, what);
	if (virStorageVolUpload(vol, st, 0, 0, VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM) < 0 ||
	    virStreamSparseSendAll(st, up_read, up_hole, up_skip, &fd) < 0 ||
	    virStreamFinish(st) < 0)
		r = lv_fail(h, err, what);
	virStreamFree(st);
	return r;
}

/*
 * A raw volume @name of the pool holding the @bytes of local file @fd (read
 * from its start), @label saying what it is ("the crash disk"): made,
 * uploaded as a sparse stream, and its path on the libvirt host in *@path
 * (malloc'd). *@secs: how long the upload took.
 */
static int upload_volume(struct hv_lv *h, const char *label, const char *name, int fd,
			 uint64_t bytes, char **path, double *secs, struct vmc_error *err)
{
	_cleanup_free_ char *xml = NULL;
	virStorageVolPtr vol = NULL;
	char what[PATH_MAX + 128];
	uint64_t t0;
	int r = 0;

	*path = NULL;
	if (vmc_libvirt_xml_volume(name, bytes, "raw", &xml) < 0)
		return vmc_error_set(err, -ENOMEM, "%s: out of memory", label);
	snprintf(what, sizeof(what), "%s: virStorageVolCreateXML %s (raw, %" PRIu64 " bytes)",
		 label, name, bytes);
	if (!(vol = virStorageVolCreateXML(h->pool, xml, 0)))
		return lv_fail(h, err, what);
	snprintf(what, sizeof(what), "%s: virStorageVolUpload into %s (sparse)", label, name);
	t0 = vmc_mono_ns();
	if (lseek(fd, 0, SEEK_SET) < 0)
		r = vmc_error_set(err, -errno, "%s: lseek: %m", what);
	if (r == 0)
		r = upload(h, vol, fd, what, err);
	*secs = (double)(vmc_mono_ns() - t0) / 1e9;
	if (r == 0 && !(*path = virStorageVolGetPath(vol))) {
		snprintf(what, sizeof(what), "%s: virStorageVolGetPath %s", label, name);
		r = lv_fail(h, err, what);
	}
	virStorageVolFree(vol);
	return r;
}

/*
 * The crash disk kdump saves dumps to, a volume of the pool (so that it is
 * where QEMU runs, and goes with the pool): the ext4 image the QMP launcher
 * gives its guests (vmc_qemu_crash_disk(), for a guest of up to @ram
 * bytes), made here in $TMPDIR (unlinked once made) and uploaded as a
 * sparse stream, so that only its few MiB of metadata travel and the
 * volume stays sparse.
 * *@path: the volume's path on the libvirt host, malloc'd.
 */
static int crash_volume(struct hv_lv *h, uint64_t ram, char **path, struct vmc_error *err)
{
	const char *tmp = getenv("TMPDIR");
	_cleanup_free_ char *local = NULL;
	_cleanup_close_ int fd = -1;
	uint64_t t0 = vmc_mono_ns();
	struct stat sb;
	double secs;
	int r;

	if (asprintf(&local, "%s/vmcheck-crash-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0) {
		local = NULL;
		return vmc_error_set(err, -ENOMEM, "the crash disk: out of memory");
	}
	fd = mkostemp(local, O_CLOEXEC);
	if (fd < 0)
		return vmc_error_set(err, -errno, "the crash disk: mkstemp %s: %m", local);
	r = vmc_qemu_crash_disk(local, ram, err);
	/* The open fd is all the upload needs: nothing stays behind, however we end. */
	unlink(local);
	if (r == 0 && fstat(fd, &sb) < 0)
		r = vmc_error_set(err, -errno, "the crash disk: stat %s: %m", local);
	if (r == 0)
		r = upload_volume(h, "the crash disk", VMC_LIBVIRT_XML_CRASH_DISK ".img", fd,
				  (uint64_t)sb.st_size, path, &secs, err);
	if (r == 0)
		note(h->q, "the crash disk: %s, %llu MiB, made and uploaded in %.2f s", *path,
		     (unsigned long long)(sb.st_size >> 20), (double)(vmc_mono_ns() - t0) / 1e9);
	return r;
}

/*
 * Guest kit file @local (absolute) as volume @name of the pool, for a
 * daemon that cannot read this host's files: *@path its path there, the
 * upload timed in the transcript and in *@secs, its size in *@bytes.
 */
static int kit_volume(struct hv_lv *h, const char *local, const char *name, char **path,
		      uint64_t *bytes, double *secs, struct vmc_error *err)
{
	_cleanup_close_ int fd = open(local, O_RDONLY | O_CLOEXEC);
	char label[PATH_MAX + 32];
	struct stat sb;
	int r;

	snprintf(label, sizeof(label), "the guest kit's %s", local);
	if (fd < 0 || fstat(fd, &sb) < 0)
		return vmc_error_set(err, -errno, "%s: %m", label);
	if (!S_ISREG(sb.st_mode))
		return vmc_error_set(err, -EINVAL, "%s: not a regular file", label);
	*bytes = (uint64_t)sb.st_size;
	r = upload_volume(h, label, name, fd, *bytes, path, secs, err);
	if (r == 0)
		note(h->q, "%s: volume %s, %" PRIu64 " bytes uploaded in %.3f s (%.1f MiB/s)",
		     label, *path, *bytes, *secs,
		     *secs > 0 ? (double)*bytes / (1 << 20) / *secs : 0.0);
	return r;
}

/*
 * The format of image @fd ("qcow2" by its magic, else "raw") and its size
 * as the guest sees it (a qcow2 header's, a raw file's length).
 */
static int image_geometry(int fd, const char *label, const char **format, uint64_t *bytes,
			  struct vmc_error *err)
{
	unsigned char hdr[32];
	struct stat sb;

	if (fstat(fd, &sb) < 0)
		return vmc_error_set(err, -errno, "%s: %m", label);
	if (!S_ISREG(sb.st_mode))
		return vmc_error_set(err, -EINVAL, "%s: not a regular file", label);
	if (pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) && !memcmp(hdr, "QFI\xfb", 4)) {
		*format = "qcow2";
		*bytes = 0;
		for (int i = 24; i < 32; i++) /* the virtual size, big-endian */
			*bytes = *bytes << 8 | hdr[i];
	} else {
		*format = "raw";
		*bytes = (uint64_t)sb.st_size;
	}
	if (!*bytes)
		return vmc_error_set(err, -EINVAL, "%s: an empty image", label);
	return 0;
}

/*
 * --image: the root disk, a qcow2 volume "root.qcow2" of the pool over
 * @image, so the image stays as built and what the guest writes goes with
 * the pool. A daemon on this host reads @image where it is; with @upload a
 * copy goes into the pool first ("image.raw" or "image.qcow2", sparse: only
 * its data travels) and the overlay is over that. *@path: the overlay's
 * path on the libvirt host; *@base: the copy's, or NULL.
 */
static int root_volume(struct hv_lv *h, const char *image, bool upload, char **base, char **path,
		       struct vmc_error *err)
{
	_cleanup_free_ char *abs = realpath(image, NULL);
	_cleanup_free_ char *xml = NULL;
	_cleanup_close_ int fd = -1;
	virStorageVolPtr vol = NULL;
	char label[PATH_MAX + 32], what[2 * PATH_MAX + 128];
	const char *format = NULL, *backing;
	uint64_t bytes;
	double secs;
	int r;

	*base = *path = NULL;
	snprintf(label, sizeof(label), "the root disk: %s", image);
	if (!abs || (fd = open(abs, O_RDONLY | O_CLOEXEC)) < 0)
		return vmc_error_set(err, -errno, "%s: %m (build one with 'make image')", label);
	r = image_geometry(fd, label, &format, &bytes, err);
	if (r < 0)
		return r;
	backing = abs;
	if (upload) {
		struct stat sb;

		if (fstat(fd, &sb) < 0)
			return vmc_error_set(err, -errno, "%s: %m", label);
		r = upload_volume(h, label, strcmp(format, "raw") ? "image.qcow2" : "image.raw", fd,
				  (uint64_t)sb.st_size, base, &secs, err);
		if (r < 0)
			return r;
		note(h->q, "%s: volume %s, %.1f MiB uploaded in %.2f s", label, *base,
		     (double)sb.st_size / (1 << 20), secs);
		fprintf(stderr,
			"vmcheck: libvirt: the image uploaded into %s on %s: %.1f MiB in %.2f s\n",
			h->pool_path, h->uri, (double)sb.st_size / (1 << 20), secs);
		backing = *base;
	}
	if (vmc_libvirt_xml_overlay("root.qcow2", bytes, backing, format, &xml) < 0)
		return vmc_error_set(err, -ENOMEM, "%s: out of memory", label);
	snprintf(what, sizeof(what), "%s: virStorageVolCreateXML root.qcow2 (qcow2 over %s, %s)",
		 label, backing, format);
	if (!(vol = virStorageVolCreateXML(h->pool, xml, 0)))
		return lv_fail(h, err, what);
	if (!(*path = virStorageVolGetPath(vol))) {
		snprintf(what, sizeof(what), "%s: virStorageVolGetPath root.qcow2", label);
		r = lv_fail(h, err, what);
	}
	virStorageVolFree(vol);
	if (r == 0)
		note(h->q, "%s: the root disk is %s, a qcow2 overlay over %s", label, *path,
		     backing);
	return r;
}

/* Before the first vCPU we enable: the live count, which a cleanup gives back. */
static void lv_vcpus_before(struct hv_lv *h)
{
	int n;

	if (h->vcpus_known)
		return;
	n = virDomainGetVcpusFlags(h->dom, VIR_DOMAIN_VCPU_LIVE);
	if (n < 0) {
		virResetLastError();
		return;
	}
	h->vcpus_before = n;
	h->vcpus_known = true;
	note(h->q, "virDomainGetVcpusFlags(LIVE) before the first vCPU plug: %d", n);
}

static struct vcpu_map *vcpu_find(struct hv_lv *h, const char *id)
{
	for (size_t i = 0; i < h->n_vcpus; i++)
		if (!strcmp(h->vcpus[i].id, id))
			return &h->vcpus[i];
	return NULL;
}

/* virDomainSetVcpu on libvirt vCPU @n: exactly the position asked for, not "the next one". */
static int set_vcpu(struct hv_lv *h, const char *id, unsigned n, bool on, struct vmc_error *err)
{
	char map[16], what[300];

	snprintf(map, sizeof(map), "%u", n);
	snprintf(what, sizeof(what), "virDomainSetVcpu %s (vcpu %u) %s", id, n,
		 on ? "enable" : "disable");
	if (virDomainSetVcpu(h->dom, map, on, VIR_DOMAIN_AFFECT_LIVE) < 0)
		return on ? lv_fail(h, err, what) : fail_pending(h, err, what);
	note(h->q, "%s: ok", what);
	return 0;
}

static bool same_position(const struct vmc_hv_cpu *a, const struct vmc_hv_cpu *b)
{
	return a->socket_id == b->socket_id && a->die_id == b->die_id && a->core_id == b->core_id &&
	       a->thread_id == b->thread_id;
}

static int lv_cpu_add(struct vmc_hv *hv, const struct vmc_hv_vcpu *c, struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	struct vmc_hv_cpu *cpus = NULL;
	struct vcpu_map *m;
	size_t n = 0, i;
	int r = lv_cpus(hv, &cpus, &n, err);

	if (r < 0)
		return lv_prefix(H(hv), err, "setvcpu %s: ", c->id);
	/* The position's index in cpus() is libvirt's vCPU id. */
	for (i = 0; i < n && !same_position(&cpus[i], c->where); i++)
		;
	vmc_hv_cpus_free(cpus, n);
	if (i == n)
		return vmc_error_set(err, -ENOENT,
				     "setvcpu %s: libvirt has no vCPU at socket %d "
				     "die %d core %d thread %d",
				     c->id, c->where->socket_id, c->where->die_id,
				     c->where->core_id, c->where->thread_id);
	m = realloc(h->vcpus, (h->n_vcpus + 1) * sizeof(*m));
	if (!m)
		return vmc_error_set(err, -ENOMEM, "setvcpu %s: out of memory", c->id);
	h->vcpus = m;
	m = &h->vcpus[h->n_vcpus];
	m->id = strdup(c->id);
	if (!m->id)
		return vmc_error_set(err, -ENOMEM, "setvcpu %s: out of memory", c->id);
	m->vcpu = (unsigned)i;
	lv_vcpus_before(h);
	r = set_vcpu(h, c->id, m->vcpu, true, err);
	if (r < 0) {
		free(m->id);
		return r;
	}
	h->n_vcpus++;
	lv_record(h, VMC_LEDGER_DEVICE, c->id, NULL);
	return 0;
}

static int lv_cpu_del(struct vmc_hv *hv, const char *id, struct vmc_error *err)
{
	struct vcpu_map *m = vcpu_find(H(hv), id);

	int r;

	if (!m)
		return vmc_error_set(err, -ENOENT, "setvcpu %s: not a vCPU vmcheck plugged", id);
	r = set_vcpu(H(hv), id, m->vcpu, false, err);
	if (r == 0)
		vmc_ledger_drop(&H(hv)->ledger, VMC_LEDGER_DEVICE, id);
	return r;
}

/* ---- discovery */

static int lv_free_slots(struct vmc_hv *hv, struct vmc_hv_slot **out, size_t *n,
			 struct vmc_error *err)
{
	struct vmc_libvirt_xml *x = NULL;
	int r = live(H(hv), &x, err);

	if (r == 0)
		r = vmc_libvirt_xml_free_slots(x, out, n, err);
	vmc_libvirt_xml_free(x);
	return r;
}

static int lv_mem_info(struct vmc_hv *hv, struct vmc_hv_mem *out, struct vmc_error *err)
{
	struct vmc_libvirt_xml *x = NULL;
	int r = live(H(hv), &x, err);

	if (r == 0)
		r = vmc_libvirt_xml_mem(x, out, err);
	vmc_libvirt_xml_free(x);
	return r;
}

/* libvirt shows a DIMM's guest physical address in its live XML, as QEMU's query-memory-devices. */
static int lv_dimm_info(struct vmc_hv *hv, const char *id, struct vmc_hv_dimm_info *out,
			struct vmc_error *err)
{
	struct vmc_libvirt_xml *x = NULL;
	int r = live(H(hv), &x, err);

	if (r == 0)
		r = vmc_libvirt_xml_dimm_info(x, id, out, err);
	vmc_libvirt_xml_free(x);
	return r;
}

/* The path to this host through libvirt network @name: its bridge's address. */
static int network_path(struct hv_lv *h, const char *name, struct vmc_hv_netpath *out,
			struct vmc_error *err)
{
	virNetworkPtr net = virNetworkLookupByName(h->conn, name);
	struct vmc_libvirt_xml *x = NULL;
	char *xml = NULL, what[320];
	int r;

	snprintf(what, sizeof(what), "virNetworkLookupByName/GetXMLDesc %s", name);
	xml = net ? virNetworkGetXMLDesc(net, 0) : NULL;
	r = xml ? vmc_libvirt_xml_parse(xml, &x, err) : lv_fail(h, err, what);
	if (r == 0)
		r = vmc_libvirt_xml_network_path(x, out, err);
	if (r < 0)
		lv_prefix(h, err, "network %s: ", name);
	vmc_libvirt_xml_free(x);
	free(xml);
	if (net)
		virNetworkFree(net);
	return r;
}

/*
 * The guest's network ends on the libvirt host: only a daemon on this host
 * (a local URI) lets a listener here receive the guest's traffic.
 */
static int lv_nic_path(struct vmc_hv *hv, const char *id, struct vmc_hv_netpath *out,
		       struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	struct vmc_libvirt_xml *x = NULL;
	_cleanup_free_ char *network = NULL;
	struct vmc_hv_netpath p = { .guest = "" };
	int r;

	if (!h->local)
		return vmc_error_set(err, -ENOTSUP,
				     "%s: the domain runs on the libvirt host of %s, not here: this "
				     "host cannot be reached from that host's guest network",
				     id, h->uri);
	r = live(h, &x, err);
	if (r == 0)
		r = vmc_libvirt_xml_nic_path(x, id, &p, &network, err);
	vmc_libvirt_xml_free(x);
	if (r == 1)
		r = network_path(h, network, &p, err);
	if (r == 0)
		*out = p;
	return r;
}

static int monitor(struct hv_lv *h, const char *cmd, json_object **reply, char *says, size_t size);

/*
 * Can QEMU plug vCPUs into this machine at all? libvirt lists hotpluggable
 * vCPUs on a machine without CPU hotplug too, and says so only when asked to
 * plug one (doc/facts.md, "aarch64 through libvirt"): QEMU is asked through
 * the monitor passthrough. -ENOTSUP with QEMU's words when it says the
 * machine has none (7.2: the feature is not enabled; 8.0 on: the machine
 * does not support it); 0 otherwise, also when it cannot be asked (a driver
 * without a QEMU monitor): the live XML then says what there is.
 */
static int vmm_cpu_hotplug(struct hv_lv *h, struct vmc_error *err)
{
	json_object *reply = NULL, *e, *cls, *desc;
	char says[256];
	int r = 0;

	if (monitor(h, "{\"execute\":\"query-hotpluggable-cpus\"}", &reply, says, sizeof(says)) < 0)
		return 0;
	if (json_object_object_get_ex(reply, "error", &e) &&
	    json_object_object_get_ex(e, "class", &cls) &&
	    json_object_object_get_ex(e, "desc", &desc) &&
	    vmc_qmp_no_cpu_hotplug(json_object_get_string(cls), json_object_get_string(desc)))
		r = vmc_error_set(err, -ENOTSUP,
				  "QEMU (libvirt's monitor passthrough): query-hotpluggable-cpus: %s",
				  json_object_get_string(desc));
	json_object_put(reply);
	return r;
}

static int lv_cpus(struct vmc_hv *hv, struct vmc_hv_cpu **out, size_t *n, struct vmc_error *err)
{
	struct vmc_libvirt_xml *x = NULL;
	int r = vmm_cpu_hotplug(H(hv), err);

	if (r < 0)
		return r;
	r = live(H(hv), &x, err);

	if (r == 0)
		r = vmc_libvirt_xml_cpus(x, out, n, err);
	vmc_libvirt_xml_free(x);
	return r;
}

static int lv_device_present(struct vmc_hv *hv, const char *id, char **where, struct vmc_error *err)
{
	struct vcpu_map *m = vcpu_find(H(hv), id);
	struct vmc_libvirt_xml *x = NULL;
	int r = live(H(hv), &x, err);

	/* A vCPU is no device in libvirt's XML: it is its <vcpus> entry, enabled or not. */
	if (r == 0 && m) {
		struct vmc_hv_cpu *cpus = NULL;
		size_t n = 0;

		r = vmc_libvirt_xml_cpus(x, &cpus, &n, err);
		if (r == 0) {
			r = m->vcpu < n && cpus[m->vcpu].qom_path;
			if (r && where && asprintf(where, "libvirt vcpu %u enabled", m->vcpu) < 0)
				r = -ENOMEM;
			vmc_hv_cpus_free(cpus, n);
		}
	} else if (r == 0) {
		r = vmc_libvirt_xml_device(x, id, where, NULL);
	}
	vmc_libvirt_xml_free(x);
	if (r == -ENOMEM)
		vmc_error_set(err, r, "device %s: out of memory", id);
	return r;
}

/* ---- removal views: libvirt's live state and QEMU's own, through libvirt */

/*
 * The transcript gets each passthrough answer once: a removal is watched
 * every half second, and the same answer again says nothing new. How many
 * times it came again is written with the next different one.
 */
static void note_monitor(struct hv_lv *h, const char *cmd, const char *text)
{
	char *both = NULL;

	if (asprintf(&both, "%s: %s", cmd, text) < 0)
		both = NULL;
	if (both && h->last_monitor && !strcmp(both, h->last_monitor)) {
		h->same_monitor++;
		free(both);
		return;
	}
	if (h->same_monitor)
		note(h->q, "qemu-monitor-command: the answer above came %u more times",
		     h->same_monitor);
	note(h->q, "qemu-monitor-command %s: %s", cmd, text);
	free(h->last_monitor);
	h->last_monitor = both;
	h->same_monitor = 0;
}

/*
 * Ask QEMU @cmd (QMP JSON) through libvirt's monitor passthrough
 * (virsh qemu-monitor-command; libvirt marks the domain tainted
 * "custom-monitor" for it). Returns 0 with *@reply its parsed answer, or -1
 * with @says saying why not (refused, as by a driver without a QEMU
 * monitor, or no JSON).
 */
static int monitor(struct hv_lv *h, const char *cmd, json_object **reply, char *says, size_t size)
{
	char *text = NULL;

	if (virDomainQemuMonitorCommand(h->dom, cmd, &text, 0) < 0) {
		const virError *e = virGetLastError();

		snprintf(says, size, "monitor passthrough refused: libvirt error %d/%d: %s",
			 e ? e->code : 0, e ? e->domain : 0,
			 e && e->message ? e->message : "(no message)");
		virResetLastError();
		return -1;
	}
	note_monitor(h, cmd, text);
	*reply = json_tokener_parse(text);
	free(text);
	if (!*reply) {
		snprintf(says, size, "monitor passthrough: the reply is no JSON");
		return -1;
	}
	return 0;
}

static long long prop_of(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

/* query-hotpluggable-cpus: does QEMU have a vCPU at @pos? */
static void vmm_vcpu(struct hv_lv *h, const struct vmc_hv_cpu *pos, struct vmc_hv_removal *out)
{
	json_object *reply = NULL, *list, *hit = NULL, *props, *path;
	char where[96];

	snprintf(where, sizeof(where), "socket %d core %d thread %d", pos->socket_id, pos->core_id,
		 pos->thread_id);
	if (monitor(h, "{\"execute\":\"query-hotpluggable-cpus\"}", &reply, out->vmm_says,
		    sizeof(out->vmm_says)) < 0)
		return;
	if (!json_object_object_get_ex(reply, "return", &list) ||
	    !json_object_is_type(list, json_type_array)) {
		snprintf(out->vmm_says, sizeof(out->vmm_says), "query-hotpluggable-cpus: %.200s",
			 json_object_to_json_string(reply));
		json_object_put(reply);
		return;
	}
	for (size_t i = 0; !hit && i < json_object_array_length(list); i++) {
		json_object *c = json_object_array_get_idx(list, i);

		if (json_object_object_get_ex(c, "props", &props) &&
		    prop_of(props, "socket-id") == pos->socket_id &&
		    prop_of(props, "core-id") == pos->core_id &&
		    prop_of(props, "thread-id") == pos->thread_id &&
		    (prop_of(props, "die-id") < 0 || prop_of(props, "die-id") == pos->die_id))
			hit = c;
	}
	if (!hit) {
		snprintf(out->vmm_says, sizeof(out->vmm_says),
			 "query-hotpluggable-cpus: no position %s", where);
	} else if (json_object_object_get_ex(hit, "qom-path", &path)) {
		out->vmm = 1;
		snprintf(out->vmm_says, sizeof(out->vmm_says),
			 "query-hotpluggable-cpus: %s has qom-path %s", where,
			 json_object_get_string(path));
	} else {
		out->vmm = 0;
		snprintf(out->vmm_says, sizeof(out->vmm_says),
			 "query-hotpluggable-cpus: %s free (no qom-path)", where);
	}
	json_object_put(reply);
}

/* qom-get of the device libvirt named VMC_LIBVIRT_XML_ALIAS_PREFIX @id: does QEMU still have it? */
static void vmm_device(struct hv_lv *h, const char *id, struct vmc_hv_removal *out)
{
	json_object *reply = NULL, *ret, *e, *cls, *desc;
	_cleanup_free_ char *cmd = NULL;
	char path[128];

	snprintf(path, sizeof(path), "/machine/peripheral/" VMC_LIBVIRT_XML_ALIAS_PREFIX "%s", id);
	if (asprintf(&cmd,
		     "{\"execute\":\"qom-get\",\"arguments\":{\"path\":\"%s\","
		     "\"property\":\"type\"}}",
		     path) < 0) {
		cmd = NULL;
		snprintf(out->vmm_says, sizeof(out->vmm_says), "out of memory");
		return;
	}
	if (monitor(h, cmd, &reply, out->vmm_says, sizeof(out->vmm_says)) < 0)
		return;
	if (json_object_object_get_ex(reply, "return", &ret)) {
		out->vmm = 1;
		snprintf(out->vmm_says, sizeof(out->vmm_says), "qom-get %s type: %s", path,
			 json_object_get_string(ret));
	} else if (json_object_object_get_ex(reply, "error", &e) &&
		   json_object_object_get_ex(e, "class", &cls)) {
		if (!strcmp(json_object_get_string(cls), "DeviceNotFound"))
			out->vmm = 0;
		snprintf(out->vmm_says, sizeof(out->vmm_says), "qom-get %s: %s: %s", path,
			 json_object_get_string(cls),
			 json_object_object_get_ex(e, "desc", &desc) ? json_object_get_string(desc)
								     : "");
	} else {
		snprintf(out->vmm_says, sizeof(out->vmm_says), "qom-get %s: %.100s", path,
			 json_object_to_json_string(reply));
	}
	json_object_put(reply);
}

/*
 * QEMU's query-current-machine through the monitor passthrough: libvirt
 * has no API that says whether the machine can suspend to RAM (only its
 * refusal of a PM suspend, after the fact).
 */
static int lv_suspend_support(struct vmc_hv *hv, char *says, size_t size, struct vmc_error *err)
{
	static const char via[] = "QEMU through libvirt's monitor passthrough: ";
	json_object *reply = NULL, *ret, *v;
	char why[256];
	int r;

	if (monitor(H(hv), "{\"execute\":\"query-current-machine\"}", &reply, why, sizeof(why)) < 0)
		return vmc_error_set(err, -EIO, "query-current-machine: %s", why);
	if (json_object_object_get_ex(reply, "return", &ret) &&
	    json_object_object_get_ex(ret, "wakeup-suspend-support", &v) &&
	    json_object_is_type(v, json_type_boolean)) {
		r = json_object_get_boolean(v);
		snprintf(says, size, "%squery-current-machine says wakeup-suspend-support %s", via,
			 r ? "true" : "false");
	} else {
		r = vmc_error_set(err, -EPROTO, "%squery-current-machine: %.200s", via,
				  json_object_to_json_string(reply));
	}
	json_object_put(reply);
	return r;
}

/* libvirt's live view of vCPU @m: its <vcpu id enabled> and the live count. */
static void mgmt_vcpu(struct hv_lv *h, const struct vmc_libvirt_xml *x, const struct vcpu_map *m,
		      struct vmc_hv_cpu *pos, struct vmc_hv_removal *out)
{
	struct vmc_error e = VMC_ERROR_INIT;
	struct vmc_hv_cpu *cpus = NULL;
	size_t n = 0;
	int count;

	if (vmc_libvirt_xml_cpus(x, &cpus, &n, &e) < 0 || m->vcpu >= n) {
		snprintf(out->mgmt_says, sizeof(out->mgmt_says), "live XML: %s",
			 e.msg ? e.msg : "no such vcpu id");
		vmc_error_clear(&e);
		vmc_hv_cpus_free(cpus, n);
		return;
	}
	pos->socket_id = cpus[m->vcpu].socket_id;
	pos->die_id = cpus[m->vcpu].die_id;
	pos->core_id = cpus[m->vcpu].core_id;
	pos->thread_id = cpus[m->vcpu].thread_id;
	out->mgmt = cpus[m->vcpu].qom_path != NULL;
	vmc_hv_cpus_free(cpus, n);
	count = virDomainGetVcpusFlags(h->dom, VIR_DOMAIN_VCPU_LIVE);
	if (count < 0)
		virResetLastError();
	snprintf(out->mgmt_says, sizeof(out->mgmt_says),
		 "live XML: <vcpu id='%u' enabled='%s'>; virDomainGetVcpusFlags(LIVE): %d", m->vcpu,
		 out->mgmt ? "yes" : "no", count);
}

static void mgmt_device(const struct vmc_libvirt_xml *x, const char *id, struct vmc_hv_removal *out)
{
	char *where = NULL;
	int r = vmc_libvirt_xml_device(x, id, &where, NULL);

	if (r < 0) {
		snprintf(out->mgmt_says, sizeof(out->mgmt_says), "live XML: out of memory");
		return;
	}
	out->mgmt = r;
	if (r)
		snprintf(out->mgmt_says, sizeof(out->mgmt_says),
			 "live XML: alias " VMC_LIBVIRT_XML_ALIAS_PREFIX "%s, %s", id, where);
	else
		snprintf(out->mgmt_says, sizeof(out->mgmt_says),
			 "live XML: no device with alias " VMC_LIBVIRT_XML_ALIAS_PREFIX "%s", id);
	free(where);
}

/*
 * mgmt: libvirt's live XML (and, for a vCPU, its live count); vmm: QEMU
 * through libvirt's monitor passthrough. A vCPU's position in QEMU comes
 * from the live XML's topology, so without that XML QEMU is not asked.
 */
static int lv_removal_views(struct vmc_hv *hv, const char *id, struct vmc_hv_removal *out,
			    struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	struct vcpu_map *m = vcpu_find(h, id);
	struct vmc_hv_removal v = { .vmm = -1, .mgmt = -1 };
	struct vmc_hv_cpu pos = { .socket_id = -1 };
	struct vmc_libvirt_xml *x = NULL;
	struct vmc_error e = VMC_ERROR_INIT;

	if (live(h, &x, &e) < 0) {
		snprintf(v.mgmt_says, sizeof(v.mgmt_says), "%s", e.msg ? e.msg : "no live XML");
	} else if (m) {
		mgmt_vcpu(h, x, m, &pos, &v);
	} else {
		mgmt_device(x, id, &v);
	}
	vmc_libvirt_xml_free(x);
	if (!m)
		vmm_device(h, id, &v);
	else if (pos.socket_id >= 0)
		vmm_vcpu(h, &pos, &v);
	else
		snprintf(v.vmm_says, sizeof(v.vmm_says),
			 "not asked: the vCPU's position comes from the live XML");
	*out = v;
	if (v.mgmt < 0 && v.vmm < 0) {
		vmc_error_set(err, e.code ? e.code : -EIO,
			      "%s: neither libvirt nor QEMU could be "
			      "asked: %s; %s",
			      id, v.mgmt_says, v.vmm_says);
		vmc_error_clear(&e);
		return err ? err->code : -EIO;
	}
	vmc_error_clear(&e);
	return 0;
}

/* ---- events */

static bool matches(const struct vmc_hv_event *ev, const char *name, const char *device)
{
	return !strcmp(ev->name, name) && (!device || (ev->device && !strcmp(ev->device, device)));
}

/* Unlink the first queued match into @out; q->mu held. */
static bool take_locked(struct evq *q, const char *name, const char *device,
			struct vmc_hv_event *out)
{
	for (struct qev **p = &q->head; *p; p = &(*p)->next) {
		struct qev *e = *p;

		if (!matches(&e->ev, name, device))
			continue;
		*p = e->next;
		if (q->tail == &e->next)
			q->tail = p;
		if (out)
			*out = e->ev;
		else
			vmc_hv_event_free(&e->ev);
		free(e);
		return true;
	}
	return false;
}

static void drain(struct evq *q)
{
	uint64_t v;

	while (read(q->efd, &v, sizeof(v)) == sizeof(v))
		;
}

static int lv_wait_event(struct vmc_hv *hv, const char *name, const char *device,
			 uint64_t deadline_ns, struct vmc_hv_event *out, struct vmc_error *err)
{
	struct evq *q = H(hv)->q;

	for (;;) {
		struct pollfd pfd = { .fd = q->efd, .events = POLLIN };
		uint64_t now;
		bool got, closed;

		pthread_mutex_lock(&q->mu);
		got = take_locked(q, name, device, out);
		closed = q->closed;
		pthread_mutex_unlock(&q->mu);
		if (got)
			return 0;
		if (closed)
			return vmc_error_set(err, -EPIPE,
					     "waiting for %s: the connection to "
					     "libvirt closed",
					     name);
		now = vmc_mono_ns();
		if (now >= deadline_ns)
			return vmc_error_set(err, -ETIMEDOUT, "no %s event%s%s in time", name,
					     device ? " for " : "", device ? device : "");
		drain(q);
		pthread_mutex_lock(&q->mu);
		got = take_locked(q, name, device, out);
		pthread_mutex_unlock(&q->mu);
		if (got)
			return 0;
		poll(&pfd, 1, (int)((deadline_ns - now + 999999) / 1000000));
	}
}

static bool lv_seen_event(struct vmc_hv *hv, const char *name, const char *device)
{
	struct evq *q = H(hv)->q;
	bool seen = false;

	pthread_mutex_lock(&q->mu);
	for (struct qev *e = q->head; e && !seen; e = e->next)
		seen = matches(&e->ev, name, device);
	pthread_mutex_unlock(&q->mu);
	return seen;
}

/*
 * How long the teardown keeps trying to reach a daemon whose connection
 * died (libvirtd killed, restarted, or the link to its host cut), and how
 * often: a daemon restarted by systemd or by hand answers within seconds.
 */
#define RECONNECT_MS 30000
#define RECONNECT_EVERY_MS 500

static bool conn_lost(struct hv_lv *h)
{
	bool closed;

	pthread_mutex_lock(&h->q->mu);
	closed = h->q->closed;
	pthread_mutex_unlock(&h->q->mu);
	if (closed || virConnectIsAlive(h->conn) != 1) {
		virResetLastError();
		return true;
	}
	return false;
}

/* Our transient domain on the new connection, by UUID (by name if it had none). */
static virDomainPtr find_domain(struct hv_lv *h)
{
	static const unsigned char none[VIR_UUID_BUFLEN];
	virDomainPtr d = memcmp(h->uuid, none, sizeof(none))
				 ? virDomainLookupByUUID(h->conn, h->uuid)
				 : virDomainLookupByName(h->conn, h->dom_name);

	if (!d)
		virResetLastError(); /* gone with the old daemon, or it stopped */
	return d;
}

/*
 * Our pool on the new connection. A daemon that lost it (a transient pool
 * may not outlive the daemon) leaves its directory and volumes behind:
 * define and start it again from its XML so that pool_teardown() removes
 * them as usual.
 */
static virStoragePoolPtr find_pool(struct hv_lv *h)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(h->conn, h->pool_name);

	if (p)
		return p;
	virResetLastError();
	p = virStoragePoolDefineXML(h->conn, h->pool_xml, 0);
	if (p && virStoragePoolCreate(p, 0) < 0) {
		warn_fail(h, "virStoragePoolCreate (to remove the pool's volumes)");
		virStoragePoolUndefine(p);
		virStoragePoolFree(p);
		p = NULL;
	} else if (!p) {
		warn_fail(h, "virStoragePoolDefineXML (to remove the pool's volumes)");
	}
	return p;
}

static int subscribe_all(struct hv_lv *h, struct vmc_error *err);

/* What the step in flight will note, after what it already will ("; "). */
static void _printf_(2, 3) set_notice(struct hv_lv *h, const char *fmt, ...)
{
	char *add = NULL, *both = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&add, fmt, ap) < 0)
		add = NULL;
	va_end(ap);
	if (!add)
		return;
	if (!h->notice) {
		h->notice = add;
		return;
	}
	if (asprintf(&both, "%s; %s", h->notice, add) >= 0) {
		free(h->notice);
		h->notice = both;
	}
	free(add);
}

static char *lv_take_notice(struct vmc_hv *hv)
{
	return TAKE_PTR(H(hv)->notice);
}

/*
 * The connection died (libvirtd killed or restarted, the link to its host
 * cut). Drop what hung on it, connect again every RECONNECT_EVERY_MS for
 * @ms at most, and find our domain (by UUID) and pool (by name) there; to
 * @resume the run, the domain's events are subscribed again (those of the
 * gap are lost) and the agent's channel transport gets the new connection. A console read
 * through libvirt (a remote URI) ends with the old connection. Until a new
 * connection is made the old one and its objects stay: calls over them
 * fail saying the socket is closed. Says so on stderr and in the
 * transcript. Returns 0, or negative with @err set.
 */
static int reconnect(struct hv_lv *h, unsigned ms, bool resume, struct vmc_error *err)
{
	uint64_t t0 = vmc_mono_ns(), until = t0 + ms * 1000000ull;
	bool had_dom = h->dom_name;
	virConnectPtr c;
	double secs;
	int r = 0;

	if (h->shared)
		vmc_libvirt_unshare(h->dom);
	h->shared = false;
	if (h->con)
		note(h->q, "serial console: lost with the connection");
	console_close(h->con);
	h->con = NULL;
	for (size_t i = 0; i < h->n_cb; i++)
		virConnectDomainEventDeregisterAny(h->conn, h->cb[i]);
	h->n_cb = 0;
	virConnectUnregisterCloseCallback(h->conn, on_close);
	virResetLastError();
	while (!(c = virConnectOpen(h->uri))) {
		if (vmc_mono_ns() >= until) {
			struct vmc_error e = VMC_ERROR_INIT;

			lv_fail(h, &e, "connecting again");
			lv_prefix(h, &e,
				  "the connection to libvirt was lost and %s did not answer again "
				  "within %u s: ",
				  h->uri, ms / 1000);
			fprintf(stderr, "vmcheck: libvirt: %s\n", e.msg ? e.msg : "");
			set_notice(h, "%s", e.msg ? e.msg : "");
			vmc_error_set(err, -ECONNREFUSED, "%s", e.msg ? e.msg : "");
			vmc_error_clear(&e);
			return -ECONNREFUSED;
		}
		virResetLastError();
		poll(NULL, 0, RECONNECT_EVERY_MS);
	}
	if (h->dom)
		virDomainFree(h->dom);
	h->dom = NULL;
	if (h->pool)
		virStoragePoolFree(h->pool);
	h->pool = NULL;
	virConnectClose(h->conn);
	virResetLastError();
	h->conn = c;
	pthread_mutex_lock(&h->q->mu);
	h->q->closed = false;
	pthread_mutex_unlock(&h->q->mu);
	if (had_dom)
		h->dom = find_domain(h);
	if (h->pool_name)
		h->pool = find_pool(h);
	secs = (double)(vmc_mono_ns() - t0) / 1e9;
	note(h->q,
	     "the connection to libvirt was lost; connected again after %.1f s (domain %s: %s)",
	     secs, h->dom_name ? h->dom_name : "?", h->dom ? "found" : "gone");
	set_notice(h, "the connection to %s was lost; connected again after %.1f s%s", h->uri, secs,
		   h->dom || !had_dom ? "" : ", and the domain is gone there");
	fprintf(stderr,
		"vmcheck: libvirt: the connection to %s was lost; connected again after %.1f s "
		"(the domain %s %s)\n",
		h->uri, secs, h->dom_name ? h->dom_name : "?",
		h->dom ? "is still there" : "is gone from libvirt");
	if (!had_dom || !resume)
		return 0;
	if (!h->dom)
		return vmc_error_set(err, -ESRCH,
				     "connected to libvirt again after %.1f s, but the domain %s is "
				     "gone there",
				     secs, h->dom_name ? h->dom_name : "?");
	r = subscribe_all(h, err);
	if (r == 0 && vmc_libvirt_share(h->uri, h->conn, h->dom) < 0)
		r = vmc_error_set(err, -ENOMEM, "libvirt: out of memory");
	else if (r == 0)
		h->shared = true;
	return r;
}

/*
 * Mid-run, a connection that closed is made again (bounded: RECONNECT_MS,
 * and only once if that fails), so that the steps after the one it failed
 * run as before. Returns 0 or -EPIPE/-ECONNREFUSED/-ESRCH with @err set.
 */
static int heal(struct hv_lv *h, struct vmc_error *err)
{
	bool closed;
	int r;

	pthread_mutex_lock(&h->q->mu);
	closed = h->q->closed;
	pthread_mutex_unlock(&h->q->mu);
	if (!closed)
		return 0;
	if (h->gave_up)
		return vmc_error_set(err, -EPIPE, "the connection to libvirt closed");
	r = reconnect(h, RECONNECT_MS, true, err);
	h->gave_up = r < 0;
	return r;
}

/* A step begins: no event of before counts; a connection lost meanwhile is made again. */
static void lv_flush_events(struct vmc_hv *hv)
{
	struct evq *q = H(hv)->q;

	heal(H(hv), NULL);

	pthread_mutex_lock(&q->mu);
	while (q->head) {
		struct qev *e = q->head;

		q->head = e->next;
		vmc_hv_event_free(&e->ev);
		free(e);
	}
	q->tail = &q->head;
	pthread_mutex_unlock(&q->mu);
}

static int lv_fd(struct vmc_hv *hv)
{
	return H(hv)->q->efd;
}

static int lv_pump(struct vmc_hv *hv, struct vmc_error *err)
{
	struct evq *q = H(hv)->q;

	drain(q);
	return heal(H(hv), err);
}

static int lv_alive(struct vmc_hv *hv, struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	int state, reason;

	/* Connected again (reconnect()), the domain was not there any more. */
	if (!h->dom && h->conn)
		return vmc_error_set(err, -ESRCH, "the domain %s is gone from libvirt",
				     h->dom_name ? h->dom_name : "?");
	if (virDomainGetState(h->dom, &state, &reason, 0) < 0) {
		int r = lv_fail(h, err, "virDomainGetState");

		/* A transient domain that shut down is gone from libvirt. */
		return r == -ENOENT ? lv_prefix(h, err, "the domain is gone: "), -ESRCH : r;
	}
	if (state == VIR_DOMAIN_SHUTOFF || state == VIR_DOMAIN_CRASHED)
		return vmc_error_set(err, -ESRCH, "the domain is %s (reason %d)",
				     state == VIR_DOMAIN_SHUTOFF ? "shut off" : "crashed", reason);
	return 0;
}

/*
 * A domain's lifecycle event comes a moment after libvirt's state says it
 * stopped (and a transient domain is gone): wait this long for it.
 */
#define STOPPED_WAIT_MS 2000

/* The STOPPED detail (and CRASHED detail, -1 if none), waiting for it bounded; -1 if none came. */
static int stopped_detail(struct evq *q, int *crashed)
{
	struct timespec until;
	int d;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += STOPPED_WAIT_MS / 1000;
	pthread_mutex_lock(&q->mu);
	while (q->stopped < 0 && !q->closed &&
	       pthread_cond_timedwait(&q->cv, &q->mu, &until) != ETIMEDOUT)
		;
	d = q->stopped;
	*crashed = q->crashed;
	pthread_mutex_unlock(&q->mu);
	return d;
}

static const char *const shutoff_words[] = {
	"unknown", "shutdown", "destroyed",     "crashed", "migrated",
	"saved",   "failed",   "from-snapshot", "daemon",
};

/* libvirt's state of a domain still defined: shut off with reason shutdown is clean. */
static int ended_by_state(struct hv_lv *h, int state, int reason, struct vmc_error *err)
{
	const char *word = reason >= 0 && (size_t)reason < ARRAY_SIZE(shutoff_words)
				   ? shutoff_words[reason]
				   : "?";

	if (state == VIR_DOMAIN_SHUTOFF && reason == VIR_DOMAIN_SHUTOFF_SHUTDOWN)
		return 0;
	if (state == VIR_DOMAIN_SHUTOFF)
		return vmc_error_set(err, -EIO, "libvirt: the domain is shut off, reason %s (%d)",
				     word, reason);
	if (state == VIR_DOMAIN_CRASHED)
		return vmc_error_set(err, -EIO, "libvirt: the domain crashed (reason %s)",
				     reason == VIR_DOMAIN_CRASHED_PANICKED ? "panicked"
									   : "unknown");
	return vmc_error_set(err, -ENOTSUP,
			     "libvirt: the domain has not ended (state %d): how it ends is not "
			     "known yet",
			     state);
}

/*
 * A transient domain is gone once it stops: its STOPPED lifecycle event is
 * all that says how. detail shutdown is clean; the others are not.
 */
static int ended_by_event(struct hv_lv *h, struct vmc_error *err)
{
	int crashed, d = stopped_detail(h->q, &crashed);
	const char *word = detail_word(VIR_DOMAIN_EVENT_STOPPED, d);

	if (d < 0)
		return vmc_error_set(err, -ENOTSUP,
				     "the transient domain is gone from libvirt and no STOPPED event "
				     "came within %d ms: how it ended is unknown",
				     STOPPED_WAIT_MS);
	if (d == VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN)
		return 0;
	return vmc_error_set(err, -EIO, "libvirt: lifecycle STOPPED, detail %s (%d)%s%s",
			     word ? word : "?", d, crashed < 0 ? "" : ", after CRASHED ",
			     crashed < 0 ? "" : detail_word(VIR_DOMAIN_EVENT_CRASHED, crashed)
						    ?: "?");
}

static int lv_ended(struct vmc_hv *hv, struct vmc_error *err)
{
	struct hv_lv *h = H(hv);
	int state, reason;

	if (virDomainGetState(h->dom, &state, &reason, 0) == 0)
		return ended_by_state(h, state, reason, err);
	if (virGetLastErrorCode() != VIR_ERR_NO_DOMAIN) {
		lv_fail(h, err, "virDomainGetState");
		return lv_prefix(h, err, "how the domain ended is unknown: "), -ENOTSUP;
	}
	virResetLastError();
	return ended_by_event(h, err);
}

/*
 * The serial console's log on this host: written by QEMU (our transient
 * domain on a local URI) or by the stream reader (a remote URI); NULL when
 * there is none.
 */
static const char *lv_console_log(struct vmc_hv *hv)
{
	return H(hv)->console;
}

static void lv_transcript(struct vmc_hv *hv, uint64_t since_ns, FILE *out)
{
	struct evq *q = H(hv)->q;

	pthread_mutex_lock(&q->mu);
	for (struct tline *l = q->lines; l; l = l->next)
		if (l->ns >= since_ns)
			fprintf(out, "%llu.%06llu libvirt %s\n",
				(unsigned long long)(l->ns / 1000000000),
				(unsigned long long)(l->ns / 1000 % 1000000), l->text);
	pthread_mutex_unlock(&q->mu);
}

static const char *lv_agent_spec(struct vmc_hv *hv)
{
	return H(hv)->agent_spec;
}

static const struct vmc_arch *lv_arch(struct vmc_hv *hv)
{
	return H(hv)->arch;
}

/* ---- cleanup of a user's domain */

/*
 * In live XML @x: is device or vCPU @id still there? 1 yes, 0 no, -1 the
 * XML does not say (a vCPU position it does not list).
 */
static int cl_there(struct hv_lv *h, const struct vmc_libvirt_xml *x, const char *id)
{
	struct vcpu_map *m = vcpu_find(h, id);
	struct vmc_error e = VMC_ERROR_INIT;
	struct vmc_hv_cpu *cpus = NULL;
	size_t n = 0;
	int r = -1;

	if (!m)
		return vmc_libvirt_xml_device(x, id, NULL, NULL);
	if (vmc_libvirt_xml_cpus(x, &cpus, &n, &e) == 0 && m->vcpu < n)
		r = cpus[m->vcpu].qom_path != NULL;
	vmc_error_clear(&e);
	vmc_hv_cpus_free(cpus, n);
	return r;
}

/*
 * What we attached and is still there: devices and vCPUs the live XML no
 * longer has (their removal finished after the check stopped waiting:
 * libvirt's DEVICE_REMOVED came late) are forgotten first.
 */
static size_t lv_added(struct vmc_hv *hv)
{
	struct hv_lv *h = H(hv);
	struct vmc_libvirt_xml *x = NULL;
	struct vmc_error e = VMC_ERROR_INIT;

	if (h->ledger.n && live(h, &x, &e) == 0)
		for (size_t i = h->ledger.n; i-- > 0;)
			if (h->ledger.e[i].kind == VMC_LEDGER_DEVICE &&
			    cl_there(h, x, h->ledger.e[i].id) == 0)
				vmc_ledger_drop(&h->ledger, VMC_LEDGER_DEVICE, h->ledger.e[i].id);
	vmc_libvirt_xml_free(x);
	vmc_error_clear(&e);
	return h->ledger.n;
}

/*
 * Ask libvirt to remove vCPU @it: virDomainSetVcpu off, which waits for
 * QEMU (5 s at most, then libvirt's timeout error: the removal may still
 * complete, the live XML says).
 */
static void cl_request_vcpu(struct hv_lv *h, struct vmc_ledger_item *it, struct vmc_hv_cleaned *c)
{
	struct vmc_error e = VMC_ERROR_INIT;
	int r = set_vcpu(h, it->id, vcpu_find(h, it->id)->vcpu, false, &e);

	it->via = "virDomainSetVcpu disable";
	if (r == 0 || r == -EINPROGRESS)
		it->state = VMC_LEDGER_DELETING;
	else
		vmc_ledger_settle(it, c, VMC_LEDGER_LEFT, "%s",
				  e.msg ? e.msg : "virDomainSetVcpu failed");
	vmc_error_clear(&e);
}

/*
 * Ask libvirt to remove device @it: virDomainDetachDeviceAlias, which only
 * sends the request (DEVICE_REMOVED says when it is done), so every device
 * is asked for at once; a driver without it gets virDomainDetachDeviceFlags
 * with the device's live XML (lv_detach()), which waits up to 5 s each.
 */
static void cl_request(struct hv_lv *h, struct vmc_ledger_item *it, struct vmc_hv_cleaned *c)
{
	struct vmc_error e = VMC_ERROR_INIT;
	char alias[128], what[160];
	int code, r;

	if (it->vcpu) {
		cl_request_vcpu(h, it, c);
		return;
	}
	snprintf(alias, sizeof(alias), VMC_LIBVIRT_XML_ALIAS_PREFIX "%.100s", it->id);
	snprintf(what, sizeof(what), "virDomainDetachDeviceAlias %s", alias);
	it->via = "virDomainDetachDeviceAlias";
	if (virDomainDetachDeviceAlias(h->dom, alias, VIR_DOMAIN_AFFECT_LIVE) == 0) {
		note(h->q, "%s: ok (cleanup)", what);
		it->state = VMC_LEDGER_DELETING;
		return;
	}
	code = virGetLastErrorCode();
	lv_fail(h, &e, what);
	if (code == VIR_ERR_DEVICE_MISSING) {
		vmc_ledger_settle(it, c, VMC_LEDGER_GONE, "already gone (%s)", e.msg);
	} else if (code == VIR_ERR_NO_SUPPORT || code == VIR_ERR_OPERATION_UNSUPPORTED) {
		vmc_error_clear(&e);
		it->via = "virDomainDetachDeviceFlags";
		r = lv_detach(&h->hv, it->id, &e);
		if (r == 0 || r == -EINPROGRESS)
			it->state = VMC_LEDGER_DELETING;
		else if (r == -ENOENT)
			vmc_ledger_settle(it, c, VMC_LEDGER_GONE, "already gone (%s)", e.msg);
		else
			vmc_ledger_settle(it, c, VMC_LEDGER_LEFT, "%s",
					  e.msg ? e.msg : "detach failed");
	} else {
		vmc_ledger_settle(it, c, VMC_LEDGER_LEFT, "%s", e.msg);
	}
	vmc_error_clear(&e);
}

#define CL_LOOK_MS 250 /* how often the live XML is read while waiting */

/*
 * Wait until every removal asked for is done: its DEVICE_REMOVED, or the
 * live XML without it (a vCPU has no such event), until @deadline or
 * @stop_fd. Returns false when @stop_fd cut the wait short.
 */
static bool cl_await(struct hv_lv *h, struct vmc_ledger_item *it, struct vmc_hv_cleaned *c,
		     size_t n, uint64_t t0, uint64_t deadline, int stop_fd)
{
	uint64_t next_look = 0;

	for (;;) {
		struct pollfd p[2] = { { .fd = h->q->efd, .events = POLLIN },
				       { .fd = stop_fd, .events = POLLIN } };
		struct vmc_libvirt_xml *x = NULL;
		struct vmc_error e = VMC_ERROR_INIT;
		uint64_t now = vmc_mono_ns(), wake_at;
		bool waiting = false, closed;

		drain(h->q);
		if (now >= next_look) {
			if (live(h, &x, &e) < 0)
				x = NULL;
			vmc_error_clear(&e);
			next_look = now + CL_LOOK_MS * 1000000ull;
		}
		for (size_t i = 0; i < n; i++) {
			unsigned long long ms = (now - t0) / 1000000;
			bool got;

			if (it[i].state != VMC_LEDGER_DELETING)
				continue;
			/* libvirt's own vCPU aliases ("vcpu1") may look like our ids: not theirs. */
			pthread_mutex_lock(&h->q->mu);
			got = !it[i].vcpu &&
			      take_locked(h->q, VMC_EV_DEVICE_DELETED, it[i].id, NULL);
			pthread_mutex_unlock(&h->q->mu);
			if (got)
				vmc_ledger_settle(&it[i], &c[i], VMC_LEDGER_GONE,
						  "%s, DEVICE_REMOVED after %llu ms", it[i].via,
						  ms);
			else if (x && cl_there(h, x, it[i].id) == 0)
				vmc_ledger_settle(&it[i], &c[i], VMC_LEDGER_GONE,
						  "%s, gone from the live XML after %llu ms",
						  it[i].via, ms);
			else
				waiting = true;
			if (it[i].state == VMC_LEDGER_GONE)
				vmc_ledger_drop(&h->ledger, VMC_LEDGER_DEVICE, it[i].id);
		}
		vmc_libvirt_xml_free(x);
		pthread_mutex_lock(&h->q->mu);
		closed = h->q->closed;
		pthread_mutex_unlock(&h->q->mu);
		if (!waiting || now >= deadline || closed)
			return true;
		wake_at = next_look < deadline ? next_look : deadline;
		if (poll(p, stop_fd >= 0 ? 2 : 1, (int)((wake_at - now) / 1000000 + 1)) < 0 &&
		    errno != EINTR)
			return true;
		if (stop_fd >= 0 && p[1].revents)
			return false;
	}
}

/*
 * After the vCPUs went: is the live count the one before the run's first
 * vCPU plug? If not, virDomainSetVcpusFlags sets it back. Fills @c and
 * returns true when there was something to say.
 */
static bool cl_vcpu_count(struct hv_lv *h, struct vmc_hv_cleaned *c)
{
	struct vmc_error e = VMC_ERROR_INIT;
	char what[96];
	int now = virDomainGetVcpusFlags(h->dom, VIR_DOMAIN_VCPU_LIVE);

	if (now < 0) {
		virResetLastError();
		return false;
	}
	if (now == h->vcpus_before)
		return false;
	snprintf(c->what, sizeof(c->what), "vCPU count %d (%d before the run)", now,
		 h->vcpus_before);
	snprintf(what, sizeof(what), "virDomainSetVcpusFlags %d (LIVE)", h->vcpus_before);
	if (virDomainSetVcpusFlags(h->dom, (unsigned)h->vcpus_before, VIR_DOMAIN_AFFECT_LIVE) < 0) {
		lv_fail(h, &e, what);
		c->removed = false;
		snprintf(c->how, sizeof(c->how), "%s", e.msg);
	} else {
		note(h->q, "%s: ok (cleanup)", what);
		c->removed = true;
		snprintf(c->how, sizeof(c->how), "%s: ok", what);
	}
	vmc_error_clear(&e);
	return true;
}

/* Delete volume @it, once the disk that used it is gone. */
static void cl_volume(struct hv_lv *h, struct vmc_ledger_item *all, size_t n,
		      struct vmc_ledger_item *it, struct vmc_hv_cleaned *c)
{
	struct vmc_error e = VMC_ERROR_INIT;
	virStorageVolPtr vol;

	for (size_t i = 0; *it->device && i < n; i++)
		if (all[i].kind == VMC_LEDGER_DEVICE && !strcmp(all[i].id, it->device) &&
		    all[i].state != VMC_LEDGER_GONE) {
			vmc_ledger_settle(it, c, VMC_LEDGER_LEFT, "its disk %s is still attached",
					  it->device);
			return;
		}
	vol = virStorageVolLookupByPath(h->conn, it->id);
	if (!vol && virGetLastErrorCode() == VIR_ERR_NO_STORAGE_VOL) {
		lv_fail(h, &e, "virStorageVolLookupByPath");
		vmc_ledger_drop(&h->ledger, VMC_LEDGER_VOLUME, it->id);
		vmc_ledger_settle(it, c, VMC_LEDGER_GONE, "already gone (%s)", e.msg);
	} else {
		virResetLastError();
		if (lv_image_remove(&h->hv, it->id, &e) == 0)
			vmc_ledger_settle(it, c, VMC_LEDGER_GONE, "virStorageVolDelete");
		else
			vmc_ledger_settle(it, c, VMC_LEDGER_LEFT, "%s", e.msg);
	}
	if (vol)
		virStorageVolFree(vol);
	vmc_error_clear(&e);
}

/* vmc_ledger_finish()'s rest: a volume once its disk is gone. */
static void cl_rest(void *ctx, struct vmc_ledger_item *all, size_t n, struct vmc_ledger_item *it,
		    struct vmc_hv_cleaned *c)
{
	cl_volume(ctx, all, n, it, c);
}

/*
 * Remove from a user's domain what we attached and is still there: every
 * device and vCPU, newest first, asked for at once and waited for within
 * @ms; the vCPU count back to what it was; then the volumes of the disks
 * that went. The storage pool goes with lv_free().
 */
static int lv_cleanup(struct vmc_hv *hv, int stop_fd, unsigned ms, struct vmc_hv_cleaned **out,
		      size_t *n, bool *cut)
{
	struct hv_lv *h = H(hv);
	struct vmc_ledger_item *it;
	struct vmc_hv_cleaned *c;
	uint64_t t0 = vmc_mono_ns();
	bool vcpus = false;
	ssize_t total;
	size_t k;
	int r;

	*out = NULL;
	*n = 0;
	*cut = false;
	lv_added(hv);
	total = vmc_ledger_items(&h->ledger, 1, &it, &c); /* + the vCPU count */
	if (total <= 0)
		return (int)total;
	for (ssize_t i = 0; i < total; i++) {
		it[i].vcpu = it[i].kind == VMC_LEDGER_DEVICE && vcpu_find(h, it[i].id);
		vcpus |= it[i].vcpu;
		if (it[i].vcpu)
			snprintf(c[i].what, sizeof(c[i].what), "vCPU %.80s", it[i].id);
	}
	*cut = vmc_ledger_stop_now(stop_fd);
	for (ssize_t i = 0; !*cut && i < total; i++)
		if (it[i].kind == VMC_LEDGER_DEVICE)
			cl_request(h, &it[i], &c[i]);
	if (!*cut)
		*cut = !cl_await(h, it, c, (size_t)total, t0, t0 + ms * 1000000ull, stop_fd);
	r = vmc_ledger_finish(it, (size_t)total, c, (size_t)total, stop_fd, cut, ms,
			      "DEVICE_REMOVED", "still in the live XML after", cl_rest, h);
	k = (size_t)total;
	if (vcpus && h->vcpus_known && !*cut && cl_vcpu_count(h, &c[k]) && !c[k++].removed)
		r = -EBUSY;
	free(it);
	*out = c;
	*n = k;
	return r;
}

static void lv_free(struct vmc_hv *hv)
{
	struct hv_lv *h = H(hv);

	if (!h)
		return;
	if (h->shared)
		vmc_libvirt_unshare(h->dom);
	h->shared = false;
	console_close(h->con);
	h->con = NULL;
	if (h->conn && ((h->owned && h->dom_name) || h->pool_name) && conn_lost(h)) {
		struct vmc_error e = VMC_ERROR_INIT;

		/* Our domain and pool are removed only through the daemon. */
		if (reconnect(h, RECONNECT_MS, false, &e) < 0 && (h->owned || h->pool_name))
			fprintf(stderr, "vmcheck: libvirt: left behind:%s%s%s%s%s%s\n",
				h->owned ? " the transient domain " : "",
				h->owned ? h->dom_name : "",
				h->pool_name ? " the storage pool " : "",
				h->pool_name ? h->pool_name : "", h->pool_name ? " at " : "",
				h->pool_name ? h->pool_path : "");
		vmc_error_clear(&e);
	}
	if (h->dom && h->owned && virDomainDestroy(h->dom) < 0)
		virResetLastError(); /* already gone: a powerdown ended it */
	pool_teardown(h);
	for (size_t i = 0; i < h->n_cb; i++)
		virConnectDomainEventDeregisterAny(h->conn, h->cb[i]);
	if (h->conn)
		virConnectUnregisterCloseCallback(h->conn, on_close);
	if (h->dom)
		virDomainFree(h->dom);
	if (h->conn)
		virConnectClose(h->conn);
	/*
	 * libvirt drops deregistered callbacks (and our references) on its
	 * event thread a moment later: wait for that, bounded, so the queue is
	 * freed here rather than by a thread that may not run again.
	 */
	for (int i = 0; h->q && i < 100; i++) {
		bool last;

		pthread_mutex_lock(&h->q->mu);
		last = h->q->refs == 1;
		pthread_mutex_unlock(&h->q->mu);
		if (last)
			break;
		poll(NULL, 0, 5);
	}
	for (size_t i = 0; i < h->n_vcpus; i++)
		free(h->vcpus[i].id);
	free(h->vcpus);
	free(h->agent_spec);
	free(h->uri);
	if (h->own_dir) {
		if (h->console)
			unlink(h->console);
		rmdir(h->own_dir);
		free(h->own_dir);
	}
	free(h->console);
	free(h->network);
	free(h->pool_xml);
	free(h->pool_path);
	free(h->pool_name);
	free(h->dom_name);
	free(h->last_monitor);
	vmc_ledger_clear(&h->ledger);
	free(h->notice);
	if (h->q)
		evq_unref(h->q);
	free(h);
}

static const struct vmc_hv_ops hv_libvirt_ops = {
	.name = "libvirt",
	.reboot = lv_reboot,
	.reset = lv_reset,
	.stop = lv_stop,
	.cont = lv_cont,
	.wakeup = lv_wakeup,
	.pm_suspend = lv_pm_suspend,
	.suspend_support = lv_suspend_support,
	.powerdown = lv_powerdown,
	.destroy = lv_destroy,
	.nic_add = lv_nic_add,
	.nic_del = lv_detach,
	.disk_add = lv_disk_add,
	.disk_del = lv_detach,
	.disk_release = lv_release,
	.mem_add = lv_mem_add,
	.mem_del = lv_detach,
	.mem_release = lv_release,
	.cpu_add = lv_cpu_add,
	.cpu_del = lv_cpu_del,
	.vfio_add = lv_vfio_add,
	.vfio_del = lv_detach,
	.vfio_rebinds = true,
	.image_create = lv_image_create,
	.image_fetch = lv_image_fetch,
	.image_remove = lv_image_remove,
	.free_slots = lv_free_slots,
	.mem_info = lv_mem_info,
	.cpus = lv_cpus,
	.dimm_info = lv_dimm_info,
	.nic_path = lv_nic_path,
	.device_present = lv_device_present,
	.removal_views = lv_removal_views,
	.wait_event = lv_wait_event,
	.seen_event = lv_seen_event,
	.flush_events = lv_flush_events,
	.fd = lv_fd,
	.pump = lv_pump,
	.alive = lv_alive,
	.ended = lv_ended,
	.console_log = lv_console_log,
	.transcript = lv_transcript,
	.take_notice = lv_take_notice,
	.agent_spec = lv_agent_spec,
	.arch = lv_arch,
	.added = lv_added,
	.cleanup = lv_cleanup,
	.free = lv_free,
};

/* ---- construction */

static struct evq *evq_new(void)
{
	struct evq *q = calloc(1, sizeof(*q));
	pthread_condattr_t ca;

	if (!q)
		return NULL;
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->efd < 0) {
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	q->refs = 1;
	q->stopped = q->crashed = -1;
	q->tail = &q->head;
	q->ltail = &q->lines;
	return q;
}

/* Register callback @id with a reference on the queue. */
static int subscribe(struct hv_lv *h, int id, virConnectDomainEventGenericCallback cb,
		     struct vmc_error *err)
{
	int r;

	pthread_mutex_lock(&h->q->mu);
	h->q->refs++;
	pthread_mutex_unlock(&h->q->mu);
	r = virConnectDomainEventRegisterAny(h->conn, h->dom, id, cb, h->q, evq_unref);
	if (r < 0) {
		evq_unref(h->q);
		return lv_fail(h, err, "virConnectDomainEventRegisterAny");
	}
	h->cb[h->n_cb++] = r;
	return 0;
}

static int subscribe_all(struct hv_lv *h, struct vmc_error *err)
{
	static const struct {
		int id;
		virConnectDomainEventGenericCallback cb;
	} cbs[] = {
		{ VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle) },
		{ VIR_DOMAIN_EVENT_ID_REBOOT, VIR_DOMAIN_EVENT_CALLBACK(on_reboot) },
		{ VIR_DOMAIN_EVENT_ID_PMSUSPEND, VIR_DOMAIN_EVENT_CALLBACK(on_pmsuspend) },
		{ VIR_DOMAIN_EVENT_ID_PMWAKEUP, VIR_DOMAIN_EVENT_CALLBACK(on_pmwakeup) },
		{ VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, VIR_DOMAIN_EVENT_CALLBACK(on_removed) },
		{ VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
		  VIR_DOMAIN_EVENT_CALLBACK(on_removal_failed) },
		{ VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_agent) },
	};
	int r = 0;

	for (size_t i = 0; !r && i < ARRAY_SIZE(cbs); i++)
		r = subscribe(h, cbs[i].id, cbs[i].cb, err);
	if (r == 0) {
		pthread_mutex_lock(&h->q->mu);
		h->q->refs++;
		pthread_mutex_unlock(&h->q->mu);
		if (virConnectRegisterCloseCallback(h->conn, on_close, h->q, evq_unref) < 0) {
			evq_unref(h->q);
			r = lv_fail(h, err, "virConnectRegisterCloseCallback");
		}
	}
	return r;
}

/* The guest kit's "cmdline" next to @kernel, trailing newline dropped; NULL if unreadable. */
static char *kit_cmdline(const char *kernel)
{
	_cleanup_free_ char *path = NULL;
	const char *slash = strrchr(kernel, '/');
	char *line = NULL;
	size_t cap = 0;
	FILE *f;

	if (asprintf(&path, "%.*scmdline", slash ? (int)(slash - kernel + 1) : 0, kernel) < 0)
		return NULL;
	f = fopen(path, "re");
	if (!f)
		return NULL;
	if (getline(&line, &cap, f) < 0) {
		free(line);
		line = NULL;
	} else {
		line[strcspn(line, "\n")] = '\0';
	}
	fclose(f);
	return line;
}

/* The machine type of the transient domain on @arch. */
static const char *machine_of(const struct vmc_arch *arch)
{
	return arch == &vmc_arch_aarch64 ? "virt" : "q35";
}

/* libvirt would run this domain under KVM; else @why says why not. */
static bool kvm_offered(struct hv_lv *h, char *why, size_t size)
{
	char *caps = virConnectGetDomainCapabilities(h->conn, NULL, h->arch->name,
						     machine_of(h->arch), "kvm", 0);

	if (caps) {
		free(caps);
		return true;
	}
	snprintf(why, size, "libvirt offers no KVM domain here: %s", virGetLastErrorMessage());
	virResetLastError();
	return false;
}

/*
 * The emulator libvirt runs for the transient domain's architecture and
 * machine, from its domain capabilities (for its best domain type): their
 * absence is libvirt's own "no such emulator" error, said before any
 * domain is made.
 */
static int emulator_of(struct hv_lv *h, char **out, struct vmc_error *err)
{
	char *caps = virConnectGetDomainCapabilities(h->conn, NULL, h->arch->name,
						     machine_of(h->arch), NULL, 0);
	struct vmc_libvirt_xml *x = NULL;
	char what[160];
	int r;

	snprintf(what, sizeof(what), "virConnectGetDomainCapabilities arch %s machine %s",
		 h->arch->name, machine_of(h->arch));
	if (!caps)
		return lv_fail(h, err, what);
	r = vmc_libvirt_xml_parse(caps, &x, err);
	free(caps);
	if (r == 0 && !(*out = vmc_libvirt_xml_domcaps_emulator(x)))
		r = vmc_error_set(err, -EIO, "%s: no <path> of an emulator", what);
	vmc_libvirt_xml_free(x);
	return r < 0 ? lv_prefix(h, err, "the transient domain: ") : 0;
}

/*
 * Define and start the transient domain @d under @type; @console: the local
 * file its serial console goes to through libvirt's stream, NULL when
 * QEMU writes the file @d names (or there is none).
 */
static int create_domain(struct hv_lv *h, struct vmc_libvirt_xml_domain *d, const char *type,
			 const char *console, struct vmc_error *err)
{
	static unsigned seq;
	_cleanup_free_ char *xml = NULL, *name = NULL;
	char what[128];
	int r;

	if (asprintf(&name, "vmcheck-%d-%u", (int)getpid(), ++seq) < 0) {
		name = NULL;
		return vmc_error_set(err, -ENOMEM, "domain: out of memory");
	}
	d->name = name;
	d->type = type;
	r = vmc_libvirt_xml_domain(d, &xml, err);
	d->name = NULL;
	if (r < 0)
		return r;
	note(h->q, "virDomainCreateXML %s: %s", name, xml);
	/* A console read through libvirt is opened before the guest runs: see below. */
	h->dom = virDomainCreateXML(h->conn, xml,
				    VIR_DOMAIN_START_AUTODESTROY |
					    (console ? VIR_DOMAIN_START_PAUSED : 0));
	if (!h->dom)
		return lv_fail(h, err, "virDomainCreateXML (transient domain of the guest kit)");
	h->owned = true;
	if (virDomainGetUUID(h->dom, h->uuid) < 0)
		virResetLastError(); /* all zero: looked up by name instead */
	free(h->dom_name);
	h->dom_name = strdup(name);
	if (!h->dom_name)
		return vmc_error_set(err, -ENOMEM, "domain: out of memory");
	snprintf(what, sizeof(what), "virDomainCreateXML %s (type %s%s)", name, type,
		 console ? ", paused" : "");
	r = done(h, 0, err, what);
	if (r < 0 || !console)
		return r;
	/*
	 * QEMU drops what the guest prints to a pty nobody has open, so the
	 * console is opened while the vCPUs are still paused: the log then
	 * holds the boot from its first line. FORCE: the domain is ours and
	 * seconds old, so a session already on its console is a leftover, or
	 * someone watching who must not cost the run its evidence; SAFE would
	 * only refuse where a driver cannot lock the console, which FORCE's
	 * takeover needs anyway (QEMU's driver always can).
	 */
	r = console_open(h, console, VIR_DOMAIN_CONSOLE_FORCE, err);
	if (r < 0)
		lv_prefix(h, err, "the transient domain's serial console: ");
	else
		r = done(h, virDomainResume(h->dom), err,
			 "virDomainResume (after opening the console)");
	if (r < 0) {
		/* Failed as a whole: a caller may try another type. */
		console_close(h->con);
		h->con = NULL;
		if (virDomainDestroy(h->dom) < 0)
			virResetLastError();
		virDomainFree(h->dom);
		h->dom = NULL;
		h->owned = false;
	}
	return r;
}

/*
 * No workdir given, a daemon on this host: a directory of our own for the
 * console log (the suite's evidence of a boot the agent cannot tell about),
 * reachable by a QEMU that runs as another user.
 */
static int console_dir(struct hv_lv *h, struct vmc_error *err)
{
	char tmpl[] = "/tmp/vmcheck-libvirt-XXXXXX";

	if (!mkdtemp(tmpl))
		return vmc_error_set(err, -errno, "mkdtemp %s for the console log: %m", tmpl);
	if (chmod(tmpl, 0711) < 0 || !(h->own_dir = strdup(tmpl))) {
		int r = vmc_error_set(err, -errno ?: -ENOMEM, "%s for the console log: %m", tmpl);

		rmdir(tmpl);
		return r;
	}
	return 0;
}

/*
 * The guest kit's kernel and initrd as volumes of the pool: a daemon on
 * another host cannot read this host's build directory, so they travel
 * through libvirt's own connection (virStorageVolUpload) and @d points at
 * them; *@kernel and *@initrd hold their paths there. The upload time goes
 * into the transcript and on stderr (it is part of every remote run's
 * start).
 */
static int kit_volumes(struct hv_lv *h, struct vmc_libvirt_xml_domain *d, char **kernel,
		       char **initrd, struct vmc_error *err)
{
	uint64_t kb = 0, ib = 0;
	double ks = 0, is = 0;
	int r = kit_volume(h, d->kernel, "vmlinuz", kernel, &kb, &ks, err);

	if (r == 0)
		r = kit_volume(h, d->initrd, "initrd.img", initrd, &ib, &is, err);
	if (r < 0)
		return r;
	d->kernel = *kernel;
	d->initrd = *initrd;
	fprintf(stderr,
		"vmcheck: libvirt: the guest kit uploaded into %s on %s: kernel %.1f MiB in %.2f "
		"s, initrd %.1f MiB in %.2f s\n",
		h->pool_path, h->uri, (double)kb / (1 << 20), ks, (double)ib / (1 << 20), is);
	return 0;
}

/* Paths on the libvirt host that the transient domain's XML points at (malloc'd). */
struct domain_paths {
	char *kernel, *initrd; /* the uploaded kit */
	char *image, *root;    /* --image: its uploaded copy, the overlay */
	char *crash, *nvram, *emulator;
};

static void domain_paths_free(struct domain_paths *p)
{
	free(p->kernel);
	free(p->initrd);
	free(p->image);
	free(p->root);
	free(p->crash);
	free(p->nvram);
	free(p->emulator);
}

/*
 * What the transient domain @d takes from the libvirt host: its emulator
 * for a guest that is not x86_64 (from libvirt's domain capabilities, which
 * also say at once when libvirt has none), and the files that go with the
 * run's storage pool: the guest kit when the daemon is elsewhere (or
 * @upload_kit), the crash disk and, for UEFI, the variable store (libvirt
 * would leave that behind in its own directory: doc/facts.md, "aarch64
 * through libvirt").
 */
static int domain_files(struct hv_lv *h, struct vmc_libvirt_xml_domain *d, bool upload_kit,
			const char *image, struct domain_paths *p, struct vmc_error *err)
{
	int r;

	if (h->arch != &vmc_arch_x86_64) {
		r = emulator_of(h, &p->emulator, err);
		if (r < 0)
			return r;
		d->emulator = p->emulator;
	}
	r = pool_ensure(h, err);
	if (r < 0)
		return lv_prefix(h, err, "the transient domain's files: ");
	if (upload_kit) {
		r = kit_volumes(h, d, &p->kernel, &p->initrd, err);
		if (r < 0)
			return r;
	}
	if (image) {
		r = root_volume(h, image, upload_kit, &p->image, &p->root, err);
		if (r < 0)
			return r;
		d->root_disk = p->root;
	}
	r = crash_volume(h, (uint64_t)d->maxmem_mb << 20, &p->crash, err);
	if (r < 0)
		return r;
	d->crash_disk = p->crash;
	if (h->arch == &vmc_arch_aarch64) {
		if (asprintf(&p->nvram, "%s/efi-vars.fd", h->pool_path) < 0) {
			p->nvram = NULL;
			return vmc_error_set(err, -ENOMEM, "domain: out of memory");
		}
		d->nvram = p->nvram;
	}
	return 0;
}

/*
 * Define and start the transient domain of the guest kit. --accel auto:
 * KVM when it really works (a /dev/kvm may exist and hang the boot). On this
 * host vmcheck's own probe says; on a remote one, KVM when libvirt offers
 * it and the guest opens its agent channel within VMC_QEMU_KVM_PROBE_MS,
 * otherwise the domain is destroyed and started again under TCG. One line
 * on stderr says which.
 */
static int start_transient(struct hv_lv *h, const struct vmc_libvirt_config *cfg,
			   struct vmc_error *err)
{
	_cleanup_free_ char *append = NULL, *log = NULL;
	_cleanup_free_ char *kernel = cfg->kernel ? realpath(cfg->kernel, NULL) : NULL;
	_cleanup_free_ char *initrd = cfg->initrd ? realpath(cfg->initrd, NULL) : NULL;
	const char *accel = cfg->accel ? cfg->accel : "auto";
	struct vmc_libvirt_xml_domain d = {
		/* The daemon resolves paths from its own directory: make them absolute. */
		.kernel = kernel,
		.initrd = initrd,
		.mem_mb = cfg->mem_mb ?: 512,
		.maxmem_mb = cfg->maxmem_mb ?: 4096,
		.slots = cfg->slots ?: 4,
		.cpus = cfg->cpus ?: 1,
		.maxcpus = cfg->maxcpus ?: 4,
		.ports = cfg->ports ?: 8,
		.arch = h->arch,
	};
	_cleanup_(domain_paths_free) struct domain_paths paths = { 0 };
	const char *console;
	char why[512];
	uint64_t t0;
	int r;

	if (!d.kernel || !d.initrd || access(d.kernel, R_OK) || access(d.initrd, R_OK))
		return vmc_error_set(err, -ENOENT, "guest kit %s / %s not readable (make guest)",
				     cfg->kernel ? cfg->kernel : "(no kernel)",
				     cfg->initrd ? cfg->initrd : "(no initrd)");
	d.append = cfg->append;
	if (!d.append) {
		append = kit_cmdline(d.kernel);
		if (!append)
			return vmc_error_set(err, -ENOENT, "no cmdline file next to %s", d.kernel);
		d.append = append;
	}
	if (!cfg->workdir) {
		r = console_dir(h, err);
		if (r < 0)
			return r;
	}
	if (asprintf(&log, "%s/console.log", cfg->workdir ? cfg->workdir : h->own_dir) < 0) {
		log = NULL;
		return vmc_error_set(err, -ENOMEM, "domain: out of memory");
	}
	/*
	 * A daemon on this host: QEMU writes the file itself. Elsewhere a path
	 * of this host means nothing there: the serial console is a pty that
	 * libvirt streams here (console_open()), and the file is ours.
	 */
	if (h->local) {
		d.console_log = log;
		if (!(h->console = strdup(log)))
			return vmc_error_set(err, -ENOMEM, "domain: out of memory");
	}
	console = h->local ? NULL : log;
	r = domain_files(h, &d, !h->local || cfg->upload_kit, cfg->image, &paths, err);
	if (r < 0)
		return r;
	if (strcmp(accel, "auto"))
		return create_domain(h, &d, strcmp(accel, "kvm") ? "qemu" : "kvm", console, err);

	/*
	 * A daemon on this host: vmcheck's own KVM probe decides (cached), as
	 * for a launched VM. Booting the probe through libvirt instead can
	 * wedge the daemon where /dev/kvm hangs.
	 */
	if (local_uri(cfg->uri) && cfg->local_accel) {
		const char *local_why;
		const char *verdict =
			cfg->local_accel(cfg->arch, kernel, initrd, d.append, &local_why);

		snprintf(why, sizeof(why), "this host's KVM probe: %s", local_why);
		if (!strcmp(verdict, "kvm")) {
			note(h->q, "KVM: %s", why);
			fprintf(stderr, "vmcheck: libvirt: KVM: %s\n", why);
			return create_domain(h, &d, "kvm", console, err);
		}
	} else if (kvm_offered(h, why, sizeof(why))) {
		t0 = vmc_mono_ns();
		r = create_domain(h, &d, "kvm", console, err);
		if (r == 0 && channel_up(h, VMC_LIBVIRT_XML_AGENT_CHANNEL,
					 t0 + VMC_QEMU_KVM_PROBE_MS * 1000000ull) > 0) {
			fprintf(stderr,
				"vmcheck: libvirt: KVM: the guest's agent came up under KVM "
				"in %.1f s\n",
				(double)(vmc_mono_ns() - t0) / 1e9);
			return 0;
		}
		if (r == 0) {
			snprintf(why, sizeof(why),
				 "under KVM the guest did not open its agent channel within %d s",
				 VMC_QEMU_KVM_PROBE_MS / 1000);
			console_close(h->con);
			h->con = NULL;
			if (virDomainDestroy(h->dom) < 0)
				lv_fail(h, NULL, "virDomainDestroy (the KVM probe)");
			virDomainFree(h->dom);
			h->dom = NULL;
			h->owned = false;
		} else {
			snprintf(why, sizeof(why), "%s", err->msg);
			vmc_error_clear(err);
		}
	}
	note(h->q, "TCG: %s", why);
	fprintf(stderr, "vmcheck: libvirt: TCG: %s\n", why);
	return create_domain(h, &d, "qemu", console, err);
}

/*
 * A domain someone else runs, on another host: its serial console through
 * libvirt too, when it has one, for the evidence of a reboot nobody asked
 * for. SAFE, not FORCE: a person's `virsh console` session on it stays
 * theirs (libvirt then says a session is active). Without the console the
 * run goes on as with a domain that has none, and the transcript says why.
 */
static void console_attach(struct hv_lv *h, const struct vmc_libvirt_config *cfg)
{
	struct vmc_error e = VMC_ERROR_INIT;
	_cleanup_free_ char *log = NULL;

	if (!cfg->workdir && console_dir(h, &e) < 0) {
		note(h->q, "serial console: not kept: %s", e.msg ? e.msg : "");
		vmc_error_clear(&e);
		return;
	}
	if (asprintf(&log, "%s/console.log", cfg->workdir ? cfg->workdir : h->own_dir) < 0) {
		log = NULL;
		return;
	}
	if (console_open(h, log, VIR_DOMAIN_CONSOLE_SAFE, &e) < 0)
		note(h->q, "serial console: not kept: %s", e.msg ? e.msg : "");
	vmc_error_clear(&e);
}

/*
 * A domain someone else defined is of the architecture its live XML says
 * (<os><type arch>); one vmcheck does not know, or none, leaves x86_64 (the
 * checks' deadlines and expectations are x86_64's), and the transcript
 * says so.
 */
static int domain_arch(struct hv_lv *h, struct vmc_error *err)
{
	struct vmc_libvirt_xml *x = NULL;
	_cleanup_free_ char *name = NULL;
	const struct vmc_arch *a;
	int r = live(h, &x, err);

	if (r < 0)
		return r;
	name = vmc_libvirt_xml_os_arch(x);
	vmc_libvirt_xml_free(x);
	a = vmc_arch_find(name);
	if (a)
		h->arch = a;
	note(h->q, "the domain's architecture: <os><type arch='%s'>: %s%s", name ? name : "",
	     h->arch->name, a ? "" : " (vmcheck does not know that one)");
	return 0;
}

/*
 * Where the agent is: @cfg->agent; "libvirt-channel:" alone, or any domain
 * on a remote URI: the agent channel through libvirt's own connection
 * (agent-libvirt.c); else the unix socket of the domain's agent channel,
 * which is on this host.
 */
static int find_agent(struct hv_lv *h, const struct vmc_libvirt_config *cfg, struct vmc_error *err)
{
	struct vmc_libvirt_xml *x = NULL;
	_cleanup_free_ char *path = NULL;
	bool stream = !h->local;
	int r;

	if (cfg->agent && strcmp(cfg->agent, VMC_LIBVIRT_CHANNEL_SCHEME ":")) {
		h->agent_spec = strdup(cfg->agent);
		return h->agent_spec ? 0 : vmc_error_set(err, -ENOMEM, "out of memory");
	}
	if (cfg->agent)
		stream = true;
	r = live(h, &x, err);
	if (r < 0)
		return r;
	path = vmc_libvirt_xml_channel_path(x, VMC_LIBVIRT_XML_AGENT_CHANNEL);
	vmc_libvirt_xml_free(x);
	if (!path)
		return vmc_error_set(err, -ENODEV,
				     "%s: domain %s has no unix channel " VMC_LIBVIRT_XML_AGENT_CHANNEL
				     " (add <channel type='unix'><source mode='bind'/><target "
				     "type='virtio' name='" VMC_LIBVIRT_XML_AGENT_CHANNEL
				     "'/></channel>, or pass --agent)",
				     h->uri, virDomainGetName(h->dom));
	if (stream) {
		h->agent_spec = vmc_libvirt_channel_spec(virDomainGetName(h->dom), h->uri);
		if (!h->agent_spec)
			return vmc_error_set(err, -ENOMEM, "out of memory");
		note(h->q, "the agent: %s (libvirt's channel stream%s)", h->agent_spec,
		     h->local ? ", as asked" : ": the daemon's host is not this one");
		return 0;
	}
	if (asprintf(&h->agent_spec, "vserial:%s", path) < 0) {
		h->agent_spec = NULL;
		return vmc_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

int vmc_libvirt_open(const struct vmc_libvirt_config *cfg, struct vmc_hv **out,
		     struct vmc_error *err)
{
	struct hv_lv *h;
	int r;

	if (!cfg->uri || !*cfg->uri)
		return vmc_error_set(err, -EINVAL, "libvirt: no URI");
	r = vmc_libvirt_loop_start();
	if (r < 0)
		return vmc_error_set(err, r, "libvirt: cannot start its event loop");
	h = calloc(1, sizeof(*h));
	if (!h || !(h->q = evq_new()) || (cfg->network && !(h->network = strdup(cfg->network)))) {
		lv_free(h ? &h->hv : NULL);
		return vmc_error_set(err, -ENOMEM, "libvirt: out of memory");
	}
	h->hv.ops = &hv_libvirt_ops;
	h->local = local_uri(cfg->uri);
	h->arch = cfg->arch ? cfg->arch : &vmc_arch_x86_64;
	h->uri = strdup(cfg->uri);
	if (!h->uri) {
		lv_free(&h->hv);
		return vmc_error_set(err, -ENOMEM, "libvirt: out of memory");
	}
	h->conn = virConnectOpen(cfg->uri);
	if (!h->conn) {
		r = lv_fail(h, err, "connecting to libvirt");
		if (h->local)
			vmc_error_prefix(err, "%s: ", cfg->uri);
		lv_free(&h->hv);
		return r == -EIO || r == -ENOENT ? -ECONNREFUSED : r;
	}
	if (cfg->domain) {
		h->dom = virDomainLookupByName(h->conn, cfg->domain);
		r = h->dom ? 0 : lv_fail(h, err, "looking up the domain");
		/* To find it again on a new connection: reconnect(). */
		if (r == 0 && virDomainGetUUID(h->dom, h->uuid) < 0)
			virResetLastError();
		if (r == 0 && !(h->dom_name = strdup(cfg->domain)))
			r = vmc_error_set(err, -ENOMEM, "libvirt: out of memory");
		if (r < 0 && h->local)
			vmc_error_prefix(err, "%s domain %s: ", cfg->uri, cfg->domain);
		else if (r < 0)
			lv_prefix(h, err, "domain %s: ", cfg->domain);
		else if (!virDomainIsActive(h->dom))
			r = vmc_error_set(err, -ESRCH, "%s domain %s is not running", cfg->uri,
					  cfg->domain);
		else
			r = domain_arch(h, err);
		if (r == 0 && !h->local)
			console_attach(h, cfg);
	} else {
		r = start_transient(h, cfg, err);
	}
	if (r == 0)
		r = subscribe_all(h, err);
	if (r == 0 && vmc_libvirt_share(h->uri, h->conn, h->dom) < 0)
		r = vmc_error_set(err, -ENOMEM, "libvirt: out of memory");
	else if (r == 0)
		h->shared = true;
	if (r == 0)
		r = find_agent(h, cfg, err);
	if (r < 0) {
		lv_free(&h->hv);
		return r;
	}
	*out = &h->hv;
	return 0;
}
