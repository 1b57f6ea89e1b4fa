/* SPDX-License-Identifier: MIT */
/*
 * PCI functions from sys/bus/pci/devices and hotplug slots from
 * sys/bus/pci/slots: what a hot-added NIC or disk is matched by (its
 * address, its slot, the root port above it). A virtio function's PCI
 * driver (virtio-pci) is only the transport: the device it carries sits on
 * the virtio bus, where the driver that makes it a NIC or a disk binds, so
 * that device, its type and its driver are reported too. A function (or its
 * virtio device) removed while we read it is left out.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "state.h"

#define PCI_DEVICES "sys/bus/pci/devices"
#define PCI_SLOTS "sys/bus/pci/slots"
#define VIRTIO_DEVICES "sys/bus/virtio/devices"

static bool vanished(int r)
{
	return r == -ENOENT || r == -ENODEV;
}

/* A hex ID file ("0x1af4") of the function's directory @dfd, no wider than @max. */
static int read_id(int dfd, const char *file, uint64_t max, uint32_t *out)
{
	uint64_t v;
	int r = vmc_sysroot_read_u64f(dfd, &v, 16, "%s", file);

	if (r < 0)
		return r;
	if (v > max)
		return -ERANGE;
	*out = (uint32_t)v;
	return 0;
}

/* Subsystem IDs are absent on devices without them: left 0. */
static int read_opt_id(int dfd, const char *file, uint32_t *out)
{
	int r = read_id(dfd, file, 0xffff, out);

	return vanished(r) ? 0 : r;
}

/*
 * A slot status file, -1 when unknown. The hotplug driver creates only the
 * files its controller supports, and a read can fail with whatever the
 * controller answers (pciehp: -ENODEV, -EIO): either way the state is unknown.
 */
static int32_t read_slot_status(int fd, const char *slot, const char *file)
{
	int64_t v;

	if (vmc_sysroot_read_s64f(fd, &v, 10, PCI_SLOTS "/%s/%s", slot, file) < 0 ||
	    v < INT32_MIN || v > INT32_MAX)
		return -1;
	return (int32_t)v;
}

