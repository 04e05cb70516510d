-- wrk script: each thread walks its share of the click paths once, then repeats the last
-- (a repeat records nothing new). Paths come from the file named in WRK_PATHS.
local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  paths = {}
  local n = 0
  for line in io.lines(os.getenv("WRK_PATHS")) do
    n = n + 1
    table.insert(paths, line)
  end
  index = id
  step = tonumber(os.getenv("WRK_THREADS"))
end

function request()
  local path = paths[math.min(index, #paths)]
  index = index + step
  return wrk.format("GET", path)
end
