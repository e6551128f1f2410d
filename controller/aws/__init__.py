"""The one way to call AWS: boto3 clients with retries, endpoint_url and call accounting (clients.py), the
client-side API budget every attempt takes a token from (budget.py), what AWS's error codes mean (errors.py).

The names below are the package's public face: `from controller.aws import AwsClients` keeps working."""
from controller.aws.clients import SERVICES, AwsClients, CallCounter, NoRegion, Registry, chunks, is_read
from controller.aws.errors import (GONE_CODES, THROTTLING_CODES, TRANSIENT_CODES, error_code, is_transient,
                                   retried)

__all__ = ["SERVICES", "AwsClients", "CallCounter", "NoRegion", "Registry", "chunks", "is_read", "GONE_CODES",
           "THROTTLING_CODES", "TRANSIENT_CODES", "error_code", "is_transient", "retried"]
