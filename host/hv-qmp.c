/* SPDX-License-Identifier: MIT */
/*
 * struct vmc_hv_ops over QMP. Every command goes through run(), which puts
 * the device and QEMU's own words into the message and, when QEMU is gone,
 * says how it ended instead of "connection closed".
 */
#include "hv-qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ledger.h"

#define CMD_TIMEOUT_MS 10000
#define EXIT_WAIT_MS 1000 /* for the exit status of a QEMU that closed QMP */

struct nic_netdev {
	char *id;     /* the NIC; its netdev is "<id>-net" */
	bool deleted; /* DEVICE_DELETED seen: the netdev can go */
};

struct hv_qmp {
	struct vmc_hv hv;
	struct vmc_qmp *q;
	char *agent_spec;
	struct vmc_qemu_proc *proc; /* NULL: attached */
	const struct vmc_arch *arch;
	struct nic_netdev *nics;
	size_t n_nics;
	struct vmc_ledger ledger; /* what we added and have not removed */
};

#define H(hv) ((struct hv_qmp *)(hv))

static const struct vmc_hv_ops hv_qmp_ops;

/*
 * The id of the device @data is about, into @buf ("" if none). False for
 * events about a device's child object ("/machine/peripheral/nic1/
 * virtio-backend" goes before the NIC itself): nobody waits for those.
 * A CPU's DEVICE_DELETED carries only ".../ID/lapic", so that child stands
 * for its CPU (doc/facts.md, "A CPU's DEVICE_DELETED names only its lapic").
 */
static bool event_device(json_object *data, char *buf, size_t size)
{
	static const char peripheral[] = "/machine/peripheral/";
	json_object *v, *info;
	const char *path, *slash;

	buf[0] = '\0';
	if ((json_object_object_get_ex(data, "device", &v) ||
	     json_object_object_get_ex(data, "id", &v) ||
	     (json_object_object_get_ex(data, "info", &info) &&
	      json_object_object_get_ex(info, "device", &v))) &&
	    json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0) {
		snprintf(buf, size, "%s", json_object_get_string(v));
		return true;
	}
	if (!json_object_object_get_ex(data, "path", &v))
		return true;
	path = json_object_get_string(v);
	if (strncmp(path, peripheral, sizeof(peripheral) - 1))
		return true;
	path += sizeof(peripheral) - 1;
	slash = strchr(path, '/');
	if (slash && strcmp(slash, "/lapic"))
		return false;
	snprintf(buf, size, "%.*s", slash ? (int)(slash - path) : (int)strlen(path), path);
	return true;
}

static bool match_device(const struct vmc_qmp_event *ev, void *ctx)
{
	const char *want = ctx;
	char id[256];

	if (!event_device(ev->data, id, sizeof(id)))
		return false;
	return !want || !strcmp(id, want);
}

/* Mark the NIC whose DEVICE_DELETED just arrived: its netdev can go. */
static void on_event(const struct vmc_qmp_event *ev, void *ctx)
{
	struct hv_qmp *h = ctx;
	char id[256];

	if (strcmp(ev->name, VMC_EV_DEVICE_DELETED) || !event_device(ev->data, id, sizeof(id)))
		return;
	vmc_ledger_drop(&h->ledger, VMC_LEDGER_DEVICE, id);
	for (size_t i = 0; i < h->n_nics; i++)
		if (!strcmp(h->nics[i].id, id))
			h->nics[i].deleted = true;
}

static json_object *args_of(const char *key, const char *value)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, key, json_object_new_string(value));
	return o;
}

/*
 * Remove the netdevs of NICs QEMU has deleted. A failure is left in the
 * transcript: it surfaces as "Duplicate ID" if the NIC id is reused.
 */
static void release_netdevs(struct hv_qmp *h)
{
	size_t i = 0;

	while (i < h->n_nics) {
		char netdev[300];

		if (!h->nics[i].deleted) {
			i++;
			continue;
		}
		snprintf(netdev, sizeof(netdev), "%s-net", h->nics[i].id);
		if (vmc_qmp_command(h->q, "netdev_del", args_of("id", netdev), CMD_TIMEOUT_MS, NULL,
				    NULL) == 0)
			vmc_ledger_drop(&h->ledger, VMC_LEDGER_NETDEV, netdev);
		free(h->nics[i].id);
		h->nics[i] = h->nics[--h->n_nics];
	}
}

/* @r came from QMP: turn "QEMU closed the monitor" into how QEMU ended. */
static int explain_gone(struct hv_qmp *h, int r, struct vmc_error *err)
{
	struct vmc_error why = VMC_ERROR_INIT;

	if (r != -EPIPE || !h->proc)
		return r;
	if (vmc_qemu_proc_status(h->proc, EXIT_WAIT_MS, vmc_qmp_last_command(h->q), &why) ==
	    -ESRCH) {
		vmc_error_set(err, -ESRCH, "%s", why.msg);
		r = -ESRCH;
	}
	vmc_error_clear(&why);
	return r;
}

/*
 * Run @cmd with @args (taken over); @what_fmt names the action for the
 * message: "device_add nic3 on pciroot3: Bus 'pciroot3' does not support
 * hotplugging".
 */
static int _printf_(6, 7) run(struct hv_qmp *h, const char *cmd, json_object *args,
			      json_object **ret, struct vmc_error *err, const char *what_fmt, ...)
{
	struct vmc_error e = VMC_ERROR_INIT;
	char what[512];
	va_list ap;
	int r;

	release_netdevs(h);
	r = vmc_qmp_command(h->q, cmd, args, CMD_TIMEOUT_MS, ret, &e);
	if (r == 0)
		return 0;
	va_start(ap, what_fmt);
	vsnprintf(what, sizeof(what), what_fmt, ap);
	va_end(ap);
	if (r == VMC_QMP_ECOMMAND)
		vmc_error_set(err, r, "%s: %s", what, vmc_qmp_error_desc(h->q));
	else if (explain_gone(h, r, &e) == -ESRCH)
		r = vmc_error_set(err, -ESRCH, "%s: %s", what, e.msg);
	else
		vmc_error_set(err, r, "%s: %s", what, e.msg);
	vmc_error_clear(&e);
	return r;
}

