-- wrk script: each thread walks its own slice of pre-signed Shopify orders/create requests, so every
-- request carries a unique order and webhook id. The request file is made by bench/webhooks.py.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  requests = {}
  local total_threads = tonumber(args[2])
  local n = 0
  for line in io.lines(args[1]) do
    if n % total_threads == tid then
      local id, sig, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", "/webhooks/shopify", {
        ["Content-Type"] = "application/json",
        ["X-Shopify-Topic"] = "orders/create",
        ["X-Shopify-Hmac-Sha256"] = sig,
        ["X-Shopify-Shop-Domain"] = "bench.myshopify.com",
        ["X-Shopify-API-Version"] = "2026-07",
        ["X-Shopify-Webhook-Id"] = id,
        ["X-Shopify-Event-Id"] = id,
        ["X-Shopify-Triggered-At"] = "2026-11-27T09:00:00Z",
      }, body)
    end
    n = n + 1
  end
  i = 0
end

function request()
  i = i + 1
  return requests[(i - 1) % #requests + 1]
end
