/*
 * pull_changes.cpp — the change pages of pull(): the log's window after the
 * caller's position, read in rounds as the log's owner, and for each key
 * changed its current row or its tombstone, as the caller may see it.
 *
 * A round reads up to n changes of the window (the batches holding them,
 * through one prepared statement), keeps each key once at its last change,
 * looks the keys' rows up as the caller through the primary key (one
 * statement for the whole round, typed key arrays), and adds to the page
 * the rows the caller may select, and tombstones of deleted keys it may have
 * seen (under row level security: the deleted row's image passes its SELECT
 * policies).  While the initial load is under way, only keys up to the last
 * one loaded count: the load reads the others as they are.
 *
 * Plain C-style code: it calls PostgreSQL directly and owns no C++ objects.
 */
#include "core/catalog_owner.hpp"
#include "track/pull.hpp"
#include "track/tracked_rel.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
}

namespace edgesync::track::pull {

namespace {

struct KeyEntry {
	const char *key; /* the key's JSON text: hash key */
	int index;		 /* into the page's rows, or a round's keys */
};

uint32
key_hash(const void *key, Size)
{
	const char *s = *static_cast<const char *const *>(key);
	return hash_bytes(reinterpret_cast<const unsigned char *>(s), strlen(s));
}

int
key_match(const void *a, const void *b, Size)
{
	return strcmp(*static_cast<const char *const *>(a), *static_cast<const char *const *>(b));
}

} // namespace

HTAB *
key_table(const char *name, MemoryContext cxt)
{
	HASHCTL ctl = {};
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(KeyEntry);
	ctl.hash = key_hash;
	ctl.match = key_match;
	ctl.hcxt = cxt;
	return hash_create(name, 256, &ctl, HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

namespace {

/* One change read from the log's window, in (xid, id) order. */
struct Change {
	const char *pk; /* nullptr for a truncate */
	char op;
	int64 version;
	const char *image;
	int64 xid;
	int64 id;
};

/* A key changed in a round: its last change, and its last delete's version and image. */
struct RoundKey {
	const char *pk;
	int last;	 /* index of its last change */
	int deleted; /* index of its last delete, -1 if none */
	bool typed;	 /* its columns' values are in the arrays, at position n */
	int n;
	text *row; /* as the caller may see it now, nullptr if none */
	int64 version;
	bool tombstone;
};

/* The numbers of a pg_snapshot's text: xmin (xmax: the second field). */
int64
snapshot_field(const char *snapshot, int field)
{
	const char *p = snapshot;
	for (int i = 0; i < field; i++)
		p = strchr(p, ':') + 1;
	return strtoll(p, nullptr, 10);
}

/*
 * Adds a row to the page (in the call's memory), unless the page already
 * holds max rows and the key is new to it: then returns false.  A key
 * already in the page moves to the end (its later change is the one that
 * counts).
 */
bool
page_add(Pull *p, const RoundKey *k, const Position *at)
{
	bool found;
	KeyEntry *entry = static_cast<KeyEntry *>(hash_search(p->keys, &k->pk, HASH_FIND, &found));
	if (!found && p->live >= p->max)
		return false;
	MemoryContext old = MemoryContextSwitchTo(p->cxt);
	if (found)
		p->rows[entry->index].removed = true;
	else {
		const char *key = pstrdup(k->pk);
		entry = static_cast<KeyEntry *>(hash_search(p->keys, &key, HASH_ENTER, &found));
		entry->key = key;
		p->live++;
	}
	if (p->count == p->capacity) {
		p->capacity *= 2;
		p->rows = static_cast<PageRow *>(repalloc(p->rows, sizeof(PageRow) * p->capacity));
	}
	entry->index = p->count;
	PageRow *r = &p->rows[p->count++];
	r->pk = entry->key;
	r->row = k->row != nullptr ? static_cast<text *>(PG_DETOAST_DATUM_COPY(PointerGetDatum(k->row)))
							   : nullptr;
	r->version = k->version;
	r->at = *at;
	r->removed = false;
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * Of the keys of a round that the caller cannot select but were deleted,
 * those whose tombstone the caller may have: under row level security,
 * those whose deleted row's image passes its SELECT policies.
 */
void
choose_tombstones(Pull *p, RoundKey *keys, int nkeys, const Change *changes)
{
	int candidates = 0;
	for (int i = 0; i < nkeys; i++)
		if (keys[i].row == nullptr && keys[i].deleted >= 0)
			candidates++;
	if (candidates == 0)
		return;
	if (check_enable_rls(p->relid, InvalidOid, true) != RLS_ENABLED) {
		for (int i = 0; i < nkeys; i++)
			keys[i].tombstone = keys[i].row == nullptr && keys[i].deleted >= 0;
		return;
	}
	/* Only deletes that kept an image can be judged; the others go to nobody. */
	Datum *images = static_cast<Datum *>(palloc(sizeof(Datum) * candidates));
	Datum *pks = static_cast<Datum *>(palloc(sizeof(Datum) * candidates));
	int *which = static_cast<int *>(palloc(sizeof(int) * candidates));
	int n = 0;
	for (int i = 0; i < nkeys; i++) {
		const Change *d = keys[i].deleted >= 0 ? &changes[keys[i].deleted] : nullptr;
		if (keys[i].row == nullptr && d != nullptr && d->image != nullptr) {
			images[n] = CStringGetTextDatum(d->image);
			pks[n] = CStringGetTextDatum(keys[i].pk);
			which[n++] = i;
		}
	}
	if (n == 0)
		return;
	Oid qual_types[1] = {REGCLASSOID};
	Datum qual_args[1] = {ObjectIdGetDatum(p->relid)};
	if (SPI_execute_with_args("SELECT edgesync._select_policy_qual($1)", 1, qual_types, qual_args,
							  nullptr, true, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "edgesync.pull(): could not read the policies of table %u", p->relid);
	bool isnull;
	char *qual = TextDatumGetCString(
		SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	char *table = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(p->rel)),
											 RelationGetRelationName(p->rel));
	char *sql =
		psprintf("SELECT l.n FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))"
				 " WITH ORDINALITY AS l(image, pk, n)"
				 " WHERE EXISTS (SELECT FROM pg_catalog.jsonb_populate_record(NULL::%s,"
				 " l.image::pg_catalog.jsonb OPERATOR(pg_catalog.||) l.pk::pg_catalog.jsonb) AS %s"
				 " WHERE %s)",
				 table, quote_identifier(RelationGetRelationName(p->rel)), qual);
	Oid types[2] = {TEXTARRAYOID, TEXTARRAYOID};
	Datum args[2] = {PointerGetDatum(construct_array(images, n, TEXTOID, -1, false, TYPALIGN_INT)),
					 PointerGetDatum(construct_array(pks, n, TEXTOID, -1, false, TYPALIGN_INT))};
	if (SPI_execute_with_args(sql, 2, types, args, nullptr, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "edgesync.pull(): could not evaluate the policies of table %u", p->relid);
	for (uint64 i = 0; i < SPI_processed; i++) {
		int64 at =
			DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		keys[which[at - 1]].tombstone = true;
	}
	SPI_freetuptable(SPI_tuptable);
}

/* The rows of a round's keys, as the caller may see them: into its RoundKeys. */
struct KeyRowsReceiver {
	DestReceiver base;
	Pull *p;
	PullRel *pr;
	RoundKey *keys;
	const int *typed_key; /* the RoundKey of the n-th key looked up */
	bool *included;		  /* the key passed the statement's filter */
	MemoryContext cxt;	  /* the round's */
};

bool
receive_key_row(TupleTableSlot *slot, DestReceiver *self)
{
	KeyRowsReceiver *r = reinterpret_cast<KeyRowsReceiver *>(self);
	MemoryContext old = MemoryContextSwitchTo(r->cxt);
	unpack_row(r->p, r->pr, slot, 1);
	int at =
		static_cast<int>(DatumGetInt64(slot->tts_values[0])) - 1; /* n: slot_getallattrs done */
	r->included[r->typed_key[at]] = true;
	/* No row (a key column is NULL): none the caller may see. */
	if (!r->p->nulls[r->pr->keys[0].attnum - 1]) {
		RoundKey *k = &r->keys[r->typed_key[at]];
		k->row = row_json(r->p);
		k->version = row_version(r->p);
	}
	MemoryContextSwitchTo(old);
	return true;
}

} // namespace

/*
 * One round: up to round changes after p->at from the log's window, as the
 * log's owner; the rows and tombstones of their keys as the caller, added
 * to the page.  Returns false when the page is full (p->at: after the last
 * row taken) or when there was nothing left to read; *count: changes read.
 */
bool
read_round(Pull *p, int round, int *count, bool *done)
{
	static SPIPlanPtr window_plan = nullptr;
	const Position *at = &p->at;
	const char *window = at->window != nullptr ? at->window : p->now;

	/* As the log's owner: the batches holding the next round + 1 changes. */
	Oid types[8] = {OIDOID,			INT8OID, INT8OID, PG_SNAPSHOTOID,
					PG_SNAPSHOTOID, INT8OID, INT8OID, INT8OID};
	Datum args[8] = {ObjectIdGetDatum(p->relid),
					 Int64GetDatum(at->seen != nullptr ? snapshot_field(at->seen, 0) : 0),
					 Int64GetDatum(snapshot_field(window, 1)),
					 DirectFunctionCall1(pg_snapshot_in, CStringGetDatum(window)),
					 at->seen != nullptr
						 ? DirectFunctionCall1(pg_snapshot_in, CStringGetDatum(at->seen))
						 : Datum(0),
					 Int64GetDatum(at->last_xid),
					 Int64GetDatum(at->last_id),
					 Int64GetDatum(static_cast<int64>(round) + 1)};
	char nulls[9] = {' ',
					 ' ',
					 ' ',
					 ' ',
					 at->seen != nullptr ? ' ' : 'n',
					 at->window != nullptr ? ' ' : 'n',
					 at->window != nullptr ? ' ' : 'n',
					 ' ',
					 '\0'};
	edgesync::OwnerRows batches = edgesync::query_as_catalog_owner(
		"sync_log_data", &window_plan,
		"SELECT s.pruned_xid, b.xid, b.first_id, b.ops, b.versions, b.pks, b.images"
		"  FROM edgesync.sync_log_state s"
		"  LEFT JOIN LATERAL ("
		"       SELECT r.xid, r.first_id, r.ops, r.versions, r.pks, r.images"
		"         FROM (SELECT d.xid, d.first_id, d.ops, d.versions, d.pks, d.images, f.fresh,"
		"                      pg_catalog.sum(f.fresh) OVER (ORDER BY d.xid, d.first_id) AS upto"
		"                 FROM edgesync.sync_log_data d"
		"                CROSS JOIN LATERAL ("
		"                      SELECT CASE WHEN d.xid OPERATOR(pg_catalog.=) $6"
		"                             THEN pg_catalog.int8smaller("
		"                                  pg_catalog.cardinality(d.ops),"
		"                                  d.first_id OPERATOR(pg_catalog.+)"
		"                                  pg_catalog.cardinality(d.ops) OPERATOR(pg_catalog.-)"
		"                                  1 OPERATOR(pg_catalog.-) $7)::pg_catalog.int4"
		"                             ELSE pg_catalog.cardinality(d.ops) END AS fresh) f"
		"                WHERE d.xid OPERATOR(pg_catalog.>=) $2"
		"                  AND d.xid OPERATOR(pg_catalog.<) $3"
		"                  AND d.relid OPERATOR(pg_catalog.=) $1"
		"                  AND pg_catalog.pg_visible_in_snapshot("
		"                      d.xid::pg_catalog.text::pg_catalog.xid8, $4)"
		"                  AND ($5 IS NULL OR NOT pg_catalog.pg_visible_in_snapshot("
		"                      d.xid::pg_catalog.text::pg_catalog.xid8, $5))"
		"                  AND ($6 IS NULL"
		"                       OR ROW(d.xid, d.first_id OPERATOR(pg_catalog.+)"
		"                              pg_catalog.cardinality(d.ops) OPERATOR(pg_catalog.-) 1)"
		"                          OPERATOR(pg_catalog.>) ROW($6, $7))) r"
		"        WHERE r.upto OPERATOR(pg_catalog.-) r.fresh OPERATOR(pg_catalog.<) $8"
		"        ORDER BY r.xid, r.first_id) b ON true",
		8, types, args, nulls);
	if (batches.count == 0)
		elog(ERROR, "edgesync.sync_log_state is empty");

	/* The changes after the position, in (xid, id) order: up to round + 1. */
	Change *changes = static_cast<Change *>(palloc(sizeof(Change) * (round + 1)));
	int total = 0;
	for (uint64 b = 0; b < batches.count && total <= round; b++) {
		Datum v[7];
		bool isnull[7];
		heap_deform_tuple(batches.rows[b], batches.desc, v, isnull);
		if (b == 0 && !isnull[0]) {
			int64 pruned = DatumGetInt64(v[0]);
			int64 lo = at->seen != nullptr ? snapshot_field(at->seen, 0) : 0;
			if (pruned >= lo && pruned > 0)
				ereport(
					ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cursor is older than the pruned part of the change log"),
					 errdetail("edgesync.prune() deleted changes this cursor had not read yet."),
					 errhint("Start again with a NULL cursor and reload the current rows.")));
		}
		if (isnull[1])
			continue; /* no batch: only the prune state */
		int64 xid = DatumGetInt64(v[1]);
		int64 first_id = DatumGetInt64(v[2]);
		Datum *ops, *versions, *pks, *images = nullptr;
		bool *version_nulls, *pk_nulls, *image_nulls = nullptr;
		int n, n_images;
		deconstruct_array(DatumGetArrayTypeP(v[3]), CHAROID, 1, true, TYPALIGN_CHAR, &ops, nullptr,
						  &n);
		deconstruct_array(DatumGetArrayTypeP(v[4]), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &versions, &version_nulls, &n);
		deconstruct_array(DatumGetArrayTypeP(v[5]), TEXTOID, -1, false, TYPALIGN_INT, &pks,
						  &pk_nulls, &n);
		if (!isnull[6])
			deconstruct_array(DatumGetArrayTypeP(v[6]), TEXTOID, -1, false, TYPALIGN_INT, &images,
							  &image_nulls, &n_images);
		for (int e = 0; e < n && total <= round; e++) {
			int64 id = first_id + e;
			if (at->window != nullptr && xid == at->last_xid && id <= at->last_id)
				continue;
			Change *c = &changes[total++];
			c->pk = pk_nulls[e] ? nullptr : TextDatumGetCString(pks[e]);
			c->op = DatumGetChar(ops[e]);
			c->version = version_nulls[e] ? 0 : DatumGetInt64(versions[e]);
			c->image = images != nullptr && e < n_images && !image_nulls[e]
						   ? TextDatumGetCString(images[e])
						   : nullptr;
			c->xid = xid;
			c->id = id;
		}
	}
	*count = Min(total, round);
	if (*count == 0)
		return false;

	/*
	 * The position after each change read: the window's when it was read to
	 * its end (total <= round), otherwise inside it.
	 */
	*done = total <= round;
	const char *inside_head = head_of(p, at->seen, window);
	auto position_after = [&](int i, Position *pos) {
		if (i == total - 1 && *done) {
			pos->seen = window;
			pos->window = nullptr;
			pos->last_xid = pos->last_id = 0;
			pos->head = nullptr; /* filled below, once */
		} else {
			pos->seen = at->seen;
			pos->window = window;
			pos->last_xid = changes[i].xid;
			pos->last_id = changes[i].id;
			pos->head = inside_head;
		}
	};
	const char *done_head = *done ? head_of(p, window, nullptr) : nullptr;
	Position end;
	position_after(*count - 1, &end);
	if (end.head == nullptr)
		end.head = done_head;

	/*
	 * As the caller: the rows and tombstones it may see, keys at their last
	 * change.  While loading with no key loaded yet, none applies.
	 */
	bool stopped = false;
	if (!p->loading || p->load != nullptr) {
		for (int i = 0; i < *count; i++)
			if (changes[i].op == 'T')
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("table \"%s\" was truncated after this cursor",
								DatumGetCString(
									DirectFunctionCall1(regclassout, ObjectIdGetDatum(p->relid)))),
						 errdetail("TRUNCATE deletes rows without tombstones: a client cannot "
								   "tell which of its rows are gone."),
						 errhint("Start again with a NULL cursor and reload the current rows.")));

		/* Each key once, at its last change. */
		HTAB *seen_keys = key_table("edgesync pull round keys", CurrentMemoryContext);
		RoundKey *keys = static_cast<RoundKey *>(palloc(sizeof(RoundKey) * (*count)));
		int nkeys = 0;
		for (int i = 0; i < *count; i++) {
			if (changes[i].pk == nullptr)
				continue;
			bool found;
			KeyEntry *entry =
				static_cast<KeyEntry *>(hash_search(seen_keys, &changes[i].pk, HASH_ENTER, &found));
			if (!found) {
				entry->key = changes[i].pk;
				entry->index = nkeys;
				RoundKey *k = &keys[nkeys++];
				k->pk = changes[i].pk;
				k->deleted = -1;
				k->row = nullptr;
				k->tombstone = false;
				k->typed = false;
			}
			RoundKey *k = &keys[entry->index];
			k->last = i;
			if (changes[i].op == 'D')
				k->deleted = i;
		}

		/* Their values, as arrays by key column. */
		PullRel *pr = pull_rel_for(p->rel);
		Datum *columns[INDEX_MAX_KEYS];
		for (int c = 0; c < pr->nkeys; c++)
			columns[c] = static_cast<Datum *>(palloc(sizeof(Datum) * (nkeys + 1)));
		int ntyped = 0;
		int level = edgesync::track::pin_output_settings();
		for (int i = 0; i < nkeys; i++) {
			Datum values[INDEX_MAX_KEYS];
			if (!decode_key(pr, keys[i].pk, values)) {
				/* Matches no row; a delete's tombstone while not loading (no position to compare).
				 */
				keys[i].tombstone = false;
				continue;
			}
			for (int c = 0; c < pr->nkeys; c++)
				columns[c][ntyped] = values[c];
			keys[i].typed = true;
			keys[i].n = ntyped++;
		}
		Datum load_values[INDEX_MAX_KEYS];
		if (p->loading && !decode_key(pr, p->load, load_values))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cursor's load position does not match the primary key of table \"%s\"",
							RelationGetRelationName(p->rel)),
					 errdetail("The primary key changed during the initial load."),
					 errhint("Start again with a NULL cursor and reload the current rows.")));
		edgesync::track::unpin_output_settings(level);

