# Demo chapter: a versioned, time-stamped, change-logged patient table.
say "Track a patient table: version, created_at, updated_at and a change log"
hospital_sql <<'SQL'
CREATE TABLE hospital_patients (id int PRIMARY KEY, hospital_id int NOT NULL, name text, ward text);
SELECT edgesync.track('hospital_patients');
INSERT INTO hospital_patients (id, hospital_id, name, ward) VALUES (1, 1, 'Ann Smith', 'A'), (2, 1, 'Bob Jones', 'B');
SELECT id, name, ward, version FROM hospital_patients ORDER BY id;
SQL

say "An update bumps the version; one that changes nothing does not"
hospital_sql <<'SQL'
UPDATE hospital_patients SET ward = 'C' WHERE id = 1;
UPDATE hospital_patients SET ward = 'C' WHERE id = 1;
SELECT id, ward, version FROM hospital_patients WHERE id = 1;
SQL

say "An offline tablet edits version 1, which is no longer current: refused (40001)"
hospital_sql <<'SQL' || true
UPDATE hospital_patients SET ward = 'ICU', version = 1 WHERE id = 1;
SQL

say "The change log, and a sync client reading it by cursor"
hospital_sql <<'SQL'
DELETE FROM hospital_patients WHERE id = 2;
SELECT id, relid, pk, op, version, role FROM edgesync.sync_log ORDER BY id;
SELECT pk, "row"->>'ward' AS ward, version, deleted FROM edgesync.pull('hospital_patients', NULL);
SQL
