"""A small file to try diffusion-ls on: `diffusion-ls complete examples/demo.py:15:18 --stream`."""

import os


def read_lines(path):
    """Return the lines of a text file, without trailing newlines."""
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in fh]


def count_words(lines):
    total = 0
    for line in lines:
        total += 
    return total


def main():
    path = os.path.join(os.path.dirname(__file__), "demo.py")
    print(count_words(read_lines(path)))


if __name__ == "__main__":
    main()