/*
 * Record @id of @kind (used by @device) as ours. Out of memory the object
 * is still there, only not cleaned up after an interruption: say so in the
 * transcript's stead, on stderr.
 */
static void added(struct hv_qmp *h, enum vmc_ledger_kind kind, const char *id, const char *device)
{
	if (vmc_ledger_add(&h->ledger, kind, id, device) < 0)
		fprintf(stderr,
			"vmcheck: out of memory recording %s %s: an interrupted run "
			"will not remove it\n",
			vmc_ledger_kind_name(kind), id);
}

/* Undo a backend object whose device_add failed; forget it if QEMU let it go. */
static void undo(struct hv_qmp *h, const char *cmd, const char *key, const char *id,
		 enum vmc_ledger_kind kind)
{
	if (vmc_qmp_command(h->q, cmd, args_of(key, id), CMD_TIMEOUT_MS, NULL, NULL) == 0)
		vmc_ledger_drop(&h->ledger, kind, id);
}

static void add_str(json_object *o, const char *key, const char *value)
{
	json_object_object_add(o, key, json_object_new_string(value));
}

static void add_int(json_object *o, const char *key, int64_t value)
{
	json_object_object_add(o, key, json_object_new_int64(value));
}

static const char *str_of(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int64_t int_of(json_object *o, const char *key, int64_t dflt)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}

/* ---- lifecycle */

static int qmp_reboot(struct vmc_hv *hv, struct vmc_error *err)
{
	static const char *const keys[] = { "ctrl", "alt", "delete" };
	json_object *args = json_object_new_object(), *list = json_object_new_array();

	/* busybox init runs /bin/reboot on ctrl-alt-del (::ctrlaltdel:). */
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		json_object *k = json_object_new_object();

		add_str(k, "type", "qcode");
		add_str(k, "data", keys[i]);
		json_object_array_add(list, k);
	}
	json_object_object_add(args, "keys", list);
	return run(H(hv), "send-key", args, NULL, err, "reboot (send-key ctrl-alt-delete)");
}

static int qmp_reset(struct vmc_hv *hv, struct vmc_error *err)
{
	return run(H(hv), "system_reset", NULL, NULL, err, "system_reset");
}

static int qmp_stop(struct vmc_hv *hv, struct vmc_error *err)
{
	return run(H(hv), "stop", NULL, NULL, err, "stop");
}

static int qmp_cont(struct vmc_hv *hv, struct vmc_error *err)
{
	return run(H(hv), "cont", NULL, NULL, err, "cont");
}

static int qmp_wakeup(struct vmc_hv *hv, struct vmc_error *err)
{
	return run(H(hv), "system_wakeup", NULL, NULL, err, "system_wakeup");
}

/* arm virt says false (doc/facts.md, "aarch64 guests"); q35 true, whatever disable_s3 says. */
static int qmp_suspend_support(struct vmc_hv *hv, char *says, size_t size, struct vmc_error *err)
{
	json_object *m = NULL, *v;
	int r = run(H(hv), "query-current-machine", NULL, &m, err, "query-current-machine");

	if (r < 0)
		return r;
	if (json_object_object_get_ex(m, "wakeup-suspend-support", &v) &&
	    json_object_is_type(v, json_type_boolean)) {
		r = json_object_get_boolean(v);
		snprintf(says, size, "QEMU: query-current-machine says wakeup-suspend-support %s",
			 r ? "true" : "false");
	} else {
		r = vmc_error_set(err, -EPROTO,
				  "query-current-machine: no wakeup-suspend-support in %.200s",
				  json_object_to_json_string(m));
	}
	json_object_put(m);
	return r;
}

static int qmp_powerdown(struct vmc_hv *hv, struct vmc_error *err)
{
	return run(H(hv), "system_powerdown", NULL, NULL, err, "system_powerdown");
}

static int qmp_destroy(struct vmc_hv *hv, struct vmc_error *err)
{
	struct hv_qmp *h = H(hv);

	if (h->proc) {
		vmc_qemu_proc_kill(h->proc, h->q);
		return 0;
	}
	return run(h, "quit", NULL, NULL, err, "quit");
}

/*
 * ---- hotplug
 * PCI devices go to addr 0: behind a PCIe port the guest sees device 0
 * only, and QEMU 7.2 would otherwise put a second device on a taken slot at
 * 01.0 and report success. With addr 0 it refuses ("PCI: slot 0 function 0
 * not available ... in use by ...").
 */

static int device_del(struct vmc_hv *hv, const char *id, struct vmc_error *err)
{
	return run(H(hv), "device_del", args_of("id", id), NULL, err, "device_del %s", id);
}

static int qmp_nic_add(struct vmc_hv *hv, const struct vmc_hv_nic *nic, struct vmc_error *err)
{
	struct hv_qmp *h = H(hv);
	_cleanup_free_ char *netdev = NULL, *id = strdup(nic->id);
	struct nic_netdev *n;
	json_object *args;
	int r;

	if (!id || asprintf(&netdev, "%s-net", nic->id) < 0)
		return vmc_error_set(err, -ENOMEM, "nic_add %s: out of memory", nic->id);
	n = realloc(h->nics, (h->n_nics + 1) * sizeof(*n));
	if (!n)
		return vmc_error_set(err, -ENOMEM, "nic_add %s: out of memory", nic->id);
	h->nics = n;
	args = args_of("type", "user");
	add_str(args, "id", netdev);
	r = run(h, "netdev_add", args, NULL, err, "netdev_add %s", netdev);
	if (r < 0)
		return r;
	added(h, VMC_LEDGER_NETDEV, netdev, nic->id);
	args = args_of("driver", "virtio-net-pci");
	add_str(args, "id", nic->id);
	add_str(args, "netdev", netdev);
	add_str(args, "mac", nic->mac);
	add_str(args, "bus", nic->slot);
	add_str(args, "addr", "0");
	r = run(h, "device_add", args, NULL, err, "device_add %s on %s", nic->id, nic->slot);
	if (r < 0) {
		undo(h, "netdev_del", "id", netdev, VMC_LEDGER_NETDEV);
		return r;
	}
	added(h, VMC_LEDGER_DEVICE, nic->id, NULL);
	h->nics[h->n_nics].id = TAKE_PTR(id);
	h->nics[h->n_nics++].deleted = false;
	return 0;
}

