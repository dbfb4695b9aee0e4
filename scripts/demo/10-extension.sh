# Demo chapter: the extension itself.
say "CREATE EXTENSION edgesync"
hospital_sql -c 'CREATE EXTENSION edgesync' -c 'SELECT edgesync.version()'
