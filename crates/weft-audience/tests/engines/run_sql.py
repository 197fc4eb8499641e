"""Runs audience SQL on the engines of its dialects, over the same tables.

Usage: run_sql.py INPUT.json. INPUT holds {"tables": {"schema.table": DELTA_DIR},
"queries": [{"id", "dialect", "sql"}]}. Prints {"results": {id: {"members": [...]}
or {"error": "..."}}}: the first column of each query's rows.

- duckdb: the Delta tables' Parquet files, under the same schema.table names.
- postgres: the local server (127.0.0.1:5432), a fresh database, same names.
- spark: Sail (a Spark Connect server) reading the Delta tables; temporary
  views named schema_table (the SQL was written with those names).
- snowflake: fakesnow (Snowflake SQL translated onto DuckDB), same names.
Every session runs in UTC, as weft's timestamps are.
"""

import glob
import json
import sys

import duckdb

spec = json.load(open(sys.argv[1]))
tables = spec["tables"]
results = {}


def duck_tables():
    """A DuckDB connection holding every table."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, path in tables.items():
        schema, table = name.split(".")
        files = sorted(glob.glob(f"{path}/**/*.parquet", recursive=True))
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet(?)", [files])
    return con


def run(dialect, execute):
    for query in spec["queries"]:
        if query["dialect"] != dialect:
            continue
        try:
            rows = execute(query["sql"])
            results[query["id"]] = {"members": sorted(str(row[0]) for row in rows)}
        except Exception as error:  # reported per query, the others still run
            results[query["id"]] = {"error": f"{type(error).__name__}: {error}"}


def duckdb_engine():
    con = duck_tables()
    run("duckdb", lambda sql: con.execute(sql).fetchall())


PG_TYPES = {
    "VARCHAR": "text",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "DOUBLE": "double precision",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TIMESTAMP": "timestamp",
    "VARCHAR[]": "text[]",
}


def postgres_engine():
    import psycopg

    database = "weft_audience_engines"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {database}")
    duck = duck_tables()
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}") as con:
        con.execute("SET TIME ZONE 'UTC'")
        for name in tables:
            schema, _ = name.split(".")
            described = duck.execute(f"DESCRIBE {name}").fetchall()
            columns = ", ".join(f'"{c[0]}" {PG_TYPES[c[1]]}' for c in described)
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            con.execute(f"CREATE TABLE {name} ({columns})")
            rows = duck.execute(f"SELECT * FROM {name}").fetchall()
            marks = ", ".join(["%s"] * len(described))
            with con.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
        con.commit()
        run("postgres", lambda sql: con.execute(sql).fetchall())
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def spark_engine():
    from pysail.spark import SparkConnectServer
    from pyspark.sql import SparkSession

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    spark = SparkSession.builder.remote(f"sc://{host}:{port}").getOrCreate()
    try:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        for name, path in tables.items():
            view = name.replace(".", "_")
            spark.read.format("delta").load(path).createOrReplaceTempView(view)
        run("spark", lambda sql: spark.sql(sql).collect())
    finally:
        spark.stop()
        server.stop()


def snowflake_engine():
    import fakesnow
    import snowflake.connector

    duck = duck_tables()
    with fakesnow.patch():
        con = snowflake.connector.connect(database="weft", schema="profiles")
        cursor = con.cursor()
        for name in tables:
            schema, _ = name.split(".")
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS weft.{schema}")
            described = duck.execute(f"DESCRIBE {name}").fetchall()
            types = {
                "VARCHAR": "VARCHAR",
                "BIGINT": "NUMBER(19, 0)",
                "INTEGER": "NUMBER(10, 0)",
                "DOUBLE": "DOUBLE",
                "BOOLEAN": "BOOLEAN",
                "DATE": "DATE",
                "TIMESTAMP WITH TIME ZONE": "TIMESTAMP_NTZ",
                "VARCHAR[]": "ARRAY",
            }
            columns = ", ".join(f"{c[0]} {types[c[1]]}" for c in described)
            cursor.execute(f"CREATE TABLE {name} ({columns})")
            rows = duck.execute(f"SELECT * FROM {name}").fetchall()
            for row in rows:
                values = []
                for (column, kind, *_), value in zip(described, row):
                    if value is None:
                        values.append("NULL")
                    elif kind == "VARCHAR[]":
                        values.append(f"PARSE_JSON('{json.dumps(value)}')")
                    elif kind in ("BIGINT", "INTEGER", "DOUBLE"):
                        values.append(repr(value))
                    elif kind == "BOOLEAN":
                        values.append("TRUE" if value else "FALSE")
                    else:
                        text = str(value).replace("+00:00", "").replace("\\", "\\\\").replace("'", "\\'")
                        values.append(f"'{text}'")
                cursor.execute(f"INSERT INTO {name} SELECT {', '.join(values)}")
        run("snowflake", lambda sql: cursor.execute(sql).fetchall())


wanted = {query["dialect"] for query in spec["queries"]}
engines = {
    "duckdb": duckdb_engine,
    "postgres": postgres_engine,
    "spark": spark_engine,
    "snowflake": snowflake_engine,
}
for dialect, engine in engines.items():
    if dialect in wanted:
        try:
            engine()
        except Exception as error:  # the engine itself failed: every query says so
            for query in spec["queries"]:
                if query["dialect"] == dialect and query["id"] not in results:
                    results[query["id"]] = {"error": f"{dialect}: {type(error).__name__}: {error}"}

print(json.dumps({"results": results}))
