import json, random, time
rng = random.Random(1)
t = time.perf_counter()
for wave in range(3):
    objs = [{"id": i, "name": str(i) * rng.randrange(1, 20), "tags": list(range(i % 10))} for i in range(200_000)]
    back = json.loads(json.dumps(objs))
    assert back == objs
    s = sorted(str(x) for x in range(300_000))
    d = {k: [k] * 3 for k in s}
    del objs, back, s, d
print(f"{time.perf_counter() - t:.3f}")
