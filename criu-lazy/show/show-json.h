/*
 * A small pretty-printing JSON writer (4-space indent, like crit's) and a
 * printer of any protobuf-c message, driven by its descriptor.
 */
#ifndef CRIU_LAZY_SHOW_JSON_H
#define CRIU_LAZY_SHOW_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#define JSON_MAX_DEPTH 64

struct json_writer {
	FILE *f;
	int depth;
	bool first[JSON_MAX_DEPTH];	/* nothing written yet at this depth */
	bool after_key;			/* a value completes "key": */
};

void json_init(struct json_writer *j, FILE *f);
void json_begin_object(struct json_writer *j);
void json_end_object(struct json_writer *j);
void json_begin_array(struct json_writer *j);
void json_end_array(struct json_writer *j);
void json_key(struct json_writer *j, const char *key);
void json_string(struct json_writer *j, const char *s, size_t len);
void json_uint(struct json_writer *j, uint64_t v);
void json_int(struct json_writer *j, int64_t v);

/*
 * The message as a JSON object, fields in number order as crit prints
 * them: unset optional fields and empty repeated ones are left out, enums
 * by name, bytes in base64, 64-bit integers as plain numbers.
 */
void json_message(struct json_writer *j, const ProtobufCMessage *msg);

#endif
