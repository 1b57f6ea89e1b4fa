/* SPDX-License-Identifier: MIT */
/* libvirt domain/device XML: generation with escaping, live XML read with XPath. */
#include "hv-libvirt-xml.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "parse.h"
#include "qemu.h"

/* ---- generation */

/* @s with &, <, >, ', " as entities (every value goes into '...' attributes or text). */
static void put_esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '\'':
			fputs("&apos;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

/* Close memstream @f; *@out holds its text. -ENOMEM when writing failed. */
static int finish(FILE *f, char **buf, char **out)
{
	int bad = ferror(f);

	if (fclose(f) || bad) {
		free(*buf);
		*buf = NULL;
		return -ENOMEM;
	}
	*out = *buf;
	return 0;
}

static void put_alias(FILE *f, const char *id)
{
	fputs("<alias name='" VMC_LIBVIRT_XML_ALIAS_PREFIX, f);
	put_esc(f, id);
	fputs("'/>", f);
}

static void put_port_address(FILE *f, unsigned bus)
{
	fprintf(f, "<address type='pci' domain='0x0000' bus='0x%02x' slot='0x00' function='0x0'/>",
		bus);
}

/* <os> of direct kernel boot: q35 on x86_64; UEFI on aarch64, whose virt machine boots no other way here. */
static void put_os(FILE *f, const struct vmc_libvirt_xml_domain *d, bool arm)
{
	if (!arm) {
		fputs("  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n", f);
	} else {
		/*
		 * Plain firmware='efi' makes libvirt 9.0 pick the secure-boot
		 * pair with Microsoft's keys enrolled, which refuses the kernel
		 * (doc/facts.md, "aarch64 through libvirt").
		 */
		fputs("  <os firmware='efi'>\n    <type arch='aarch64' machine='virt'>hvm</type>\n"
		      "    <firmware><feature enabled='no' name='secure-boot'/>"
		      "<feature enabled='no' name='enrolled-keys'/></firmware>\n",
		      f);
		if (d->nvram) {
			fputs("    <nvram>", f);
			put_esc(f, d->nvram);
			fputs("</nvram>\n", f);
		}
	}
	fputs("    <kernel>", f);
	put_esc(f, d->kernel);
	fputs("</kernel>\n    <initrd>", f);
	put_esc(f, d->initrd);
	fputs("</initrd>\n    <cmdline>", f);
	put_esc(f, d->append ? d->append : "");
	fputs("</cmdline>\n  </os>\n", f);
	fputs(arm ? "  <features><acpi/><gic version='3'/></features>\n"
		  : "  <features><acpi/></features>\n",
	      f);
}

/* The crash disk behind its own root port @bus (the agent's port is the one before). */
static void put_crash_disk(FILE *f, const struct vmc_libvirt_xml_domain *d, unsigned bus)
{
	fprintf(f,
		"    <controller type='pci' index='%u' model='pcie-root-port'>"
		"<alias name='" VMC_LIBVIRT_XML_ALIAS_PREFIX "rp-crash'/></controller>\n"
		"    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='",
		bus);
	put_esc(f, d->crash_disk);
	/* Targets only order libvirt's list; the guest names disks by probe order. */
	fprintf(f, "'/><target dev='%s' bus='virtio'/><serial>" VMC_QEMU_CRASH_SERIAL "</serial>",
		d->root_disk ? "vdb" : "vda");
	put_alias(f, VMC_LIBVIRT_XML_CRASH_DISK);
	put_port_address(f, bus);
	fputs("</disk>\n", f);
}

/*
 * --image: the root disk on pcie.0 at an explicit slot, as the QMP
 * launcher puts it: left to libvirt it would take a hotplug port, and
 * behind a port it would not be the guest's vda.
 */
static void put_root_disk(FILE *f, const struct vmc_libvirt_xml_domain *d)
{
	fputs("    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='",
	      f);
	put_esc(f, d->root_disk);
	fputs("'/><target dev='vda' bus='virtio'/><serial>" VMC_QEMU_ROOT_SERIAL "</serial>", f);
	put_alias(f, VMC_LIBVIRT_XML_ROOT_DISK);
	fprintf(f,
		"<address type='pci' domain='0x0000' bus='0x00' slot='0x%02x' function='0x0'/>"
		"</disk>\n",
		VMC_LIBVIRT_XML_ROOT_SLOT);
}

int vmc_libvirt_xml_domain(const struct vmc_libvirt_xml_domain *d, char **out,
			   struct vmc_error *err)
{
	const struct vmc_arch *arch = d->arch ? d->arch : &vmc_arch_x86_64;
	bool arm = arch == &vmc_arch_aarch64;
	char *buf = NULL;
	size_t len;
	FILE *f;
	unsigned agent_bus = d->ports + 1;

	if (!d->cpus || d->cpus > d->maxcpus || d->mem_mb > d->maxmem_mb || !d->mem_mb)
		return vmc_error_set(err, -EINVAL,
				     "domain %s: want 0 < cpus %u <= maxcpus %u and 0 < mem %u MiB "
				     "<= maxmem %u MiB",
				     d->name, d->cpus, d->maxcpus, d->mem_mb, d->maxmem_mb);
	if (!arm && arch != &vmc_arch_x86_64)
		return vmc_error_set(err, -EINVAL, "domain %s: no domain XML for a %s guest",
				     d->name, arch->name);
	f = open_memstream(&buf, &len);
	if (!f)
		return vmc_error_set(err, -ENOMEM, "domain XML: out of memory");
	fprintf(f, "<domain type='%s'>\n  <name>", d->type);
	put_esc(f, d->name);
	fprintf(f, "</name>\n  <memory unit='MiB'>%u</memory>\n", d->mem_mb);
	fprintf(f, "  <maxMemory slots='%u' unit='MiB'>%u</maxMemory>\n", d->slots, d->maxmem_mb);
	fprintf(f, "  <vcpu current='%u'>%u</vcpu>\n  <vcpus>\n", d->cpus, d->maxcpus);
	/* Boot vCPU 0 stays; the others can come and go (virDomainSetVcpu). */
	for (unsigned i = 0; i < d->maxcpus; i++)
		fprintf(f, "    <vcpu id='%u' enabled='%s' hotpluggable='%s' order='%u'/>\n", i,
			i < d->cpus ? "yes" : "no", i ? "yes" : "no", i + 1);
	fputs("  </vcpus>\n", f);
	put_os(f, d, arm);
	/*
	 * QEMU's KVM on an arm host takes no CPU model but the host's own
	 * (QA's Ampere host): cortex-a57 is for TCG. Not measured here, where
	 * there is no arm host.
	 */
	if (arm && !strcmp(d->type, "kvm"))
		fputs("  <cpu mode='host-passthrough' check='none'>\n", f);
	else
		fprintf(f,
			"  <cpu mode='custom' match='exact' check='none'>\n"
			"    <model fallback='forbid'>%s</model>\n",
			arm ? "cortex-a57" : "qemu64");
	fprintf(f,
		"    <topology sockets='1' dies='1' cores='%u' threads='1'/>\n"
		"    <numa><cell id='0' cpus='0-%u' memory='%u' unit='MiB'/></numa>\n"
		"  </cpu>\n",
		d->maxcpus, d->maxcpus - 1, d->mem_mb);
	/* libvirt 9.0 refuses <pm> on aarch64: "setting ACPI S3 not supported". */
	if (!arm)
		fputs("  <pm><suspend-to-mem enabled='yes'/><suspend-to-disk enabled='no'/></pm>\n",
		      f);
	fputs("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n"
	      "  <on_crash>destroy</on_crash>\n"
	      "  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>\n"
	      "  <devices>\n",
	      f);
	if (d->emulator) {
		fputs("    <emulator>", f);
		put_esc(f, d->emulator);
		fputs("</emulator>\n", f);
	}
	fputs("    <controller type='pci' index='0' model='pcie-root'/>\n", f);
	for (unsigned i = 1; i <= d->ports; i++)
		fprintf(f,
			"    <controller type='pci' index='%u' model='pcie-root-port'>"
			"<alias name='" VMC_LIBVIRT_XML_ALIAS_PREFIX "pciroot%u'/></controller>\n",
			i, i);
	/* The agent's port is explicit: left to libvirt it could take a hotplug port. */
	fprintf(f,
		"    <controller type='pci' index='%u' model='pcie-root-port'>"
		"<alias name='" VMC_LIBVIRT_XML_ALIAS_PREFIX "rp-agent'/></controller>\n"
		"    <controller type='virtio-serial' index='0'>",
		agent_bus);
	put_port_address(f, agent_bus);
	fputs("</controller>\n    <controller type='usb' model='none'/>\n"
	      "    <memballoon model='none'/>\n",
	      f);
	/*
	 * pvpanic, as the QMP launcher has: a panic without a crash kernel is
	 * libvirt's CRASHED event (and <on_crash> ends the domain), not a
	 * silent reboot (panic=-1). libvirt 9.0 has no panic device for
	 * aarch64 (doc/facts.md, "aarch64 through libvirt").
	 */
	if (!arm)
		fputs("    <panic model='isa'/>\n", f);
	if (d->root_disk)
		put_root_disk(f, d);
	if (d->crash_disk)
		put_crash_disk(f, d, agent_bus + 1);
	if (d->console_log) {
		fputs("    <serial type='file'><source path='", f);
		put_esc(f, d->console_log);
		fputs("'/><target port='0'/></serial>\n", f);
	} else {
		fputs("    <serial type='pty'><target port='0'/></serial>\n", f);
	}
	/* qemu-guest-agent too: libvirt's PM suspend and agent shutdown need it. */
	fputs("    <channel type='unix'><source mode='bind'/>"
	      "<target type='virtio' name='" VMC_LIBVIRT_XML_AGENT_CHANNEL "'/></channel>\n"
	      "    <channel type='unix'><source mode='bind'/>"
	      "<target type='virtio' name='" VMC_LIBVIRT_XML_QGA_CHANNEL "'/></channel>\n"
	      "  </devices>\n</domain>\n",
	      f);
	if (finish(f, &buf, out) < 0)
		return vmc_error_set(err, -ENOMEM, "domain XML: out of memory");
	return 0;
}

int vmc_libvirt_xml_nic(const struct vmc_hv_nic *nic, unsigned bus, const char *network, char **out)
{
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	if (network) {
		fputs("<interface type='network'><source network='", f);
		put_esc(f, network);
		fputs("'/>", f);
	} else {
		fputs("<interface type='user'>", f);
	}
	fputs("<mac address='", f);
	put_esc(f, nic->mac);
	fputs("'/><model type='virtio'/>", f);
	put_alias(f, nic->id);
	put_port_address(f, bus);
	fputs("</interface>", f);
	return finish(f, &buf, out);
}

int vmc_libvirt_xml_disk(const struct vmc_hv_disk *d, unsigned bus, const char *dev, char **out)
{
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	fputs("<disk type='file' device='disk'><driver name='qemu' type='", f);
	put_esc(f, d->format);
	fputs("'/><source file='", f);
	put_esc(f, d->path);
	fputs("'/><target dev='", f);
	put_esc(f, dev);
	fputs("' bus='virtio'/><serial>", f);
	put_esc(f, d->serial);
	fputs("</serial>", f);
	put_alias(f, d->id);
	put_port_address(f, bus);
	fputs("</disk>", f);
	return finish(f, &buf, out);
}

int vmc_libvirt_xml_pool(const char *name, const char *path, char **out)
{
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	fputs("<pool type='dir'><name>", f);
	put_esc(f, name);
	fputs("</name><target><path>", f);
	put_esc(f, path);
	fputs("</path><permissions><mode>0711</mode></permissions></target></pool>", f);
	return finish(f, &buf, out);
}

/* A volume @name of @bytes in @format, over @backing in @backing_format unless NULL. */
static int volume(const char *name, uint64_t bytes, const char *format, const char *backing,
		  const char *backing_format, char **out)
{
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	fputs("<volume><name>", f);
	put_esc(f, name);
	fprintf(f, "</name><capacity unit='bytes'>%" PRIu64 "</capacity><target><format type='",
		bytes);
	put_esc(f, format);
	fputs("'/></target>", f);
	if (backing) {
		fputs("<backingStore><path>", f);
		put_esc(f, backing);
		fputs("</path><format type='", f);
		put_esc(f, backing_format);
		fputs("'/></backingStore>", f);
	}
	fputs("</volume>", f);
	return finish(f, &buf, out);
}

int vmc_libvirt_xml_volume(const char *name, uint64_t bytes, const char *format, char **out)
{
	return volume(name, bytes, format, NULL, NULL, out);
}

int vmc_libvirt_xml_overlay(const char *name, uint64_t bytes, const char *backing,
			    const char *backing_format, char **out)
{
	return volume(name, bytes, "qcow2", backing, backing_format, out);
}

int vmc_libvirt_xml_dimm(const struct vmc_hv_dimm *m, char **out)
{
	char *buf = NULL;
	size_t len;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	fprintf(f,
		"<memory model='dimm'><target><size unit='KiB'>%llu</size><node>0</node>"
		"</target>",
		(unsigned long long)(m->size >> 10));
	put_alias(f, m->id);
	fputs("</memory>", f);
	return finish(f, &buf, out);
}

/* "dddd:bb:ss.f" into its four numbers; -EINVAL for anything else. */
static int pci_parse(const char *addr, unsigned v[4])
{
	int n = 0;

	if (!vmc_parse_is_pci_address(addr) ||
	    sscanf(addr, "%x:%x:%x.%x%n", &v[0], &v[1], &v[2], &v[3], &n) != 4 || addr[n])
		return -EINVAL;
	return 0;
}

int vmc_libvirt_xml_hostdev(const struct vmc_hv_vfio *v, unsigned bus, char **out)
{
	char *buf = NULL;
	unsigned a[4];
	size_t len;
	FILE *f;

	if (pci_parse(v->host, a) < 0)
		return -EINVAL;
	f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f,
		"<hostdev mode='subsystem' type='pci' managed='%s'><driver name='vfio'/><source>"
		"<address domain='0x%04x' bus='0x%02x' slot='0x%02x' function='0x%x'/></source>",
		v->managed ? "yes" : "no", a[0], a[1], a[2], a[3]);
	put_alias(f, v->id);
	put_port_address(f, bus);
	fputs("</hostdev>", f);
	return finish(f, &buf, out);
}

