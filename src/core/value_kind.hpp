/*
 * value_kind.hpp — how edgesync writes a value of a given type into JSON.
 *
 * The plugin's json format (src/decode) and the tracking side's keys, row
 * images and pull() rows (src/track) write the same types the same way: one
 * classifier decides, by the column's base type, which shape a value takes.
 */
#pragma once

#include "core/postgres.hpp"

namespace edgesync {

enum class ValueKind : char {
	kInt,	  /* int2, int4, int8: JSON number */
	kOid,	  /* oid: JSON number, through its output function */
	kFloat,	  /* float4, float8: number; NaN and infinities as strings */
	kNumeric, /* numeric: JSON string in the decoded stream (exact), number in pull() */
	kBool,	  /* true/false */
	kJson,	  /* json: embedded */
	kJsonb,	  /* jsonb: embedded */
	kText,	  /* text, varchar (not bpchar: 'a' = 'a '): the bytes, as a JSON string */
	kOther	  /* anything else: its text output as a JSON string */
};

/* The kind of a value of typid (a domain is its base type). */
ValueKind value_kind_of(Oid typid);

} // namespace edgesync