static int qmp_disk_add(struct vmc_hv *hv, const struct vmc_hv_disk *d, struct vmc_error *err)
{
	struct hv_qmp *h = H(hv);
	_cleanup_free_ char *node = NULL;
	json_object *args, *file;
	int r;

	if (asprintf(&node, "%s-blk", d->id) < 0)
		return vmc_error_set(err, -ENOMEM, "disk_add %s: out of memory", d->id);
	file = args_of("driver", "file");
	add_str(file, "filename", d->path);
	args = args_of("driver", d->format);
	add_str(args, "node-name", node);
	json_object_object_add(args, "file", file);
	r = run(h, "blockdev-add", args, NULL, err, "blockdev-add %s (%s %s)", node, d->format,
		d->path);
	if (r < 0)
		return r;
	added(h, VMC_LEDGER_BLOCKDEV, node, d->id);
	args = args_of("driver", "virtio-blk-pci");
	add_str(args, "id", d->id);
	add_str(args, "drive", node);
	add_str(args, "serial", d->serial);
	add_str(args, "bus", d->slot);
	add_str(args, "addr", "0");
	r = run(h, "device_add", args, NULL, err, "device_add %s on %s", d->id, d->slot);
	if (r < 0)
		undo(h, "blockdev-del", "node-name", node, VMC_LEDGER_BLOCKDEV);
	else
		added(h, VMC_LEDGER_DEVICE, d->id, NULL);
	return r;
}

static int qmp_disk_release(struct vmc_hv *hv, const char *id, struct vmc_error *err)
{
	char node[300];
	int r;

	snprintf(node, sizeof(node), "%s-blk", id);
	r = run(H(hv), "blockdev-del", args_of("node-name", node), NULL, err, "blockdev-del %s",
		node);
	if (r == 0)
		vmc_ledger_drop(&H(hv)->ledger, VMC_LEDGER_BLOCKDEV, node);
	return r;
}

static int qmp_mem_add(struct vmc_hv *hv, const struct vmc_hv_dimm *m, struct vmc_error *err)
{
	struct hv_qmp *h = H(hv);
	_cleanup_free_ char *mem = NULL;
	json_object *args;
	int r;

	if (asprintf(&mem, "%s-mem", m->id) < 0)
		return vmc_error_set(err, -ENOMEM, "mem_add %s: out of memory", m->id);
	args = args_of("qom-type", "memory-backend-ram");
	add_str(args, "id", mem);
	add_int(args, "size", (int64_t)m->size);
	r = run(h, "object-add", args, NULL, err, "object-add %s (%llu bytes)", mem,
		(unsigned long long)m->size);
	if (r < 0)
		return r;
	added(h, VMC_LEDGER_OBJECT, mem, m->id);
	args = args_of("driver", "pc-dimm");
	add_str(args, "id", m->id);
	add_str(args, "memdev", mem);
	r = run(h, "device_add", args, NULL, err, "device_add %s", m->id);
	if (r < 0)
		undo(h, "object-del", "id", mem, VMC_LEDGER_OBJECT);
	else
		added(h, VMC_LEDGER_DEVICE, m->id, NULL);
	return r;
}

static int qmp_mem_release(struct vmc_hv *hv, const char *id, struct vmc_error *err)
{
	char mem[300];
	int r;

	snprintf(mem, sizeof(mem), "%s-mem", id);
	r = run(H(hv), "object-del", args_of("id", mem), NULL, err, "object-del %s", mem);
	if (r == 0)
		vmc_ledger_drop(&H(hv)->ledger, VMC_LEDGER_OBJECT, mem);
	return r;
}

static int qmp_cpu_add(struct vmc_hv *hv, const struct vmc_hv_vcpu *c, struct vmc_error *err)
{
	const struct vmc_hv_cpu *w = c->where;
	json_object *args = args_of("driver", w->type);
	int r;

	add_str(args, "id", c->id);
	if (w->socket_id >= 0)
		add_int(args, "socket-id", w->socket_id);
	if (w->die_id >= 0)
		add_int(args, "die-id", w->die_id);
	if (w->core_id >= 0)
		add_int(args, "core-id", w->core_id);
	if (w->thread_id >= 0)
		add_int(args, "thread-id", w->thread_id);
	r = run(H(hv), "device_add", args, NULL, err,
		"device_add %s (%s socket %d die %d core %d thread %d)", c->id, w->type,
		w->socket_id, w->die_id, w->core_id, w->thread_id);
	if (r == 0)
		added(H(hv), VMC_LEDGER_DEVICE, c->id, NULL);
	return r;
}

/*
 * QEMU opens the function's /dev/vfio group itself: binding it to
 * vfio-pci is the host's business, which a QMP client cannot do.
 */
static int qmp_vfio_add(struct vmc_hv *hv, const struct vmc_hv_vfio *v, struct vmc_error *err)
{
	json_object *args;
	int r;

	if (v->managed)
		return vmc_error_set(err, -ENOTSUP,
				     "device_add %s (vfio-pci host=%s): QEMU cannot bind it to "
				     "vfio-pci, bind it first",
				     v->id, v->host);
	args = args_of("driver", "vfio-pci");
	add_str(args, "id", v->id);
	add_str(args, "host", v->host);
	add_str(args, "bus", v->slot);
	add_str(args, "addr", "0");
	r = run(H(hv), "device_add", args, NULL, err, "device_add %s (vfio-pci host=%s) on %s",
		v->id, v->host, v->slot);
	if (r == 0)
		added(H(hv), VMC_LEDGER_DEVICE, v->id, NULL);
	return r;
}

/* ---- discovery */

