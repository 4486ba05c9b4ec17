-- wrk script: the request of bench/post.lua with `cf-aig-collect-log-payload: false`, so a logged request keeps its
-- record but not its bodies (run from the repository root).
dofile("bench/post.lua")
wrk.headers["cf-aig-collect-log-payload"] = "false"
