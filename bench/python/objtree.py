"""Object trees: build binary trees of class instances (some with __slots__, some with a
__dict__), walk them, replace subtrees, drop them (the garbage collector runs as usual);
like pyperformance's tree-building benchmarks. Prints the seconds taken (wall clock) on
stdout, the CPU seconds on stderr ("cpu S")."""
import sys, time

class Node:
    __slots__ = ("left", "right", "value")
    def __init__(self, left, right, value):
        self.left, self.right, self.value = left, right, value

class Leaf:
    def __init__(self, value):
        self.value = value
        self.payload = [value, str(value)]

def build(depth, v):
    if depth == 0:
        return Leaf(v)
    return Node(build(depth - 1, 2 * v), build(depth - 1, 2 * v + 1), v)

def total(n):
    if isinstance(n, Leaf):
        return n.value
    return n.value + total(n.left) + total(n.right)

def main(scale):
    wall0, cpu0 = time.perf_counter(), time.process_time()
    check = 0
    long_lived = build(14, 1)
    for wave in range(max(1, round(60 * scale))):
        trees = [build(10, i) for i in range(16)]
        check += sum(total(tr) for tr in trees)
        node = long_lived
        for d in range(wave % 10):
            node = node.left if d % 2 else node.right
        node.left = build(4, wave)
        del trees
    check += total(long_lived)
    assert check > 0
    return time.perf_counter() - wall0, time.process_time() - cpu0

if __name__ == "__main__":
    wall, cpu = main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
    print(f"{wall:.4f}")
    print(f"cpu {cpu:.4f}", file=sys.stderr)
