#!/usr/bin/env python3
"""Count the primes up to a limit by trial division, slowly enough to be dumped midway.

Usage: primes.py LIMIT PROGRESS RESULT

PROGRESS stays open for the whole run. Every 2000 numbers it is rewritten at
offset 0 with one fixed-width line "checked N of LIMIT primes C".

At the end RESULT gets one line "limit=L count=C sum=S sha256=H" and the same
line goes to stdout. H is the SHA-256 of the primes in decimal, one per line,
so a run that skips or repeats a number after a restore gives another result.
RESULT is written under a temporary name and renamed, so a reader sees either
no file or the whole line.
"""

import hashlib
import os
import sys

PROGRESS_STEP = 2000


def write_progress(fd: int, checked: int, limit: int, count: int) -> None:
    line = f"checked {checked:>12} of {limit:>12} primes {count:>12}\n"
    os.pwrite(fd, line.encode(), 0)


def main() -> int:
    if len(sys.argv) != 4:
        print("usage: primes.py LIMIT PROGRESS RESULT", file=sys.stderr)
        return 2
    limit = int(sys.argv[1])
    progress_path = sys.argv[2]
    result_path = sys.argv[3]

    progress_fd = os.open(progress_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    primes: list[int] = []
    total = 0
    digest = hashlib.sha256()

    for candidate in range(2, limit + 1):
        is_prime = True
        for prime in primes:
            if prime * prime > candidate:
                break
            if candidate % prime == 0:
                is_prime = False
                break
        if is_prime:
            primes.append(candidate)
            total += candidate
            digest.update(f"{candidate}\n".encode())
        if candidate % PROGRESS_STEP == 0:
            write_progress(progress_fd, candidate, limit, len(primes))

    write_progress(progress_fd, limit, limit, len(primes))
    os.close(progress_fd)

    result = f"limit={limit} count={len(primes)} sum={total} sha256={digest.hexdigest()}\n"
    temporary_path = result_path + ".tmp"
    with open(temporary_path, "w", encoding="ascii") as result_file:
        result_file.write(result)
    os.replace(temporary_path, result_path)
    sys.stdout.write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
