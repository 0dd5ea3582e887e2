"""A program for the write-hold tests: it counts as fast as it can into the file named by
its first argument (written aside, then moved into place), so how far the count got
tells whether the process was stopped, and for how long."""

COUNTER = """
import os, sys
n = 0
while True:
    n += 1
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(n))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
"""
