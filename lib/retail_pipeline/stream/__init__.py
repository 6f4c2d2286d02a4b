"""The streaming path: plain-Python Lambda handlers that apply the same rules as the batch job.

    POST /transactions --ingest--> Kinesis (PartitionKey = InvoiceNo)
        --process--> DynamoDB (one item per line under its InvoiceNo, written in batches)
                   + S3 curated Parquet (one object per batch and month) + S3 dead letters
    GET /transactions?InvoiceNo=..[&StockCode=..] --query--> DynamoDB

What a request, a record or a key may hold is in `retail_pipeline.limits`, the same limits at
ingest, in the consumer and in the query API.

Modules: `settings` (environment -> frozen dataclasses), `body` (request bodies -> raw records),
`records` (Kinesis payloads, the rules applied to one record), `store` (the DynamoDB model),
`objects` (the S3 objects), `auth` (Cognito access tokens), `api` (API Gateway helpers), the
handlers `ingest`, `process` and `query`, and `local/` (moto server, an HTTP front in place of
API Gateway, a poller in place of Lambda's event source mapping, and the demo).

Nothing here imports pyspark: the Lambda package needs boto3, aws-lambda-powertools, PyJWT
(with cryptography) and pyarrow.
"""
