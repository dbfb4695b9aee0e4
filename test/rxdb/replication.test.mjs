// RxDB devices of two hospitals syncing with edgesync (docs/tracking.md,
// "Offline clients with RxDB"), run by test/rxdb/run.sh against a real
// PostgreSQL cluster (PGHOST, PGPORT): each device is an RxDB database in
// memory whose replication handlers call edgesync.rxdb_pull() and
// edgesync.rxdb_push() through node-postgres, as the role of a clinic under
// row level security by hospital_id.
//
// The story: two tablets of hospital 1 and one of hospital 2 load the table
// (the hospital writes during the first load); the tablets go offline; both
// of hospital 1 edit, insert and delete, one of them a row the hospital
// changes meanwhile; they come back.  At the end both tablets and the
// hospital hold the same rows, the conflict is resolved by the documented
// rule (the hospital's fields win, the tablet's other changes are kept),
// nothing is lost, and the tablet of hospital 2 never saw a row of
// hospital 1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import pg from 'pg';
import { createRxDatabase } from 'rxdb';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { replicateRxCollection } from 'rxdb/plugins/replication';

const database = 'rxdb_devices';
const table = 'hospital_patients';
const fields = ['id', 'hospital_id', 'name', 'ward', 'version'];

// The conflict rule of docs/tracking.md: a three-way merge by field.  Fields
// the hospital changed keep the hospital's value; fields only the device
// changed keep the device's; a row the hospital deleted stays deleted.
const mergeByField = {
	isEqual(a, b) {
		return (
			!!a._deleted === !!b._deleted && fields.every((f) => (a[f] ?? null) === (b[f] ?? null))
		);
	},
	resolve({ newDocumentState, assumedMasterState, realMasterState }) {
		if (realMasterState._deleted) return realMasterState;
		const merged = { ...realMasterState };
		for (const f of ['name', 'ward']) {
			const base = assumedMasterState?.[f] ?? null;
			if ((newDocumentState[f] ?? null) !== base && (realMasterState[f] ?? null) === base)
				merged[f] = newDocumentState[f];
		}
		return merged;
	},
};

const schema = {
	version: 0,
	primaryKey: 'id',
	type: 'object',
	properties: {
		id: { type: 'string', maxLength: 36 },
		hospital_id: { type: 'integer' },
		name: { type: 'string' },
		ward: { type: 'string' },
		version: { type: 'integer' },
		created_at: { type: 'string' },
		updated_at: { type: 'string' },
	},
	required: ['id'],
};

function connect(options = {}) {
	return new pg.Client({ database, ...options });
}

// The hospital itself: the table's owner, not under row level security.
let hospital;
// Every document any pull handler returned, by device.
const pulledBy = new Map();

class Device {
	constructor(name, hospitalId) {
		this.name = name;
		this.hospitalId = hospitalId;
		this.calls = { pull: 0, push: 0 };
		this.conflicts = []; // what rxdb_push() returned as conflicts
		this.afterPull = null; // a hook run once after a pull call (writes during the load)
		pulledBy.set(name, []);
	}

	async open() {
		this.db = await createRxDatabase({
			name: this.name,
			storage: getRxStorageMemory(),
			multiInstance: false,
			hashFunction: async (s) => createHash('sha256').update(s).digest('hex'),
		});
		await this.db.addCollections({ patients: { schema, conflictHandler: mergeByField } });
		this.patients = this.db.patients;
		// The clinic's role, its hospital set for row level security.
		this.pg = connect({ user: 'clinic', options: `-c app.hospital_id=${this.hospitalId}` });
		await this.pg.connect();
	}

	// Online until in sync, then offline again.
	async sync() {
		const device = this;
		const replication = replicateRxCollection({
			collection: this.patients,
			replicationIdentifier: `edgesync-${table}`,
			live: true,
			retryTime: 100,
			pull: {
				batchSize: 7,
				async handler(checkpoint, batchSize) {
					device.calls.pull++;
					const { rows } = await device.pg.query('SELECT edgesync.rxdb_pull($1, $2, $3) AS page', [
						table,
						checkpoint ?? null,
						batchSize,
					]);
					pulledBy.get(device.name).push(...rows[0].page.documents);
					if (device.afterPull) {
						const hook = device.afterPull;
						device.afterPull = null;
						await hook();
					}
					return rows[0].page;
				},
			},
			push: {
				batchSize: 5,
				async handler(changeRows) {
					device.calls.push++;
					const { rows } = await device.pg.query('SELECT edgesync.rxdb_push($1, $2) AS conflicts', [
						table,
						JSON.stringify(changeRows),
					]);
					device.conflicts.push(...rows[0].conflicts);
					return rows[0].conflicts;
				},
			},
		});
		const errors = [];
		replication.error$.subscribe((e) => errors.push(e));
		await replication.awaitInSync();
		// What this device pushed comes back with the versions the hospital
		// gave it: pull once more (a live client does on the server's signal).
		replication.reSync();
		await replication.awaitInSync();
		await replication.cancel();
		assert.deepEqual(errors, [], `${this.name}: replication errors`);
	}

