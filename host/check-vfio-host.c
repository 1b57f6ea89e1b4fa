/* SPDX-License-Identifier: MIT */
/* The host's view of a PCI function to hand to a guest (see check-vfio-host.h). */
#include "check-vfio-host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parse.h"
#include "sysroot.h"

#define DEVICES "sys/bus/pci/devices"

/* A driver's name, "" when the function has none bound (-ENOENT). */
static int driver_of(int rootfd, const char *addr, char out[VMC_VFIO_NAME_LEN])
{
	int r = vmc_sysroot_link_basef(rootfd, out, VMC_VFIO_NAME_LEN, DEVICES "/%s/driver", addr);

	if (r == -ENOENT)
		out[0] = '\0';
	return r == -ENOENT ? 0 : r;
}

static int read_id(int rootfd, const char *addr, const char *attr, uint32_t *out)
{
	uint64_t v;
	int r = vmc_sysroot_read_u64f(rootfd, &v, 16, DEVICES "/%s/%s", addr, attr);

	if (r < 0)
		return r;
	if (v > 0xffff)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* The IOMMU group's other members and their drivers. */
static int read_peers(int rootfd, struct vmc_vfio_host *h)
{
	char **names = NULL;
	int n = vmc_sysroot_list_dirf(rootfd, &names, "sys/kernel/iommu_groups/%d/devices",
				      h->group);
	int r = 0;

	if (n < 0)
		return n;
	h->peers = calloc(n ? (size_t)n : 1, sizeof(*h->peers));
	if (!h->peers)
		r = -ENOMEM;
	for (int i = 0; !r && i < n; i++) {
		struct vmc_vfio_peer *p = &h->peers[h->n_peers];

		if (!strcmp(names[i], h->addr) || !vmc_parse_is_pci_address(names[i]))
			continue;
		snprintf(p->addr, sizeof(p->addr), "%s", names[i]);
		r = driver_of(rootfd, names[i], p->driver);
		/* A member gone meanwhile no longer shares the group. */
		if (r == 0)
			h->n_peers++;
		else if (r == -ENOENT)
			r = 0;
	}
	vmc_sysroot_names_free(names, n);
	return r;
}

static int read_group(int rootfd, struct vmc_vfio_host *h)
{
	char name[VMC_VFIO_NAME_LEN], path[64];
	uint64_t g;
	int r = vmc_sysroot_link_basef(rootfd, name, sizeof(name), DEVICES "/%s/iommu_group",
				       h->addr);

	if (r == -ENOENT)
		return 0; /* no IOMMU, or it is off: no group */
	if (r < 0)
		return r;
	if (vmc_parse_u64(name, 10, &g) < 0 || g > INT32_MAX)
		return -EINVAL;
	h->group = (int)g;
	snprintf(path, sizeof(path), "dev/vfio/%d", h->group);
	h->group_dev = faccessat(rootfd, path, F_OK, 0) == 0;
	return read_peers(rootfd, h);
}

int vmc_vfio_host_read(int rootfd, const char *addr, struct vmc_vfio_host *out)
{
	struct vmc_vfio_host h = { .group = -1 };
	int r;

	if (!vmc_parse_is_pci_address(addr))
		return -EINVAL;
	snprintf(h.addr, sizeof(h.addr), "%s", addr);
	r = read_id(rootfd, addr, "vendor", &h.vendor);
	if (r == 0)
		r = read_id(rootfd, addr, "device", &h.device);
	if (r == 0)
		r = driver_of(rootfd, addr, h.driver);
	if (r == 0) {
		r = vmc_sysroot_link_basef(rootfd, h.physfn, sizeof(h.physfn), DEVICES "/%s/physfn",
					   addr);
		if (r == 0 && !vmc_parse_is_pci_address(h.physfn))
			r = -EINVAL;
		else if (r == 0)
			r = driver_of(rootfd, h.physfn, h.pf_driver);
		else if (r == -ENOENT)
			r = 0;
	}
	if (r == 0)
		r = read_group(rootfd, &h);
	if (r < 0) {
		vmc_vfio_host_free(&h);
		return r;
	}
	*out = h;
	return 0;
}

void vmc_vfio_host_free(struct vmc_vfio_host *h)
{
	free(h->peers);
	h->peers = NULL;
	h->n_peers = 0;
}

int vmc_vfio_host_vfs(int rootfd, char ***addrs)
{
	char **names = NULL, target[64];
	int n = vmc_sysroot_list_dirf(rootfd, &names, DEVICES), k = 0;

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		if (vmc_sysroot_link_basef(rootfd, target, sizeof(target), DEVICES "/%s/physfn",
					   names[i]) == 0)
			names[k++] = names[i];
		else
			free(names[i]);
	}
	*addrs = names;
	return k;
}

/* What the kernel lets share a group with a device in use by VFIO (vfio_dev_driver_allowed). */
static bool peer_harmless(const char *driver)
{
	return !*driver || !strcmp(driver, "vfio-pci") || !strcmp(driver, "pci-stub") ||
	       !strcmp(driver, "pcieport");
}

int vmc_vfio_host_usable(const struct vmc_vfio_host *h, bool rebinds, bool *managed,
			 struct vmc_error *err)
{
	bool bound = !strcmp(h->driver, "vfio-pci");

	if (!*h->physfn)
		return vmc_error_set(err, -ENODEV, "%s is not an SR-IOV VF (no physfn link)",
				     h->addr);
	if (h->group < 0)
		return vmc_error_set(err, -ENODEV,
				     "%s has no IOMMU group (no iommu_group link): the host's "
				     "IOMMU is off (intel_iommu=on / amd_iommu=on)",
				     h->addr);
	for (size_t i = 0; i < h->n_peers; i++)
		if (!peer_harmless(h->peers[i].driver))
			return vmc_error_set(err, -EBUSY,
					     "IOMMU group %d of %s is not viable: %s shares it, "
					     "bound to %s",
					     h->group, h->addr, h->peers[i].addr,
					     h->peers[i].driver);
	if (!bound && !rebinds)
		return vmc_error_set(err, -EBUSY,
				     "%s is bound to %s, not vfio-pci: bind it first (driverctl "
				     "set-override %s vfio-pci), or use --libvirt, which rebinds it",
				     h->addr, *h->driver ? h->driver : "no driver", h->addr);
	/* vfio-pci makes the node when it binds the group's first device. */
	if (bound && !h->group_dev)
		return vmc_error_set(err, -ENOENT,
				     "%s is bound to vfio-pci but /dev/vfio/%d does not exist",
				     h->addr, h->group);
	*managed = !bound;
	return 0;
}

const char *vmc_vfio_vf_driver(const char *pf_driver)
{
	/* The VF drivers of the usual SR-IOV NICs' PF drivers (their in-tree pairs). */
	static const char *const pairs[][2] = {
		{ "ice", "iavf" },
		{ "i40e", "iavf" },
		{ "ixgbe", "ixgbevf" },
		{ "igb", "igbvf" },
		{ "mlx5_core", "mlx5_core" },
		{ "mlx4_core", "mlx4_core" },
		{ "bnxt_en", "bnxt_en" },
		{ "qede", "qede" },
		{ "cxgb4", "cxgb4vf" },
		{ "sfc", "sfc" },
	};

	for (size_t i = 0; pf_driver && i < ARRAY_SIZE(pairs); i++)
		if (!strcmp(pf_driver, pairs[i][0]))
			return pairs[i][1];
	return NULL;
}
