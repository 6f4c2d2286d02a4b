"""Dev tools: what runs on a developer's machine and in the tests, never on Glue, EMR or Lambda.

`synthetic` writes full-size and larger inputs (`make data`); `stream_local` stands in for AWS
with moto and runs the stream handlers as API Gateway and Lambda would (`make stream-demo`).
setup.py packages `retail_pipeline` only, so nothing here reaches the wheel, the --py-files zip
or the Lambda zip; `retail_pipeline` never imports from here.
"""
