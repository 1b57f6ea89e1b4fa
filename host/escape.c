/* SPDX-License-Identifier: MIT */
/*
 * Escaping guest strings for a terminal or text file, JUnit XML and JSON
 * (escape.h): one UTF-8 decoder, one table of what must not pass raw.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"

/*
 * Length of the valid UTF-8 sequence at @s (at most @n bytes), its code
 * point in *@cp; 0 if the bytes there are not valid UTF-8 (a stray
 * continuation byte, an overlong form, a surrogate, beyond U+10FFFF, a
 * sequence cut short).
 */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/*
 * Code points above ASCII that must not reach a reader raw: C1 controls
 * (a terminal may take U+009B for CSI), the bidirectional formatting
 * characters (they reorder what follows on screen), the line and
 * paragraph separators, and the two noncharacters XML 1.0 forbids.
 */
static bool unsafe_cp(uint32_t c)
{
	return (c >= 0x80 && c <= 0x9f) || c == 0x061c || c == 0x200e || c == 0x200f ||
	       (c >= 0x2028 && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c == 0xfffe ||
	       c == 0xffff;
}

/*
 * The escape for the character at @s + @i (@len bytes in all) under
 * @flags, or NULL when it passes as it is; its length in bytes in *@n.
 * @esc (16 bytes) holds an escape made on the spot.
 */
static const char *esc_one(const unsigned char *s, size_t len, size_t i, unsigned flags, size_t *n,
			   char esc[16])
{
	uint32_t c = 0;

	*n = utf8_seq(s + i, len - i, &c);
	if (*n == 0) {
		*n = 1;
		snprintf(esc, 16, "\\x%02x", s[i]);
		return esc;
	}
	if (c == '\\')
		return flags & VMC_ESC_QUOTE ? "\\\\" : NULL;
	if ((c == '\n' || c == '\t') && (flags & VMC_ESC_LINES))
		return NULL;
	if (c == '\n')
		return "\\n";
	if (c == '\t')
		return "\\t";
	if (c == '\r')
		return "\\r";
	if (c == 0x1b)
		return "\\e";
	if (c < 0x20 || c == 0x7f) {
		snprintf(esc, 16, "\\x%02x", (unsigned)c);
		return esc;
	}
	if (unsafe_cp(c)) {
		snprintf(esc, 16, "\\u%04x", (unsigned)c);
		return esc;
	}
	return NULL;
}

void vmc_esc_write(FILE *fp, const char *str, size_t len, unsigned flags)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0; /* bytes from @run on pass unchanged so far */

	while (i < len) {
		char esc[16];
		size_t n;
		const char *e = esc_one(s, len, i, flags, &n, esc);

		if (e) {
			fwrite(s + run, 1, i - run, fp);
			fputs(e, fp);
			run = i + n;
		}
		i += n;
	}
	fwrite(s + run, 1, len - run, fp);
}

const char *vmc_esc_buf(char *buf, size_t size, const char *str, unsigned flags)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len, i = 0, at = 0, keep = 0; /* @keep: where "..." goes if cut */

	if (!str)
		return "(null)";
	len = strlen(str);
	while (i < len) {
		char esc[16];
		size_t n;
		const char *e = esc_one(s, len, i, flags, &n, esc);
		size_t w = e ? strlen(e) : n;

		if (at + w >= size) {
			memcpy(buf + keep, "...", 3);
			at = keep + 3;
			break;
		}
		memcpy(buf + at, e ? e : (const char *)s + i, w);
		at += w;
		i += n;
		if (at + 3 < size)
			keep = at;
	}
	buf[at] = '\0';
	return buf;
}

void vmc_esc_fputs(FILE *fp, const char *s, unsigned flags)
{
	if (s)
		vmc_esc_write(fp, s, strlen(s), flags);
}

/* The text written to memstream @m over *@buf: the string, or NULL (freed) on an error. */
static char *memstream_done(FILE *m, char *const *buf)
{
	bool bad = ferror(m);

	if (fclose(m) == EOF || bad) {
		free(*buf);
		return NULL;
	}
	return *buf;
}

char *vmc_esc_str(const char *s, unsigned flags)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m;

	if (!s)
		return NULL;
	m = open_memstream(&buf, &len);
	if (!m)
		return NULL;
	vmc_esc_fputs(m, s, flags);
	return memstream_done(m, &buf);
}

void vmc_esc_vline(FILE *fp, unsigned flags, const char *fmt, va_list ap)
{
	char *s = NULL;
	int n = vasprintf(&s, fmt, ap);

	if (n < 0) {
		fputs("(out of memory)\n", fp);
		return;
	}
	vmc_esc_write(fp, s, (size_t)n, flags);
	fputc('\n', fp);
	free(s);
}

void vmc_esc_line(FILE *fp, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmc_esc_vline(fp, VMC_ESC_QUOTE, fmt, ap);
	va_end(ap);
}

void vmc_esc_xml(FILE *fp, const char *s, bool attr)
{
	char *text = vmc_esc_str(s, VMC_ESC_LINES);

	if (s && !text) {
		fputs("(out of memory)", fp);
		return;
	}
	for (const char *p = text ? text : ""; *p; p++) {
		switch (*p) {
		case '&':
			fputs("&amp;", fp);
			break;
		case '<':
			fputs("&lt;", fp);
			break;
		case '>':
			fputs("&gt;", fp);
			break;
		case '"':
			fputs(attr ? "&quot;" : "\"", fp);
			break;
		case '\n':
			fputs(attr ? "&#10;" : "\n", fp);
			break;
		case '\t':
			fputs(attr ? "&#9;" : "\t", fp);
			break;
		default:
			fputc(*p, fp);
		}
	}
	free(text);
}

void vmc_esc_json(FILE *fp, const char *json)
{
	const unsigned char *s = (const unsigned char *)json;
	size_t len = json ? strlen(json) : 0, i = 0, run = 0;

	while (i < len) {
		uint32_t c = 0;
		size_t n = utf8_seq(s + i, len - i, &c);

		if (n == 0 || c == 0x7f || unsafe_cp(c)) {
			fwrite(s + run, 1, i - run, fp);
			if (n == 0)
				fputs("\\ufffd", fp);
			else
				fprintf(fp, "\\u%04x", (unsigned)c);
			n = n ? n : 1;
			run = i + n;
		}
		i += n;
	}
	if (len)
		fwrite(s + run, 1, len - run, fp);
}

char *vmc_esc_json_str(const char *json)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		return NULL;
	vmc_esc_json(m, json ? json : "");
	return memstream_done(m, &buf);
}
