-- edgesync 0.1.0 -> 0.2.0 (ALTER EXTENSION edgesync UPDATE).
--
-- Brings an installed 0.1.0 to exactly what CREATE EXTENSION edgesync gives
-- in 0.2.0: test/t/050_upgrade.pl compares the two catalogs object by
-- object.  Every change to the pieces' SQL (src/*/*.sql) in 0.2.0 has its
-- counterpart here, under the heading of its piece.
\echo Use "ALTER EXTENSION edgesync UPDATE" to load this file. \quit

-- core

-- track

-- sync

-- decode

-- ship

-- federate
