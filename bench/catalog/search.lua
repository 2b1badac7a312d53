-- wrk script: GET /api/v1/catalog?q=<term>, rotating through bench/catalog/terms.txt
local terms = {}
for line in io.lines(os.getenv("GDX_TERMS")) do
  if #line > 0 then terms[#terms + 1] = line end
end
local token = os.getenv("GDX_TOKEN")
local n = 0
local function enc(s)
  return (s:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end))
end
request = function()
  n = n + 1
  local t = terms[(n % #terms) + 1]
  return wrk.format("GET", "/api/v1/catalog?q=" .. enc(t), { ["Authorization"] = "Bearer " .. token })
end
