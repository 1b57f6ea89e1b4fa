/* SPDX-License-Identifier: MIT */
/* Strict parsers of sysfs and procfs strings; no file is read here. */
#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * What a strtoull()/strtoll() that stopped at @end with @err in errno
 * parsed of @s: 0 for a whole number and at most a trailing newline,
 * -ERANGE on overflow, -EINVAL for no digits or junk after them.
 */
static int number_end(const char *s, const char *end, int err)
{
	if (err == ERANGE)
		return -ERANGE;
	if (end == s)
		return -EINVAL;
	if (*end == '\n')
		end++;
	return *end ? -EINVAL : 0;
}

int vmc_parse_u64(const char *s, int base, uint64_t *out)
{
	unsigned long long v;
	char *end;
	int r;

	if (!s || !*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	r = number_end(s, end, errno);
	if (r == 0)
		*out = v;
	return r;
}

int vmc_parse_s64(const char *s, int base, int64_t *out)
{
	long long v;
	char *end;
	int r;

	if (!s || !*s || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, base);
	r = number_end(s, end, errno);
	if (r == 0)
		*out = v;
	return r;
}

int vmc_parse_natcmp(const char *a, const char *b)
{
	while (*a && *b) {
		if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
			const char *ea = a, *eb = b;
			size_t la, lb;

			while (*a == '0' && isdigit((unsigned char)a[1]))
				a++;
			while (*b == '0' && isdigit((unsigned char)b[1]))
				b++;
			for (ea = a; isdigit((unsigned char)*ea); ea++)
				;
			for (eb = b; isdigit((unsigned char)*eb); eb++)
				;
			la = (size_t)(ea - a);
			lb = (size_t)(eb - b);
			if (la != lb)
				return la < lb ? -1 : 1;
			int c = strncmp(a, b, la);
			if (c)
				return c;
			a = ea;
			b = eb;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	return (unsigned char)*a - (unsigned char)*b;
}

bool vmc_parse_is_pci_address(const char *s)
{
	static const char shape[] = "xxxx:xx:xx.x";

	if (strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == 'x') {
			if (!isxdigit((unsigned char)s[i]))
				return false;
		} else if (s[i] != shape[i]) {
			return false;
		}
	}
	return s[11] >= '0' && s[11] <= '7';
}

int vmc_parse_pci_of_path(const char *path, char out[13], char parent[13])
{
	char last[13] = "", prev[13] = "";
	const char *s = path;

	while (*s) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);

		if (n == 12) {
			char comp[13];

			memcpy(comp, s, 12);
			comp[12] = '\0';
			if (vmc_parse_is_pci_address(comp)) {
				strcpy(prev, last);
				strcpy(last, comp);
			}
		}
		s += n;
		if (*s == '/')
			s++;
	}
	if (!last[0])
		return -ENOENT;
	strcpy(out, last);
	if (parent)
		strcpy(parent, prev);
	return 0;
}

int vmc_parse_cpulist_contains(const char *list, unsigned cpu, bool *out)
{
	const char *p = list;
	bool found = false;

	while (*p && *p != '\n') {
		unsigned long a, b;
		char *e;

		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		a = strtoul(p, &e, 10);
		b = a;
		if (*e == '-') {
			p = e + 1;
			if (!isdigit((unsigned char)*p))
				return -EINVAL;
			b = strtoul(p, &e, 10);
			if (b < a)
				return -EINVAL;
		}
		if (cpu >= a && cpu <= b)
			found = true;
		p = e;
		if (*p == ',')
			p++;
		else if (*p && *p != '\n')
			return -EINVAL;
	}
	*out = found;
	return 0;
}