int vmc_libvirt_xml_nodedev_name(const char *addr, char buf[32])
{
	unsigned a[4];

	if (pci_parse(addr, a) < 0)
		return -EINVAL;
	snprintf(buf, 32, "pci_%04x_%02x_%02x_%x", a[0], a[1], a[2], a[3]);
	return 0;
}

/* ---- parsing */

struct vmc_libvirt_xml {
	xmlDocPtr doc;
	xmlXPathContextPtr ctx;
};

int vmc_libvirt_xml_parse(const char *xml, struct vmc_libvirt_xml **out, struct vmc_error *err)
{
	struct vmc_libvirt_xml *x = calloc(1, sizeof(*x));

	if (!x)
		return vmc_error_set(err, -ENOMEM, "domain XML: out of memory");
	x->doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
			       XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!x->doc) {
		const xmlError *e = xmlGetLastError();

		free(x);
		return vmc_error_set(err, -EINVAL, "domain XML: %s",
				     e && e->message ? e->message : "not XML");
	}
	x->ctx = xmlXPathNewContext(x->doc);
	if (!x->ctx) {
		vmc_libvirt_xml_free(x);
		return vmc_error_set(err, -ENOMEM, "domain XML: out of memory");
	}
	*out = x;
	return 0;
}

void vmc_libvirt_xml_free(struct vmc_libvirt_xml *x)
{
	if (!x)
		return;
	xmlXPathFreeContext(x->ctx);
	xmlFreeDoc(x->doc);
	free(x);
}

