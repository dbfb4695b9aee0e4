/*
 * options.hpp — the output plugin's options, parsed and checked.
 *
 * pg_recvlogical -o name=value and the options of pg_logical_slot_get_changes
 * arrive as (name, value) pairs; a value may be missing ("-o name").  This
 * file turns them into an Options value or throws edgesync::Error naming the
 * option: 42704 for an unknown option, 22023 for a bad value, 42601 for an
 * option given twice.
 *
 * Pure C++: includes no PostgreSQL header (unit-tested in test/unit).
 */
#pragma once

#include "core/error.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgesync::decode {

enum class Format { kJson, kSql };
enum class ColumnsMode { kPolicy, kRaw };
/* sql format: what the stream does about the replica's tables (docs/replica.md). */
enum class SchemaChanges { kApply, kCheck };

/* schema.table as the user wrote it, identifier rules applied. */
struct QualifiedName {
	std::string schema;
	std::string table;
	bool operator==(const QualifiedName &) const = default;
};

/* sql format: consecutive changes written as one statement (docs/output-format.md). */
constexpr int kDefaultBatchRows = 1000;
constexpr int kMaxBatchRows = 100000;
constexpr int kDefaultBatchBytes = 1 << 20;
constexpr int kMinBatchBytes = 1024;
constexpr int kMaxBatchBytes = 256 << 20;

struct Options {
	Format format = Format::kJson;
	bool include_transaction = false;
	bool skip_origins = false;
	ColumnsMode columns = ColumnsMode::kPolicy;
	bool has_tables = false;				   /* "tables" given: only these */
	std::vector<QualifiedName> tables;		   /* when has_tables */
	std::optional<std::string> source;		   /* sql format: the name of this source */
	int batch_rows = kDefaultBatchRows;		   /* sql format: most changes per statement */
	int batch_bytes = kDefaultBatchBytes;	   /* sql format: a statement's size cap */
	std::optional<std::string> replica_schema; /* sql format: everything on the replica goes here */
	SchemaChanges schema_changes = SchemaChanges::kApply; /* sql format */
};

using RawOption = std::pair<std::string, std::optional<std::string>>;

/* Parses every option; throws edgesync::Error on the first bad one. */
Options parse_options(const std::vector<RawOption> &raw);

/* "true"/"false"/"on"/"off"/"yes"/"no"/"1"/"0", any case; nullopt otherwise. */
std::optional<bool> parse_bool(std::string_view text);

/*
 * A comma-separated list of schema.table names.  Unquoted names are
 * lower-cased (ASCII), "quoted" names are taken as written ("" is a quote);
 * spaces around names are ignored.  Throws Error(22023) on a malformed list.
 */
std::vector<QualifiedName> parse_table_list(std::string_view text);

} // namespace edgesync::decode
