"""The recurrent-layer and drop-in benchmarks from a repository checkout (see rnnkit/bench.py):

    python bench/bench_rnn.py --threads 2 --interleave

Same as `rnnkit bench`, with the CSV going to bench/bench_rnn.csv by default.
"""
import os

from checkout import use_checkout

HERE = os.path.dirname(os.path.abspath(__file__))
use_checkout()

from rnnkit.bench import main  # noqa: E402

if __name__ == "__main__":
    main(csv_dir=HERE, prog="python bench/bench_rnn.py")
