"""Reads weft's Delta tables with other engines: Python `deltalake` and Spark (Sail).

Usage: read_lake.py LAKE_DIR. Prints one JSON object: for each engine and table,
the row count and column names, and Spark's count of events by event_name.
"""

import json
import sys

from deltalake import DeltaTable
from pysail.spark import SparkConnectServer
from pyspark.sql import SparkSession

lake = sys.argv[1]
tables = {"events": f"{lake}/atomic/events", "bad_rows": f"{lake}/atomic/bad_rows"}
result = {"deltalake": {}, "spark": {}}

for name, path in tables.items():
    table = DeltaTable(path).to_pyarrow_table()
    result["deltalake"][name] = {"rows": table.num_rows, "columns": table.column_names}

server = SparkConnectServer(ip="127.0.0.1", port=0)
server.start(background=True)
host, port = server.listening_address
spark = SparkSession.builder.remote(f"sc://{host}:{port}").getOrCreate()
try:
    for name, path in tables.items():
        frame = spark.read.format("delta").load(path)
        result["spark"][name] = {"rows": frame.count(), "columns": frame.columns}
    events = spark.read.format("delta").load(tables["events"])
    events.createOrReplaceTempView("events")
    rows = spark.sql("SELECT event_name, count(*) AS n FROM events GROUP BY event_name").collect()
    result["spark"]["events_by_name"] = {row["event_name"]: row["n"] for row in rows}
finally:
    spark.stop()
    server.stop()

print(json.dumps(result))