/* Nodes matching @expr relative to @node (NULL: the document); free with xmlXPathFreeObject. */
static xmlXPathObjectPtr eval(const struct vmc_libvirt_xml *x, xmlNodePtr node, const char *expr)
{
	x->ctx->node = node ? node : xmlDocGetRootElement(x->doc);
	return xmlXPathEvalExpression((const xmlChar *)expr, x->ctx);
}

static int count_of(xmlXPathObjectPtr o)
{
	return o && o->nodesetval ? o->nodesetval->nodeNr : 0;
}

/* Attribute @name of @n as a malloc'd string (libxml2 allocates with malloc), or NULL. */
static char *attr(xmlNodePtr n, const char *name)
{
	return (char *)xmlGetProp(n, (const xmlChar *)name);
}

/* Attribute @name of @n as a number (decimal or 0x), @dflt when absent or malformed. */
static unsigned long long num_attr(xmlNodePtr n, const char *name, unsigned long long dflt)
{
	char *s = attr(n, name), *end;
	unsigned long long v;

	if (!s)
		return dflt;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		v = dflt;
	xmlFree(s);
	return v;
}

/* The text of @expr's first match as a number of bytes, honouring its unit= (KiB default). */
static int bytes_of(const struct vmc_libvirt_xml *x, xmlNodePtr node, const char *expr,
		    uint64_t *out)
{
	static const struct {
		const char *unit;
		unsigned shift;
	} units[] = {
		{ "b", 0 },  { "bytes", 0 }, { "KiB", 10 }, { "k", 10 },   { "MiB", 20 },
		{ "M", 20 }, { "GiB", 30 },  { "G", 30 },   { "TiB", 40 }, { "T", 40 },
	};
	xmlXPathObjectPtr o = eval(x, node, expr);
	char *text = NULL, *unit = NULL, *end;
	unsigned shift = 10;
	int r = -ENOENT;

	if (count_of(o)) {
		xmlNodePtr n = o->nodesetval->nodeTab[0];

		text = (char *)xmlNodeGetContent(n);
		unit = attr(n, "unit");
		r = -EINVAL;
		for (size_t i = 0; unit && i < ARRAY_SIZE(units); i++)
			if (!strcmp(unit, units[i].unit))
				shift = units[i].shift;
		errno = 0;
		*out = text ? strtoull(text, &end, 10) << shift : 0;
		if (text && !errno && end != text && !*end)
			r = 0;
	}
	xmlFree(text);
	xmlFree(unit);
	xmlXPathFreeObject(o);
	return r;
}