static int read_slots(int fd, struct vmc_arena *a, Vmcheck__V1__Pci *pci)
{
	struct vmc_ptrvec v = { 0 };
	char **names, addr[64];
	int n, r = 0;

	n = vmc_sysroot_list_dirf(fd, &names, PCI_SLOTS);
	/* No hotplug driver loaded: no slots directory. */
	if (n == -ENOENT)
		return 0;
	if (n < 0)
		return n;
	for (int i = 0; i < n && r == 0; i++) {
		Vmcheck__V1__PciSlot *s;

		r = vmc_sysroot_read_strf(fd, addr, sizeof(addr), PCI_SLOTS "/%s/address",
					  names[i]);
		if (vanished(r)) {
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		s = vmc_arena_alloc(a, sizeof(*s));
		if (!s) {
			r = -ENOMEM;
			break;
		}
		vmcheck__v1__pci_slot__init(s);
		s->name = vmc_arena_strdup(a, names[i]);
		s->address = vmc_arena_strdup(a, addr);
		if (!s->name || !s->address) {
			r = -ENOMEM;
			break;
		}
		s->power = read_slot_status(fd, names[i], "power");
		s->presence = read_slot_status(fd, names[i], "adapter");
		s->attention = read_slot_status(fd, names[i], "attention");
		s->latch = read_slot_status(fd, names[i], "latch");
		r = vmc_ptrvec_push(a, &v, s);
	}
	vmc_sysroot_names_free(names, n);
	if (r < 0)
		return r;
	pci->slots = (Vmcheck__V1__PciSlot **)v.items;
	pci->n_slots = v.n;
	return 0;
}

/* The slot whose "dddd:bb:dd" address holds function @addr, or "". */
static char *slot_of(const Vmcheck__V1__Pci *pci, const char *addr)
{
	for (size_t i = 0; i < pci->n_slots; i++) {
		const char *sa = pci->slots[i]->address;

		if (strlen(sa) == 10 && !strncmp(sa, addr, 10))
			return pci->slots[i]->name;
	}
	return (char *)"";
}

/* "virtioN" with N all digits. */
static bool is_virtio_name(const char *name)
{
	uint64_t v;

	return !strncmp(name, "virtio", 6) && name[6] >= '0' && name[6] <= '9' &&
	       vmc_parse_u64(name + 6, 10, &v) == 0;
}

/* The name of the virtioN directory in the function's directory @dfd, or "". */
static int find_virtio(int dfd, char name[32])
{
	struct vmc_sysroot_dir d;
	const char *n;
	int r;

	name[0] = '\0';
	r = vmc_sysroot_dir_open(&d, dfd, ".");
	if (r < 0)
		return r;
	while ((r = vmc_sysroot_dir_next(&d, &n)) > 0) {
		if (is_virtio_name(n) && strlen(n) < 32) {
			strcpy(name, n);
			break;
		}
	}
	vmc_sysroot_dir_close(&d);
	return r < 0 ? r : 0;
}

/*
 * The virtio device a virtio-pci function carries. virtio-pci binds before
 * it registers the device, and unregisters it before it unbinds: a function
 * without one is being probed or removed, and keeps empty virtio fields.
 * Returns -ENOENT/-ENODEV if the device went away while we read it.
 */
static int read_virtio(int fd, int dfd, struct vmc_arena *a, Vmcheck__V1__PciFunction *f)
{
	char name[32], drv[256] = "";
	uint64_t type;
	int r;

	r = find_virtio(dfd, name);
	if (r < 0 || !name[0])
		return r;
	r = vmc_sysroot_read_u64f(fd, &type, 16, VIRTIO_DEVICES "/%s/device", name);
	if (r < 0)
		return r;
	if (type > UINT32_MAX)
		return -ERANGE;
	/*
	 * No driver link: nothing bound (module not loaded, or unbound). Had
	 * the device gone just now, the next snapshot leaves it out.
	 */
	r = vmc_sysroot_link_basef(fd, drv, sizeof(drv), VIRTIO_DEVICES "/%s/driver", name);
	if (r < 0 && r != -ENOENT)
		return r;
	f->virtio_device = vmc_arena_strdup(a, name);
	f->virtio_driver = vmc_arena_strdup(a, drv);
	if (!f->virtio_device || !f->virtio_driver)
		return -ENOMEM;
	f->virtio_type = (uint32_t)type;
	return 0;
}

/* One function; -ENOENT/-ENODEV if it vanished. */
static int read_function(int fd, struct vmc_arena *a, const Vmcheck__V1__Pci *pci, const char *addr,
			 Vmcheck__V1__PciFunction **out)
{
	Vmcheck__V1__PciFunction *f = vmc_arena_alloc(a, sizeof(*f));
	char path[PATH_MAX], self[13], parent[13] = "", drv[256] = "";
	_cleanup_close_ int dfd = -1;
	int r;

	if (!f)
		return -ENOMEM;
	vmcheck__v1__pci_function__init(f);
	/* Opened once: a path from the root walks the bus link for every file. */
	if ((size_t)snprintf(path, sizeof(path), PCI_DEVICES "/%s", addr) >= sizeof(path))
		return -ENAMETOOLONG;
	dfd = openat(fd, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	r = read_id(dfd, "vendor", 0xffff, &f->vendor);
	if (r == 0)
		r = read_id(dfd, "device", 0xffff, &f->device);
	if (r == 0)
		r = read_id(dfd, "class", 0xffffff, &f->class_code);
	if (r < 0)
		return r;
	r = read_opt_id(dfd, "subsystem_vendor", &f->subsystem_vendor);
	if (r == 0)
		r = read_opt_id(dfd, "subsystem_device", &f->subsystem_device);
	if (r < 0)
		return r;

	/* The upstream bridge is the PCI component before ours in the device path. */
	r = vmc_sysroot_resolve_linkf(fd, path, sizeof(path), PCI_DEVICES "/%s", addr);
	if (r == 0)
		(void)vmc_parse_pci_of_path(path, self, parent); /* none: parent stays "" */
	else if (r != -EINVAL) /* EINVAL: not a link, no path to learn from */
		return r;
	r = vmc_sysroot_link_basef(dfd, drv, sizeof(drv), "driver");
	if (r < 0 && !vanished(r))
		return r;
	f->address = vmc_arena_strdup(a, addr);
	f->parent = vmc_arena_strdup(a, parent);
	f->driver = vmc_arena_strdup(a, drv);
	if (!f->address || !f->parent || !f->driver)
		return -ENOMEM;
	f->slot = slot_of(pci, addr);
	if (!strcmp(drv, "virtio-pci")) {
		r = read_virtio(fd, dfd, a, f);
		if (r < 0)
			return r;
	}
	*out = f;
	return 0;
}

/* Fixed-width lowercase hex: byte order is address order ("sort -V" is not). */
static int addr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * vmc_state_read_pci - every PCI function and every hotplug slot
 *
 * Fills st->pci from @a: functions sorted by address, slots naturally by
 * name; a virtio-pci function also with its virtio device, type and driver
 * ("" when none is bound). Directory entries that are not "dddd:bb:dd.f"
 * addresses are skipped; a function or virtio device that vanishes while
 * read is left out.
 * Returns 0, -ENOENT without sys/bus/pci/devices, another -errno if a
 * function cannot be parsed; @st is untouched on failure.
 */
int vmc_state_read_pci(const struct vmc_state_opts *o, struct vmc_arena *a, Vmcheck__V1__State *st)
{
	Vmcheck__V1__Pci *pci = vmc_arena_alloc(a, sizeof(*pci));
	struct vmc_ptrvec v = { 0 };
	char **names;
	int n, r;

	if (!pci)
		return -ENOMEM;
	vmcheck__v1__pci__init(pci);
	n = vmc_sysroot_list_dirf(o->root.fd, &names, PCI_DEVICES);
	if (n < 0)
		return n;
	if (n > 1)
		qsort(names, (size_t)n, sizeof(*names), addr_cmp);
	r = read_slots(o->root.fd, a, pci);
	for (int i = 0; i < n && r == 0; i++) {
		Vmcheck__V1__PciFunction *f;

		if (!vmc_parse_is_pci_address(names[i]))
			continue;
		r = read_function(o->root.fd, a, pci, names[i], &f);
		if (r == 0)
			r = vmc_ptrvec_push(a, &v, f);
		else if (vanished(r))
			r = 0;
	}
	vmc_sysroot_names_free(names, n);
	if (r < 0)
		return r;
	pci->functions = (Vmcheck__V1__PciFunction **)v.items;
	pci->n_functions = v.n;
	st->pci = pci;
	return 0;
}
