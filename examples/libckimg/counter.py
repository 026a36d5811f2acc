"""libckimg from Python (ctypes): checkpoint the interpreter at step AT of a loop.

    python3 counter.py IMAGE AT LIMIT      then    ckimg restore IMAGE

The first run prints "checkpoint written at step AT"; the restored interpreter prints
"restored at step AT" and finishes the loop. LIBCKIMG overrides the library's path.
"""
import ctypes
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
lib = ctypes.CDLL(os.environ.get("LIBCKIMG", os.path.join(here, "..", "..", "build", "libckimg.so")), use_errno=True)
lib.ckimg_checkpoint.argtypes = [ctypes.c_char_p, ctypes.c_uint]
lib.ckimg_checkpoint.restype = ctypes.c_int
CKIMG_EXIT = 1

image, at, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
total = 0
for i in range(limit):
    if i == at:
        r = lib.ckimg_checkpoint(image.encode(), CKIMG_EXIT if "exit" in sys.argv[4:] else 0)
        if r < 0:
            sys.exit("ckimg_checkpoint: " + os.strerror(ctypes.get_errno()))
        print(("restored" if r == 1 else "checkpoint written") + f" at step {i}", flush=True)
    total = (total * 31 + i) % (1 << 64)
print("sum", total, flush=True)
