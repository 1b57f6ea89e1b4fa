/* SPDX-License-Identifier: MIT */
/*
 * What the libvirt backend (hv-libvirt.c) and the agent transport over
 * libvirt's channel stream (agent-libvirt.c) share: the process-wide thread
 * running libvirt's event loop, and the connection and domain of each open
 * backend, so that the agent's stream travels on the backend's own
 * connection (one SSH session per remote host, not two).
 */
#ifndef VMC_LIBVIRT_SHARED_H
#define VMC_LIBVIRT_SHARED_H

#include <libvirt/libvirt.h>

#include "error.h"

/* The agent spec scheme of the channel stream: "libvirt-channel:DOMAIN/URI". */
#define VMC_LIBVIRT_CHANNEL_SCHEME "libvirt-channel"

/*
 * vmc_libvirt_loop_start - once per process: silence libvirt's own error
 * printing, register its default event loop and run it on a thread that
 * takes no signals. Returns 0 or a negative errno (every later call too).
 */
int vmc_libvirt_loop_start(void);

/*
 * vmc_libvirt_share - make @dom on @conn (reached as @uri) known to the
 * channel transport until vmc_libvirt_unshare(@dom); the registry holds no
 * reference of its own. Returns 0 or -ENOMEM.
 */
int vmc_libvirt_share(const char *uri, virConnectPtr conn, virDomainPtr dom);
void vmc_libvirt_unshare(virDomainPtr dom);

/*
 * vmc_libvirt_domain_ref - domain @name on @uri: the shared connection and
 * domain of an open backend with the same URI and domain name (each with a
 * reference of its own), else a new connection and lookup. The event loop
 * runs once this returns 0. Release with virDomainFree() and
 * virConnectClose(). Returns 0, or a negative errno with @err naming the
 * URI and libvirt's words.
 */
int vmc_libvirt_domain_ref(const char *uri, const char *name, virConnectPtr *conn,
			   virDomainPtr *dom, struct vmc_error *err);

/*
 * vmc_libvirt_channel_spec - "libvirt-channel:DOMAIN/URI" (a domain name
 * never holds a '/'), malloc'ed; NULL when out of memory.
 */
char *vmc_libvirt_channel_spec(const char *name, const char *uri);

/*
 * vmc_libvirt_channel_parse - take "DOMAIN/URI" (the spec after the
 * scheme's colon) apart into malloc'ed @name and @uri. Returns 0 or -EINVAL
 * with @err saying what is missing.
 */
int vmc_libvirt_channel_parse(const char *arg, char **name, char **uri, struct vmc_error *err);

#endif