		/* Rows by key, as the caller may select them. */
		int *typed_key = static_cast<int *>(palloc(sizeof(int) * (ntyped + 1)));
		for (int i = 0; i < nkeys; i++)
			if (keys[i].typed)
				typed_key[keys[i].n] = i;
		bool *included = static_cast<bool *>(palloc0(sizeof(bool) * (nkeys + 1)));
		if (ntyped > 0) {
			Datum args[2 * INDEX_MAX_KEYS];
			for (int c = 0; c < pr->nkeys; c++) {
				const PullKey *key = &pr->keys[c];
				args[c] = PointerGetDatum(construct_array(
					columns[c], ntyped, key->type, key->typlen, key->typbyval, key->typalign));
				if (p->loading)
					args[pr->nkeys + c] = load_values[c];
			}
			KeyRowsReceiver receiver = {};
			receiver.base = {receive_key_row, receiver_startup, receiver_shutdown, nullptr,
							 DestNone};
			receiver.p = p;
			receiver.pr = pr;
			receiver.keys = keys;
			receiver.typed_key = typed_key;
			receiver.included = included;
			receiver.cxt = CurrentMemoryContext;
			run_as_caller(p->loading ? pr->rows_loaded : pr->rows,
						  p->loading ? 2 * pr->nkeys : pr->nkeys, args, &receiver.base);
		}
		/* A key that is no key of the table now: while loading, compared with nothing. */
		for (int i = 0; i < nkeys; i++)
			if (!keys[i].typed && !p->loading)
				included[i] = true;
		choose_tombstones(p, keys, nkeys, changes);

		/* Into the page, in the order of their last change. */
		int *order = static_cast<int *>(palloc(sizeof(int) * (nkeys + 1)));
		int norder = 0;
		for (int i = 0; i < *count; i++) {
			if (changes[i].pk == nullptr)
				continue;
			bool found;
			KeyEntry *entry =
				static_cast<KeyEntry *>(hash_search(seen_keys, &changes[i].pk, HASH_FIND, &found));
			if (keys[entry->index].last == i)
				order[norder++] = entry->index;
		}
		for (int o = 0; o < norder && !stopped; o++) {
			RoundKey *k = &keys[order[o]];
			if (!included[order[o]] || (k->row == nullptr && !k->tombstone))
				continue;
			if (k->row == nullptr)
				k->version = changes[k->deleted].version;
			Position pos;
			position_after(k->last, &pos);
			if (pos.head == nullptr)
				pos.head = done_head;
			if (!page_add(p, k, &pos)) {
				/* Full: go on after the last row taken, its later rows come next time. */
				p->at = p->rows[p->count - 1].at;
				stopped = true;
			}
		}
	}
	if (stopped)
		return false;
	p->at = end;
	return true;
}

} // namespace edgesync::track::pull
