"""The fleet layer: what every stack in one process shares, between the AWS client wrapper (controller/aws/)
and the resource kinds (controller/resources/).

- inventory.py: one sweep per Region reads everything the operator owns with list and batch calls; every
  stack's periodic check compares against it, answering the kinds' read port (resources/reads.Reads). Reads that cannot be batched are spread over a deep period
  derived from the fleet size and the budget.
- events.py: out-of-band changes from an SQS queue fed by EventBridge (CloudTrail management events), so a
  console change reaches the stack it touched in seconds.

The API budget they all draw on is a property of the AWS client: controller/aws/budget.py.
"""
