"""Dicts: build many dicts keyed by strings and ints, look up, update, merge and delete; a
dict-of-dicts index rebuilt several times. Prints the seconds taken (wall clock) on stdout,
the CPU seconds on stderr ("cpu S")."""
import sys, time

def main(scale):
    wall0, cpu0 = time.perf_counter(), time.process_time()
    check = 0
    for wave in range(max(1, round(10 * scale))):
        index = {}
        for i in range(60_000):
            key = f"user:{i * 7919 % 100_003}"
            index[key] = {"id": i, "name": key, "score": i % 97, "tags": {"a": i & 1, "b": i & 2}}
        for i in range(0, 60_000, 3):
            rec = index.get(f"user:{i * 7919 % 100_003}")
            if rec is not None:
                rec["score"] += 1
                rec.update(extra=i, more={"x": i})
        counts = {}
        for rec in index.values():
            counts[rec["score"]] = counts.get(rec["score"], 0) + 1
        merged = {**counts, **{k + 1000: v for k, v in counts.items()}}
        check += len(index) + sum(merged.values())
        for k in list(index)[::2]:
            del index[k]
        check += len(index)
        del index, counts, merged
    assert check == round(10 * scale) * (60_000 + 2 * 60_000 + 30_000), check
    return time.perf_counter() - wall0, time.process_time() - cpu0

if __name__ == "__main__":
    wall, cpu = main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
    print(f"{wall:.4f}")
    print(f"cpu {cpu:.4f}", file=sys.stderr)
