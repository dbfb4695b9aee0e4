# Security of the shipper (issue 17), each attack reproduced on real
# clusters.
#
#  1. Operators in public: a role with CREATE on public defines
#     public.*(bigint, interval) and public.#>>(jsonb, text), which the
#     worker's bookkeeping of a failing target (as the bootstrap superuser)
#     and its reading of a target's headers would pick under the default
#     search_path.  The worker runs with search_path = pg_catalog, pg_temp,
#     as ship() does, and its queries name their operators: they never run.
#  2. A member of edgesync_admin adds a postgresql:// target back to the
#     hospital itself (its Unix socket, as the bootstrap superuser, trust
#     authentication), tracks a table of its own with an ENABLE ALWAYS
#     trigger that makes it superuser, inserts and ships.  Targets belong to
#     the role that added them; a non-superuser's target must give a password
#     and the replica must ask for it (postgres_fdw's rules), and may not
#     connect back to this server as another role (one whose password the
#     admin knows): the role never becomes superuser, through ship() or the
#     background worker, and nothing runs as the other role.
#  3. A malicious replica (its edgesync.apply_begin(), the first statement of
#     every batch, is its own) answers with 2,000,000 rows of 200 bytes and
#     floods NOTICEs, one forging a LOG line with an embedded newline: the
#     shipper reads results row by row and fails a statement answered with
#     more than 1000 rows (its memory stays flat, in ship() and in the
#     worker), and logs replica notices escaped, truncated and rate-limited.
#  4. WAL held without bound: with max_slot_wal_keep_size = -1, add_target()
#     and alter_target(enabled => true) warn (with detail and hint);
#     target_status shows the limit and the slot's safe_wal_size once set.
#  5. A replica's error with row values (DETAIL "Failing row contains", a
#     value in the primary message) reaches edgesync_reader without them: the
#     SQLSTATE and the primary message with its values hidden; the whole text
#     only in target_state, which edgesync_admin reads.
#  6. What held before, kept: an HTTP redirect is a failure and is not
#     followed; an HTTP receiver's answer (quoting the batch and the token)
#     is capped, kept from the reader, and has the token removed; pg_dump
#     holds no secret of a target; every SECURITY DEFINER function of
#     edgesync pins search_path.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use EdgesyncReceiver;
use EdgesyncTest;

my $hospital = edgesync_node('hospital', extra_conf => q{
edgesync.ship_databases = 'postgres'
edgesync.ship_naptime = 50ms
edgesync.ship_retry_min = 50ms
edgesync.ship_retry_max = 300ms
log_statement = none
});

my $superuser = $hospital->safe_psql('postgres', 'SELECT current_user');
my $sock = $hospital->host;
my $port = $hospital->port;

$hospital->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	CREATE TABLE hospital_patients (id int PRIMARY KEY, name text NOT NULL, ward text);
	SELECT edgesync.track('hospital_patients');
	CREATE ROLE mallory LOGIN IN ROLE edgesync_admin;
	GRANT CREATE ON SCHEMA public TO mallory;
	CREATE ROLE watcher LOGIN IN ROLE edgesync_reader;
});

# psql as ROLE; returns (exit code, stdout, stderr).
sub psql_as
{
	my ($role, $sql) = @_;
	my ($rc, $out, $err) = $hospital->psql('postgres', $sql,
		extra_params => [ '-U', $role, '-v', 'VERBOSITY=verbose' ]);
	return ($rc, $out, $err);
}

my ($rc, $out, $err);

sub is_superuser
{
	my ($role) = @_;
	return $hospital->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = '$role'");
}

# ---------------------------------------------------------------------------
# 1. Operators in public, run by the worker's bookkeeping.

$hospital->safe_psql('postgres', q{
	CREATE ROLE eve LOGIN;
	GRANT CREATE ON SCHEMA public TO eve;
	CREATE TABLE operator_ran (who text, op text);
	GRANT INSERT ON operator_ran TO PUBLIC;
});
($rc, $out, $err) = psql_as('eve', q{
	CREATE FUNCTION public.eve_times(bigint, interval) RETURNS interval LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.operator_ran VALUES (current_user, '*');
		BEGIN
			ALTER ROLE eve SUPERUSER;
		EXCEPTION WHEN insufficient_privilege THEN NULL;
		END;
		RETURN $1::float8 * $2;
	END $$;
	CREATE OPERATOR public.* (FUNCTION = public.eve_times, LEFTARG = bigint, RIGHTARG = interval);
	CREATE FUNCTION public.eve_path(jsonb, text) RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.operator_ran VALUES (current_user, '#>>');
		BEGIN
			ALTER ROLE eve SUPERUSER;
		EXCEPTION WHEN insufficient_privilege THEN NULL;
		END;
		RETURN $1 #>> '{}'::text[];
	END $$;
	CREATE OPERATOR public.#>> (FUNCTION = public.eve_path, LEFTARG = jsonb, RIGHTARG = text);
});
is($rc, 0, 'attack set-up: a user defines *(bigint, interval) and #>>(jsonb, text) in public')
  or diag($err);