/* The alias of @n without VMC_LIBVIRT_XML_ALIAS_PREFIX, malloc'd; NULL without one. */
static char *alias_of(const struct vmc_libvirt_xml *x, xmlNodePtr n)
{
	xmlXPathObjectPtr o = eval(x, n, "alias/@name");
	char *a = NULL, *id = NULL;
	size_t pl = strlen(VMC_LIBVIRT_XML_ALIAS_PREFIX);

	if (count_of(o))
		a = (char *)xmlNodeGetContent(o->nodesetval->nodeTab[0]);
	xmlXPathFreeObject(o);
	if (a)
		id = strdup(strncmp(a, VMC_LIBVIRT_XML_ALIAS_PREFIX, pl) ? a : a + pl);
	xmlFree(a);
	return id;
}

/* Does any device sit on PCI bus @bus? */
static bool bus_used(const struct vmc_libvirt_xml *x, unsigned long long bus)
{
	xmlXPathObjectPtr o = eval(x, NULL, "/domain/devices/*/address[@type='pci']");
	bool used = false;

	for (int i = 0; !used && i < count_of(o); i++)
		used = num_attr(o->nodesetval->nodeTab[i], "bus", ~0ULL) == bus;
	xmlXPathFreeObject(o);
	return used;
}

static int cmp_slot(const void *a, const void *b)
{
	return strverscmp(((const struct vmc_hv_slot *)a)->id, ((const struct vmc_hv_slot *)b)->id);
}

#define ROOT_PORTS "/domain/devices/controller[@type='pci'][@model='pcie-root-port']"

