"""What AWS's answers mean: error codes, throttling, transient failures, a resource gone meanwhile."""
from __future__ import annotations

import botocore.exceptions
import botocore.parsers

# Error codes with which AWS says "slow down" (counted per attempt by the budget, see AwsClients._throttled).
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "RequestThrottled", "SlowDown", "RequestThrottledException",
})


def retried(response: dict) -> bool:
    """Whether botocore sent this call more than once. An earlier attempt may have executed with its answer
    lost (a closed connection, a timeout): a create that AWS does not deduplicate must look for a twin."""
    return response.get("ResponseMetadata", {}).get("RetryAttempts", 0) > 0


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


# Errors that mean "AWS is busy or briefly broken": botocore already retried them; the operator
# retries the whole reconcile later instead of failing the resource.
TRANSIENT_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "ServiceUnavailable", "ServiceUnavailableException", "InternalFailure", "InternalError", "RequestTimeout",
    "DependencyViolation", "ResourceInUse", "ResourceInUseException", "PriorityInUse",
}


# A resource that was there when observed and is gone when changed: someone else deleted it meanwhile. The
# next run observes again (and recreates what the spec still has), soon.
GONE_CODES = {"ListenerNotFound", "RuleNotFound", "TargetGroupNotFound", "LoadBalancerNotFound",
              "InvalidGroup.NotFound", "ServiceNotFoundException", "ServiceNotActiveException"}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.ReadTimeoutError,
                        botocore.parsers.ResponseParserError)):
        return True
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in TRANSIENT_CODES or status >= 500
    return False
