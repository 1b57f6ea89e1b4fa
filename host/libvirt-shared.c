/* SPDX-License-Identifier: MIT */
/*
 * The process-wide libvirt event loop and the registry of open backends'
 * connections (libvirt-shared.h).
 */
#include "libvirt-shared.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "macro.h"

static void quiet(void *opaque, virErrorPtr e)
{
	/* Errors are reported through vmc_error, not printed by libvirt. */
}

static void *event_loop(void *arg)
{
	for (;;)
		virEventRunDefaultImpl();
	return NULL;
}

static int loop_result;

static void loop_setup(void)
{
	sigset_t all, old;
	pthread_t t;

	virSetErrorFunc(NULL, quiet);
	/*
	 * libvirt's RPC client writes to the daemon's socket with write(): a
	 * daemon killed mid-run raised SIGPIPE and killed vmcheck with its
	 * domain and pool left behind. The error comes back as EPIPE instead.
	 * (Children get SIGPIPE back before exec: qemu-proc.c, agent-exec.c.)
	 */
	signal(SIGPIPE, SIG_IGN);
	if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
		loop_result = -EIO;
		return;
	}
	/* The thread takes no signals: SIGINT/SIGTERM go to the suite's signalfd. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	loop_result = -pthread_create(&t, NULL, event_loop, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!loop_result)
		pthread_detach(t);
}

int vmc_libvirt_loop_start(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, loop_setup);
	return loop_result;
}

struct shared {
	struct shared *next;
	char *uri;
	virConnectPtr conn;
	virDomainPtr dom;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct shared *reg;

int vmc_libvirt_share(const char *uri, virConnectPtr conn, virDomainPtr dom)
{
	struct shared *s = calloc(1, sizeof(*s));

	if (!s || !(s->uri = strdup(uri))) {
		free(s);
		return -ENOMEM;
	}
	s->conn = conn;
	s->dom = dom;
	pthread_mutex_lock(&reg_mu);
	s->next = reg;
	reg = s;
	pthread_mutex_unlock(&reg_mu);
	return 0;
}

void vmc_libvirt_unshare(virDomainPtr dom)
{
	pthread_mutex_lock(&reg_mu);
	for (struct shared **p = &reg; *p; p = &(*p)->next) {
		struct shared *s = *p;

		if (s->dom == dom) {
			*p = s->next;
			free(s->uri);
			free(s);
			break;
		}
	}
	pthread_mutex_unlock(&reg_mu);
}

static int fail(struct vmc_error *err, const char *uri, const char *what)
{
	const virError *e = virGetLastError();
	int r = e && e->code == VIR_ERR_NO_DOMAIN ? -ENOENT : -ECONNREFUSED;

	vmc_error_set(err, r, "%s: %s: libvirt error %d/%d: %s", uri, what, e ? e->code : 0,
		      e ? e->domain : 0, e && e->message ? e->message : "(no message)");
	virResetLastError();
	return r;
}

int vmc_libvirt_domain_ref(const char *uri, const char *name, virConnectPtr *conn,
			   virDomainPtr *dom, struct vmc_error *err)
{
	int r = vmc_libvirt_loop_start();

	if (r < 0)
		return vmc_error_set(err, r, "%s: cannot start libvirt's event loop", uri);
	*conn = NULL;
	*dom = NULL;
	pthread_mutex_lock(&reg_mu);
	for (struct shared *s = reg; s; s = s->next) {
		const char *n = virDomainGetName(s->dom);

		if (!strcmp(s->uri, uri) && n && !strcmp(n, name) && virConnectRef(s->conn) == 0) {
			if (virDomainRef(s->dom) < 0) {
				virConnectClose(s->conn);
				continue;
			}
			*conn = s->conn;
			*dom = s->dom;
			break;
		}
	}
	pthread_mutex_unlock(&reg_mu);
	if (*conn)
		return 0;
	*conn = virConnectOpen(uri);
	if (!*conn)
		return fail(err, uri, "connecting to libvirt");
	*dom = virDomainLookupByName(*conn, name);
	if (!*dom) {
		r = fail(err, uri, "looking up the domain");
		virConnectClose(*conn);
		*conn = NULL;
		vmc_error_prefix(err, "domain %s: ", name);
		return r;
	}
	return 0;
}

char *vmc_libvirt_channel_spec(const char *name, const char *uri)
{
	char *s;

	return asprintf(&s, VMC_LIBVIRT_CHANNEL_SCHEME ":%s/%s", name, uri) < 0 ? NULL : s;
}

int vmc_libvirt_channel_parse(const char *arg, char **name, char **uri, struct vmc_error *err)
{
	const char *slash = strchr(arg, '/');

	*name = *uri = NULL;
	if (!slash || slash == arg || !slash[1])
		return vmc_error_set(err, -EINVAL,
				     VMC_LIBVIRT_CHANNEL_SCHEME
				     ":%s: expected DOMAIN/URI "
				     "(e.g. " VMC_LIBVIRT_CHANNEL_SCHEME
				     ":vm1/qemu:///system), or " VMC_LIBVIRT_CHANNEL_SCHEME
				     ": alone with --libvirt",
				     arg);
	*name = strndup(arg, (size_t)(slash - arg));
	*uri = strdup(slash + 1);
	if (!*name || !*uri) {
		free(*name);
		free(*uri);
		*name = *uri = NULL;
		return vmc_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}