int vmc_libvirt_xml_free_slots(const struct vmc_libvirt_xml *x, struct vmc_hv_slot **out, size_t *n,
			       struct vmc_error *err)
{
	xmlXPathObjectPtr o = eval(x, NULL, ROOT_PORTS "[not(target/@hotplug='off')]");
	struct vmc_hv_slot *v = calloc(count_of(o) ? count_of(o) : 1, sizeof(*v));
	size_t k = 0;
	int r = 0;

	for (int i = 0; v && !r && i < count_of(o); i++) {
		xmlNodePtr c = o->nodesetval->nodeTab[i], a;
		xmlXPathObjectPtr ao;

		if (bus_used(x, num_attr(c, "index", ~0ULL)))
			continue;
		v[k].id = alias_of(x, c);
		if (!v[k].id)
			continue; /* not started yet: libvirt names controllers when it starts */
		ao = eval(x, c, "address[@type='pci']");
		if (count_of(ao)) {
			a = ao->nodesetval->nodeTab[0];
			if (asprintf(&v[k].address, "%04llx:%02llx:%02llx.%llx",
				     num_attr(a, "domain", 0), num_attr(a, "bus", 0),
				     num_attr(a, "slot", 0), num_attr(a, "function", 0)) < 0) {
				v[k].address = NULL;
				r = -ENOMEM;
			}
		}
		xmlXPathFreeObject(ao);
		k++;
	}
	xmlXPathFreeObject(o);
	if (!v || r) {
		vmc_hv_slots_free(v, k);
		return vmc_error_set(err, -ENOMEM, "free_slots: out of memory");
	}
	if (k)
		qsort(v, k, sizeof(*v), cmp_slot);
	*out = v;
	*n = k;
	return 0;
}

int vmc_libvirt_xml_port_bus(const struct vmc_libvirt_xml *x, const char *slot, unsigned *bus)
{
	xmlXPathObjectPtr o = eval(x, NULL, ROOT_PORTS);
	int r = -ENOENT;

	for (int i = 0; r && i < count_of(o); i++) {
		xmlNodePtr c = o->nodesetval->nodeTab[i];
		char *id = alias_of(x, c);

		if (id && !strcmp(id, slot)) {
			*bus = (unsigned)num_attr(c, "index", 0);
			r = 0;
		}
		free(id);
	}
	xmlXPathFreeObject(o);
	return r;
}

int vmc_libvirt_xml_mem(const struct vmc_libvirt_xml *x, struct vmc_hv_mem *out,
			struct vmc_error *err)
{
	xmlXPathObjectPtr o;
	struct vmc_hv_mem m = { 0 };
	uint64_t total = 0;

	if (bytes_of(x, NULL, "/domain/maxMemory", &m.max_bytes) < 0)
		return vmc_error_set(err, -ENOENT,
				     "the domain has no <maxMemory>: no memory hotplug");
	if (bytes_of(x, NULL, "/domain/memory", &total) < 0)
		return vmc_error_set(err, -EINVAL, "the domain XML has no readable <memory>");
	o = eval(x, NULL, "/domain/maxMemory");
	m.slots = (unsigned)num_attr(o->nodesetval->nodeTab[0], "slots", 0);
	xmlXPathFreeObject(o);
	o = eval(x, NULL, "/domain/devices/memory[@model='dimm' or @model='nvdimm']");
	for (int i = 0; i < count_of(o); i++) {
		uint64_t size = 0;

		if (bytes_of(x, o->nodesetval->nodeTab[i], "target/size", &size) == 0)
			m.plugged_bytes += size;
		m.used_slots++;
	}
	xmlXPathFreeObject(o);
	m.base_bytes = total > m.plugged_bytes ? total - m.plugged_bytes : 0;
	*out = m;
	return 0;
}

int vmc_libvirt_xml_cpus(const struct vmc_libvirt_xml *x, struct vmc_hv_cpu **out, size_t *n,
			 struct vmc_error *err)
{
	xmlXPathObjectPtr vcpu = eval(x, NULL, "/domain/vcpu"), topo, list;
	unsigned long long max = 0, cur = 0, threads = 1, cores = 1, dies = 1;
	struct vmc_hv_cpu *v;

