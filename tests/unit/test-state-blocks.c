/* SPDX-License-Identifier: MIT */
/* Block reader against the committed guest trees, scratch trees and this machine. */
#include <errno.h>
#include <string.h>

#include "harness.h"
#include "state.h"

static void run_on(struct fx_run *t, struct vmc_sysroot root)
{
	fx_run(t, root, vmc_state_read_blocks);
}

static void run_committed(struct fx_run *t, const char *name)
{
	struct vmc_sysroot root;

	fx_open_committed(name, &root);
	run_on(t, root);
}

static const Vmcheck__V1__Block *find(const struct fx_run *t, const char *name)
{
	for (size_t i = 0; i < t->st.n_blocks; i++)
		if (!strcmp(t->st.blocks[i]->name, name))
			return t->st.blocks[i];
	return NULL;
}

static void virtio_disk_has_pci_driver_serial_and_size(void)
{
	const Vmcheck__V1__Block *b;
	struct fx_run t;

	run_committed(&t, "virtio-guest");
	CU_ASSERT_EQUAL_FATAL(t.r, 0);
	b = find(&t, "vda");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL(b->major, 254);
	CU_ASSERT_EQUAL(b->minor, 0);
	CU_ASSERT_EQUAL(b->size_bytes, 1ULL << 30);
	CU_ASSERT_STRING_EQUAL(b->type, "disk");
	CU_ASSERT_STRING_EQUAL(b->pci_address, "0000:01:00.0");
	CU_ASSERT_STRING_EQUAL(b->driver, "virtio_blk");
	CU_ASSERT_STRING_EQUAL(b->serial, "disk-a");
	CU_ASSERT_FALSE(b->ro);
	CU_ASSERT_FALSE(b->rotational);
	CU_ASSERT_EQUAL(b->n_holders, 0);
	b = find(&t, "vdb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_STRING_EQUAL(b->pci_address, "0000:02:00.0");
	CU_ASSERT_STRING_EQUAL(b->serial, "disk-b");
	CU_ASSERT_TRUE(b->ro);
	CU_ASSERT_EQUAL_FATAL(b->n_holders, 1);
	CU_ASSERT_STRING_EQUAL(b->holders[0], "dm-0");
	fx_run_done(&t, true);
}

static void partition_follows_its_disk(void)
{
	static const char *const order[] = { "dm-0", "loop0", "vda", "vda1", "vdb" };
	const Vmcheck__V1__Block *disk, *part;
	struct fx_run t;

	run_committed(&t, "virtio-guest");
	CU_ASSERT_EQUAL_FATAL(t.r, 0);
	CU_ASSERT_EQUAL_FATAL(t.st.n_blocks, ARRAY_SIZE(order));
	for (size_t i = 0; i < ARRAY_SIZE(order); i++)
		CU_ASSERT_STRING_EQUAL(t.st.blocks[i]->name, order[i]);
	disk = t.st.blocks[2];
	part = t.st.blocks[3];
	CU_ASSERT_EQUAL_FATAL(disk->n_partitions, 1);
	CU_ASSERT_STRING_EQUAL(disk->partitions[0], "vda1");
	CU_ASSERT_STRING_EQUAL(part->type, "part");
	CU_ASSERT_STRING_EQUAL(part->parent, "vda");
	CU_ASSERT_EQUAL(part->major, 254);
	CU_ASSERT_EQUAL(part->minor, 1);
	CU_ASSERT_EQUAL(part->size_bytes, 2095104ULL * 512);
	CU_ASSERT_STRING_EQUAL(part->pci_address, "0000:01:00.0");
	CU_ASSERT_EQUAL(part->n_partitions, 0);
	/* Only the disk carries the serial that identifies it. */
	CU_ASSERT_STRING_EQUAL(part->serial, "");
	CU_ASSERT_STRING_EQUAL(find(&t, "vdb")->parent, "");
	fx_run_done(&t, true);
}

static void loop_and_dm_devices(void)
{
	const Vmcheck__V1__Block *b;
	struct fx_run t;

	run_committed(&t, "virtio-guest");
	CU_ASSERT_EQUAL_FATAL(t.r, 0);
	b = find(&t, "loop0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_STRING_EQUAL(b->type, "loop");
	CU_ASSERT_STRING_EQUAL(b->backing_file, "/var/tmp/disk.img");
	CU_ASSERT_EQUAL(b->major, 7);
	CU_ASSERT_EQUAL(b->size_bytes, 4ULL << 20);
	CU_ASSERT_TRUE(b->rotational);
	CU_ASSERT_STRING_EQUAL(b->pci_address, "");
	CU_ASSERT_STRING_EQUAL(b->driver, "");
	b = find(&t, "dm-0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_STRING_EQUAL(b->type, "dm");
	CU_ASSERT_STRING_EQUAL(b->backing_file, "");
	fx_run_done(&t, true);
}

#define SCSI "sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/"

static void rom_scsi_md_and_flags(void)
{
	const Vmcheck__V1__Block *b;
	struct fx_run t;
	struct fx f;

	fx_init(&f);
	fx_write(&f, SCSI "0:0:0:0/block/sr0/dev", "11:0\n");
	fx_write(&f, SCSI "0:0:0:0/block/sr0/size", "2048\n");
	fx_write(&f, SCSI "0:0:0:0/block/sr0/ro", "1\n");
	fx_write(&f, SCSI "0:0:0:0/block/sr0/removable", "1\n");
	fx_write(&f, SCSI "0:0:0:0/model", "QEMU DVD-ROM    \n");
	fx_symlink(&f, "../../../0:0:0:0", SCSI "0:0:0:0/block/sr0/device");
	fx_symlink(&f, "../../../../../../../bus/scsi/drivers/sr", SCSI "0:0:0:0/driver");
	fx_symlink(&f,
		   "../devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sr0",
		   "sys/block/sr0");
	/* No NAME/serial: the serial is the device's. */
	fx_write(&f, "sys/devices/virtual/block/sda/dev", "8:0\n");
	fx_write(&f, "sys/devices/virtual/block/sda/size", "8\n");
	fx_write(&f, "sys/devices/virtual/block/sda/device/serial", "S1 \n");
	fx_symlink(&f, "../devices/virtual/block/sda", "sys/block/sda");
	fx_write(&f, "sys/block/md0/dev", "9:0\n");
	fx_write(&f, "sys/block/md0/size", "0\n");
	fx_write(&f, "sys/block/md0/md/level", "raid1\n");

	run_on(&t, f.root);
	CU_ASSERT_EQUAL_FATAL(t.r, 0);
	CU_ASSERT_EQUAL_FATAL(t.st.n_blocks, 3);
	b = find(&t, "sr0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_STRING_EQUAL(b->type, "rom");
	CU_ASSERT_TRUE(b->ro);
	CU_ASSERT_TRUE(b->removable);
	CU_ASSERT_EQUAL(b->size_bytes, 2048ULL * 512);
	CU_ASSERT_STRING_EQUAL(b->model, "QEMU DVD-ROM");
	CU_ASSERT_STRING_EQUAL(b->driver, "sr");
	CU_ASSERT_STRING_EQUAL(b->pci_address, "0000:00:1f.2");
	b = find(&t, "sda");
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_STRING_EQUAL(b->serial, "S1");
	CU_ASSERT_FALSE(b->ro);
	CU_ASSERT_FALSE(b->removable);
	CU_ASSERT_STRING_EQUAL(find(&t, "md0")->type, "md");
	fx_run_done(&t, false);
	fx_cleanup(&f);
}

static void vanishing_disk_is_skipped(void)
{
	struct fx_run t;

	run_committed(&t, "vanishing-disk");
	/* vdb lost its size, vdc its whole directory, vda2 its dev and size. */
	CU_ASSERT_EQUAL_FATAL(t.r, 0);
	CU_ASSERT_EQUAL_FATAL(t.st.n_blocks, 2);
	CU_ASSERT_STRING_EQUAL(t.st.blocks[0]->name, "vda");
	CU_ASSERT_STRING_EQUAL(t.st.blocks[1]->name, "vda1");
	CU_ASSERT_EQUAL_FATAL(t.st.blocks[0]->n_partitions, 1);
	CU_ASSERT_STRING_EQUAL(t.st.blocks[0]->partitions[0], "vda1");
	fx_run_done(&t, true);
}

static void malformed_dev_fails_and_missing_sys_block_is_enoent(void)
{
	struct fx_run t;
	struct fx f;

	fx_init(&f);
	run_on(&t, f.root);
	CU_ASSERT_EQUAL(t.r, -ENOENT);
	CU_ASSERT_EQUAL(t.st.n_blocks, 0);
	fx_run_done(&t, false);

	fx_write(&f, "sys/block/vda/dev", "254-0\n");
	fx_write(&f, "sys/block/vda/size", "8\n");
	run_on(&t, f.root);
	CU_ASSERT_EQUAL(t.r, -EINVAL);
	CU_ASSERT_EQUAL(t.st.n_blocks, 0);
	fx_run_done(&t, false);
	fx_cleanup(&f);
}

static void live_machine_invariants(void)
{
	struct vmc_sysroot root;
	struct fx_run t;

	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&root, "/"), 0);
	run_on(&t, root);
	CU_ASSERT_EQUAL_FATAL(t.r, 0);
	CU_ASSERT_TRUE(t.st.n_blocks > 0);
	for (size_t i = 0; i < t.st.n_blocks; i++) {
		const Vmcheck__V1__Block *b = t.st.blocks[i];

		CU_ASSERT_NOT_EQUAL(b->major, 0);
		CU_ASSERT_EQUAL(b->size_bytes % 512, 0);
		CU_ASSERT_TRUE(b->name[0] != '\0');
		/* A partition names a disk that is listed too. */
		if (!strcmp(b->type, "part"))
			CU_ASSERT_PTR_NOT_NULL(find(&t, b->parent));
	}
	fx_run_done(&t, true);
}

VMC_SUITE(state_blocks, NULL, NULL, VMC_TEST(virtio_disk_has_pci_driver_serial_and_size),
	  VMC_TEST(partition_follows_its_disk), VMC_TEST(loop_and_dm_devices),
	  VMC_TEST(rom_scsi_md_and_flags), VMC_TEST(vanishing_disk_is_skipped),
	  VMC_TEST(malformed_dev_fails_and_missing_sys_block_is_enoent),
	  VMC_TEST(live_machine_invariants))
