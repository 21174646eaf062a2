-- Argo CD health check for openmodel.io/OpenModel
-- (argocd-cm key: resource.customizations.health.openmodel.io_OpenModel; see docs/gitops.md).
--
-- Healthy     phase Ready and condition Ready=True
-- Progressing no status yet, status.observedGeneration behind metadata.generation, or phase
--             Pending, Resolving, Verifying, Pulling, Deploying, Updating (the previous revision serves
--             while the new one is pulled or rolled out)
-- Suspended   serving scaled to zero on purpose (spec.serving.replicas: 0)
-- Degraded    phase Rejected (Trusted's message), Failed (WeightsReady's, else Resolved's), Degraded (Ready's)
-- Unknown     a phase this script does not know
local hs = {}

local function condition(ctype)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

-- "<Type> <Reason>: <message>" of a condition, or nil when it is absent.
local function describe(ctype)
  local c = condition(ctype)
  if c == nil then
    return nil
  end
  local text = ctype
  if c.reason ~= nil and c.reason ~= "" then
    text = text .. " " .. c.reason
  end
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

-- The first of the given conditions that is present and not True, described.
local function first_failing(types)
  for _, ctype in ipairs(types) do
    local c = condition(ctype)
    if c ~= nil and c.status ~= "True" then
      return describe(ctype)
    end
  end
  return nil
end

local function finish(status, message)
  hs.status = status
  hs.message = message
  return hs
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  return finish("Progressing", "being deleted: the operator removes the children, then the openmodel.io/cleanup finalizer")
end

if obj.status == nil or obj.status.phase == nil or obj.status.phase == "" then
  return finish("Progressing", "waiting for the operator to reconcile this OpenModel")
end

local status = obj.status
local phase = status.phase
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  local seen = "none"
  if status.observedGeneration ~= nil then
    seen = tostring(status.observedGeneration)
  end
  return finish("Progressing", "waiting for the operator to act on generation " .. tostring(generation) ..
    " (status is from generation " .. seen .. ", phase " .. phase .. ")")
end

local ready = condition("Ready")

if ready ~= nil and ready.reason == "ScaledToZero" and phase ~= "Rejected" and phase ~= "Failed" then
  return finish("Suspended", describe("Ready"))
end

if phase == "Ready" then
  if ready ~= nil and ready.status == "True" then
    return finish("Healthy", describe("Ready"))
  end
  return finish("Progressing", "phase Ready but the Ready condition is not True yet")
end

if phase == "Pending" or phase == "Resolving" or phase == "Verifying" or phase == "Pulling" or phase == "Deploying" or
    phase == "Updating" then
  return finish("Progressing", describe("Ready") or ("phase " .. phase))
end

if phase == "Rejected" then
  return finish("Degraded", first_failing({"Trusted", "Ready"}) or "rejected by the trust policies")
end

if phase == "Failed" then
  return finish("Degraded", first_failing({"WeightsReady", "Resolved", "Trusted", "Ready"}) or "failed")
end

if phase == "Degraded" then
  return finish("Degraded", first_failing({"Ready", "Available"}) or "degraded")
end

return finish("Unknown", "unknown phase " .. tostring(phase))
