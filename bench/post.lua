-- wrk script: a realistic chat-completion POST (about 1 KB, with a provider key), as an SDK would send it.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-0123456789abcdefghijklmnopqrstuvwxyz"
wrk.headers["User-Agent"] = "OpenAI/JS 6.49.0"
wrk.headers["Accept"] = "application/json"
wrk.body = [[{"model":"gpt-4o-mini","temperature":0.2,"max_tokens":256,"messages":[{"role":"system","content":"You are a helpful assistant that answers questions about the weather concisely and accurately, citing the data you were given."},{"role":"user","content":"What is the weather like in Lisbon today? I am planning a walk along the river in the afternoon and would like to know whether to bring an umbrella, a jacket, or sunscreen. Please keep the answer short."},{"role":"assistant","content":"It is sunny with a light breeze; bring sunscreen and a light jacket for the evening."},{"role":"user","content":"And tomorrow morning? I have a meeting downtown at nine and will be walking from the station."}]}]]
