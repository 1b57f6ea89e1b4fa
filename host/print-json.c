/* SPDX-License-Identifier: MIT */
/*
 * JSON from protobuf-c descriptors: one walk serves every message, so the
 * JSON can never drift from the wire contract when fields are added.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "escape.h"
#include "print.h"

static struct json_object *json_hex(const ProtobufCBinaryData *b)
{
	static const char digits[] = "0123456789abcdef";
	struct json_object *o;
	char *s = malloc(2 * b->len + 1);

	if (!s)
		return NULL;
	for (size_t i = 0; i < b->len; i++) {
		s[2 * i] = digits[b->data[i] >> 4];
		s[2 * i + 1] = digits[b->data[i] & 15];
	}
	s[2 * b->len] = '\0';
	o = json_object_new_string_len(s, (int)(2 * b->len));
	free(s);
	return o;
}

static struct json_object *json_enum(const ProtobufCFieldDescriptor *f, int value)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(f->descriptor, value);

	return v ? json_object_new_string(v->name) : json_object_new_int(value);
}

/* Size of one element of a field of @type as protobuf-c lays it out. */
static size_t element_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
	default:
		return sizeof(void *);
	}
}

/*
 * One value of field @f stored at @p. Sets *@ok false on ENOMEM (a NULL
 * return is otherwise JSON null).
 */
static struct json_object *json_value(const ProtobufCFieldDescriptor *f, const void *p, bool *ok)
{
	struct json_object *o;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		o = json_object_new_int(*(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		o = json_object_new_int64(*(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		o = json_object_new_int64(*(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		o = json_object_new_uint64(*(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		o = json_object_new_double(*(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		o = json_object_new_double(*(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		o = json_object_new_boolean(*(const protobuf_c_boolean *)p);
		break;
	case PROTOBUF_C_TYPE_ENUM:
		o = json_enum(f, *(const int *)p);
		break;
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(const char *const *)p;

		o = json_object_new_string(s ? s : "");
		break;
	}
	case PROTOBUF_C_TYPE_BYTES:
		o = json_hex(p);
		break;
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(const ProtobufCMessage *const *)p;

		if (!m)
			return NULL;
		o = vmc_json_from_message(m);
		break;
	}
	default:
		o = NULL;
		break;
	}
	if (!o)
		*ok = false;
	return o;
}

static struct json_object *json_array(const ProtobufCFieldDescriptor *f, const char *base, size_t n,
				      bool *ok)
{
	struct json_object *a = json_object_new_array_ext((int)n);
	size_t size = element_size(f->type);

	if (!a) {
		*ok = false;
		return NULL;
	}
	for (size_t i = 0; i < n && *ok; i++)
		if (json_object_array_add(a, json_value(f, base + i * size, ok)) < 0)
			*ok = false;
	return a;
}

struct json_object *vmc_json_from_message(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d;
	struct json_object *o;
	bool ok = true;

	if (!m)
		return NULL;
	d = m->descriptor;
	o = json_object_new_object();
	for (unsigned i = 0; o && ok && i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *member = (const char *)m + f->offset;
		const char *quant = (const char *)m + f->quantifier_offset;
		struct json_object *v;

		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(const uint32_t *)quant != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED)
			v = json_array(f, *(const char *const *)member, *(const size_t *)quant,
				       &ok);
		else
			v = json_value(f, member, &ok);
		if (json_object_object_add(o, f->name, v) < 0) {
			json_object_put(v);
			ok = false;
		}
	}
	if (o && !ok) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

int vmc_json_print(FILE *fp, const ProtobufCMessage *m)
{
	struct json_object *o = vmc_json_from_message(m);
	int r = 0;

	if (!o)
		return -ENOMEM;
	/* Agent strings are the guest's: made valid UTF-8 and printable on the way out. */
	vmc_esc_json(fp, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
	if (fputc('\n', fp) == EOF || ferror(fp) || fflush(fp) == EOF)
		r = -EIO;
	json_object_put(o);
	return r;
}
