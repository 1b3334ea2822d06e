"""The `make run` demo: Python object churn, every object allocated by arenalloc.

Run with PYTHONMALLOC=malloc and libarenalloc.so preloaded (scripts/arenalloc-run does the
preloading), so CPython sends every object through malloc/free.  The script builds and drops
dicts, lists, strings, tuples and class instances in waves, then asks the allocator itself
(through ctypes) what it holds, which also proves the preload took effect.
"""
import ctypes
import json
import os
import random
import time


class Node:
    __slots__ = ("key", "children", "payload")

    def __init__(self, key, payload):
        self.key = key
        self.children = []
        self.payload = payload


def build_tree(rng, n):
    nodes = [Node(i, "x" * rng.randrange(0, 200)) for i in range(n)]
    for i in range(1, n):
        nodes[rng.randrange(0, i)].children.append(nodes[i])
    return nodes[0]


def count(node):
    total, stack = 0, [node]
    while stack:
        cur = stack.pop()
        total += 1
        stack.extend(cur.children)
    return total


def main():
    lib = ctypes.CDLL(None)  # the process's global symbols: the preloaded library's
    try:
        lib.arenalloc_version.restype = ctypes.c_char_p
        lib.arenalloc_arenas_mapped.restype = ctypes.c_size_t
        lib.arenalloc_arenas_unmapped.restype = ctypes.c_size_t
    except AttributeError:
        raise SystemExit("arenalloc is not loaded: run this through scripts/arenalloc-run")

    rng = random.Random(2026)
    start = time.perf_counter()
    for wave in range(5):
        objs = [{"id": i, "name": str(i) * rng.randrange(1, 20), "tags": list(range(i % 10))}
                for i in range(100_000)]
        text = json.dumps(objs)
        back = json.loads(text)
        assert back == objs
        tree = build_tree(rng, 50_000)
        assert count(tree) == 50_000
        peak = lib.arenalloc_arenas_mapped()
        del objs, back, tree, text
        print(f"wave {wave}: 100k dicts through json, a 50k-node tree; "
              f"arenas mapped at peak of wave: {peak}, after freeing: {lib.arenalloc_arenas_mapped()}")
    elapsed = time.perf_counter() - start
    print(f"arenalloc {lib.arenalloc_version().decode()} served every object "
          f"(PYTHONMALLOC={os.environ.get('PYTHONMALLOC', '')}); "
          f"arenas returned to the OS: {lib.arenalloc_arenas_unmapped()}; {elapsed:.2f}s")


if __name__ == "__main__":
    main()
