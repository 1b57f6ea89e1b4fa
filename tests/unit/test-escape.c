/* SPDX-License-Identifier: MIT */
/*
 * The escaping of guest strings (host/escape.c): every byte alone, control
 * sequences, broken UTF-8 of every kind, a 1 MiB string of random bytes;
 * the quoted form decodes back to the bytes the guest sent, the XML is
 * well-formed to libxml2 and the JSON valid UTF-8 to json-c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libxml/parser.h>

#include "escape.h"
#include "harness.h"

/* @len bytes of @s escaped with @flags, as a new string. */
static char *esc(const char *s, size_t len, unsigned flags)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *fp = open_memstream(&buf, &n);

	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	vmc_esc_write(fp, s, len, flags);
	fclose(fp);
	return buf;
}

static int hex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * The bytes text quoted with VMC_ESC_QUOTE stands for, into @out (room for
 * strlen(@s) bytes); their count, or -1 when @s holds what the escaping
 * never writes (a raw control, an unknown escape, uppercase hex).
 */
static long unescape(const char *s, char *out)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned v = 0;

		if (*p < 0x20 || *p == 0x7f)
			return -1;
		if (*p != '\\') {
			out[o++] = (char)*p;
			continue;
		}
		switch (*++p) {
		case '\\':
			out[o++] = '\\';
			break;
		case 'e':
			out[o++] = 0x1b;
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case 'r':
			out[o++] = '\r';
			break;
		case 'x':
			if (hex((char)p[1]) < 0 || hex((char)p[2]) < 0)
				return -1;
			out[o++] = (char)(hex((char)p[1]) << 4 | hex((char)p[2]));
			p += 2;
			break;
		case 'u':
			for (int i = 1; i <= 4; i++) {
				if (hex((char)p[i]) < 0)
					return -1;
				v = v << 4 | (unsigned)hex((char)p[i]);
			}
			p += 4;
			if (v < 0x800) {
				out[o++] = (char)(0xc0 | v >> 6);
			} else {
				out[o++] = (char)(0xe0 | v >> 12);
				out[o++] = (char)(0x80 | (v >> 6 & 0x3f));
			}
			out[o++] = (char)(0x80 | (v & 0x3f));
			break;
		default:
			return -1;
		}
	}
	return (long)o;
}

/* True when @s is what an escaping without QUOTE leaves unchanged. */
static bool is_safe(const char *s, unsigned flags)
{
	char *again = esc(s, strlen(s), flags);
	bool same = !strcmp(again, s);

	free(again);
	return same;
}

static void every_byte_alone(void)
{
	for (unsigned b = 0; b < 256; b++) {
		char in = (char)b, want[8], *out = esc(&in, 1, VMC_ESC_QUOTE), back[8];

		if (b == '\\')
			strcpy(want, "\\\\");
		else if (b == 0x1b)
			strcpy(want, "\\e");
		else if (b == '\n')
			strcpy(want, "\\n");
		else if (b == '\t')
			strcpy(want, "\\t");
		else if (b == '\r')
			strcpy(want, "\\r");
		else if (b >= 0x20 && b < 0x7f)
			snprintf(want, sizeof(want), "%c", b);
		else
			snprintf(want, sizeof(want), "\\x%02x", b);
		CU_ASSERT_STRING_EQUAL(out, want);
		CU_ASSERT_EQUAL(unescape(out, back), 1);
		CU_ASSERT_EQUAL(back[0], in);
		free(out);
	}
}

static void control_sequences_print_as_text(void)
{
	static const char title[] = "\x1b]0;pwned\x07\x1b[2J";
	char *out = esc(title, strlen(title), VMC_ESC_QUOTE);

	CU_ASSERT_STRING_EQUAL(out, "\\e]0;pwned\\x07\\e[2J");
	free(out);
	/* A guest's backslash is doubled only when quoting: \e typed is not ESC. */
	out = esc("a\\e", 3, VMC_ESC_QUOTE);
	CU_ASSERT_STRING_EQUAL(out, "a\\\\e");
	free(out);
	out = esc("a\\e", 3, 0);
	CU_ASSERT_STRING_EQUAL(out, "a\\e");
	free(out);
	/* Lines: newline and tab kept, a carriage return never. */
	out = esc("a\tb\r\nc", 6, VMC_ESC_LINES);
	CU_ASSERT_STRING_EQUAL(out, "a\tb\\r\nc");
	free(out);
	out = vmc_esc_str("x\x7fy", 0);
	CU_ASSERT_STRING_EQUAL(out, "x\\x7fy");
	free(out);
	CU_ASSERT_PTR_NULL(vmc_esc_str(NULL, 0));
}

