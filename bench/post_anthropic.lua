-- wrk script: the Messages request the unified API makes of post_compat.lua, sent to Anthropic's native path.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = "sk-ant-bench-0123456789abcdefghijklmnopqrstuvwxyz"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["User-Agent"] = "Anthropic/JS 0.60.0"
wrk.headers["Accept"] = "application/json"
wrk.body = [[{"model":"claude-haiku-4-5","max_tokens":256,"system":"You are a helpful assistant that answers questions about the weather concisely and accurately, citing the data you were given.","messages":[{"role":"user","content":"What is the weather like in Lisbon today? I am planning a walk along the river in the afternoon and would like to know whether to bring an umbrella, a jacket, or sunscreen. Please keep the answer short."},{"role":"assistant","content":[{"type":"text","text":"It is sunny with a light breeze; bring sunscreen and a light jacket for the evening."}]},{"role":"user","content":"And tomorrow morning? I have a meeting downtown at nine and will be walking from the station."}],"temperature":0.2}]]
