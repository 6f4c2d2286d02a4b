#!/bin/bash
# EMR 7 bootstrap action: Python 3.11 for PySpark (EMR 7's own python3 is 3.9; the package needs
# 3.11) with the pipeline's third-party pins, every dependency at the version the tests ran with
# (constraints.txt). Spark and pyspark are EMR's own, never pip's.
#
#   aws emr create-cluster --release-label emr-7.5.0 --applications Name=Spark \
#     --configurations file://dist/emr/configurations.json \
#     --bootstrap-actions Path=s3://<artifacts>/emr/bootstrap.sh,Args=[s3://<artifacts>] ...
#
# The nodes need a route to PyPI (NAT gateway or a mirror named in /etc/pip.conf).
set -euo pipefail

artifacts_uri="${1:?usage: bootstrap.sh s3://bucket/prefix (where dist/ was uploaded)}"
requirements=/tmp/retail-pipeline-requirements.txt
constraints=/tmp/retail-pipeline-constraints.txt

sudo dnf install -y -q python3.11 python3.11-pip
aws s3 cp --only-show-errors "${artifacts_uri%/}/emr-requirements.txt" "$requirements"
aws s3 cp --only-show-errors "${artifacts_uri%/}/constraints.txt" "$constraints"
sudo /usr/bin/python3.11 -m pip install --quiet --no-cache-dir -r "$requirements" -c "$constraints"
/usr/bin/python3.11 -c 'import boto3, great_expectations, openlineage.client, yaml' # fail here, not in the first step
