"""ecs-alb-operator: one EcsAlbService resource -> ALB, listeners, target groups, security groups, ECS service."""

GROUP = "ecsalb.io"
VERSION = "v1alpha1"
KIND = "EcsAlbService"
PLURAL = "ecsalbservices"
SHORT_NAME = "eas"
