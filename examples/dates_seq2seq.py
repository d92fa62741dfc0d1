"""Sequence to sequence on generated data: dates written in words -> ISO 8601.

    "the fourteenth of march nineteen ninety-two"  ->  "1992-03-14"
    "march 3rd two thousand and five"-style variants (all in words, see ``say_date``)

Source: word level (hyphens split, so "ninety-two" is "ninety two"); target: character level
(digits and "-") with <bos>/<eos>. Dates are drawn uniformly from 1900-01-01 .. 2099-12-31 with
``numpy.random.default_rng(seed)``; the held-out dates never occur in the training set (a date
is held out with all of its phrasings). Trains ``rnnkit.models.Seq2Seq`` without attention and
with attention on the same split and reports held-out exact-match accuracy (the whole ISO
string right) with greedy decoding and with beam search.

    python examples/dates_seq2seq.py [--attention none dot additive] [--train 2000] [--epochs 6]
                                     [--plot-attention docs/img/attention_dates.png]
"""
from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

import rnnkit
from rnnkit.models import Seq2Seq
from rnnkit.text import Vocabulary, to_sequences

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
        "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
       "nine": "ninth", "twelve": "twelfth"}
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december"]


def cardinal(n: int) -> str:
    if n < 20:
        return ONES[n]
    return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])


def ordinal(n: int) -> str:
    words = cardinal(n).split("-")
    last = words[-1]
    if last in ORD:
        last = ORD[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return "-".join(words[:-1] + [last])


def say_year(y: int, rng) -> str:
    hi, lo = divmod(y, 100)
    if y >= 2000 and (lo < 10 or rng.random() < 0.5):
        return "two thousand" + ("" if lo == 0 else rng.choice([" and ", " "]) + cardinal(lo))
    if lo == 0:
        return cardinal(hi) + " hundred"
    if lo < 10:
        return cardinal(hi) + " oh " + cardinal(lo)
    return cardinal(hi) + " " + cardinal(lo)


def say_date(d: dt.date, rng) -> str:
    day, month, year = d.day, MONTHS[d.month - 1], say_year(d.year, rng)
    form = int(rng.integers(5))
    if form == 0:
        return f"the {ordinal(day)} of {month} {year}"
    if form == 1:
        return f"{month} the {ordinal(day)} {year}"
    if form == 2:
        return f"{month} {ordinal(day)} {year}"
    if form == 3:
        return f"{ordinal(day)} {month} {year}"
    return f"{month} {cardinal(day)} {year}"


def make_data(n_train: int, n_test: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    first, span = dt.date(1900, 1, 1).toordinal(), dt.date(2099, 12, 31).toordinal() - dt.date(1900, 1, 1).toordinal() + 1
    days = rng.choice(span, size=n_train + n_test, replace=False) + first  # distinct dates
    dates = [dt.date.fromordinal(int(o)) for o in days]

    def pairs(ds):
        return [(say_date(d, rng).replace("-", " ").split(), d.isoformat()) for d in ds]

    return pairs(dates[:n_train]), pairs(dates[n_train:])


def encode(pairs, src_vocab, tgt_vocab):
    src, sl = to_sequences([p[0] for p in pairs], src_vocab)
    tgt, tl = to_sequences([list(p[1]) for p in pairs], tgt_vocab)  # <bos> ... <eos>
    return src, sl, tgt[:, 1:], tl - 1  # the model's targets: no <bos>, ending with <eos>


def exact_match(model, pairs, src, sl, tgt_vocab, beam_width=1, batch=500):
    hits = 0
    for i in range(0, len(pairs), batch):
        S = int(sl[i:i + batch].max())
        out = model.predict(src[i:i + batch, :S], src_lengths=sl[i:i + batch], beam_width=beam_width, max_len=12)
        for ids, (_, iso) in zip(out, pairs[i:i + batch]):
            hits += "".join(tgt_vocab.id_to_token(j) for j in ids) == iso
    return hits / len(pairs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    ap.add_argument("--attention", nargs="+", default=["none", "dot"], choices=["none", "dot", "additive"])
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="default: rnnkit's default")
    ap.add_argument("--plot-attention", metavar="PATH", help="write the attention heat map of the first "
                    'held-out date (last attention model) as a PNG file (needs pip install "rnnkit[plot]")')
    args = ap.parse_args(argv)
    if args.threads:
        rnnkit.set_num_threads(args.threads)
    train, test = make_data(args.train, args.test, args.seed)
    src_vocab = Vocabulary([p[0] for p in train])
    tgt_vocab = Vocabulary([list(p[1]) for p in train], bos=True, eos=True)
    Xtr, sltr, Ytr, tltr = encode(train, src_vocab, tgt_vocab)
    Xte, slte, _, _ = encode(test, src_vocab, tgt_vocab)
    print(f"{len(train)} train / {len(test)} held-out dates, source vocabulary {len(src_vocab)} words, "
          f"target vocabulary {len(tgt_vocab)}, threads {rnnkit.get_num_threads()}")
    print("e.g.", " ".join(train[0][0]), "->", train[0][1])
    results = []
    for att in args.attention:
        model = Seq2Seq(len(src_vocab), len(tgt_vocab), bos_id=tgt_vocab.bos_id, eos_id=tgt_vocab.eos_id,
                        embedding_dim=32, hidden_size=args.hidden, cell=args.cell, bidirectional=True,
                        attention=None if att == "none" else att, src_vocab=src_vocab, tgt_vocab=tgt_vocab,
                        seed=args.seed)
        t0 = time.perf_counter()
        losses = model.fit(Xtr, Ytr, src_lengths=sltr, tgt_lengths=tltr, epochs=args.epochs, batch_size=64,
                           lr=5e-3, seed=args.seed)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        greedy = exact_match(model, test, Xte, slte, tgt_vocab)
        beam = exact_match(model, test, Xte, slte, tgt_vocab, beam_width=args.beam)
        dec_s = time.perf_counter() - t0
        results.append((att, losses[-1], greedy, beam, fit_s, dec_s))
        print(f"attention={att:9s} final train loss {losses[-1]:.4f}  held-out exact match: greedy {greedy:.3f}, "
              f"beam {args.beam} {beam:.3f}  (fit {fit_s:.0f} s, decoding {dec_s:.0f} s)", flush=True)
        if args.plot_attention and att != "none":
            plot_attention(model, test[0], Xte[:1, :slte[0]], tgt_vocab, args.plot_attention)
    return results


def plot_attention(model, pair, src, tgt_vocab, path):
    """Heat map of where the decoder looked while writing its own output for one date."""
    from rnnkit.plot import plot_attention as draw

    targets, weights = model.attention_weights(src, max_len=12)
    out = [tgt_vocab.id_to_token(i) for i in targets[0]]
    draw(weights[0], pair[0], out, path, title=f"{' '.join(pair[0])}\n-> {''.join(out[:-1])}")
    print(f"attention heat map written to {path}")


if __name__ == "__main__":
    main()
