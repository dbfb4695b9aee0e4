# EdgesyncTest — shared set-up for edgesync's TAP tests.
#
# Every cluster a TAP test starts is configured from test/edgesync.conf, the
# same settings the pg_regress and isolation instances use, so that a setting
# needed by edgesync is added in one place.
package EdgesyncTest;

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More ();
use Time::HiRes ();

our @EXPORT = qw(edgesync_node edgesync_selftest_functions edgesync_apply_audit
  edgesync_applier_url edgesync_catalog_fingerprint edgesync_target_health
  edgesync_wait_converged edgesync_replay_writes_nothing);

my $conf_file = File::Spec->catfile(dirname(__FILE__), '..', 'edgesync.conf');

# edgesync_node(name, extra_conf => "...", start => 1): a new cluster with
# edgesync preloaded and allowed as an output plugin, started unless asked not.
sub edgesync_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 'logical');
	$node->append_conf('postgresql.conf', slurp_file($conf_file));
	$node->append_conf('postgresql.conf', $opts{extra_conf}) if $opts{extra_conf};
	$node->start unless defined $opts{start} && !$opts{start};
	return $node;
}

# edgesync_target_health(hospital, db): "consecutive_failures|last_error" of
# the targets of database DB.
sub edgesync_target_health
{
	my ($hospital, $db) = @_;
	return $hospital->safe_psql($db,
		"SELECT consecutive_failures || '|' || coalesce(last_error, '') FROM edgesync.target_status");
}

