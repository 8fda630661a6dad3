"""A naive content store, as a peer: the least any store that names objects by digest does.

    python benchmarks/minimal_store.py SRC STORE

Copies every regular file under SRC into STORE as ``STORE/ab/cdef…`` (its BLAKE3 digest):
the kernel copies it to a temporary file (``copy_file_range``), the copy is hashed
through ``mmap``, and renamed into place — the same steps, on the same number of threads
(one more than the cores, at most 4), as lockgate's ``local`` store for large files.
Nothing else: no scan rules, no limits, no stat checks, no manifest, no state, no
durability, no plugins, no configuration. It sets the floor that copying plus hashing
costs on a machine, so lockgate's own overhead is the difference.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading

import blake3


def main() -> None:
    src, store = sys.argv[1], sys.argv[2]
    os.makedirs(f"{store}/tmp")
    files = [f"{d}/{name}" for d, _, names in os.walk(src) for name in names]
    queue = iter(files)
    lock = threading.Lock()
    serial = itertools.count()
    made: set[str] = set()

    def work() -> None:
        while True:
            with lock:
                path = next(queue, None)
            if path is None:
                return
            tmp = f"{store}/tmp/{next(serial)}"
            fd = os.open(path, os.O_RDONLY)
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                while os.copy_file_range(fd, out, 1 << 30):
                    pass
            finally:
                os.close(fd)
                os.close(out)
            hasher = blake3.blake3()
            hasher.update_mmap(tmp)
            digest = hasher.hexdigest()
            fan = f"{store}/{digest[:2]}"
            if fan not in made:
                os.makedirs(fan, exist_ok=True)
                made.add(fan)
            os.rename(tmp, f"{fan}/{digest[2:]}")

    threads = [threading.Thread(target=work) for _ in range(min(4, (os.cpu_count() or 1) + 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