	if (count_of(vcpu)) {
		char *t = (char *)xmlNodeGetContent(vcpu->nodesetval->nodeTab[0]);

		max = t ? strtoull(t, NULL, 10) : 0;
		xmlFree(t);
		cur = num_attr(vcpu->nodesetval->nodeTab[0], "current", max);
	}
	xmlXPathFreeObject(vcpu);
	if (!max || max > 4096)
		return vmc_error_set(err, -EINVAL, "the domain XML has no readable <vcpu>");
	topo = eval(x, NULL, "/domain/cpu/topology");
	if (count_of(topo)) {
		xmlNodePtr t = topo->nodesetval->nodeTab[0];

		threads = num_attr(t, "threads", 1) ?: 1;
		cores = num_attr(t, "cores", 1) ?: 1;
		dies = num_attr(t, "dies", 1) ?: 1;
	}
	xmlXPathFreeObject(topo);
	v = calloc(max, sizeof(*v));
	if (!v)
		return vmc_error_set(err, -ENOMEM, "cpus: out of memory");
	list = eval(x, NULL, "/domain/vcpus/vcpu");
	for (unsigned long long i = 0; i < max; i++) {
		bool on = i < cur;

		/* <vcpus> (when present) says which ids are on; <vcpu current> is the first N. */
		for (int k = 0; k < count_of(list); k++) {
			xmlNodePtr e = list->nodesetval->nodeTab[k];
			char *en;

			if (num_attr(e, "id", ~0ULL) != i)
				continue;
			en = attr(e, "enabled");
			on = en && !strcmp(en, "yes");
			xmlFree(en);
		}
		v[i].thread_id = (int)(i % threads);
		v[i].core_id = (int)(i / threads % cores);
		v[i].die_id = (int)(i / threads / cores % dies);
		v[i].socket_id = (int)(i / threads / cores / dies);
		v[i].cpu_index = on ? (int)i : -1;
		v[i].type = strdup("vcpu");
		if (on && asprintf(&v[i].qom_path, "vcpu%llu", i) < 0)
			v[i].qom_path = NULL;
		if (!v[i].type || (on && !v[i].qom_path)) {
			xmlXPathFreeObject(list);
			vmc_hv_cpus_free(v, i + 1);
			return vmc_error_set(err, -ENOMEM, "cpus: out of memory");
		}
	}
	xmlXPathFreeObject(list);
	*out = v;
	*n = max;
	return 0;
}

/* Attribute @xpath (relative to the channel) of unix channel @name, malloc'd, or NULL. */
static char *channel_attr(const struct vmc_libvirt_xml *x, const char *name, const char *xpath)
{
	xmlXPathObjectPtr o = eval(x, NULL, "/domain/devices/channel[@type='unix']");
	char *val = NULL;

	for (int i = 0; !val && i < count_of(o); i++) {
		xmlNodePtr c = o->nodesetval->nodeTab[i];
		xmlXPathObjectPtr t = eval(x, c, "target[@type='virtio']/@name");
		xmlXPathObjectPtr s = eval(x, c, xpath);
		char *tn = count_of(t) ? (char *)xmlNodeGetContent(t->nodesetval->nodeTab[0])
				       : NULL;

		if (tn && !strcmp(tn, name) && count_of(s))
			val = (char *)xmlNodeGetContent(s->nodesetval->nodeTab[0]);
		xmlFree(tn);
		xmlXPathFreeObject(t);
		xmlXPathFreeObject(s);
	}
	xmlXPathFreeObject(o);
	return val;
}

char *vmc_libvirt_xml_channel_path(const struct vmc_libvirt_xml *x, const char *name)
{
	return channel_attr(x, name, "source/@path");
}

bool vmc_libvirt_xml_channel_connected(const struct vmc_libvirt_xml *x, const char *name)
{
	char *state = channel_attr(x, name, "target/@state");
	bool on = state && !strcmp(state, "connected");

	xmlFree(state);
	return on;
}

/* The device under /domain/devices matching @expr whose alias is @id, or NULL. */
static xmlNodePtr device_by_alias(const struct vmc_libvirt_xml *x, const char *expr, const char *id)
{
	xmlXPathObjectPtr o = eval(x, NULL, expr);
	xmlNodePtr dev = NULL;

	for (int i = 0; !dev && i < count_of(o); i++) {
		xmlNodePtr c = o->nodesetval->nodeTab[i];
		char *a = alias_of(x, c);

		/* "ua-" + id, or id itself on a domain someone else defined. */
		if (a && !strcmp(a, id))
			dev = c;
		free(a);
	}
	xmlXPathFreeObject(o);
	return dev;
}

int vmc_libvirt_xml_device(const struct vmc_libvirt_xml *x, const char *id, char **where,
			   char **dev_xml)
{
	xmlNodePtr dev = device_by_alias(x, "/domain/devices/*[alias/@name]", id);
	int r = 0;

	if (!dev)
		return 0;
	if (where) {
		xmlXPathObjectPtr ao = eval(x, dev, "address[@type='pci']");

		if (count_of(ao))
			r = asprintf(where, "%s on pci bus %llu slot %llu", (const char *)dev->name,
				     num_attr(ao->nodesetval->nodeTab[0], "bus", 0),
				     num_attr(ao->nodesetval->nodeTab[0], "slot", 0));
		else
			r = asprintf(where, "%s", (const char *)dev->name);
		xmlXPathFreeObject(ao);
		if (r < 0) {
			*where = NULL;
			return -ENOMEM;
		}
	}
	if (dev_xml) {
		xmlBufferPtr b = xmlBufferCreate();

		if (!b || xmlNodeDump(b, x->doc, dev, 0, 0) < 0 ||
		    !(*dev_xml = strdup((const char *)xmlBufferContent(b)))) {
			xmlBufferFree(b);
			if (where) {
				free(*where);
				*where = NULL;
			}
			return -ENOMEM;
		}
		xmlBufferFree(b);
	}
	return 1;
}

