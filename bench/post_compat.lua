-- wrk script: the chat completion of post.lua sent to the unified API for an Anthropic model (OpenAI SDK headers).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-ant-bench-0123456789abcdefghijklmnopqrstuvwxyz"
wrk.headers["User-Agent"] = "OpenAI/JS 6.49.0"
wrk.headers["Accept"] = "application/json"
wrk.body = [[{"model":"anthropic/claude-haiku-4-5","temperature":0.2,"max_tokens":256,"messages":[{"role":"system","content":"You are a helpful assistant that answers questions about the weather concisely and accurately, citing the data you were given."},{"role":"user","content":"What is the weather like in Lisbon today? I am planning a walk along the river in the afternoon and would like to know whether to bring an umbrella, a jacket, or sunscreen. Please keep the answer short."},{"role":"assistant","content":"It is sunny with a light breeze; bring sunscreen and a light jacket for the evening."},{"role":"user","content":"And tomorrow morning? I have a meeting downtown at nine and will be walking from the station."}]}]]