# The operators work for eve herself (so they would be picked).
($rc, $out, $err) = psql_as('eve', q{SELECT 2::bigint * interval '1 s', '{"a": 1}'::jsonb #>> '{}'});
is($hospital->safe_psql('postgres', q{SELECT string_agg(op, ' ' ORDER BY op) FROM operator_ran}),
	'#>> *', 'attack set-up: the operators are picked under the default search_path');
$hospital->safe_psql('postgres', 'TRUNCATE operator_ran');

$hospital->safe_psql('postgres', q{
	SELECT edgesync.add_target('dead', 'http://127.0.0.1:9/in', headers => '{"X-Hospital": "st-anne"}');
	INSERT INTO hospital_patients VALUES (1, 'Ann', 'A');
});
ok($hospital->poll_query_until('postgres',
		q{SELECT consecutive_failures >= 3 FROM edgesync.target_state WHERE name = 'dead'}),
	'worker: the failing target went through its bookkeeping several times');
psql_as('mallory', q{SELECT edgesync.ship('dead')});
is($hospital->safe_psql('postgres', 'SELECT count(*) FROM operator_ran'),
	'0', 'no operator of public ran in the worker or in ship()');
is(is_superuser('eve'), 'f', 'the user did not become superuser');
$hospital->safe_psql('postgres', q{SELECT edgesync.drop_target('dead')});

# ---------------------------------------------------------------------------
# 2. An admin's target back to the hospital as the bootstrap superuser.

my $loop_url = "postgresql:///postgres?host=$sock&port=$port&user=$superuser";
($rc, $out, $err) = psql_as('mallory', qq{
	CREATE TABLE mallory_notes (id int PRIMARY KEY, note text);
	CREATE FUNCTION mallory_escalate() RETURNS trigger LANGUAGE plpgsql AS \$\$
	BEGIN
		ALTER ROLE mallory SUPERUSER;
		RETURN NEW;
	EXCEPTION WHEN insufficient_privilege THEN
		RETURN NEW;
	END \$\$;
	CREATE TRIGGER escalate BEFORE INSERT OR UPDATE ON mallory_notes
		FOR EACH ROW EXECUTE FUNCTION mallory_escalate();
	ALTER TABLE mallory_notes ENABLE ALWAYS TRIGGER escalate;
	SELECT edgesync.track('mallory_notes');
});
is($rc, 0, 'attack set-up: the admin owns and tracks a table with an ALWAYS trigger')
  or diag($err);

($rc, $out, $err) = psql_as('mallory',
	"SELECT edgesync.add_target('loop', '$loop_url', enabled => false)");
like($err, qr/ERROR:  2F003: password is required/,
	'add_target: a non-superuser cannot add a postgresql target without a password');
like($err, qr/DETAIL:  Non-superusers must provide a password in the target URL\./,
	'add_target: ... and is told why');

# With a password that the hospital never asks for (trust): added, refused at connection.
my $loop_pw_url = "postgresql://$superuser:not-asked\@/postgres?host=$sock&port=$port";
($rc, $out, $err) = psql_as('mallory',
	"SELECT edgesync.add_target('loop', '$loop_pw_url', enabled => false)");
is($rc, 0, 'add_target: the same target with a password is accepted') or diag($err);
is($hospital->safe_psql('postgres', q{SELECT owner FROM edgesync.targets WHERE name = 'loop'}),
	'mallory', 'the target belongs to the role that added it');

psql_as('mallory', q{INSERT INTO mallory_notes VALUES (1, 'hello')});
($rc, $out, $err) = psql_as('mallory', q{SELECT edgesync.ship('loop')});
like($err, qr/ERROR:  2F003: password is required/,
	'ship(): a server that does not ask for the password is refused');
like($err, qr/DETAIL:  Non-superuser cannot connect if the server does not request a password\./,
	'ship(): ... with postgres_fdw\'s reason');
is(is_superuser('mallory'), 'f', 'ship(): the admin did not become superuser');
is($hospital->safe_psql('postgres', 'SELECT count(*) FROM mallory_notes'),
	'1', 'ship(): nothing was applied on the hospital');

# Enabling it connects first (issue 12): the same refusal, and the target
# stays disabled.
($rc, $out, $err) = psql_as('mallory', q{SELECT edgesync.alter_target('loop', enabled => true)});
like($err, qr/ERROR:  2F003: password is required/,
	'alter_target: enabling it is refused at once');
is($hospital->safe_psql('postgres', q{SELECT enabled FROM edgesync.targets WHERE name = 'loop'}),
	'f', 'alter_target: the target stays disabled');

# The background worker, for a target enabled behind that check's back (as
# if the far side had changed since): the same refusal, recorded.
$hospital->safe_psql('postgres', q{UPDATE edgesync.targets SET enabled = true WHERE name = 'loop'});
ok($hospital->poll_query_until('postgres',
		q{SELECT consecutive_failures >= 2 FROM edgesync.target_state WHERE name = 'loop'}),
	'worker: tried the target');
like($hospital->safe_psql('postgres', q{SELECT last_error FROM edgesync.target_status WHERE name = 'loop'}),
	qr/password is required/, 'worker: refused it for want of a password');
is(is_superuser('mallory'), 'f', 'worker: the admin did not become superuser');
psql_as('mallory', q{SELECT edgesync.drop_target('loop')});

# With the password of another role that the hospital does ask for: a
# connection back to this very server as another role is refused.
$hospital->safe_psql('postgres', q{
	CREATE ROLE clerk LOGIN PASSWORD 'clerk-pw-42';
	CREATE TABLE clerk_only (secret text);
	INSERT INTO clerk_only VALUES ('clerk data');
	REVOKE ALL ON clerk_only FROM PUBLIC;
	GRANT ALL ON clerk_only TO clerk;
	GRANT INSERT, UPDATE, SELECT ON mallory_notes TO clerk;
	GRANT edgesync_applier TO clerk;
	CREATE TABLE mallory_loot (secret text);
	GRANT ALL ON mallory_loot TO PUBLIC;
});
my $hba = slurp_file($hospital->data_dir . '/pg_hba.conf');
open my $fh, '>', $hospital->data_dir . '/pg_hba.conf' or die $!;
print $fh "local all clerk scram-sha-256\n$hba";
close $fh;
$hospital->reload;
psql_as('mallory', q{
	CREATE OR REPLACE FUNCTION mallory_escalate() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO mallory_loot SELECT secret FROM clerk_only;
		RETURN NEW;
	EXCEPTION WHEN insufficient_privilege THEN
		RETURN NEW;
	END $$;
});
($rc, $out, $err) = psql_as('mallory',
	"SELECT edgesync.add_target('loop2', 'postgresql://clerk:clerk-pw-42\@/postgres?host=$sock&port=$port', enabled => false)");
is($rc, 0, 'add_target: a target with a password') or diag($err);
psql_as('mallory', q{INSERT INTO mallory_notes VALUES (2, 'again')});
($rc, $out, $err) = psql_as('mallory', q{SELECT edgesync.ship('loop2')});
like($err, qr/ERROR:  28000: a target of a non-superuser cannot connect back to this server as another role/,
	'ship(): a connection back to the hospital as another role is refused');
is($hospital->safe_psql('postgres', 'SELECT count(*) FROM mallory_loot'),
	'0', 'ship(): nothing ran as the other role');
psql_as('mallory', q{SELECT edgesync.drop_target('loop2')});

# A superuser who SETs ROLE to an admin adds a target of that role.
($rc, $out, $err) = $hospital->psql('postgres',
	"SET ROLE mallory; SELECT edgesync.add_target('loop3', '$loop_url', enabled => false)");
like($err, qr/password is required/, 'SET ROLE: a target added as an admin role follows its rules');

# ---------------------------------------------------------------------------
# 3. A malicious replica: a huge answer and forged log lines.

my $evil = edgesync_node('evil');
# The stream calls no function of the replica's: the noise comes from a
# trigger on the replica's table, the huge answer from a rule that turns the
# stream's DELETE into a SELECT.
$evil->safe_psql('postgres', q{
	CREATE TABLE hospital_patients (id int PRIMARY KEY, name text NOT NULL, ward text);
	CREATE FUNCTION noise() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		RAISE NOTICE E'all fine\nFORGED-LOG-LINE LOG:  superuser password changed';
		RAISE NOTICE 'long %', repeat('n', 100000);
		FOR i IN 1..300 LOOP
			RAISE NOTICE 'flood %', i;
		END LOOP;
		RETURN NEW;
	END $$;
	CREATE TRIGGER noise BEFORE INSERT ON hospital_patients FOR EACH ROW EXECUTE FUNCTION noise();
	ALTER TABLE hospital_patients ENABLE ALWAYS TRIGGER noise;
	CREATE RULE huge AS ON DELETE TO hospital_patients
	    DO INSTEAD SELECT repeat('x', 200) FROM generate_series(1, 2000000);
	ALTER TABLE hospital_patients ENABLE ALWAYS RULE huge;
});
$hospital->safe_psql('postgres',
	"SELECT edgesync.add_target('evil', 'postgresql:///postgres?host=" . $evil->host . '&port=' . $evil->port
	  . "', enabled => false, timeout_ms => 60000)");
$hospital->safe_psql('postgres', q{INSERT INTO hospital_patients VALUES (2, 'Bob', 'B')});
$hospital->safe_psql('postgres', q{DELETE FROM hospital_patients WHERE id = 2});

my $hwm = q{(regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmHWM:\s+(\d+) kB'))[1]::bigint};
my $log_start = -s $hospital->logfile;
$out = $hospital->safe_psql('postgres', qq{
	SELECT $hwm AS before \\gset
	SET client_min_messages = error;
	SELECT edgesync.ship('evil');
	SELECT $hwm - :before;
});
my ($grown) = (split /\n/, $out)[-1];
cmp_ok($grown, '<', 32 * 1024, "ship(): the session grew by $grown kB for a 400 MB answer");
like($hospital->safe_psql('postgres', q{SELECT last_error FROM edgesync.target_status WHERE name = 'evil'}),
	qr/replica answered one statement with more than 1000 rows/, 'ship(): the answer failed the batch');

my $log = substr(slurp_file($hospital->logfile), $log_start);
unlike($log, qr/^FORGED-LOG-LINE/m, 'log: no line of the replica\'s making');
like($log, qr/replica NOTICE: all fine\\nFORGED-LOG-LINE LOG:  superuser password changed/,
	'log: the notice is logged with its newline escaped');
my @notices = $log =~ /^.*replica NOTICE: .*$/mg;
cmp_ok(scalar(@notices), '<=', 10, 'log: at most 10 replica notices a minute (' . scalar(@notices) . ')');
like($log, qr/more notices from the replica of target "evil" were not logged/, 'log: the rest are counted');
my ($long) = grep { /replica NOTICE: long / } @notices;
ok($long && length($long) < 1024, 'log: a long notice is truncated');

# The worker: the same, its memory bounded too.
$hospital->safe_psql('postgres', q{SELECT edgesync.alter_target('evil', enabled => true)});
ok($hospital->poll_query_until('postgres',
		q{SELECT consecutive_failures >= 3 FROM edgesync.target_state WHERE name = 'evil'}),
	'worker: tried the malicious replica');
my $worker = $hospital->safe_psql('postgres',
	q{SELECT pid FROM edgesync.target_status WHERE name = 'evil'});
my ($worker_hwm) = slurp_file("/proc/$worker/status") =~ /^VmHWM:\s+(\d+) kB/m;
cmp_ok($worker_hwm, '<', 128 * 1024, "worker: its peak memory is $worker_hwm kB");
$hospital->safe_psql('postgres', q{SELECT edgesync.alter_target('evil', enabled => false)});
$hospital->poll_query_until('postgres',
	q{SELECT NOT active FROM pg_replication_slots WHERE slot_name = 'edgesync_evil'});
$hospital->safe_psql('postgres', q{SELECT edgesync.drop_target('evil')});
$log = substr(slurp_file($hospital->logfile), $log_start);
unlike($log, qr/^FORGED-LOG-LINE/m, 'worker: no line of the replica\'s making');

# The same answer to a batch sent as a pipeline (a run of inserts is a
# binary run, shipping.md "Binary runs"): the memory stays flat there too.
# (In the extended protocol the server describes the rewritten DELETE as
# returning nothing, and libpq drops the rows it sends anyway, one message at
# a time, so the batch may even succeed: the replica's rule is its own
# business; what matters here is that the hospital never holds the answer.)
$hospital->safe_psql('postgres',
	"SELECT edgesync.add_target('evil_pipeline', 'postgresql:///postgres?host=" . $evil->host . '&port=' . $evil->port
	  . "', enabled => false, timeout_ms => 60000)");
$hospital->safe_psql('postgres', q{
	INSERT INTO hospital_patients SELECT g, 'P' || g, 'W' FROM generate_series(10, 19) g;
	DELETE FROM hospital_patients WHERE id = 10;
});
$out = $hospital->safe_psql('postgres', qq{
	SELECT $hwm AS before \\gset
	SET client_min_messages = error;
	SELECT edgesync.ship('evil_pipeline');
	SELECT $hwm - :before;
});
($grown) = (split /\n/, $out)[-1];
cmp_ok($grown, '<', 32 * 1024, "pipeline: the session grew by $grown kB for a 400 MB answer");
$hospital->safe_psql('postgres', q{SELECT edgesync.drop_target('evil_pipeline')});

# ---------------------------------------------------------------------------
# 4. WAL held without bound.

($rc, $out, $err) = $hospital->psql('postgres',
	q{SELECT edgesync.add_target('archive', 'http://127.0.0.1:9/in', enabled => false)});
like($err, qr/WARNING:  the slot of target "archive" may hold back WAL without limit/,
	'add_target: warns when slots may hold WAL without limit');
like($err, qr/HINT:  Set max_slot_wal_keep_size/, 'add_target: ... and says what to do');
is($hospital->safe_psql('postgres',
		q{SELECT wal_limit_bytes IS NULL AND wal_held_bytes >= 0 FROM edgesync.target_status WHERE name = 'archive'}),
	't', 'target_status: no limit shown');
$hospital->append_conf('postgresql.conf', "max_slot_wal_keep_size = '1GB'");
$hospital->reload;
ok($hospital->poll_query_until('postgres', q{SELECT current_setting('max_slot_wal_keep_size') = '1GB'}),
	'reloaded');
($rc, $out, $err) = $hospital->psql('postgres',
	q{SELECT edgesync.alter_target('archive', enabled => true)});
unlike($err, qr/WARNING/, 'alter_target: no warning once a limit is set');
is($hospital->safe_psql('postgres', q{
	SELECT wal_limit_bytes || ' ' || (safe_wal_size > 0)
	  FROM edgesync.target_status WHERE name = 'archive'}),
	'1073741824 true', 'target_status: the limit and what is left of it');
$hospital->safe_psql('postgres', q{SELECT edgesync.drop_target('archive')});

# ---------------------------------------------------------------------------
# 5. A replica's error text with row values.

my $cloud = edgesync_node('cloud');
$cloud->safe_psql('postgres', q{
	CREATE EXTENSION edgesync;
	CREATE TABLE hospital_patients (id int PRIMARY KEY, name text NOT NULL, ward text);
	SELECT edgesync.track('hospital_patients');
	ALTER TABLE hospital_patients ADD CONSTRAINT no_jane CHECK (name <> 'PHI-Jane-Doe');
});
my $url = edgesync_applier_url($cloud, ['hospital_patients']);
$hospital->safe_psql('postgres', "SELECT edgesync.add_target('cloud_db', '$url', enabled => false)");
$hospital->safe_psql('postgres', q{INSERT INTO hospital_patients VALUES (3, 'PHI-Jane-Doe', 'PHI-WARD-7')});
$hospital->safe_psql('postgres', q{SET client_min_messages = error; SELECT edgesync.ship('cloud_db')});
my $seen = $hospital->safe_psql('postgres', q{SELECT last_error FROM edgesync.target_status WHERE name = 'cloud_db'},
	extra_params => [ '-U', 'watcher' ]);
like($seen, qr/^replica rejected batch: new row for relation "hospital_patients" violates check constraint "no_jane" \(SQLSTATE 23514\)$/,
	'reader: the SQLSTATE and the primary message');
unlike($seen, qr/PHI/, 'reader: no row values');
like($hospital->safe_psql('postgres', q{SELECT last_error_detail FROM edgesync.target_state WHERE name = 'cloud_db'},
		extra_params => [ '-U', 'mallory' ]),
	qr/Failing row contains \(3, PHI-Jane-Doe, PHI-WARD-7/, 'admin: the full text in target_state');
($rc, $out, $err) = psql_as('watcher', q{SELECT last_error_detail FROM edgesync.target_state});
like($err, qr/permission denied/, 'reader: cannot read target_state');

# A value in the primary message itself: a trigger of the replica reads the
# ward as a number.
$cloud->safe_psql('postgres', q{
	ALTER TABLE hospital_patients DROP CONSTRAINT no_jane;
	CREATE FUNCTION ward_number() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM NEW.ward::int;
		RETURN NEW;
	END $$;
	CREATE TRIGGER ward_number BEFORE INSERT ON hospital_patients
		FOR EACH ROW EXECUTE FUNCTION ward_number();
	ALTER TABLE hospital_patients ENABLE ALWAYS TRIGGER ward_number;
});
$hospital->safe_psql('postgres', q{SET client_min_messages = error; SELECT edgesync.ship('cloud_db')});
$seen = $hospital->safe_psql('postgres', q{SELECT last_error FROM edgesync.target_status WHERE name = 'cloud_db'},
	extra_params => [ '-U', 'watcher' ]);
like($seen, qr/^replica rejected batch: invalid input syntax for type integer \(SQLSTATE 22P02\)$/,
	'reader: a value in the primary message is hidden');
unlike($seen, qr/PHI/, 'reader: no row values');
$hospital->safe_psql('postgres', q{SELECT edgesync.drop_target('cloud_db')});

# ---------------------------------------------------------------------------
# 6. What held, kept: redirects not followed, an HTTP receiver's answer
#    capped and kept from the reader, the token never shown, no secret in
#    pg_dump, every SECURITY DEFINER function pinning its search_path.

my $receiver = EdgesyncReceiver->new;
my $elsewhere = EdgesyncReceiver->new;
$receiver->set_mode('redirect ' . $elsewhere->url);
$hospital->safe_psql('postgres', "SELECT edgesync.add_target('api', '" . $receiver->url
	  . "', bearer_token => 'tok-SECRET-910', enabled => false)");
$hospital->safe_psql('postgres', q{INSERT INTO hospital_patients VALUES (4, 'PHI-John-Roe', 'C')});
$hospital->safe_psql('postgres', q{SET client_min_messages = error; SELECT edgesync.ship('api')});
is($hospital->safe_psql('postgres', q{SELECT last_error FROM edgesync.target_status WHERE name = 'api'}),
	'HTTP status 307 from receiver', 'http: a redirect is a failure');
my @followed = $elsewhere->attempts;
is(scalar(@followed), 0, 'http: ... and is not followed');

$receiver->set_mode('echo500');
$hospital->safe_psql('postgres', q{SET client_min_messages = error; SELECT edgesync.ship('api')});
is($hospital->safe_psql('postgres', q{SELECT last_error FROM edgesync.target_status WHERE name = 'api'},
		extra_params => [ '-U', 'watcher' ]),
	'HTTP status 500 from receiver', 'http: the reader sees the status, not the answer');
my $detail = $hospital->safe_psql('postgres',
	q{SELECT last_error_detail FROM edgesync.target_state WHERE name = 'api'},
	extra_params => [ '-U', 'mallory' ]);
like($detail, qr/^HTTP status 500 from receiver: rejected Bearer \*{8} \{"op":"begin"/,
	'http: the admin sees the answer, the token removed');
cmp_ok(length($detail), '<', 1024, 'http: the answer kept is capped (' . length($detail) . ' bytes)');
my $dump;
IPC::Run::run([ 'pg_dump', '-d', $hospital->connstr('postgres') ], '>', \$dump)
  or die 'pg_dump failed';
like($dump, qr/PHI-John-Roe/, 'pg_dump: the data is there');
unlike($dump, qr/tok-SECRET/, 'pg_dump: no secret of a target');
$hospital->safe_psql('postgres', q{SELECT edgesync.drop_target('api')});

is($hospital->safe_psql('postgres', q{
	SELECT string_agg(p.oid::regprocedure::text, ', ')
	  FROM pg_proc p
	  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
	 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'edgesync')
	   AND p.prosecdef
	   AND NOT 'search_path=pg_catalog, pg_temp' = ANY (coalesce(p.proconfig, '{}'))}),
	'', 'every SECURITY DEFINER function of edgesync pins search_path = pg_catalog, pg_temp');

done_testing();