int vmc_libvirt_xml_dimm_info(const struct vmc_libvirt_xml *x, const char *id,
			      struct vmc_hv_dimm_info *out, struct vmc_error *err)
{
	xmlNodePtr m = device_by_alias(x, "/domain/devices/memory[@model='dimm']", id);
	xmlXPathObjectPtr ao;
	uint64_t size = 0, base = ~0ULL;
	long long slot = -1;

	if (!m)
		return vmc_error_set(
			err, -ENOENT,
			"the live XML has no <memory model='dimm'> with alias " VMC_LIBVIRT_XML_ALIAS_PREFIX
			"%s",
			id);
	ao = eval(x, m, "address[@type='dimm']");
	if (count_of(ao)) {
		base = num_attr(ao->nodesetval->nodeTab[0], "base", ~0ULL);
		slot = (long long)num_attr(ao->nodesetval->nodeTab[0], "slot", ~0ULL);
	}
	xmlXPathFreeObject(ao);
	if (base == ~0ULL)
		return vmc_error_set(err, -ENODATA,
				     "DIMM %s: the live XML gives no <address type='dimm' base=...>",
				     id);
	if (bytes_of(x, m, "target/size", &size) < 0 || !size)
		return vmc_error_set(err, -ENODATA,
				     "DIMM %s: the live XML gives no readable "
				     "<target><size>",
				     id);
	out->addr = base;
	out->size = size;
	out->slot = slot < 0 || slot > INT_MAX ? -1 : (int)slot;
	return 0;
}

/* Attribute @name of the first match of @expr under @node, malloc'd, or NULL. */
static char *attr_at(const struct vmc_libvirt_xml *x, xmlNodePtr node, const char *expr,
		     const char *name)
{
	xmlXPathObjectPtr o = eval(x, node, expr);
	char *v = count_of(o) ? attr(o->nodesetval->nodeTab[0], name) : NULL;

	xmlXPathFreeObject(o);
	return v;
}

/* Dotted quad @s into host order; false if it is none. */
static bool ipv4_of(const char *s, uint32_t *out)
{
	struct in_addr a;

	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return false;
	*out = ntohl(a.s_addr);
	return true;
}

static void ipv4_str(uint32_t v, char buf[48])
{
	struct in_addr a = { .s_addr = htonl(v) };

	inet_ntop(AF_INET, &a, buf, 48);
}

/* A prefix length from prefix='N' or netmask='a.b.c.d' (contiguous); -1 if neither. */
static int prefix_of(const char *prefix, const char *netmask)
{
	uint32_t m;
	int n = 0;

	if (prefix) {
		char *end;
		long v = strtol(prefix, &end, 10);

		return end != prefix && !*end && v >= 0 && v <= 32 ? (int)v : -1;
	}
	if (!ipv4_of(netmask, &m))
		return -1;
	while (n < 32 && (m & (0x80000000u >> n)))
		n++;
	return n == 32 || !(m << n) ? n : -1;
}

static uint32_t mask_of(unsigned prefix)
{
	return prefix ? ~0u << (32 - prefix) : 0;
}

/* QEMU's user networking: the guest is .15 of its network, the gateway .2. */
static int slirp_path(const struct vmc_libvirt_xml *x, xmlNodePtr nic, const char *id,
		      struct vmc_hv_netpath *out, struct vmc_error *err)
{
	xmlXPathObjectPtr o = eval(x, nic, "ip[not(@family) or @family='ipv4']");
	uint32_t net = 0x0a000200; /* 10.0.2.0/24: slirp's default */
	int prefix = 24;
	int r = 0;

	if (count_of(o)) {
		xmlNodePtr ip = o->nodesetval->nodeTab[0];
		char *a = attr(ip, "address"), *p = attr(ip, "prefix");

		prefix = prefix_of(p ? p : "24", NULL);
		if (!ipv4_of(a, &net) || prefix < 0 || prefix > 28)
			r = vmc_error_set(err, -ENOTSUP,
					  "%s: user network <ip address='%s' prefix='%s'> is no IPv4 "
					  "network vmcheck can address",
					  id, a ? a : "", p ? p : "");
		xmlFree(a);
		xmlFree(p);
	}
	xmlXPathFreeObject(o);
	if (r < 0)
		return r;
	net &= mask_of((unsigned)prefix);
	ipv4_str(net + 15, out->guest);
	out->prefixlen = (unsigned)prefix;
	ipv4_str(net + 2, out->peer);
	snprintf(out->listen, sizeof(out->listen), "127.0.0.1");
	return 0;
}

int vmc_libvirt_xml_nic_path(const struct vmc_libvirt_xml *x, const char *id,
			     struct vmc_hv_netpath *out, char **network, struct vmc_error *err)
{
	xmlNodePtr nic = device_by_alias(x, "/domain/devices/interface", id);
	char *type, *backend = NULL;
	int r;