static void valid_utf8_passes_unsafe_code_points_do_not(void)
{
	const struct {
		const char *in, *want;
	} cases[] = {
		/* Cyrillic, CJK, an emoji, the lsblk tree: as they are. */
		{ "\xd1\x85\xd0\xbe\xd1\x81\xd1\x82", "\xd1\x85\xd0\xbe\xd1\x81\xd1\x82" },
		{ "\xe4\xb8\xad", "\xe4\xb8\xad" },
		{ "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80" },
		{ "\xe2\x94\x94\xe2\x94\x80", "\xe2\x94\x94\xe2\x94\x80" },
		{ "\xc2\xa0", "\xc2\xa0" },
		/* C1: U+009B is CSI to some terminals; U+0080 and U+009F the ends. */
		{ "\xc2\x9b"
		  "31m",
		  "\\u009b31m" },
		{ "\xc2\x80\xc2\x9f", "\\u0080\\u009f" },
		/* Bidi overrides and isolates, line and paragraph separators, noncharacters. */
		{ "\xe2\x80\xae"
		  "cod.exe",
		  "\\u202ecod.exe" },
		{ "\xe2\x81\xa6", "\\u2066" },
		{ "\xe2\x80\xa8\xe2\x80\xa9", "\\u2028\\u2029" },
		{ "\xef\xbf\xbe\xef\xbf\xbf\xef\xbf\xbd", "\\ufffe\\uffff\xef\xbf\xbd" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *out = vmc_esc_str(cases[i].in, VMC_ESC_QUOTE);

		CU_ASSERT_STRING_EQUAL(out, cases[i].want);
		free(out);
	}
}

static void invalid_utf8_byte_by_byte(void)
{
	const struct {
		const char *in, *want;
	} cases[] = {
		/* Overlong forms of '/', NUL and U+07FF. */
		{ "\xc0\xaf", "\\xc0\\xaf" },
		{ "\xc1\xbf", "\\xc1\\xbf" },
		{ "\xe0\x80\xaf", "\\xe0\\x80\\xaf" },
		{ "\xe0\x9f\xbf", "\\xe0\\x9f\\xbf" },
		{ "\xf0\x80\x80\xaf", "\\xf0\\x80\\x80\\xaf" },
		{ "\xf0\x8f\xbf\xbf", "\\xf0\\x8f\\xbf\\xbf" },
		/* Surrogates, high and low, and a CESU-8 pair. */
		{ "\xed\xa0\x80", "\\xed\\xa0\\x80" },
		{ "\xed\xbf\xbf", "\\xed\\xbf\\xbf" },
		{ "\xed\xa0\xbd\xed\xb8\x80", "\\xed\\xa0\\xbd\\xed\\xb8\\x80" },
		/* Beyond U+10FFFF, bytes that never start anything. */
		{ "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80" },
		{ "\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80" },
		{ "\xfe\xff", "\\xfe\\xff" },
		/* Cut short: by the end, by ASCII, by another start. */
		{ "ab\xe2\x82", "ab\\xe2\\x82" },
		{ "\xe2\x82"
		  "A",
		  "\\xe2\\x82A" },
		{ "\xe2\xe2\x82\xac", "\\xe2\xe2\x82\xac" },
		{ "\xf0\x9f\x98", "\\xf0\\x9f\\x98" },
		/* A stray continuation byte, then a valid character. */
		{ "\x80\xc3\xa9", "\\x80\xc3\xa9" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *out = vmc_esc_str(cases[i].in, VMC_ESC_QUOTE), back[32];

		CU_ASSERT_STRING_EQUAL(out, cases[i].want);
		CU_ASSERT_EQUAL((size_t)unescape(out, back), strlen(cases[i].in));
		CU_ASSERT(!memcmp(back, cases[i].in, strlen(cases[i].in)));
		free(out);
	}
}

/* A cheap deterministic byte source. */
static uint32_t next_rand(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/*
 * A mebibyte of random bytes (NUL included), with runs of valid UTF-8 and
 * escape sequences mixed in: quoted, it holds no raw control, is valid
 * UTF-8, and decodes back to the very bytes; the idempotent pass leaves it
 * as it is.
 */
static void a_mebibyte_of_random_bytes(void)
{
	static const char *const bits[] = { "\x1b[2J",         "\xc2\x9b", "\xe2\x80\xae",
					    "\xd0\xb6",        "\\",       "\xed\xa0\x80",
					    "\xf0\x9f\x98\x80" };
	const size_t size = 1u << 20;
	char *in = malloc(size), *out, *back, *again;
	uint32_t x = 2463534242u;
	size_t i = 0;
	long n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(in);
	while (i < size) {
		uint32_t r = next_rand(&x);

		if (r % 8 == 0) {
			const char *b = bits[(r >> 8) % ARRAY_SIZE(bits)];
			size_t l = strlen(b);

			if (i + l > size)
				break;
			memcpy(in + i, b, l);
			i += l;
		} else {
			in[i++] = (char)(r >> 16);
		}
	}
	memset(in + i, 'z', size - i);
	out = esc(in, size, VMC_ESC_QUOTE);
	for (const unsigned char *p = (const unsigned char *)out; *p; p++)
		if (*p < 0x20 || *p == 0x7f) {
			CU_FAIL("a raw control byte in the output");
			break;
		}
	CU_ASSERT(is_safe(out, 0));
	CU_ASSERT(is_safe(out, VMC_ESC_LINES));
	back = malloc(strlen(out) + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	n = unescape(out, back);
	CU_ASSERT_EQUAL(n, (long)size);
	CU_ASSERT(n == (long)size && !memcmp(back, in, size));
	/* Without QUOTE the pass is idempotent. */
	again = esc(out, strlen(out), 0);
	CU_ASSERT_STRING_EQUAL(again, out);
	free(again);
	free(back);
	free(out);
	free(in);
}

static void a_line_is_escaped_whole(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	vmc_esc_line(fp, "  + link %s (ifindex %u)", "eth\n0\x1b[2J", 7);
	fclose(fp);
	CU_ASSERT_STRING_EQUAL(buf, "  + link eth\\n0\\e[2J (ifindex 7)\n");
	free(buf);
}

/* Every byte, the sequences above and markup, in every XML place: libxml2 takes the document. */
static void xml_well_formed_for_every_byte(void)
{
	char all[256 + 64], *buf = NULL;
	size_t len = 0, n = 0;
	FILE *fp = open_memstream(&buf, &len);
	xmlDocPtr doc;

	for (unsigned b = 1; b < 256; b++)
		all[n++] = (char)b;
	strcpy(all + n, "]]> <![CDATA[ &amp; \xed\xa0\x80\xef\xbf\xbe\xc2\x9b\"'");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<r a=\"", fp);
	vmc_esc_xml(fp, all, true);
	fputs("\">", fp);
	vmc_esc_xml(fp, all, false);
	fputs("</r>\n", fp);
	fclose(fp);
	doc = xmlReadMemory(buf, (int)len, "t.xml", "UTF-8", XML_PARSE_NONET | XML_PARSE_NOERROR);
	CU_ASSERT_PTR_NOT_NULL(doc);
	if (doc) {
		xmlChar *a = xmlGetProp(xmlDocGetRootElement(doc), (const xmlChar *)"a");
		xmlChar *t = xmlNodeGetContent(xmlDocGetRootElement(doc));

		/* The attribute reads as the text, newline and tab included. */
		CU_ASSERT_PTR_NOT_NULL(a);
		CU_ASSERT_PTR_NOT_NULL(t);
		if (a && t)
			CU_ASSERT_STRING_EQUAL((const char *)a, (const char *)t);
		CU_ASSERT(t && strstr((const char *)t, "\\e\\x1c") &&
			  strstr((const char *)t, "\n"));
		xmlFree(a);
		xmlFree(t);
		xmlFreeDoc(doc);
	}
	free(buf);
}

/* json-c's own text of a string with every byte, made valid: strict parsing takes it back. */
static void json_valid_utf8_for_every_byte(void)
{
	char all[256 + 32], *buf = NULL;
	size_t len = 0, n = 0, high = 0;
	FILE *fp = open_memstream(&buf, &len);
	struct json_object *o, *back;
	struct json_tokener *tok = json_tokener_new();
	const char *s;

	for (unsigned b = 1; b < 256; b++)
		all[n++] = (char)b;
	strcpy(all + n, "\xd0\xb6\xc2\x9b\xed\xa0\x80");
	o = json_object_new_string(all);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	vmc_esc_json(fp, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	fclose(fp);
	/* Every control, DEL, C1 and bad byte is a \u escape: only only the Cyrillic letter's two bytes are not ASCII. */
	for (size_t i = 0; i < len; i++) {
		CU_ASSERT((unsigned char)buf[i] >= 0x20 && (unsigned char)buf[i] != 0x7f);
		high += (unsigned char)buf[i] >= 0x80;
	}
	CU_ASSERT_EQUAL(high, 2);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	back = json_tokener_parse_ex(tok, buf, (int)len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	s = json_object_get_string(back);
	/* Valid characters keep their value; each bad byte is U+FFFD. */
	CU_ASSERT(!memcmp(s, all, 0x7f));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "\xd0\xb6\xc2\x9b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
	CU_ASSERT(!memcmp(s + 0x7f, "\xef\xbf\xbd\xef\xbf\xbd", 6));
	json_object_put(back);
	json_object_put(o);
	json_tokener_free(tok);
	free(buf);
	/* A valid string that needs nothing passes byte for byte. */
	buf = NULL;
	fp = open_memstream(&buf, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	vmc_esc_json(fp, "{\"h\":\"\xd1\x85\xd0\xbe\\u001b\"}");
	vmc_esc_json(fp, NULL);
	fclose(fp);
	CU_ASSERT_STRING_EQUAL(buf, "{\"h\":\"\xd1\x85\xd0\xbe\\u001b\"}");
	free(buf);
}

/*
 * VMC_Q quotes a guest string for a message: the same text as
 * vmc_esc_str(VMC_ESC_QUOTE), one line, and a string too long is cut after
 * a whole escape or character with "..." so the message stays bounded.
 */
static void quoted_into_a_buffer(void)
{
	static const char *const ins[] = { "eth0", "a\\e\n  disk  plug disk1 ... ok\x1b[2J",
					   "\xd1\x85\xc2\x9b\xfe", "" };
	char small[8], *big;
	const char *q;

	for (size_t i = 0; i < sizeof(ins) / sizeof(ins[0]); i++) {
		char *want = vmc_esc_str(ins[i], VMC_ESC_QUOTE);

		CU_ASSERT_STRING_EQUAL(VMC_Q(ins[i]), want);
		free(want);
	}
	CU_ASSERT_STRING_EQUAL(VMC_Q("x\ny\x1b[2J"), "x\\ny\\e[2J");
	CU_ASSERT_STRING_EQUAL(VMC_Q(NULL), "(null)");
	/* Cut after whole escapes: never half of "\e" or of a UTF-8 character. */
	CU_ASSERT_STRING_EQUAL(vmc_esc_buf(small, sizeof(small),
					   "ab\x1b\x1b"
					   "cd",
					   0),
			       "ab\\e...");
	CU_ASSERT_STRING_EQUAL(vmc_esc_buf(small, sizeof(small), "abcd\xd1\x85zz", 0), "abcd...");
	CU_ASSERT_STRING_EQUAL(vmc_esc_buf(small, sizeof(small), "abcdefg", 0), "abcdefg");
	CU_ASSERT_STRING_EQUAL(vmc_esc_buf(small, sizeof(small), "abcdefgh", 0), "abcd...");
	/* A mebibyte of hostname is VMC_Q_SIZE - 1 bytes of message. */
	big = malloc(1 << 20);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, '\n', (1 << 20) - 1);
	big[(1 << 20) - 1] = '\0';
	q = VMC_Q(big);
	CU_ASSERT_EQUAL(strlen(q), VMC_Q_SIZE - 1);
	CU_ASSERT_PTR_NULL(strchr(q, '\n'));
	CU_ASSERT_STRING_EQUAL(q + strlen(q) - 5, "\\n...");
	free(big);
}

VMC_SUITE(escape, NULL, NULL, VMC_TEST(every_byte_alone), VMC_TEST(control_sequences_print_as_text),
	  VMC_TEST(valid_utf8_passes_unsafe_code_points_do_not),
	  VMC_TEST(invalid_utf8_byte_by_byte), VMC_TEST(a_mebibyte_of_random_bytes),
	  VMC_TEST(a_line_is_escaped_whole), VMC_TEST(xml_well_formed_for_every_byte),
	  VMC_TEST(json_valid_utf8_for_every_byte), VMC_TEST(quoted_into_a_buffer))
