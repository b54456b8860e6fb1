/*
 * sql_query.h - reading a celeriac SQLite file with sqlite3 itself, so a
 * test checks what is really stored rather than what celeriac says.
 */
#ifndef CEL_TEST_SQL_QUERY_H
#define CEL_TEST_SQL_QUERY_H

/* The first column of the first row of `sql` as an integer; fails the
 * test on any error. */
long long cel_test_sql_int(const char *db_path, const char *sql);

#endif
