"""Lists: grow lists by append, build lists of tuples and small lists, sort them, slice,
concatenate and filter with comprehensions. Prints the seconds taken (wall clock) on stdout,
the CPU seconds on stderr ("cpu S")."""
import sys, time

def main(scale):
    wall0, cpu0 = time.perf_counter(), time.process_time()
    check = 0
    for wave in range(max(1, round(2 * scale))):
        rows = []
        for i in range(150_000):
            rows.append((i * 2654435761 % 1_000_003, i, [i, i + 1]))
        rows.sort()
        evens = [r for r in rows if r[1] % 2 == 0]
        chunks = [rows[j:j + 50] for j in range(0, len(rows), 50)]
        flat = []
        for c in chunks:
            flat += c[::-1]
        nested = [[x[1]] * (x[1] % 8) for x in flat[:60_000]]
        check += len(evens) + len(flat) + sum(map(len, nested))
        del rows, evens, chunks, flat, nested
    return time.perf_counter() - wall0, time.process_time() - cpu0

if __name__ == "__main__":
    wall, cpu = main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
    print(f"{wall:.4f}")
    print(f"cpu {cpu:.4f}", file=sys.stderr)
