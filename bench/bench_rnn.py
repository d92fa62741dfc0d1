"""The recurrent-layer and drop-in benchmarks from a repository checkout (see rnnkit/bench.py):

    python bench/bench_rnn.py --threads 2 --interleave

Same as `rnnkit bench`, plus the drop-in suite (its NumPy oracle lives in tests/); the CSV goes
to bench/bench_rnn.csv by default.
"""
import os

from checkout import use_checkout

HERE = os.path.dirname(os.path.abspath(__file__))
use_checkout(with_tests=True)  # tests/numpy_dropin.py: the drop-in suite's NumPy oracle

from rnnkit.bench import main  # noqa: E402

if __name__ == "__main__":
    main(csv_dir=HERE, prog="python bench/bench_rnn.py")
