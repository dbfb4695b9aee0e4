# bench/ship/workload.sh — the shipping benchmarks' table and workload
# (sourced by run.sh and apply.sh, so that both measure the same changes).
#
# INSERTS inserts, then as many updates, on a patients-like table,
# ROWS_PER_TXN rows per transaction; the caller sets both.

SHIP_TABLE_DDL="CREATE TABLE bench_patients (id bigint PRIMARY KEY, name text NOT NULL, ward text,
                                             admitted date, note text)"
SHIP_CHECKSUM="SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM bench_patients t"

# The workload as one DO block: each transaction commits on its own.
ship_workload_sql() {
	cat <<SQL
DO \$\$
BEGIN
  FOR i IN 0 .. ($INSERTS - 1) / $ROWS_PER_TXN LOOP
    INSERT INTO bench_patients (id, name, ward, admitted, note)
    SELECT g, 'patient ' || g, 'ward ' || (g % 20), date '2026-01-01' + (g % 300), repeat('n', 60 + g % 40)
      FROM generate_series(i * $ROWS_PER_TXN + 1, least((i + 1) * $ROWS_PER_TXN, $INSERTS)) g;
    COMMIT;
  END LOOP;
  FOR i IN 0 .. ($INSERTS - 1) / $ROWS_PER_TXN LOOP
    UPDATE bench_patients SET ward = ward || '+'
     WHERE id BETWEEN i * $ROWS_PER_TXN + 1 AND (i + 1) * $ROWS_PER_TXN;
    COMMIT;
  END LOOP;
END \$\$
SQL
}
