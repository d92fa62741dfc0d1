"""The recurrent-layer and drop-in benchmarks from a repository checkout (see rnnkit/bench.py):

    PYTHONPATH=python python bench/bench_rnn.py --threads 2 --interleave

Same as `rnnkit bench`, plus the drop-in suite (its NumPy oracle lives in tests/); the CSV goes
to bench/bench_rnn.csv by default.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from rnnkit.bench import main  # noqa: E402

if __name__ == "__main__":
    main(csv_dir=HERE, prog="PYTHONPATH=python python bench/bench_rnn.py")
