/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor seam: every check acts on a VM only through these
 * operations, so the same check runs through QMP (hv-qmp.c) or libvirt
 * (hv-libvirt.c). Each operation returns 0 or a negative code with @err set
 * to a message naming what was done to what, with the hypervisor's own
 * words ("device_add nic3 on pciroot3: Bus 'pciroot3' does not support
 * hotplugging"). Operations a backend cannot do return -ENOTSUP.
 */
#ifndef VMC_HV_H
#define VMC_HV_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "arch.h"
#include "error.h"

struct vmc_hv;

/* Names of the hypervisor events checks wait for (QMP's names). */
#define VMC_EV_DEVICE_DELETED "DEVICE_DELETED"
#define VMC_EV_RESET "RESET"
#define VMC_EV_STOP "STOP"
#define VMC_EV_RESUME "RESUME"
#define VMC_EV_SUSPEND "SUSPEND"
#define VMC_EV_WAKEUP "WAKEUP"
#define VMC_EV_SHUTDOWN "SHUTDOWN"
#define VMC_EV_POWERDOWN "POWERDOWN"
#define VMC_EV_GUEST_PANICKED "GUEST_PANICKED"
#define VMC_EV_GUEST_CRASHLOADED "GUEST_CRASHLOADED"
#define VMC_EV_ACPI_DEVICE_OST "ACPI_DEVICE_OST"

struct vmc_hv_event {
	char *name;   /* VMC_EV_* */
	char *device; /* device id the event is about ("nic1"), or NULL */
	char *detail; /* the raw event data as text, for evidence */
	/*
	 * SHUTDOWN and RESET: why, in QMP's words ("guest-shutdown",
	 * "guest-reset", "guest-panic", "host-qmp-system-reset", ...); NULL
	 * when the hypervisor does not say.
	 */
	char *reason;
	uint64_t host_ns; /* host CLOCK_MONOTONIC at receipt */
	/*
	 * Not reported by the hypervisor but made up by the backend from an
	 * API call's return (libvirt forwards no POWERDOWN): evidence says
	 * so, and a check never counts it as observed.
	 */
	bool synthesized;
};

void vmc_hv_event_free(struct vmc_hv_event *ev);

/* A free hotplug slot: a pcie-root-port with nothing plugged in. */
struct vmc_hv_slot {
	char *id;      /* QOM id used as bus= ("pciroot2") */
	char *address; /* where the port itself sits, "0000:00:02.1", for evidence */
};

/* Memory hotplug capacity, discovered from the hypervisor. */
struct vmc_hv_mem {
	uint64_t base_bytes;    /* boot memory */
	uint64_t plugged_bytes; /* DIMMs present */
	uint64_t max_bytes;     /* maxmem */
	unsigned slots;         /* DIMM slots in all */
	unsigned used_slots;
};

/* A vCPU position from query-hotpluggable-cpus. */
struct vmc_hv_cpu {
	char *type;                                /* "qemu64-x86_64-cpu" */
	int socket_id, die_id, core_id, thread_id; /* -1 when not a property */
	char *qom_path;                            /* NULL when the position is free */
	int cpu_index; /* guest CPU number when plugged (query-cpus-fast), else -1 */
};

struct vmc_hv_nic {
	const char *id;   /* device id; the netdev is "<id>-net" */
	const char *mac;  /* "52:54:00:..." */
	const char *slot; /* vmc_hv_slot.id */
};

struct vmc_hv_disk {
	const char *id;     /* device id; the block node is "<id>-blk" */
	const char *path;   /* image file */
	const char *format; /* "qcow2", "raw" */
	const char *serial;
	const char *slot;
};

struct vmc_hv_dimm {
	const char *id; /* device id; the backend object is "<id>-mem" */
	uint64_t size;
};

struct vmc_hv_vcpu {
	const char *id;
	const struct vmc_hv_cpu *where; /* a free position */
};

/* Where the hypervisor put a DIMM: guest physical address and size. */
struct vmc_hv_dimm_info {
	uint64_t addr; /* bytes */
	uint64_t size; /* bytes */
	int slot;      /* -1 when not said */
};

/*
 * Who still has a device being removed, each layer in its own words. A
 * removal is done when every layer that can be asked says gone.
 */
struct vmc_hv_removal {
	int vmm;             /* QEMU itself: 1 still has it, 0 gone, -1 could not ask */
	char vmm_says[256];  /* "query-hotpluggable-cpus: socket 1 core 0 thread 0 free" */
	int mgmt;            /* the management layer (libvirt's live state); -1 none or unknown */
	char mgmt_says[256]; /* "libvirt live XML: vcpu 1 enabled" */
};

/*
 * How the guest behind a NIC reaches this host, for the traffic probe:
 * the guest gives the NIC @guest/@prefixlen and connects to @peer; the
 * host's listener, bound to @listen, receives that connection.
 */
struct vmc_hv_netpath {
	char guest[48]; /* "10.0.2.15" */
	unsigned prefixlen;
	char peer[48];   /* "10.0.2.2": QEMU user networking's gateway */
	char listen[48]; /* "127.0.0.1": where slirp delivers the gateway's ports */
};

/* A host PCI function (an SR-IOV VF) handed to the guest through VFIO. */
struct vmc_hv_vfio {
	const char *id;   /* device id */
	const char *host; /* host PCI address, "0000:06:02.0" */
	const char *slot; /* vmc_hv_slot.id */
	/*
	 * The backend binds the function to vfio-pci itself and gives it back
	 * to its host driver after the unplug (libvirt's managed='yes'; only
	 * when vfio_rebinds). Otherwise it must be bound to vfio-pci already.
	 */
	bool managed;
};

/*
 * The VM's process as this host sees it, for figures (QEMU's RSS, the
 * time from its start to the guest's first answer).
 */
struct vmc_hv_process {
	pid_t pid;           /* -1: not known */
	uint64_t started_ns; /* host CLOCK_MONOTONIC when it was started; 0: not known */
};

/* What a cleanup did with one thing the backend had added to the VM. */
struct vmc_hv_cleaned {
	char what[96]; /* "device disk2", "block node disk2-blk" */
	bool removed;  /* false: it is still on the VM */
	char how[256]; /* how it went ("device_del, DEVICE_DELETED after 312 ms"), or why not */
};

struct vmc_hv_ops {
	const char *name; /* "qmp", "libvirt" */

	/* Lifecycle. reboot asks the guest (ctrl-alt-del / ACPI); reset is hard. */
	int (*reboot)(struct vmc_hv *hv, struct vmc_error *err);
	int (*reset)(struct vmc_hv *hv, struct vmc_error *err);
	int (*stop)(struct vmc_hv *hv, struct vmc_error *err);
	int (*cont)(struct vmc_hv *hv, struct vmc_error *err);
	int (*wakeup)(struct vmc_hv *hv, struct vmc_error *err);
	/*
	 * Suspend to RAM by the hypervisor's own means (libvirt: through
	 * qemu-guest-agent), or NULL: the check asks vmcheck's agent. -ENOTSUP
	 * when this VM cannot (no qemu-guest-agent): the check falls back too.
	 */
	int (*pm_suspend)(struct vmc_hv *hv, struct vmc_error *err);
	/*
	 * suspend_support - does the machine offer suspend to RAM and the
	 * wakeup from it? 1 yes, 0 no, either way with @says holding the
	 * hypervisor's answer ("QEMU: query-current-machine says
	 * wakeup-suspend-support false"); negative with @err when it could
	 * not be asked. NULL: the backend cannot ask.
	 */
	int (*suspend_support)(struct vmc_hv *hv, char *says, size_t size, struct vmc_error *err);
	int (*powerdown)(struct vmc_hv *hv, struct vmc_error *err);
	int (*destroy)(struct vmc_hv *hv, struct vmc_error *err);

	/*
	 * Hotplug. *_del only requests the removal: wait for DEVICE_DELETED.
	 * A *_del may also return -EINPROGRESS with @err holding the
	 * hypervisor's words: the request went out but the hypervisor stopped
	 * waiting for its outcome (libvirt's 5 s "unplug request timed out"):
	 * the removal may still complete, the check must look for itself.
	 */
	int (*nic_add)(struct vmc_hv *hv, const struct vmc_hv_nic *nic, struct vmc_error *err);
	int (*nic_del)(struct vmc_hv *hv, const char *id, struct vmc_error *err);
	int (*disk_add)(struct vmc_hv *hv, const struct vmc_hv_disk *d, struct vmc_error *err);
	int (*disk_del)(struct vmc_hv *hv, const char *id, struct vmc_error *err);
	/* Release what disk_add set up besides the device (the block node). */
	int (*disk_release)(struct vmc_hv *hv, const char *id, struct vmc_error *err);
	int (*mem_add)(struct vmc_hv *hv, const struct vmc_hv_dimm *m, struct vmc_error *err);
	int (*mem_del)(struct vmc_hv *hv, const char *id, struct vmc_error *err);
	int (*mem_release)(struct vmc_hv *hv, const char *id, struct vmc_error *err);
	int (*cpu_add)(struct vmc_hv *hv, const struct vmc_hv_vcpu *c, struct vmc_error *err);
	int (*cpu_del)(struct vmc_hv *hv, const char *id, struct vmc_error *err);
	/*
	 * VFIO passthrough; NULL when the backend has none. vfio_rebinds: the
	 * backend can take a function that is not bound to vfio-pci yet
	 * (struct vmc_hv_vfio.managed).
	 */
	int (*vfio_add)(struct vmc_hv *hv, const struct vmc_hv_vfio *v, struct vmc_error *err);
	int (*vfio_del)(struct vmc_hv *hv, const char *id, struct vmc_error *err);
	bool vfio_rebinds;

	/*
	 * Disk images where the hypervisor keeps them (libvirt: a storage pool
	 * on the libvirt host, which may be remote). NULL ops: a qcow2 file made
	 * here in the run's workdir. image_create makes a qcow2 volume of
	 * @bytes: *@path (malloc'd) is what disk_add takes, *@size its virtual
	 * size as the hypervisor reports it. image_fetch copies the image's
	 * bytes (as stored, qcow2) into local file @local; image_remove deletes it.
	 */
	int (*image_create)(struct vmc_hv *hv, const char *name, uint64_t bytes, char **path,
			    uint64_t *size, struct vmc_error *err);
	int (*image_fetch)(struct vmc_hv *hv, const char *path, const char *local,
			   struct vmc_error *err);
	int (*image_remove)(struct vmc_hv *hv, const char *path, struct vmc_error *err);

	/* Discovery, never assumed. Arrays are malloc'd; free with vmc_hv_*_free. */
	int (*free_slots)(struct vmc_hv *hv, struct vmc_hv_slot **out, size_t *n,
			  struct vmc_error *err);
	int (*mem_info)(struct vmc_hv *hv, struct vmc_hv_mem *out, struct vmc_error *err);
	/*
	 * cpus - the vCPU positions; -ENOTSUP with @err in the hypervisor's
	 * words when the machine has no vCPU hotplug (arm virt in QEMU 7.2).
	 */
	int (*cpus)(struct vmc_hv *hv, struct vmc_hv_cpu **out, size_t *n, struct vmc_error *err);
	/* Where DIMM @id sits (query-memory-devices; libvirt's live <address type='dimm'>). */
	int (*dimm_info)(struct vmc_hv *hv, const char *id, struct vmc_hv_dimm_info *out,
			 struct vmc_error *err);
	/*
	 * nic_path - how the guest behind NIC @id reaches this host. -ENOTSUP
	 * with @err saying why when there is no such path (a remote libvirt
	 * host, a network whose gateway is not on this machine).
	 */
	int (*nic_path)(struct vmc_hv *hv, const char *id, struct vmc_hv_netpath *out,
			struct vmc_error *err);

	/*
	 * Host-side view of a device, for the detection ladder: 1 if the
	 * hypervisor has device @id (and, in @where, on which bus/address),
	 * 0 if not.
	 */
	int (*device_present)(struct vmc_hv *hv, const char *id, char **where,
			      struct vmc_error *err);
	/*
	 * removal_views - every layer's view of device (or vCPU) @id during or
	 * after its removal; fills @out (-1 where a layer cannot be asked).
	 * Returns 0, or negative with @err set when no layer could be asked.
	 */
	int (*removal_views)(struct vmc_hv *hv, const char *id, struct vmc_hv_removal *out,
			     struct vmc_error *err);

	/*
	 * Events. wait_event takes the first queued or arriving event named
	 * @name about device @device (NULL: any) before @deadline_ns (absolute
	 * CLOCK_MONOTONIC); earlier other events stay queued. seen_event peeks.
	 */
	int (*wait_event)(struct vmc_hv *hv, const char *name, const char *device,
			  uint64_t deadline_ns, struct vmc_hv_event *out, struct vmc_error *err);
	bool (*seen_event)(struct vmc_hv *hv, const char *name, const char *device);
	void (*flush_events)(struct vmc_hv *hv);
	/* fd to poll for hypervisor input, and a non-blocking read of it. */
	int (*fd)(struct vmc_hv *hv);
	int (*pump)(struct vmc_hv *hv, struct vmc_error *err);

	/*
	 * Is the VM process still there? 0 if running; otherwise -ESRCH with
	 * @err describing how it ended (exit status or signal, the last lines of
	 * its stderr, the last command sent).
	 */
	int (*alive)(struct vmc_hv *hv, struct vmc_error *err);
	/*
	 * ended - once alive() said -ESRCH: did the VM end cleanly? 0 if so
	 * (QEMU exited with status 0; libvirt: shut off with reason
	 * "shutdown"); -EIO if not, with @err saying how (a signal, an exit
	 * status, crashed, destroyed); -ENOTSUP when the backend cannot know
	 * (an attached QEMU is not our child), with @err saying why.
	 */
	int (*ended)(struct vmc_hv *hv, struct vmc_error *err);

	/*
	 * The serial console's log as a local file, for evidence (the kernel
	 * log of a boot the agent cannot tell about any more); NULL if none.
	 */
	const char *(*console_log)(struct vmc_hv *hv);

	/* Evidence: the command/event transcript from @since_ns on. */
	void (*transcript)(struct vmc_hv *hv, uint64_t since_ns, FILE *out);

	/*
	 * take_notice - optional: what happened to the backend itself since it
	 * was last asked, that the step in flight must say even when it passes
	 * ("the connection to libvirt was lost; connected again after 2.1 s");
	 * malloc'd, the caller frees it; NULL when nothing did.
	 */
	char *(*take_notice)(struct vmc_hv *hv);

	/* Where the guest agent is reached ("vserial:/tmp/x/agent.sock"). */
	const char *(*agent_spec)(struct vmc_hv *hv);

	/*
	 * process - fill @out with what this backend knows of the VM's
	 * process (-1 and 0 in what it does not: an attached QEMU is not our
	 * child). NULL: not known through this backend (libvirt's QEMU is
	 * libvirtd's child, maybe on another host). Callers go through
	 * vmc_hv_process_get(), which stands for the NULL case.
	 */
	void (*process)(struct vmc_hv *hv, struct vmc_hv_process *out);

	/*
	 * The guest's architecture, as the backend learnt it (the launch
	 * config, QMP's query-target, the domain's <type arch=...>). NULL:
	 * x86_64. Callers go through vmc_hv_arch().
	 */
	const struct vmc_arch *(*arch)(struct vmc_hv *hv);

	/*
	 * added - how many things this backend added to the VM (devices and
	 * the backend objects behind them) and has not removed; NULL: the
	 * backend keeps no such count.
	 */
	size_t (*added)(struct vmc_hv *hv);
	/*
	 * cleanup - remove what added() counts from a VM that outlives the run
	 * (one the user started): every device (device_del, then its
	 * DEVICE_DELETED, waited for at most @ms), then the backend objects no
	 * device uses any more. Stops early, marking the rest left, when
	 * @stop_fd (-1: none) becomes readable, and sets *@cut. *@out
	 * (malloc'd, *@n entries; free() it) says what became of each thing.
	 * Returns 0 when everything went, -EBUSY when something is left.
	 * NULL: nothing to remove that the backend's free() does not.
	 */
	int (*cleanup)(struct vmc_hv *hv, int stop_fd, unsigned ms, struct vmc_hv_cleaned **out,
		       size_t *n, bool *cut);

	/* Tear down: a launched VM is killed and reaped, sockets removed. */
	void (*free)(struct vmc_hv *hv);
};

struct vmc_hv {
	const struct vmc_hv_ops *ops;
};

/* @hv's guest architecture; x86_64 when the backend does not say. */
const struct vmc_arch *vmc_hv_arch(struct vmc_hv *hv);

/* @hv's process facts; pid -1 and started_ns 0 when ops->process is NULL. */
void vmc_hv_process_get(struct vmc_hv *hv, struct vmc_hv_process *out);

void vmc_hv_slots_free(struct vmc_hv_slot *s, size_t n);
void vmc_hv_cpus_free(struct vmc_hv_cpu *c, size_t n);

#endif