# edgesync_wait_converged(what, hospital => [node, db], cloud => [node, db],
# checksums => {table => query}, seconds => 60): waits until each query gives
# the same answer on the cloud as on the hospital, then tests that it does.
sub edgesync_wait_converged
{
	my ($what, %a) = @_;
	my ($hospital, $hospital_db) = @{ $a{hospital} };
	my ($cloud, $cloud_db) = @{ $a{cloud} };
	my $tries = 10 * ($a{seconds} // 60);
	for my $table (sort keys %{ $a{checksums} })
	{
		my $query = $a{checksums}{$table};
		my ($source, $replica) = ('', '');
		for (1 .. $tries)
		{
			$source = $hospital->safe_psql($hospital_db, $query);
			my ($rc, $out) = $cloud->psql($cloud_db, $query);
			$replica = $out // '';
			last if $source eq $replica;
			Time::HiRes::sleep(0.1);
		}
		Test::More::is($replica, $source, "$what: $table on the cloud equals the hospital's")
		  or Test::More::diag('target: ' . edgesync_target_health($hospital, $hospital_db));
	}
}

# edgesync_replay_writes_nothing(hospital => [node, db], cloud => [node, db],
# target => name, copy => slot, tables => [...], checksums => {table => query},
# role => applying role, hospital_sql => "..."): a replay of the whole stream
# by the shipper.  The target's slot is replaced by COPY (a copy of it taken
# earlier) and its record of acknowledgements forgotten, as after a crash
# between the replica's COMMIT and that record, so it sends every
# transaction again; hospital_sql runs in the same step (WAL to go through).
# Tests that the shipper goes through it all, fails nothing, and writes and
# changes no row of TABLES (a trigger on each counts its writes).
sub edgesync_replay_writes_nothing
{
	my (%a) = @_;
	my ($hospital, $hospital_db) = @{ $a{hospital} };
	my ($cloud, $cloud_db) = @{ $a{cloud} };
	my ($target, $slot) = ($a{target}, "edgesync_$a{target}");
	my $health = sub { edgesync_target_health($hospital, $hospital_db) };
	$hospital->safe_psql($hospital_db, qq{SELECT edgesync.alter_target('$target', enabled => false)});
	$hospital->poll_query_until($hospital_db,
		"SELECT count(*) = 0 FROM pg_replication_slots WHERE slot_name = '$slot' AND active")
	  or die 'the shipper still holds the slot';
	$cloud->safe_psql($cloud_db, qq{
		CREATE TABLE public.writes (tbl text, op text);
		GRANT INSERT ON public.writes TO $a{role};
		CREATE FUNCTION public.count_write() RETURNS trigger LANGUAGE plpgsql AS \$\$
		BEGIN INSERT INTO public.writes VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END \$\$;}
		  . join('', map { "CREATE TRIGGER count_write AFTER INSERT OR UPDATE OR DELETE ON $_
		                    FOR EACH ROW EXECUTE FUNCTION public.count_write();" } @{ $a{tables} }));
	my %checksum = %{ $a{checksums} };
	my $sums = sub { join ',', map { $cloud->safe_psql($cloud_db, $checksum{$_}) } sort keys %checksum };
	my $before = $sums->();
	my $end = $hospital->safe_psql($hospital_db, qq{
		SELECT pg_drop_replication_slot('$slot');
		SELECT pg_copy_logical_replication_slot('$a{copy}', '$slot');
		UPDATE edgesync.target_state SET acked_lsn = NULL, pending_end = NULL WHERE name = '$target';
		} . ($a{hospital_sql} // '') . q{
		SELECT pg_current_wal_lsn();});
	$end = (split /\n/, $end)[-1];
	$hospital->safe_psql($hospital_db, qq{SELECT edgesync.alter_target('$target', enabled => true)});
	Test::More::ok($hospital->poll_query_until($hospital_db,
			"SELECT confirmed_flush_lsn >= '$end' FROM pg_replication_slots WHERE slot_name = '$slot'"),
		'the shipper went through the whole stream again') or Test::More::diag('target: ' . $health->());
	Test::More::like($health->(), qr/^0\|/, 'the replay failed nothing');
	Test::More::is($cloud->safe_psql($cloud_db, 'SELECT count(*) FROM public.writes'), '0',
		'the replay wrote no row');
	Test::More::is($sums->(), $before, 'the replay changed nothing');
}

# edgesync_applier_url(cloud, [tables]): creates the role cloud_applier on
# node CLOUD (a member of edgesync_applier, with the table privileges
# applying needs on TABLES, and SET on session_replication_role: the
# replica's tables carry edgesync's triggers, which must not fire while it
# applies) and returns the postgresql:// URL a target uses to apply there as
# that role.
sub edgesync_applier_url
{
	my ($cloud, $tables) = @_;
	$cloud->safe_psql('postgres',
		'CREATE ROLE cloud_applier LOGIN IN ROLE edgesync_applier;'
		  . 'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON '
		  . join(', ', @$tables)
		  . ' TO cloud_applier;'
		  . 'GRANT SET ON PARAMETER session_replication_role TO cloud_applier;');
	return 'postgresql://cloud_applier@/postgres?host=' . $cloud->host . '&port=' . $cloud->port;
}

# SQL that declares the selftest entry points in schema selftest.
sub edgesync_selftest_functions
{
	return q{
		CREATE SCHEMA IF NOT EXISTS selftest;
		CREATE OR REPLACE FUNCTION selftest.throw(text, text) RETURNS int
		  AS 'edgesync', 'edgesync_selftest_throw' LANGUAGE C STRICT;
		CREATE OR REPLACE FUNCTION selftest.pg_error_under_cpp(text) RETURNS int
		  AS 'edgesync', 'edgesync_selftest_pg_error_under_cpp' LANGUAGE C STRICT;
		CREATE OR REPLACE FUNCTION selftest.live_objects() RETURNS bigint
		  AS 'edgesync', 'edgesync_selftest_live_objects' LANGUAGE C STRICT;
	};
}

# SQL for a replica: every row write to table TABLE (key column id, and
# version) is recorded in table "applied" (op, id, version), also for rows
# applied in replica mode, so that a change applied twice shows.  SECURITY
# DEFINER: the applying role need not write "applied".
sub edgesync_apply_audit
{
	my ($table) = @_;
	return qq{
		CREATE TABLE applied (op text, id int, version bigint);
		CREATE FUNCTION record_apply() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS \$\$
		BEGIN
			IF TG_OP = 'DELETE' THEN
				INSERT INTO applied VALUES (TG_OP, OLD.id, OLD.version);
			ELSE
				INSERT INTO applied VALUES (TG_OP, NEW.id, NEW.version);
			END IF;
			RETURN NULL;
		END \$\$;
		CREATE TRIGGER record_apply AFTER INSERT OR UPDATE OR DELETE ON $table
			FOR EACH ROW EXECUTE FUNCTION record_apply();
		ALTER TABLE $table ENABLE ALWAYS TRIGGER record_apply;
	};
}

# SQL that lists every object of the installed edgesync, one line each, with
# what defines it (function bodies and settings, columns in order, defaults,
# constraints, indexes, view queries, triggers, privileges, comments), and
# the cluster's edgesync roles.  Two databases with equal lists have equal
# extensions: an upgraded one and a fresh install, or one before and after a
# dump and restore.
sub edgesync_catalog_fingerprint
{
	return q{
WITH members AS (
  SELECT d.classid, d.objid FROM pg_depend d
   WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
     AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'edgesync')
), rels AS (
  SELECT c.* FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
)
SELECT line FROM (
  SELECT 'member ' || pg_describe_object(m.classid, m.objid, 0) AS line FROM members m
  UNION ALL
  SELECT format('function %s acl=%s %s', p.oid::regprocedure, p.proacl,
                CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END)
    FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
  UNION ALL
  SELECT format('relation %s kind=%s persistence=%s options=%s acl=%s', c.oid::regclass, c.relkind,
                c.relpersistence, c.reloptions, c.relacl) FROM rels c
  UNION ALL
  SELECT format('column %s #%s %s %s notnull=%s default=%s identity=%s generated=%s compression=%s acl=%s',
                a.attrelid::regclass,
                row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum), a.attname,
                format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid),
                a.attidentity, a.attgenerated, a.attcompression, a.attacl)
    FROM pg_attribute a JOIN rels c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
   WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT format('constraint %s on %s: %s', co.conname, co.conrelid::regclass, pg_get_constraintdef(co.oid))
    FROM pg_constraint co JOIN rels c ON c.oid = co.conrelid
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN rels c ON c.oid = i.indrelid
  UNION ALL
  SELECT format('view %s: %s', c.oid::regclass, pg_get_viewdef(c.oid)) FROM rels c WHERE c.relkind = 'v'
  UNION ALL
  SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN rels c ON c.oid = t.tgrelid
   WHERE NOT t.tgisinternal
  UNION ALL
  SELECT format('sequence %s increment=%s', s.seqrelid::regclass, s.seqincrement)
    FROM pg_sequence s JOIN rels c ON c.oid = s.seqrelid
  UNION ALL
  SELECT format('event trigger %s on %s tags=%s function=%s enabled=%s', e.evtname, e.evtevent,
                e.evttags, e.evtfoid::regproc, e.evtenabled)
    FROM pg_event_trigger e JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
  UNION ALL
  SELECT format('foreign-data wrapper %s handler=%s validator=%s acl=%s', w.fdwname, w.fdwhandler::regproc,
                w.fdwvalidator::regproc, w.fdwacl)
    FROM pg_foreign_data_wrapper w JOIN members m ON m.classid = 'pg_foreign_data_wrapper'::regclass AND m.objid = w.oid
  UNION ALL
  SELECT format('server %s options=%s acl=%s', s.srvname, s.srvoptions, s.srvacl)
    FROM pg_foreign_server s JOIN members m ON m.classid = 'pg_foreign_server'::regclass AND m.objid = s.oid
  UNION ALL
  SELECT format('schema %s acl=%s', n.nspname, n.nspacl)
    FROM pg_namespace n JOIN members m ON m.classid = 'pg_namespace'::regclass AND m.objid = n.oid
  UNION ALL
  SELECT format('configuration table %s condition=%s', c.relid::regclass, c.cond)
    FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS c(relid, cond)
   WHERE e.extname = 'edgesync'
  UNION ALL
  SELECT format('comment on %s: %s', pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description)
    FROM pg_description d JOIN members m ON m.classid = d.classoid AND m.objid = d.objoid
  UNION ALL
  SELECT format('role %s login=%s super=%s inherit=%s member of %s', r.rolname, r.rolcanlogin, r.rolsuper,
                r.rolinherit,
                (SELECT string_agg(g.rolname, ',' ORDER BY g.rolname)
                   FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid WHERE am.member = r.oid))
    FROM pg_roles r WHERE r.rolname LIKE 'edgesync%'
  UNION ALL
  SELECT format('comment on role %s: %s', r.rolname, shobj_description(r.oid, 'pg_authid'))
    FROM pg_roles r WHERE r.rolname LIKE 'edgesync%'
) lines ORDER BY line COLLATE "C";
};
}

1;