/* What sits behind a bridge in query-pci ("pci_bridge": {"bus": ..., "devices": [...]}). */
static json_object *bridge_devices(json_object *dev)
{
	json_object *bridge, *devs;

	if (!json_object_object_get_ex(dev, "pci_bridge", &bridge) ||
	    !json_object_object_get_ex(bridge, "devices", &devs) ||
	    !json_object_is_type(devs, json_type_array))
		return NULL;
	return devs;
}

/* Where PCI device @id sits: "0000:01:00.0 behind pciroot1", or NULL. */
static char *pci_place(json_object *devs, const char *id, const char *parent)
{
	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		json_object *dev = json_object_array_get_idx(devs, i), *sub = bridge_devices(dev);
		const char *qid = str_of(dev, "qdev_id");
		char *s;

		if (qid && !strcmp(qid, id)) {
			if (asprintf(&s, "0000:%02x:%02x.%x%s%s", (unsigned)int_of(dev, "bus", 0),
				     (unsigned)int_of(dev, "slot", 0),
				     (unsigned)int_of(dev, "function", 0), parent ? " behind " : "",
				     parent ? parent : "") < 0)
				return NULL;
			return s;
		}
		if (sub && (s = pci_place(sub, id, qid && *qid ? qid : NULL)))
			return s;
	}
	return NULL;
}

/* pci_place() over every root bus of a query-pci reply. */
static char *pci_address(json_object *pci, const char *id)
{
	char *s = NULL;

	for (size_t i = 0; !s && i < json_object_array_length(pci); i++) {
		json_object *devs;

		if (json_object_object_get_ex(json_object_array_get_idx(pci, i), "devices", &devs))
			s = pci_place(devs, id, NULL);
	}
	return s;
}

struct slot_list {
	struct vmc_hv_slot *v;
	size_t n;
};

static int cmp_slot(const void *a, const void *b)
{
	return strverscmp(((const struct vmc_hv_slot *)a)->id, ((const struct vmc_hv_slot *)b)->id);
}

static int qom_list(struct hv_qmp *h, const char *path, json_object **ret, struct vmc_error *err)
{
	return run(h, "qom-list", args_of("path", path), ret, err, "qom-list %s", path);
}

/*
 * Is peripheral @id a free hotplug slot? It must be a PCIe slot (root or
 * downstream port: the only devices with a "hotplug" property), have hotplug
 * on (or device_add says "Bus 'X' does not support hotplugging") and nothing
 * on its secondary bus (a device there is the bus's "child[N]" link). QOM,
 * not query-pci: until firmware numbers the buses (a VM started with -S, an
 * early boot) query-pci lists no devices behind any bridge.
 * Returns 1 (free), 0 (not a free slot) or a negative code.
 */
static int port_is_free(struct hv_qmp *h, const char *id, struct vmc_error *err)
{
	json_object *props = NULL, *hp = NULL, *args;
	const char *bus = NULL;
	bool has_hotplug = false;
	char path[300], buspath[600];
	int r;

	snprintf(path, sizeof(path), "/machine/peripheral/%s", id);
	r = qom_list(h, path, &props, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(props); i++) {
		json_object *p = json_object_array_get_idx(props, i);
		const char *name = str_of(p, "name"), *type = str_of(p, "type");

		if (!name || !type)
			continue;
		if (!strcmp(name, "hotplug") && !strcmp(type, "bool"))
			has_hotplug = true;
		else if (!strcmp(type, "child<PCIE>"))
			bus = name;
	}
	if (has_hotplug && bus)
		snprintf(buspath, sizeof(buspath), "%s/%s", path, bus);
	json_object_put(props);
	if (!has_hotplug || !bus)
		return 0;
	args = args_of("path", path);
	add_str(args, "property", "hotplug");
	r = run(h, "qom-get", args, &hp, err, "qom-get %s hotplug", path);
	if (r < 0)
		return r;
	r = json_object_get_boolean(hp);
	json_object_put(hp);
	if (!r)
		return 0;
	r = qom_list(h, buspath, &props, err);
	if (r < 0)
		return r;
	r = 1;
	for (size_t i = 0; r == 1 && i < json_object_array_length(props); i++) {
		const char *name = str_of(json_object_array_get_idx(props, i), "name");

		if (name && !strncmp(name, "child[", 6))
			r = 0;
	}
	json_object_put(props);
	return r;
}

static int add_slot(struct slot_list *l, const char *id, json_object *pci, struct vmc_error *err)
{
	struct vmc_hv_slot *n = realloc(l->v, (l->n + 1) * sizeof(*n));

	if (!n)
		return vmc_error_set(err, -ENOMEM, "free_slots: out of memory");
	l->v = n;
	n = &l->v[l->n];
	n->id = strdup(id);
	n->address = pci_address(pci, id);
	if (!n->address)
		n->address = strdup("(not enumerated yet)");
	if (!n->id || !n->address) {
		free(n->id);
		free(n->address);
		return vmc_error_set(err, -ENOMEM, "free_slots: out of memory");
	}
	l->n++;
	return 0;
}

static int qmp_free_slots(struct vmc_hv *hv, struct vmc_hv_slot **out, size_t *n,
			  struct vmc_error *err)
{
	struct hv_qmp *h = H(hv);
	struct slot_list l = { NULL, 0 };
	json_object *periph = NULL, *pci = NULL;
	int r;

	r = qom_list(h, "/machine/peripheral", &periph, err);
	if (r == 0)
		r = run(h, "query-pci", NULL, &pci, err, "query-pci");
	for (size_t i = 0; r == 0 && i < json_object_array_length(periph); i++) {
		json_object *e = json_object_array_get_idx(periph, i);
		const char *id = str_of(e, "name"), *type = str_of(e, "type");

		if (!id || !type || strncmp(type, "child<", 6))
			continue;
		r = port_is_free(h, id, err);
		if (r == 1)
			r = add_slot(&l, id, pci, err);
	}
	json_object_put(periph);
	json_object_put(pci);
	if (r < 0) {
		vmc_hv_slots_free(l.v, l.n);
		return r;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_slot);
	*out = l.v;
	*n = l.n;
	return 0;
}