	if (!nic)
		return vmc_error_set(
			err, -ENOENT,
			"the live XML has no <interface> with alias " VMC_LIBVIRT_XML_ALIAS_PREFIX
			"%s",
			id);
	type = attr(nic, "type");
	if (type && !strcmp(type, "user")) {
		backend = attr_at(x, nic, "backend", "type");
		r = backend && strcmp(backend, "default")
			    ? vmc_error_set(err, -ENOTSUP,
					    "%s: user network with backend %s: the guest has the "
					    "host's addresses, no path vmcheck knows",
					    id, backend)
			    : slirp_path(x, nic, id, out, err);
	} else if (type && !strcmp(type, "network")) {
		*network = attr_at(x, nic, "source", "network");
		r = *network ? 1
			     : vmc_error_set(err, -ENOTSUP,
					     "%s: <interface type='network'> without "
					     "<source network>",
					     id);
	} else {
		r = vmc_error_set(err, -ENOTSUP,
				  "%s: <interface type='%s'>: vmcheck knows no path from it to this "
				  "host",
				  id, type ? type : "?");
	}
	xmlFree(type);
	xmlFree(backend);
	return r;
}

/* Is @a inside one of @net's DHCP ranges or given to a <dhcp><host>? */
static bool dhcp_has(const struct vmc_libvirt_xml *x, xmlNodePtr ip, uint32_t a)
{
	xmlXPathObjectPtr o = eval(x, ip, "dhcp/range | dhcp/host");
	bool in = false;

	for (int i = 0; !in && i < count_of(o); i++) {
		xmlNodePtr n = o->nodesetval->nodeTab[i];
		char *s = attr(n, "start"), *e = attr(n, "end"), *h = attr(n, "ip");
		uint32_t lo, hi;

		if (ipv4_of(s, &lo) && ipv4_of(e, &hi))
			in = a >= lo && a <= hi;
		else if (ipv4_of(h, &lo))
			in = a == lo;
		xmlFree(s);
		xmlFree(e);
		xmlFree(h);
	}
	xmlXPathFreeObject(o);
	return in;
}

int vmc_libvirt_xml_network_path(const struct vmc_libvirt_xml *net, struct vmc_hv_netpath *out,
				 struct vmc_error *err)
{
	xmlXPathObjectPtr o = eval(net, NULL, "/network/ip[not(@family) or @family='ipv4']");
	xmlNodePtr ip = count_of(o) ? o->nodesetval->nodeTab[0] : NULL;
	char *a = NULL, *p = NULL, *m = NULL;
	uint32_t host = 0, base, bcast, g = 0;
	int prefix = -1, r = 0;

	if (ip) {
		a = attr(ip, "address");
		p = attr(ip, "prefix");
		m = attr(ip, "netmask");
		prefix = prefix_of(p, m);
	}
	if (!ip || !ipv4_of(a, &host) || prefix < 1 || prefix > 30) {
		r = vmc_error_set(
			err, -ENOTSUP,
			"the network has no IPv4 <ip address> with a usable prefix on this "
			"host (a bridge or passthrough network): the guest's traffic never "
			"reaches a host address");
		goto out;
	}
	base = host & mask_of((unsigned)prefix);
	bcast = base | ~mask_of((unsigned)prefix);
	for (g = bcast - 1; g > base; g--)
		if (g != host && !dhcp_has(net, ip, g))
			break;
	if (g == base) {
		r = vmc_error_set(err, -ENOTSUP,
				  "the network's DHCP range covers every address of %s/%d: no "
				  "address for the guest that DHCP cannot hand out too",
				  a, prefix);
		goto out;
	}
	ipv4_str(g, out->guest);
	out->prefixlen = (unsigned)prefix;
	ipv4_str(host, out->peer);
	ipv4_str(host, out->listen);
out:
	xmlFree(a);
	xmlFree(p);
	xmlFree(m);
	xmlXPathFreeObject(o);
	return r;
}

/* The text of @expr's first match, malloc'd, or NULL. */
static char *text_at(const struct vmc_libvirt_xml *x, const char *expr)
{
	xmlXPathObjectPtr o = eval(x, NULL, expr);
	char *t = count_of(o) ? (char *)xmlNodeGetContent(o->nodesetval->nodeTab[0]) : NULL;

	xmlXPathFreeObject(o);
	return t;
}

char *vmc_libvirt_xml_os_arch(const struct vmc_libvirt_xml *x)
{
	return attr_at(x, NULL, "/domain/os/type", "arch");
}

char *vmc_libvirt_xml_domcaps_emulator(const struct vmc_libvirt_xml *caps)
{
	return text_at(caps, "/domainCapabilities/path");
}

int vmc_libvirt_xml_free_vd(const struct vmc_libvirt_xml *x, char buf[8])
{
	for (char c = 'a'; c <= 'z'; c++) {
		char expr[96];
		xmlXPathObjectPtr o;
		int used;

		snprintf(buf, 8, "vd%c", c);
		snprintf(expr, sizeof(expr), "/domain/devices/disk/target[@dev='%s']", buf);
		o = eval(x, NULL, expr);
		used = count_of(o);
		xmlXPathFreeObject(o);
		if (!used)
			return 0;
	}
	return -ENOSPC;
}
