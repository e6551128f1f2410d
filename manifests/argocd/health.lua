-- Argo CD health for ecsalb.io/EcsAlbService (README "Status for GitOps" has the table this follows).
-- Argo CD has no generic health for custom resources: without this, an Application is Healthy whatever the
-- operator says. Install it with argocd-cm.yaml (same folder).
local hs = {}

local function find(conditions, type_)
  if conditions == nil then return nil end
  for _, c in ipairs(conditions) do
    if c.type == type_ then return c end
  end
  return nil
end

local function say(status, message)
  hs.status = status
  hs.message = message
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  return say("Progressing", "waiting for the operator to reconcile this resource")
end
local conditions = obj.status.conditions
local stalled = find(conditions, "Stalled")
local reconciling = find(conditions, "Reconciling")
local ready = find(conditions, "Ready")
local drifted = find(conditions, "Drifted")

if obj.metadata.deletionTimestamp ~= nil then
  if stalled ~= nil and stalled.status == "True" then
    return say("Degraded", stalled.reason .. ": " .. stalled.message)
  end
  return say("Progressing", "deleting the AWS resources")
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  return say("Progressing", "the latest spec change is not reconciled yet")
end
if stalled ~= nil and stalled.status == "True" then
  return say("Degraded", stalled.reason .. ": " .. stalled.message)
end
if reconciling ~= nil and reconciling.status == "True" then
  return say("Progressing", reconciling.reason .. ": " .. reconciling.message)
end
if ready ~= nil and ready.status == "True" then
  if drifted ~= nil and drifted.status == "True" then
    -- policies.drift: Report: the operator reports and does not correct; someone has to look.
    return say("Degraded", drifted.reason .. ": " .. drifted.message)
  end
  return say("Healthy", ready.message)
end
if ready ~= nil then
  return say("Progressing", ready.reason .. ": " .. ready.message)
end
return say("Progressing", "waiting for the operator to reconcile this resource")