static int qmp_mem_info(struct vmc_hv *hv, struct vmc_hv_mem *out, struct vmc_error *err)
{
	struct hv_qmp *h = H(hv);
	json_object *sum = NULL, *mem = NULL, *devs = NULL, *args;
	struct vmc_hv_mem m = { 0 };
	int r;

	r = run(h, "query-memory-size-summary", NULL, &sum, err, "query-memory-size-summary");
	if (r < 0)
		return r;
	m.base_bytes = (uint64_t)int_of(sum, "base-memory", 0);
	m.plugged_bytes = (uint64_t)int_of(sum, "plugged-memory", 0);
	json_object_put(sum);
	/* The machine's "memory" property ({size, slots, max-size}) is the -m option. */
	args = args_of("path", "/machine");
	add_str(args, "property", "memory");
	r = run(h, "qom-get", args, &mem, err, "qom-get /machine memory");
	if (r < 0)
		return r;
	m.max_bytes = (uint64_t)int_of(mem, "max-size", 0);
	m.slots = (unsigned)int_of(mem, "slots", 0);
	json_object_put(mem);
	r = run(h, "query-memory-devices", NULL, &devs, err, "query-memory-devices");
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		const char *type = str_of(json_object_array_get_idx(devs, i), "type");

		/* Only these take a slot; virtio-mem and friends do not. */
		if (type && (!strcmp(type, "dimm") || !strcmp(type, "nvdimm")))
			m.used_slots++;
	}
	json_object_put(devs);
	*out = m;
	return 0;
}

static int cmp_cpu(const void *a, const void *b)
{
	const struct vmc_hv_cpu *x = a, *y = b;

	if (x->socket_id != y->socket_id)
		return x->socket_id < y->socket_id ? -1 : 1;
	if (x->die_id != y->die_id)
		return x->die_id < y->die_id ? -1 : 1;
	if (x->core_id != y->core_id)
		return x->core_id < y->core_id ? -1 : 1;
	return x->thread_id < y->thread_id ? -1 : x->thread_id > y->thread_id;
}

static int cpu_index_of(json_object *fast, const char *qom_path)
{
	for (size_t i = 0; i < json_object_array_length(fast); i++) {
		json_object *c = json_object_array_get_idx(fast, i);
		const char *p = str_of(c, "qom-path");

		if (p && !strcmp(p, qom_path))
			return (int)int_of(c, "cpu-index", -1);
	}
	return -1;
}

static int qmp_cpus(struct vmc_hv *hv, struct vmc_hv_cpu **out, size_t *n, struct vmc_error *err)
{
	struct hv_qmp *h = H(hv);
	json_object *hot = NULL, *fast = NULL;
	struct vmc_hv_cpu *v;
	size_t len;
	int r;

	r = run(h, "query-hotpluggable-cpus", NULL, &hot, err, "query-hotpluggable-cpus");
	if (r == VMC_QMP_ECOMMAND &&
	    vmc_qmp_no_cpu_hotplug(vmc_qmp_error_class(h->q), vmc_qmp_error_desc(h->q))) {
		if (err)
			err->code = -ENOTSUP;
		return -ENOTSUP;
	}
	if (r < 0)
		return r;
	r = run(h, "query-cpus-fast", NULL, &fast, err, "query-cpus-fast");
	if (r < 0) {
		json_object_put(hot);
		return r;
	}
	len = json_object_array_length(hot);
	v = calloc(len ? len : 1, sizeof(*v));
	for (size_t i = 0; v && i < len; i++) {
		json_object *e = json_object_array_get_idx(hot, i), *props = NULL;
		const char *type = str_of(e, "type"), *qom = str_of(e, "qom-path");

		json_object_object_get_ex(e, "props", &props);
		v[i].socket_id = (int)int_of(props, "socket-id", -1);
		v[i].die_id = (int)int_of(props, "die-id", -1);
		v[i].core_id = (int)int_of(props, "core-id", -1);
		v[i].thread_id = (int)int_of(props, "thread-id", -1);
		v[i].cpu_index = qom ? cpu_index_of(fast, qom) : -1;
		v[i].type = strdup(type ? type : "");
		v[i].qom_path = qom ? strdup(qom) : NULL;
		if (!v[i].type || (qom && !v[i].qom_path)) {
			vmc_hv_cpus_free(v, i + 1);
			v = NULL;
		}
	}
	json_object_put(hot);
	json_object_put(fast);
	if (!v)
		return vmc_error_set(err, -ENOMEM, "cpus: out of memory");
	if (len)
		qsort(v, len, sizeof(*v), cmp_cpu);
	*out = v;
	*n = len;
	return 0;
}

static int qmp_device_present(struct vmc_hv *hv, const char *id, char **where,
			      struct vmc_error *err)
{
	struct hv_qmp *h = H(hv);
	json_object *type = NULL, *pci = NULL, *args;
	char path[300], *place = NULL;
	int r;

	snprintf(path, sizeof(path), "/machine/peripheral/%s", id);
	args = args_of("path", path);
	add_str(args, "property", "type");
	r = run(h, "qom-get", args, &type, err, "qom-get %s type", path);
	if (r == VMC_QMP_ECOMMAND && !strcmp(vmc_qmp_error_class(h->q), "DeviceNotFound")) {
		vmc_error_clear(err);
		return 0;
	}
	if (r < 0)
		return r;
	if (where) {
		if (run(h, "query-pci", NULL, &pci, NULL, "query-pci") == 0) {
			place = pci_address(pci, id);
			json_object_put(pci);
		}
		if (asprintf(where, "%s%s%s", json_object_get_string(type), place ? " at " : "",
			     place ? place : "") < 0)
			*where = NULL;
		free(place);
	}
	json_object_put(type);
	return 1;
}

static int qmp_dimm_info(struct vmc_hv *hv, const char *id, struct vmc_hv_dimm_info *out,
			 struct vmc_error *err)
{
	json_object *devs = NULL;
	int r = run(H(hv), "query-memory-devices", NULL, &devs, err, "query-memory-devices");

