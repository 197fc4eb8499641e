"""Runs weft's web model, written for Spark, on Spark (Sail) over weft's atomic.events.

Usage: spark_model.py EVENTS_TABLE STATEMENTS_JSON AGGREGATES_JSON. The statements are
(view name, SQL) pairs reading `atomic.events`; the aggregates map a view to one
SELECT with `{t}` for it. Prints one JSON object: each aggregate's row.
"""

import json
import sys

from pysail.spark import SparkConnectServer
from pyspark.sql import SparkSession

events, statements, aggregates = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])

server = SparkConnectServer(ip="127.0.0.1", port=0)
server.start(background=True)
host, port = server.listening_address
spark = SparkSession.builder.remote(f"sc://{host}:{port}").getOrCreate()
result = {}
try:
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    # a temporary view cannot be named atomic.events; a warehouse would have the table
    spark.read.format("delta").load(events).createOrReplaceTempView("atomic_events")
    for name, sql in statements:
        sql = sql.replace("atomic.events", "atomic_events")
        spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS {sql}")
    for view, sql in aggregates.items():
        row = spark.sql(sql.replace("{t}", view)).collect()[0]
        result[view] = row.asDict()
finally:
    spark.stop()
    server.stop()

print(json.dumps(result))
