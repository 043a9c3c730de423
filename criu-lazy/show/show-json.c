/*
 * JSON output for `show`: a writer that keeps commas and indentation
 * right, and a generic protobuf-c message printer on top of it.
 *
 * The printer walks the message's descriptor, so every image type (and
 * every field added to a .proto later) prints without code of its own.
 * Strings that are not valid UTF-8 keep their valid parts; stray bytes are
 * printed as \u00XX so that the output always parses.
 */
#include <math.h>
#include <string.h>

#include "show/show-json.h"

void json_init(struct json_writer *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	j->first[0] = true;
}

static void json_indent(struct json_writer *j)
{
	fputc('\n', j->f);
	for (int i = 0; i < j->depth; i++)
		fputs("    ", j->f);
}

/* Separator and indentation before a value or a key. */
static void json_before(struct json_writer *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth == 0)
		return;
	if (!j->first[j->depth])
		fputc(',', j->f);
	j->first[j->depth] = false;
	json_indent(j);
}

static void json_open(struct json_writer *j, char c)
{
	json_before(j);
	fputc(c, j->f);
	if (j->depth + 1 < JSON_MAX_DEPTH)
		j->depth++;
	j->first[j->depth] = true;
}

static void json_close(struct json_writer *j, char c)
{
	bool empty = j->first[j->depth];

	if (j->depth > 0)
		j->depth--;
	if (!empty)
		json_indent(j);
	fputc(c, j->f);
	if (j->depth == 0)
		fputc('\n', j->f);
}

void json_begin_object(struct json_writer *j)
{
	json_open(j, '{');
}

void json_end_object(struct json_writer *j)
{
	json_close(j, '}');
}

void json_begin_array(struct json_writer *j)
{
	json_open(j, '[');
}

void json_end_array(struct json_writer *j)
{
	json_close(j, ']');
}

/* Length of the valid UTF-8 sequence at @s (at most @len bytes), 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t len)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond Unicode */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

static void json_put_string(FILE *f, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', f);
	for (size_t i = 0; i < len;) {
		size_t n;

		switch (s[i]) {
		case '"':  fputs("\\\"", f); i++; continue;
		case '\\': fputs("\\\\", f); i++; continue;
		case '\n': fputs("\\n", f); i++; continue;
		case '\t': fputs("\\t", f); i++; continue;
		case '\r': fputs("\\r", f); i++; continue;
		}
		if (s[i] < 0x20 || s[i] == 0x7f) {
			fprintf(f, "\\u%04x", s[i]);
			i++;
			continue;
		}
		n = utf8_seq_len(s + i, len - i);
		if (!n) {
			fprintf(f, "\\u%04x", s[i]);
			i++;
			continue;
		}
		fwrite(s + i, 1, n, f);
		i += n;
	}
	fputc('"', f);
}

void json_key(struct json_writer *j, const char *key)
{
	json_before(j);
	json_put_string(j->f, key, strlen(key));
	fputs(": ", j->f);
	j->after_key = true;
}

void json_string(struct json_writer *j, const char *s, size_t len)
{
	json_before(j);
	json_put_string(j->f, s, len);
}

void json_uint(struct json_writer *j, uint64_t v)
{
	json_before(j);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

void json_int(struct json_writer *j, int64_t v)
{
	json_before(j);
	fprintf(j->f, "%lld", (long long)v);
}

static void json_literal(struct json_writer *j, const char *lit)
{
	json_before(j);
	fputs(lit, j->f);
}

static void json_double(struct json_writer *j, double v)
{
	if (!isfinite(v)) {
		json_literal(j, "null");
		return;
	}
	json_before(j);
	fprintf(j->f, "%.17g", v);
}

static void json_base64(struct json_writer *j, const uint8_t *data, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	FILE *f = j->f;

	json_before(j);
	fputc('"', f);
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;

		if (n > 1)
			v |= (uint32_t)data[i + 1] << 8;
		if (n > 2)
			v |= data[i + 2];
		fputc(tab[(v >> 18) & 63], f);
		fputc(tab[(v >> 12) & 63], f);
		fputc(n > 1 ? tab[(v >> 6) & 63] : '=', f);
		fputc(n > 2 ? tab[v & 63] : '=', f);
	}
	fputc('"', f);
}

static size_t field_elem_size(const ProtobufCFieldDescriptor *fd)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return sizeof(uint32_t);
	}
}

static void json_enum(struct json_writer *j, const ProtobufCEnumDescriptor *ed, int v)
{
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, v);

	if (ev)
		json_string(j, ev->name, strlen(ev->name));
	else
		json_int(j, v);
}

static void json_field_value(struct json_writer *j, const ProtobufCFieldDescriptor *fd,
			     const void *p)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		json_int(j, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		json_uint(j, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		json_int(j, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		json_uint(j, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		json_double(j, *(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		json_double(j, *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		json_literal(j, *(const protobuf_c_boolean *)p ? "true" : "false");
		break;
	case PROTOBUF_C_TYPE_ENUM:
		json_enum(j, fd->descriptor, *(const int *)p);
		break;
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;

		if (s)
			json_string(j, s, strlen(s));
		else
			json_literal(j, "null");
		break;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;

		json_base64(j, b->data, b->len);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;

		if (m)
			json_message(j, m);
		else
			json_literal(j, "null");
		break;
	}
	}
}

/* Is an optional (or oneof) field set? */
static bool field_is_set(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd)
{
	const char *base = (const char *)msg;
	const void *member = base + fd->offset;

	if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + fd->quantifier_offset) == fd->id;
	if (fd->label != PROTOBUF_C_LABEL_OPTIONAL)
		return true;

	if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
		return *(const void *const *)member != NULL;
	if (fd->type == PROTOBUF_C_TYPE_STRING) {
		const void *s = *(const void *const *)member;

		return s && s != fd->default_value;
	}
	return *(const protobuf_c_boolean *)(base + fd->quantifier_offset);
}

void json_message(struct json_writer *j, const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *desc = msg->descriptor;
	const char *base = (const char *)msg;

	json_begin_object(j);
	for (unsigned i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &desc->fields[i];

		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + fd->quantifier_offset);
			const char *arr = *(char *const *)(base + fd->offset);
			size_t sz = field_elem_size(fd);

			if (!n)
				continue;
			json_key(j, fd->name);
			json_begin_array(j);
			for (size_t k = 0; k < n; k++)
				json_field_value(j, fd, arr + k * sz);
			json_end_array(j);
			continue;
		}
		if (!field_is_set(msg, fd))
			continue;
		json_key(j, fd->name);
		json_field_value(j, fd, base + fd->offset);
	}
	json_end_object(j);
}