	if (r < 0)
		return r;
	r = vmc_error_set(err, -ENOENT, "query-memory-devices lists no DIMM with id %s", id);
	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		json_object *d = json_object_array_get_idx(devs, i), *data;
		const char *type = str_of(d, "type"), *did;

		if (!json_object_object_get_ex(d, "data", &data))
			continue;
		did = str_of(data, "id");
		if (!type || strcmp(type, "dimm") || !did || strcmp(did, id))
			continue;
		out->addr = (uint64_t)int_of(data, "addr", 0);
		out->size = (uint64_t)int_of(data, "size", 0);
		out->slot = (int)int_of(data, "slot", -1);
		vmc_error_clear(err);
		r = 0;
	}
	json_object_put(devs);
	return r;
}

/*
 * Every NIC this backend adds has a user netdev (slirp): the guest is
 * 10.0.2.15/24 there and its gateway 10.0.2.2 is this host's loopback.
 */
static int qmp_nic_path(struct vmc_hv *hv, const char *id, struct vmc_hv_netpath *out,
			struct vmc_error *err)
{
	struct hv_qmp *h = H(hv);
	bool ours = false;

	for (size_t i = 0; i < h->n_nics; i++)
		ours |= !strcmp(h->nics[i].id, id);
	if (!ours)
		return vmc_error_set(err, -ENOTSUP,
				     "%s: not a NIC this run added: its network is "
				     "unknown",
				     id);
	snprintf(out->guest, sizeof(out->guest), "10.0.2.15");
	out->prefixlen = 24;
	snprintf(out->peer, sizeof(out->peer), "10.0.2.2");
	snprintf(out->listen, sizeof(out->listen), "127.0.0.1");
	return 0;
}

/* QEMU is the only layer: what QOM says of /machine/peripheral/@id. */
static int qmp_removal_views(struct vmc_hv *hv, const char *id, struct vmc_hv_removal *out,
			     struct vmc_error *err)
{
	char *where = NULL;
	int r = qmp_device_present(hv, id, &where, err);

	memset(out, 0, sizeof(*out));
	out->mgmt = -1;
	snprintf(out->mgmt_says, sizeof(out->mgmt_says), "no layer above QEMU (QMP)");
	if (r < 0) {
		out->vmm = -1;
		snprintf(out->vmm_says, sizeof(out->vmm_says), "%s", err->msg ? err->msg : "?");
		return r;
	}
	out->vmm = r;
	snprintf(out->vmm_says, sizeof(out->vmm_says), "qom-get /machine/peripheral/%s: %s", id,
		 r ? (where ? where : "present") : "DeviceNotFound");
	free(where);
	return 0;
}

static int qmp_ended(struct vmc_hv *hv, struct vmc_error *err)
{
	struct hv_qmp *h = H(hv);

	if (!h->proc)
		return vmc_error_set(err, -ENOTSUP,
				     "QEMU is not this program's child (attached): its exit status "
				     "is unknown");
	return vmc_qemu_proc_ended(h->proc, EXIT_WAIT_MS, vmc_qmp_last_command(h->q), err);
}

static const char *qmp_console_log(struct vmc_hv *hv)
{
	return H(hv)->proc ? vmc_qemu_proc_console(H(hv)->proc) : NULL;
}

/* ---- events */

static int qmp_wait_event(struct vmc_hv *hv, const char *name, const char *device,
			  uint64_t deadline_ns, struct vmc_hv_event *out, struct vmc_error *err)
{
	struct hv_qmp *h = H(hv);
	struct vmc_qmp_event ev;
	char id[256];
	int r;

	r = vmc_qmp_wait_event(h->q, name, match_device, (void *)device, deadline_ns, &ev, err);
	if (r == -ETIMEDOUT)
		return vmc_error_set(err, r, "no %s event%s%s in time", name, device ? " for " : "",
				     device ? device : "");
	if (r < 0)
		return explain_gone(h, r, err);
	event_device(ev.data, id, sizeof(id));
	memset(out, 0, sizeof(*out));
	out->name = ev.name;
	out->device = *id ? strdup(id) : NULL;
	/* SHUTDOWN and RESET say why: {"guest": true, "reason": "guest-shutdown"}. */
	if (ev.data && str_of(ev.data, "reason"))
		out->reason = strdup(str_of(ev.data, "reason"));
	out->detail = strdup(
		ev.data ? json_object_to_json_string_ext(ev.data,
							 JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE)
			: "{}");
	out->host_ns = ev.host_ns;
	json_object_put(ev.data);
	if ((*id && !out->device) || !out->detail) {
		vmc_hv_event_free(out);
		return vmc_error_set(err, -ENOMEM, "%s event: out of memory", name);
	}
	release_netdevs(h);
	return 0;
}

static bool qmp_seen_event(struct vmc_hv *hv, const char *name, const char *device)
{
	struct hv_qmp *h = H(hv);

	/* A dead QEMU is reported by alive(); here only what arrived counts. */
	vmc_qmp_pump(h->q, NULL);
	return vmc_qmp_has_event(h->q, name, match_device, (void *)device);
}

static void qmp_flush_events(struct vmc_hv *hv)
{
	vmc_qmp_flush_events(H(hv)->q);
}

static int qmp_fd(struct vmc_hv *hv)
{
	return vmc_qmp_fd(H(hv)->q);
}

static int qmp_pump(struct vmc_hv *hv, struct vmc_error *err)
{
	struct hv_qmp *h = H(hv);
	int r = vmc_qmp_pump(h->q, err);

	if (r < 0)
		return explain_gone(h, r, err);
	release_netdevs(h);
	return 0;
}

static int qmp_alive(struct vmc_hv *hv, struct vmc_error *err)
{
	struct hv_qmp *h = H(hv);
	int r;

	if (h->proc)
		return vmc_qemu_proc_status(h->proc, 0, vmc_qmp_last_command(h->q), err);
	r = vmc_qmp_pump(h->q, err);
	if (r == -EPIPE)
		return vmc_error_set(err, -ESRCH,
				     "QEMU closed its QMP socket; last QMP command: %s",
				     vmc_qmp_last_command(h->q));
	return r;
}

