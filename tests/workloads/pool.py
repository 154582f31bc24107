"""A multiprocessing pool working through a list of tasks, for checkpoints
of a process tree with threads, pipes and shared semaphores.

Usage: pool.py DIR

Three worker processes compute, for each n in 0..399, the sum of i*i for
i below n*1000. The parent collects the results in order, writing the
number done so far to DIR/progress, and at the end writes the total of
all results to DIR/result.
"""

import multiprocessing
import os
import sys
import time

TASKS = 400


def work(n):
    time.sleep(0.01)
    return sum(i * i for i in range(n * 1000))


if __name__ == "__main__":
    directory = sys.argv[1]
    total = 0
    with multiprocessing.Pool(3) as pool:
        for done, value in enumerate(pool.imap(work, range(TASKS)), 1):
            total += value
            with open(os.path.join(directory, "progress.tmp"), "w") as progress:
                progress.write(f"{done}\n")
            os.rename(os.path.join(directory, "progress.tmp"), os.path.join(directory, "progress"))
    with open(os.path.join(directory, "result.tmp"), "w") as result:
        result.write(f"{total}\n")
    os.rename(os.path.join(directory, "result.tmp"), os.path.join(directory, "result"))
