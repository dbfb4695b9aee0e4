/*
 * value_kind.cpp — the one type classifier for JSON output (value_kind.hpp).
 */
#include "core/value_kind.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
}

namespace edgesync {

ValueKind
value_kind_of(Oid typid)
{
	switch (getBaseType(typid)) {
	case INT2OID:
	case INT4OID:
	case INT8OID:
		return ValueKind::kInt;
	case OIDOID:
		return ValueKind::kOid;
	case FLOAT4OID:
	case FLOAT8OID:
		return ValueKind::kFloat;
	case NUMERICOID:
		return ValueKind::kNumeric;
	case BOOLOID:
		return ValueKind::kBool;
	case JSONOID:
		return ValueKind::kJson;
	case JSONBOID:
		return ValueKind::kJsonb;
	case TEXTOID:
	case VARCHAROID:
		return ValueKind::kText;
	default:
		return ValueKind::kOther;
	}
}

} // namespace edgesync
