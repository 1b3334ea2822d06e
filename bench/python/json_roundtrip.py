"""JSON: serialise and parse nested records (dicts of lists of dicts, strings, numbers), and
check that the round trip is exact. Prints the seconds taken (wall clock) on stdout, the CPU
seconds on stderr ("cpu S")."""
import json, sys, time

def record(i):
    return {"id": i, "name": f"item-{i}", "price": i * 0.25, "ok": i % 3 == 0,
            "tags": [f"t{i % 13}", f"g{i % 7}"], "dims": {"w": i % 100, "h": i % 37, "d": [i, i * 2]}}

def main(scale):
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for wave in range(max(1, round(2 * scale))):
        doc = {"items": [record(i) for i in range(40_000)], "meta": {"wave": wave}}
        text = json.dumps(doc)
        back = json.loads(text)
        assert back == doc
        pretty = json.dumps(back["items"][:5000], indent=2, sort_keys=True)
        assert len(json.loads(pretty)) == 5000
        del doc, text, back, pretty
    return time.perf_counter() - wall0, time.process_time() - cpu0

if __name__ == "__main__":
    wall, cpu = main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
    print(f"{wall:.4f}")
    print(f"cpu {cpu:.4f}", file=sys.stderr)
