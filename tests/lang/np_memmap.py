#!/usr/bin/python3
"""np_memmap.py - a numpy array memory-mapped from a key of a mounted store.

  np_memmap.py write KEY [ROWS COLS]
      Create KEY (a path under the mount), give it the size of a float64
      array of shape (ROWS, COLS) (default 1000 x 1000) with truncate, map it
      with np.memmap mode 'r+', fill it with known values, flush, and store
      the dtype and shape in the xattrs user.dtype and user.shape.
  np_memmap.py check KEY
      Read dtype and shape back from the xattrs, map KEY with np.memmap
      mode 'r', and compare every element with the known values.

Run with /usr/bin/python3 (Debian's python3-numpy).  Exit status 0 on
success, 1 on a mismatch or error (with a message naming the key).
"""
import os
import sys

import numpy as np


def expected(shape, dtype):
    """The known contents: element n = i * cols + j holds n + sqrt(n) / 2 + 0.25."""
    rows, cols = shape
    a = np.arange(rows * cols, dtype=dtype).reshape(shape)
    return a + np.sqrt(a) * 0.5 + 0.25


def write(key, rows, cols):
    shape = (rows, cols)
    dtype = np.dtype("float64")
    with open(key, "xb") as f:
        f.truncate(rows * cols * dtype.itemsize)
    m = np.memmap(key, dtype=dtype, mode="r+", shape=shape)
    m[:] = expected(shape, dtype)
    m.flush()
    del m
    os.setxattr(key, "user.dtype", dtype.str.encode())
    os.setxattr(key, "user.shape", ",".join(str(n) for n in shape).encode())
    print(f"wrote {key}: {dtype.str} {shape}")
    return 0


def check(key):
    dtype = np.dtype(os.getxattr(key, "user.dtype").decode())
    shape = tuple(int(n) for n in os.getxattr(key, "user.shape").decode().split(","))
    size = os.stat(key).st_size
    want_size = int(np.prod(shape)) * dtype.itemsize
    if size != want_size:
        print(f"{key}: size {size}, expected {want_size} for {dtype.str} {shape}",
              file=sys.stderr)
        return 1
    m = np.memmap(key, dtype=dtype, mode="r", shape=shape)
    want = expected(shape, dtype)
    if not np.array_equal(m, want):
        bad = np.argwhere(m != want)
        i, j = bad[0]
        print(f"{key}: {len(bad)} elements differ, first at ({i}, {j}): "
              f"{m[i, j]!r} != {want[i, j]!r}", file=sys.stderr)
        return 1
    print(f"checked {key}: {dtype.str} {shape}, sum {float(m.sum())!r}")
    return 0


def main(argv):
    if len(argv) in (3, 5) and argv[1] == "write":
        rows, cols = (int(argv[3]), int(argv[4])) if len(argv) == 5 else (1000, 1000)
        return write(argv[2], rows, cols)
    if len(argv) == 3 and argv[1] == "check":
        return check(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except OSError as e:
        print(f"np_memmap.py: {e}", file=sys.stderr)
        sys.exit(1)
