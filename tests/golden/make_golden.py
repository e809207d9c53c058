#!/usr/bin/env python3
"""Write tests/fixtures/golden_tiny.txt: a tiny LSTM-NR's parameters, one batch, the loss and
every gradient, computed by the PyTorch peer (shared/peers/torch_lstmnr.py), for
tests/test_model.c to compare the C model against.

Run from the repository root with the Python that has torch:
    /usr/bin/python3 tests/golden/make_golden.py [--peer ../shared/peers/torch_lstmnr.py]

The peer's parameters are drawn in float32 (its own initialisation, fixed seed; embeddings then
scaled by 5 so that scores and gradients are O(1) rather than near zero), then the model
runs forward and backward in float64, so the fixture holds the exact function of the float32
parameters the C test reads. Layout conversions to psrec's (see worker/model.h):
  * LSTM weights are written transposed: (input, 4H), gates i, f, g, o;
  * the two PyTorch biases are folded into one (b_ih := b_ih + b_hh rounded to float32,
    b_hh := 0, before the run), and the bias gradient is b_ih's;
  * sparse embedding gradients are written as dense tables (rows never touched are 0).

Format (text): a header line "psrec-golden 1", then per tensor a line "name ndim d0 .. d{ndim-1}"
followed by one line of its values (row-major, %.9g; integers as such).
"""
import argparse
import importlib.util
import os
import sys

import torch

V, E, H, TITLE_LEN, HIS_LEN, K, B = 50, 8, 6, 5, 4, 2, 3
N_CATS, N_USERS = 5, 7

# News table: news 0 is the padding news (token 0, length 1, category 0); titles are ragged,
# news 3 has a single token.
NEWS = [  # (tokens, category)
    ([0], 0),
    ([5, 17, 3, 44, 9], 1),
    ([12, 8], 2),
    ([31], 3),
    ([7, 7, 21, 2], 1),
    ([40, 11, 6], 4),
    ([19, 23, 2, 49, 1], 2),
    ([3, 36, 14], 3),
    ([28, 5], 0),
    ([45, 30, 10, 22], 4),
    ([2, 13, 48, 37, 16], 1),
    ([9, 26], 2),
]
USERS = [2, 5, 2]                                     # user 2 has two samples
HIS = [[4, 7, 1, 9], [0, 0, 0, 0], [7, 3, 0, 0]]      # oldest first; sample 1 is empty
HIS_N = [4, 0, 2]
CAND = [[7, 2, 0], [5, 11, 4], [10, 7, 6]]            # news 7 in history and candidates twice;
                                                      # news 0 pads sample 0's candidates


def load_peer(path):
    spec = importlib.util.spec_from_file_location("torch_lstmnr", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fmt(x):
    return "%d" % x if isinstance(x, int) else "%.9g" % x


def write(f, name, t):
    t = torch.as_tensor(t)
    dims = list(t.shape)
    f.write("%s %d%s\n" % (name, len(dims), "".join(" %d" % d for d in dims)))
    vals = t.reshape(-1).tolist()
    f.write(" ".join(fmt(v) for v in vals) + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer", default=os.path.join(root, "..", "shared", "peers", "torch_lstmnr.py"))
    p.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "golden_tiny.txt"))
    a = p.parse_args()

    peer = load_peer(a.peer)
    torch.manual_seed(1234)
    model = peer.LSTMNR(V, N_CATS, N_USERS, E, H)
    with torch.no_grad():
        # Embeddings 5x the N(0, 0.1^2) init, so scores are O(1) and every gradient is far
        # from zero (as in a trained model): a small gradient would hide errors.
        for emb in (model.word, model.cat, model.user):
            emb.weight.mul_(5.0)
        for lstm in (model.news_lstm, model.user_lstm):
            lstm.bias_ih_l0.copy_(lstm.bias_ih_l0 + lstm.bias_hh_l0)
            lstm.bias_hh_l0.zero_()
    model = model.double()

    toks = torch.zeros(len(NEWS), TITLE_LEN, dtype=torch.long)
    lens = torch.tensor([len(t) for t, _ in NEWS])
    cats = torch.tensor([c for _, c in NEWS])
    for i, (t, _) in enumerate(NEWS):
        toks[i, :len(t)] = torch.tensor(t)
    his = torch.tensor(HIS)
    cand = torch.tensor(CAND)
    batch = (torch.tensor(USERS), toks[his], lens[his], cats[his], torch.tensor(HIS_N),
             toks[cand], lens[cand], cats[cand])
    scores = model(*batch)
    loss = torch.nn.functional.cross_entropy(scores, torch.zeros(B, dtype=torch.long))
    loss.backward()

    def dense_grad(emb):
        g = emb.weight.grad
        return g.to_dense() if g.is_sparse else g

    nl, ul = model.news_lstm, model.user_lstm
    for lstm in (nl, ul):  # the same gradient, up to summation order
        assert torch.allclose(lstm.bias_ih_l0.grad, lstm.bias_hh_l0.grad, rtol=1e-12, atol=1e-15)
    with open(a.out, "w") as f:
        f.write("psrec-golden 1\n")
        write(f, "dims", torch.tensor([V, E, H, TITLE_LEN, HIS_LEN, K, B, N_CATS, N_USERS, len(NEWS)]))
        write(f, "word", model.word.weight.detach())
        write(f, "cat", model.cat.weight.detach())
        write(f, "user", model.user.weight.detach())
        write(f, "news_Wih", nl.weight_ih_l0.detach().t())
        write(f, "news_Whh", nl.weight_hh_l0.detach().t())
        write(f, "news_b", nl.bias_ih_l0.detach())
        write(f, "user_Wih", ul.weight_ih_l0.detach().t())
        write(f, "user_Whh", ul.weight_hh_l0.detach().t())
        write(f, "user_b", ul.bias_ih_l0.detach())
        write(f, "news_tok", toks)
        write(f, "news_len", lens)
        write(f, "news_cat", cats)
        write(f, "users", torch.tensor(USERS))
        write(f, "his", his)
        write(f, "his_n", torch.tensor(HIS_N))
        write(f, "cand", cand)
        write(f, "scores", scores.detach())
        write(f, "loss", loss.detach())
        write(f, "grad_word", dense_grad(model.word))
        write(f, "grad_cat", dense_grad(model.cat))
        write(f, "grad_user", dense_grad(model.user))
        write(f, "grad_news_Wih", nl.weight_ih_l0.grad.t())
        write(f, "grad_news_Whh", nl.weight_hh_l0.grad.t())
        write(f, "grad_news_b", nl.bias_ih_l0.grad)
        write(f, "grad_user_Wih", ul.weight_ih_l0.grad.t())
        write(f, "grad_user_Whh", ul.weight_hh_l0.grad.t())
        write(f, "grad_user_b", ul.bias_ih_l0.grad)
    print("wrote %s: loss %.9g" % (a.out, loss.item()), file=sys.stderr)


if __name__ == "__main__":
    main()
