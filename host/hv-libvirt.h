/* SPDX-License-Identifier: MIT */
/*
 * The libvirt backend: struct vmc_hv_ops through libvirt's C API, on a
 * transient domain of the embedded guest or on an existing domain.
 */
#ifndef VMC_HV_LIBVIRT_H
#define VMC_HV_LIBVIRT_H

#include "error.h"
#include "hv.h"

/* Zero or NULL means the default, as in struct vmc_qemu_config. */
struct vmc_libvirt_config {
	const char *uri;    /* required: "qemu:///system", "test:///default" */
	const char *domain; /* existing domain; NULL: a transient one of the guest kit */
	/*
	 * Agent spec; NULL: the domain's org.vmcheck.agent.0 channel, through
	 * its unix socket on a local URI, through libvirt's channel stream
	 * (libvirt-channel:DOMAIN/URI) on a remote one; "libvirt-channel:"
	 * alone: the stream on a local URI too.
	 */
	const char *agent;
	const char *network; /* libvirt network for NICs; NULL: type='user' */
	/* The transient domain: */
	const struct vmc_arch *arch; /* the guest's; NULL: x86_64 */
	/*
	 * The guest kit: @kernel and @initrd are files of this host, uploaded
	 * as volumes of the run's storage pool on a remote URI (or when
	 * @upload_kit) and booted from there; @append: the file "cmdline" next
	 * to the kernel.
	 */
	const char *kernel, *initrd, *append;
	/*
	 * --image: this host's disk image, booted as the root disk through a
	 * qcow2 volume of the pool over it (over a copy uploaded into the pool
	 * when the kit is uploaded); NULL: the initramfs guest.
	 */
	const char *image;
	bool upload_kit;   /* upload the kit on a local URI too */
	const char *accel; /* "kvm": type kvm; otherwise type qemu (TCG) */
	/*
	 * --accel auto on a local URI: this host's own KVM probe (the
	 * launcher's), booting @kernel, @initrd, @append of @arch (TCG at once
	 * for a guest of another arch than the host's); returns "kvm" or
	 * "tcg", *@why the reason. NULL: the daemon's capabilities decide, as
	 * for a remote URI.
	 */
	const char *(*local_accel)(const struct vmc_arch *arch, const char *kernel,
				   const char *initrd, const char *append, const char **why);
	/*
	 * The serial console goes to WORKDIR/console.log of this host; NULL: a
	 * /tmp/vmcheck-libvirt-XXXXXX of the backend's, removed by free(). On a
	 * local URI QEMU writes it; on a remote one the backend, from the
	 * console libvirt streams (also for @domain, when it has a console no
	 * one else holds).
	 */
	const char *workdir;
	unsigned mem_mb, maxmem_mb, slots, cpus, maxcpus, ports; /* 512 4096 4 1 4 8 */
};

/*
 * vmc_libvirt_open - connect to @cfg->uri and look the domain up or start a
 * transient one (VIR_DOMAIN_START_AUTODESTROY: libvirt destroys it when our
 * connection closes, however this process ends; free() destroys it first).
 * Returns 0, or with a one-line @err: -ECONNREFUSED (no daemon / URI not
 * usable), -ENOENT (no such domain, or a kit file missing), -ENODEV (no
 * agent channel, no --agent), -EIO (libvirt refused the domain).
 */
int vmc_libvirt_open(const struct vmc_libvirt_config *cfg, struct vmc_hv **out,
		     struct vmc_error *err);

/*
 * vmc_libvirt_lifecycle_event - the event the backend queues for libvirt's
 * lifecycle event @event (virDomainEventType) with @detail (its detail
 * enum): *@name is a VMC_EV_* name, or "LIFECYCLE" for one no check waits
 * for (kept for the transcript); *@reason is QMP's reason word for a
 * SHUTDOWN when libvirt says guest or host, else NULL. Static strings.
 */
void vmc_libvirt_lifecycle_event(int event, int detail, const char **name, const char **reason);

#endif
