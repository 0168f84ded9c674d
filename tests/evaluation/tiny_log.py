"""A hand-made log whose protocol results are computed by hand (see test_protocol.py).

t0 = 0, t1 = 10000 -> cut = 8000; with S = 2 the slices are [8000, 9000) and [9000, 10000].
Gaps between events of a key inside one session are <= 600 s; u1/u2/u3 never come back.
"""

TINY_LOG = [
    # warm-up (ts < 8000): sessions u1: a b c, u2: a b, u3: b c, u5: x
    ("u1", "a", 0), ("u1", "b", 10), ("u1", "c", 20),
    ("u2", "a", 100), ("u2", "b", 110),
    ("u3", "b", 200), ("u3", "c", 210),
    ("u5", "x", 7900),
    # slice 0 [8000, 9000): u4: a b b e (b b is an immediate repeat: no query), u5 continues x -> a
    ("u4", "a", 8100), ("u4", "b", 8200), ("u4", "b", 8300), ("u4", "e", 8400),
    ("u5", "a", 8500),
    # slice 1 [9000, 10000]: u4 continues e -> c (gap 600), u6: a b, u7: a e, u8: z alone at t1
    ("u4", "c", 9000),
    ("u6", "a", 9100), ("u6", "b", 9150),
    ("u7", "a", 9500), ("u7", "e", 9600),
    ("u8", "z", 10000),
]