	// The device's rows, as the table shows them.
	async rows() {
		const docs = await this.patients.find().exec();
		return docs.map((d) => pick(d.toJSON())).sort(byId);
	}

	async close() {
		await this.db.remove();
		await this.pg.end();
	}
}

function pick(row) {
	return Object.fromEntries(fields.map((f) => [f, row[f] ?? null]));
}

function byId(a, b) {
	return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

// The rows of one hospital in the table.
async function tableRows(hospitalId) {
	const { rows } = await hospital.query(
		`SELECT id::text, hospital_id, name, ward, version::int FROM ${table} WHERE hospital_id = $1 ORDER BY id`,
		[hospitalId],
	);
	return rows.map(pick).sort(byId);
}

// Keys in key order (uuid order is the text order of their lower-case form).
const ids = Array.from({ length: 60 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
const tabletA = new Device('tablet-a', 1);
const tabletB = new Device('tablet-b', 1);
const tabletC = new Device('tablet-c', 2);

before(async () => {
	const admin = connect({ database: 'postgres' });
	await admin.connect();
	await admin.query(`DROP DATABASE IF EXISTS ${database}`);
	await admin.query(`CREATE DATABASE ${database}`);
	await admin.query('DROP ROLE IF EXISTS clinic');
	await admin.query('CREATE ROLE clinic LOGIN');
	await admin.end();

	hospital = connect();
	await hospital.connect();
	await hospital.query(`
		CREATE EXTENSION edgesync;
		CREATE TABLE ${table} (id uuid PRIMARY KEY, hospital_id int NOT NULL, name text, ward text);
		-- Rows from before track(): a new device gets them too.
		INSERT INTO ${table}
		SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
		       CASE WHEN g % 3 = 2 THEN 2 ELSE 1 END, 'patient ' || g, 'A'
		  FROM generate_series(0, 44) g;
		SELECT edgesync.track('${table}');
		UPDATE ${table} SET ward = 'B' WHERE hospital_id = 1 AND right(id::text, 2)::int % 5 = 0;
		ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY;
		CREATE POLICY own_hospital ON ${table}
		    USING (hospital_id = current_setting('app.hospital_id')::int)
		    WITH CHECK (hospital_id = current_setting('app.hospital_id')::int);
		GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} TO clinic;
	`);
	for (const device of [tabletA, tabletB, tabletC]) await device.open();
});

after(async () => {
	for (const device of [tabletA, tabletB, tabletC]) await device.close();
	await hospital?.end();
});

test('initial load: each tablet gets every row of its hospital, also with writes during the load', async () => {
	// While tablet A loads (after its first page), the hospital writes: a row
	// already loaded, one not yet loaded, a new one at each end, a delete.
	tabletA.afterPull = async () => {
		await hospital.query(`
			UPDATE ${table} SET ward = 'during load' WHERE id IN ('${ids[0]}', '${ids[40]}');
			DELETE FROM ${table} WHERE id = '${ids[3]}';
			INSERT INTO ${table} VALUES ('${ids[45]}', 1, 'admitted during load', 'A');
			UPDATE ${table} SET id = '00000000-0000-4000-7000-000000000000' WHERE id = '${ids[4]}';
		`);
	};
	await tabletA.sync();
	await tabletB.sync();
	await tabletC.sync();
	const hospital1 = await tableRows(1);
	assert.equal(hospital1.length, 30, 'hospital 1 rows');
	assert.deepEqual(await tabletA.rows(), hospital1, 'tablet A holds hospital 1');
	assert.deepEqual(await tabletB.rows(), hospital1, 'tablet B holds hospital 1');
	assert.deepEqual(await tabletC.rows(), await tableRows(2), 'tablet C holds hospital 2');
	assert.ok(tabletA.calls.pull >= 5, `tablet A loaded in pages (${tabletA.calls.pull} calls)`);
	// No document came twice at the same version.
	const seen = new Set();
	for (const d of pulledBy.get('tablet-a')) {
		const key = `${d.id}@${d.version}@${d._deleted}`;
		assert.ok(!seen.has(key), `tablet A got ${key} twice`);
		seen.add(key);
	}
});

const conflicted = ids[6]; // hospital 1
const editedOnA = ids[7];
const deletedOnA = ids[9];
const editedOnB = ids[10];
const deletedByHospital = ids[12];
const newOnA = randomUUID();
const newOnB = randomUUID();

test('offline edits on both tablets, one conflicting with the hospital, then reconnect', async () => {
	// Offline: tablet A renames a patient and moves them (the hospital moves them too).
	const onA = await tabletA.patients.findOne(conflicted).exec();
	await onA.incrementalPatch({ name: 'renamed on A', ward: 'ward of A' });
	await (await tabletA.patients.findOne(editedOnA).exec()).incrementalPatch({ ward: 'C' });
	await (await tabletA.patients.findOne(deletedOnA).exec()).remove();
	await tabletA.patients.insert({ id: newOnA, hospital_id: 1, name: 'new on A', ward: 'A' });
	// Offline: tablet B.
	await (await tabletB.patients.findOne(editedOnB).exec()).incrementalPatch({ name: 'edited on B' });
	await tabletB.patients.insert({ id: newOnB, hospital_id: 1, name: 'new on B', ward: 'B' });
	// Meanwhile the hospital.
	await hospital.query(`
		UPDATE ${table} SET ward = 'ICU' WHERE id = '${conflicted}';
		DELETE FROM ${table} WHERE id = '${deletedByHospital}';
		UPDATE ${table} SET name = 'changed at hospital 2' WHERE hospital_id = 2 AND id = '${ids[5]}';
	`);

	// Back online: A, B, then A again (for B's changes), and C.
	await tabletA.sync();
	await tabletB.sync();
	await tabletA.sync();
	await tabletC.sync();

	const hospital1 = await tableRows(1);
	assert.deepEqual(await tabletA.rows(), hospital1, 'tablet A holds what the hospital holds');
	assert.deepEqual(await tabletB.rows(), hospital1, 'tablet B holds what the hospital holds');
	assert.deepEqual(await tabletC.rows(), await tableRows(2), 'tablet C holds hospital 2');

	const row = (id) => hospital1.find((r) => r.id === id);
	// The conflict: the hospital answered tablet A's push with its row ...
	assert.deepEqual(
		tabletA.conflicts.map((d) => [d.id, d.ward]),
		[[conflicted, 'ICU']],
		'one conflict, carrying the hospital row',
	);
	assert.deepEqual(tabletB.conflicts, [], 'no conflict for tablet B');
	// ... and it was resolved by the rule: the hospital's ward, tablet A's name.
	assert.equal(row(conflicted).ward, 'ICU', "the hospital's change of the ward wins");
	assert.equal(row(conflicted).name, 'renamed on A', "tablet A's change of the name is kept");
	// Nothing lost.
	assert.equal(row(editedOnA).ward, 'C');
	assert.equal(row(editedOnB).name, 'edited on B');
	assert.equal(row(newOnA)?.name, 'new on A');
	assert.equal(row(newOnB)?.name, 'new on B');
	assert.equal(row(deletedOnA), undefined, 'deleted on A');
	assert.equal(row(deletedByHospital), undefined, 'deleted by the hospital');
	assert.equal(hospital1.length, 30);
	// Each row's version counts its changes: every device holds the current one.
	assert.ok(row(conflicted).version >= 3);
});

test('the tablet of hospital 2 never saw a row or a key of hospital 1', async () => {
	const { rows } = await hospital.query(`SELECT id::text FROM ${table} WHERE hospital_id = 1`);
	const hospital1Ids = new Set([...rows.map((r) => r.id), ids[3], ids[4], deletedOnA, deletedByHospital]);
	const pulled = pulledBy.get('tablet-c');
	assert.ok(pulled.length >= 15, 'tablet C pulled its own rows');
	for (const d of pulled) {
		assert.ok(!hospital1Ids.has(d.id), `tablet C got ${d.id} of hospital 1`);
		if (!d._deleted) assert.equal(d.hospital_id, 2);
	}
	// It got the hospital's change of its own row.
	assert.ok(pulled.some((d) => d.name === 'changed at hospital 2'));
});

test('a push into another hospital is a conflict, never a write', async () => {
	const intruder = connect({ user: 'clinic', options: '-c app.hospital_id=2' });
	await intruder.connect();
	const { rows } = await intruder.query('SELECT edgesync.rxdb_push($1, $2) AS conflicts', [
		table,
		JSON.stringify([
			{
				newDocumentState: { id: editedOnA, hospital_id: 2, name: 'stolen', ward: 'X', _deleted: false },
				assumedMasterState: { id: editedOnA, hospital_id: 1, version: 2, _deleted: false },
			},
		]),
	]);
	await intruder.end();
	// Its row is not visible to it: the conflict shows it as deleted, nothing more.
	assert.deepEqual(rows[0].conflicts, [{ id: editedOnA, _deleted: true }]);
	const { rows: after } = await hospital.query(`SELECT name FROM ${table} WHERE id = $1`, [editedOnA]);
	assert.notEqual(after[0].name, 'stolen');
});
