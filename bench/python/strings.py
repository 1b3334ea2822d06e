"""Strings: formatting, concatenation, split/join, replace, upper/lower, encode/decode and a
word-count over generated text. Prints the seconds taken (wall clock) on stdout, the CPU
seconds on stderr ("cpu S")."""
import sys, time

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
         "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon"]

def main(scale):
    wall0, cpu0 = time.perf_counter(), time.process_time()
    check = 0
    for wave in range(max(1, round(16 * scale))):
        lines = []
        for i in range(40_000):
            w = WORDS[i % 20]
            lines.append(f"{i:08d} {w} {w.upper()} {i * 31 % 1000:>5} " + w * (i % 7))
        text = "\n".join(lines)
        counts = {}
        for line in text.split("\n"):
            for word in line.replace("a", "A").lower().split():
                counts[word] = counts.get(word, 0) + 1
        s = ""
        for i in range(20_000):
            s += WORDS[i % 20][: i % 5 + 1]
        b = text.encode("utf-8")
        u = b.decode("utf-8")
        parts = [u[j:j + 37] for j in range(0, len(u), 37)]
        check += len(counts) + len(s) + len(parts) + sum(len(p) for p in parts[:1000])
        del lines, text, counts, s, b, u, parts
    return time.perf_counter() - wall0, time.process_time() - cpu0

if __name__ == "__main__":
    wall, cpu = main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
    print(f"{wall:.4f}")
    print(f"cpu {cpu:.4f}", file=sys.stderr)