static void qmp_transcript(struct vmc_hv *hv, uint64_t since_ns, FILE *out)
{
	vmc_qmp_transcript_since(H(hv)->q, since_ns, out);
}

static const char *qmp_agent_spec(struct vmc_hv *hv)
{
	return H(hv)->agent_spec;
}

static void qmp_process(struct vmc_hv *hv, struct vmc_hv_process *out)
{
	struct vmc_qemu_proc *p = H(hv)->proc;

	out->pid = p ? vmc_qemu_proc_pid(p) : -1;
	out->started_ns = p ? vmc_qemu_proc_started_ns(p) : 0;
}

static const struct vmc_arch *qmp_arch(struct vmc_hv *hv)
{
	return H(hv)->arch;
}

/* ---- cleanup of an attached VM */

static size_t qmp_added(struct vmc_hv *hv)
{
	struct hv_qmp *h = H(hv);

	release_netdevs(h);
	return h->ledger.n;
}

/* The words QEMU refused @cmd with, or how the connection failed. */
static const char *refusal(struct hv_qmp *h, int r, struct vmc_error *e)
{
	if (r == VMC_QMP_ECOMMAND)
		return vmc_qmp_error_desc(h->q);
	return e->msg ? e->msg : strerror(-r);
}

/* device_del every device of @it; those QEMU no longer has count as gone. */
static void request_removals(struct hv_qmp *h, struct vmc_ledger_item *it, struct vmc_hv_cleaned *c,
			     size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct vmc_error e = VMC_ERROR_INIT;
		int r;

		if (it[i].kind != VMC_LEDGER_DEVICE || it[i].state != VMC_LEDGER_PENDING)
			continue;
		it[i].via = "device_del";
		r = vmc_qmp_command(h->q, "device_del", args_of("id", it[i].id), CMD_TIMEOUT_MS,
				    NULL, &e);
		if (r == 0 || (r == VMC_QMP_ECOMMAND &&
			       strstr(vmc_qmp_error_desc(h->q), "in the process of unplug")))
			it[i].state = VMC_LEDGER_DELETING;
		else if (r == VMC_QMP_ECOMMAND && strstr(vmc_qmp_error_desc(h->q), "not found"))
			vmc_ledger_settle(&it[i], &c[i], VMC_LEDGER_GONE,
					  "already gone (device_del: %s)",
					  vmc_qmp_error_desc(h->q));
		else
			vmc_ledger_settle(&it[i], &c[i], VMC_LEDGER_LEFT, "device_del: %s",
					  refusal(h, r, &e));
		vmc_error_clear(&e);
	}
}

/*
 * Wait for the DEVICE_DELETED of every device being removed, until
 * @deadline or @stop_fd. Returns false when @stop_fd cut the wait short.
 */
static bool await_removals(struct hv_qmp *h, struct vmc_ledger_item *it, struct vmc_hv_cleaned *c,
			   size_t n, uint64_t t0, uint64_t deadline, int stop_fd)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = vmc_qmp_fd(h->q), .events = POLLIN },
				       { .fd = stop_fd, .events = POLLIN } };
		bool waiting = false;
		uint64_t now = vmc_mono_ns();

		for (size_t i = 0; i < n; i++) {
			if (it[i].state != VMC_LEDGER_DELETING)
				continue;
			if (!vmc_ledger_find(&h->ledger, VMC_LEDGER_DEVICE, it[i].id))
				vmc_ledger_settle(&it[i], &c[i], VMC_LEDGER_GONE,
						  "device_del, DEVICE_DELETED after %llu ms",
						  (unsigned long long)((now - t0) / 1000000));
			else
				waiting = true;
		}
		if (!waiting)
			return true;
		if (now >= deadline)
			return true;
		if (poll(p, stop_fd >= 0 ? 2 : 1, (int)((deadline - now) / 1000000 + 1)) < 0 &&
		    errno != EINTR)
			return true;
		if (p[1].revents && stop_fd >= 0)
			return false;
		if (vmc_qmp_pump(h->q, NULL) < 0)
			return true; /* QEMU went away: what is left says so below */
	}
}

/* The backend object of @it, once its device is gone. */
static void remove_backend(struct hv_qmp *h, struct vmc_ledger_item *all, size_t n,
			   struct vmc_ledger_item *it, struct vmc_hv_cleaned *c)
{
	static const struct {
		const char *cmd, *key;
	} how[] = {
		[VMC_LEDGER_NETDEV] = { "netdev_del", "id" },
		[VMC_LEDGER_BLOCKDEV] = { "blockdev-del", "node-name" },
		[VMC_LEDGER_OBJECT] = { "object-del", "id" },
		[VMC_LEDGER_CHARDEV] = { "chardev-remove", "id" },
	};
	struct vmc_error e = VMC_ERROR_INIT;
	int r;

	for (size_t i = 0; *it->device && i < n; i++)
		if (all[i].kind == VMC_LEDGER_DEVICE && !strcmp(all[i].id, it->device) &&
		    all[i].state != VMC_LEDGER_GONE) {
			vmc_ledger_settle(it, c, VMC_LEDGER_LEFT, "its device %s is still there",
					  it->device);
			return;
		}
	/* A NIC's netdev goes as soon as its DEVICE_DELETED is seen (release_netdevs()). */
	if (!vmc_ledger_find(&h->ledger, it->kind, it->id)) {
		vmc_ledger_settle(it, c, VMC_LEDGER_GONE, "%s", how[it->kind].cmd);
		return;
	}
	r = vmc_qmp_command(h->q, how[it->kind].cmd, args_of(how[it->kind].key, it->id),
			    CMD_TIMEOUT_MS, NULL, &e);
	if (r == 0) {
		vmc_ledger_drop(&h->ledger, it->kind, it->id);
		vmc_ledger_settle(it, c, VMC_LEDGER_GONE, "%s", how[it->kind].cmd);
	} else {
		vmc_ledger_settle(it, c, VMC_LEDGER_LEFT, "%s: %s", how[it->kind].cmd,
				  refusal(h, r, &e));
	}
	vmc_error_clear(&e);
}

