/* SPDX-License-Identifier: MIT */
/*
 * Guest strings made safe for the sink they reach: a terminal or a text
 * file, JUnit XML, JSON. The guest chooses its hostname, link and disk
 * names, kernel log lines, error texts; none of it may drive the user's
 * terminal, break a report's syntax or hand a reader invalid UTF-8
 * (doc/design.md, "Output escaping").
 *
 * One convention for text, the same on the terminal, in the text report
 * and in JUnit: valid printable UTF-8 passes as is; ESC is \e; newline,
 * tab and carriage return are \n, \t, \r; every other C0 control and DEL
 * is \xNN; a C1 control (U+0080..U+009F), a bidirectional formatting
 * character, U+2028, U+2029, U+FFFE and U+FFFF are \uNNNN; a byte that is
 * not part of valid UTF-8 (overlong forms, surrogates, beyond U+10FFFF,
 * truncated sequences) is \xNN, one per byte. NNNN and NN are lowercase
 * hex.
 */
#ifndef VMC_ESCAPE_H
#define VMC_ESCAPE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "macro.h"

enum {
	/*
	 * A backslash doubled: a guest string quoted into text tells exactly
	 * what the guest sent (a hostname "\e" reads "\\e", ESC reads "\e").
	 * Without it the escaping is idempotent: the last pass of a sink leaves
	 * text already quoted unchanged and still stops whatever was not.
	 */
	VMC_ESC_QUOTE = 1u << 0,
	/* Newline and tab kept as they are: multi-line text (evidence, notes). */
	VMC_ESC_LINES = 1u << 1,
};

/*
 * vmc_esc_write - the @len bytes of @s on @fp, escaped as the convention
 * above says, with @flags (VMC_ESC_*). A NUL byte in @s is \x00.
 */
void vmc_esc_write(FILE *fp, const char *s, size_t len, unsigned flags);

/* vmc_esc_fputs - vmc_esc_write() of the string @s; NULL writes nothing. */
void vmc_esc_fputs(FILE *fp, const char *s, unsigned flags);

/*
 * vmc_esc_str - @s escaped with @flags into a new string (free() it).
 * NULL for a NULL @s or on ENOMEM.
 */
char *vmc_esc_str(const char *s, unsigned flags);

/*
 * vmc_esc_buf - @s escaped with @flags into @buf (@size >= 4 bytes),
 * returned. A string whose escaped form does not fit is cut after a whole
 * character or escape and ends in "...". A NULL @s is "(null)", as printf
 * would say.
 */
const char *vmc_esc_buf(char *buf, size_t size, const char *s, unsigned flags);

/*
 * VMC_Q - a guest string quoted for a message the host builds (a step's
 * failure text, a note, an error): VMC_ESC_QUOTE into a buffer that lives
 * until the end of the enclosing block, so it goes straight into a printf
 * argument list. At most VMC_Q_SIZE - 1 bytes: a guest name is never that
 * long, and one that is (a 1 MiB hostname) does not make the message so.
 */
#define VMC_Q_SIZE 256
#define VMC_Q(s) vmc_esc_buf((char[VMC_Q_SIZE]){ 0 }, VMC_Q_SIZE, (s), VMC_ESC_QUOTE)

/*
 * vmc_esc_line - printf @fmt on @fp as one line: the formatted text escaped
 * with VMC_ESC_QUOTE, then a newline. For lines that quote guest strings;
 * @fmt itself holds no newline.
 */
void vmc_esc_line(FILE *fp, const char *fmt, ...) _printf_(2, 3);

/* vmc_esc_vline - the same with a va_list and @flags (VMC_ESC_*) of its own. */
void vmc_esc_vline(FILE *fp, unsigned flags, const char *fmt, va_list ap) _printf_(3, 0);

/*
 * vmc_esc_xml - @s (NULL: nothing) for XML 1.0 character data, or with
 * @attr for an attribute value in double quotes: the text escaped
 * (VMC_ESC_LINES, so controls XML forbids even as references read \xNN),
 * then & < > as entities, and in an attribute " and newline and tab as
 * references too. The result is well-formed for every byte sequence.
 */
void vmc_esc_xml(FILE *fp, const char *s, bool attr);

/*
 * vmc_esc_json - JSON text @json (as json-c writes it) on @fp, made valid
 * UTF-8 and safe to print: json-c escapes C0 controls but passes every
 * other byte through, so a byte that is not part of valid UTF-8 becomes
 * \ufffd (U+FFFD, one per byte; JSON has no way to carry the byte itself)
 * and DEL, C1 controls and the other characters above become \u escapes.
 * Outside strings json-c writes ASCII only, so every such byte is inside a
 * string and the escape keeps the text valid JSON. Strings that were valid
 * UTF-8 keep their value. A NULL @json writes nothing.
 */
void vmc_esc_json(FILE *fp, const char *json);

/* vmc_esc_json_str - vmc_esc_json() into a new string (free() it); NULL on ENOMEM. */
char *vmc_esc_json_str(const char *json);

#endif