/* vmc_ledger_finish()'s rest: a backend object once its device is gone. */
static void rest(void *ctx, struct vmc_ledger_item *all, size_t n, struct vmc_ledger_item *it,
		 struct vmc_hv_cleaned *c)
{
	remove_backend(ctx, all, n, it, c);
}

static int qmp_cleanup(struct vmc_hv *hv, int stop_fd, unsigned ms, struct vmc_hv_cleaned **out,
		       size_t *n, bool *cut)
{
	struct hv_qmp *h = H(hv);
	struct vmc_ledger_item *it;
	struct vmc_hv_cleaned *c;
	uint64_t t0 = vmc_mono_ns();
	ssize_t total;
	int r;

	*out = NULL;
	*n = 0;
	*cut = false;
	qmp_added(hv);
	total = vmc_ledger_items(&h->ledger, 0, &it, &c);
	if (total <= 0)
		return (int)total;
	*cut = vmc_ledger_stop_now(stop_fd);
	if (!*cut) {
		request_removals(h, it, c, (size_t)total);
		*cut = !await_removals(h, it, c, (size_t)total, t0, t0 + ms * 1000000ull, stop_fd);
	}
	release_netdevs(h);
	r = vmc_ledger_finish(it, (size_t)total, c, (size_t)total, stop_fd, cut, ms,
			      "DEVICE_DELETED", "no DEVICE_DELETED within", rest, h);
	free(it);
	*out = c;
	*n = (size_t)total;
	return r;
}

static void qmp_free(struct vmc_hv *hv)
{
	struct hv_qmp *h = H(hv);

	if (!h)
		return;
	vmc_qemu_proc_stop(h->proc, h->q);
	vmc_qmp_close(h->q);
	for (size_t i = 0; i < h->n_nics; i++)
		free(h->nics[i].id);
	free(h->nics);
	vmc_ledger_clear(&h->ledger);
	free(h->agent_spec);
	free(h);
}

static const struct vmc_hv_ops hv_qmp_ops = {
	.name = "qmp",
	.reboot = qmp_reboot,
	.reset = qmp_reset,
	.stop = qmp_stop,
	.cont = qmp_cont,
	.wakeup = qmp_wakeup,
	.suspend_support = qmp_suspend_support,
	.powerdown = qmp_powerdown,
	.destroy = qmp_destroy,
	.nic_add = qmp_nic_add,
	.nic_del = device_del,
	.disk_add = qmp_disk_add,
	.disk_del = device_del,
	.disk_release = qmp_disk_release,
	.mem_add = qmp_mem_add,
	.mem_del = device_del,
	.mem_release = qmp_mem_release,
	.cpu_add = qmp_cpu_add,
	.cpu_del = device_del,
	.vfio_add = qmp_vfio_add,
	.vfio_del = device_del,
	.free_slots = qmp_free_slots,
	.mem_info = qmp_mem_info,
	.cpus = qmp_cpus,
	.dimm_info = qmp_dimm_info,
	.nic_path = qmp_nic_path,
	.device_present = qmp_device_present,
	.removal_views = qmp_removal_views,
	.wait_event = qmp_wait_event,
	.seen_event = qmp_seen_event,
	.flush_events = qmp_flush_events,
	.fd = qmp_fd,
	.pump = qmp_pump,
	.alive = qmp_alive,
	.ended = qmp_ended,
	.console_log = qmp_console_log,
	.transcript = qmp_transcript,
	.agent_spec = qmp_agent_spec,
	.process = qmp_process,
	.arch = qmp_arch,
	.added = qmp_added,
	.cleanup = qmp_cleanup,
	.free = qmp_free,
};

/*
 * The guest's architecture from QEMU's target ("arch" of query-target is
 * QEMU's own word, which vmc_arch_find() knows for the arches we drive).
 */
static int ask_arch(struct hv_qmp *h, struct vmc_error *err)
{
	json_object *ret = NULL;
	const char *name;
	int r;

	r = run(h, "query-target", NULL, &ret, err, "query-target");
	if (r < 0)
		return r;
	name = str_of(ret, "arch");
	h->arch = vmc_arch_find(name);
	if (!h->arch)
		/* QEMU's word, bounded: it names the target of a QEMU we did not start. */
		r = vmc_error_set(err, -ENOTSUP,
				  "query-target: QEMU's target is \"%.32s\": vmcheck drives "
				  "x86_64 and aarch64 guests",
				  name ? name : "(no arch)");
	json_object_put(ret);
	return r;
}

int vmc_hv_qmp_new(struct vmc_qmp *q, const char *agent_spec, struct vmc_qemu_proc *proc,
		   const struct vmc_arch *arch, struct vmc_hv **out, struct vmc_error *err)
{
	struct hv_qmp *h = calloc(1, sizeof(*h));
	int r;

	if (h && agent_spec && !(h->agent_spec = strdup(agent_spec))) {
		free(h);
		h = NULL;
	}
	if (!h) {
		vmc_qemu_proc_stop(proc, q);
		vmc_qmp_close(q);
		return vmc_error_set(err, -ENOMEM, "qmp: out of memory");
	}
	h->hv.ops = &hv_qmp_ops;
	h->q = q;
	h->proc = proc;
	h->arch = arch;
	vmc_qmp_on_event(q, on_event, h);
	if (!arch && (r = ask_arch(h, err)) < 0) {
		qmp_free(&h->hv);
		return r;
	}
	*out = &h->hv;
	return 0;
}

struct vmc_qemu_proc *vmc_hv_qmp_proc(struct vmc_hv *hv)
{
	return hv->ops == &hv_qmp_ops ? H(hv)->proc : NULL;
}

int vmc_qmp_attach(const char *qmp_path, const char *agent_spec, struct vmc_hv **out,
		   struct vmc_error *err)
{
	struct vmc_qmp *q;
	int r = vmc_qmp_connect(qmp_path, CMD_TIMEOUT_MS, &q, err);

	if (r < 0)
		return r;
	return vmc_hv_qmp_new(q, agent_spec, NULL, NULL, out, err);
}
