#!/usr/bin/env python3
"""docs/scaling.md's model: expected samples/s of a BSP job of W workers and S shards, from
measured inputs (see the doc for where each number comes from).

  scaling-model.py cluster            markdown tables for W = 1..256, S = 1..64, 10 / 100 Gb/s
  scaling-model.py grid GRID.jsonl    modelled vs measured per-worker samples/s of
                                      scripts/scaling-grid.sh's runs (2 workers on one host)

One BSP step of B samples per worker is serial: compute, pushes to the shards, the shards apply
(once every push of the step is in), pull replies for the next step (the shard holds them until
the update is applied), so
  t_step = B*t_c*g(W) + B*P/R*max(1, W/S) + W*B*A_bytes/(S*A) + B*D/R*max(1, W/S) + 2*rtt
with P, D the bytes a sample pushes and pulls, R a link's rate (each host has its own, full
bisection), A the shard's apply rate (gradient bytes per CPU second), A_bytes the f32 gradient
bytes a sample pushes, g(W) = 1 + cv*sqrt(2 ln W) the expected slowest of W workers' compute
(normal step times with coefficient of variation cv)."""
import json, math, sys

B = 64
RTT = 100e-6
APPLY = 3.175e9  # bench --apply apply_cpu_gb_per_s (this machine, E = H = 128)
SHAPES = {
    # name: (t_c seconds/sample, {dtype: (bytes per sample on the wire each way, f32 gradient bytes pushed)})
    "demo (E=H=64, title 20, his 30)": (1 / 2516, {"f32": (29649 / 2, 29649 / 2 * 0.97),
                                                   "bf16": (15357 / 2, 29649 / 2 * 0.97)}),
    "reference (E=H=128, title 30, his 50)": (1 / 323, {"f32": (511617 / 2, 500456 / 2),
                                                         "bf16": (261390 / 2, 500456 / 2)}),
}


def g(w, cv):
    return 1 + cv * math.sqrt(2 * math.log(w)) if w > 1 else 1.0


def step(t_c, wire, grad, w, s, rate, cv=0.05):
    """Terms of one BSP step (seconds)."""
    fan = max(1.0, w / s)
    return {"compute": B * t_c * g(w, cv), "push": B * wire / rate * fan,
            "apply": w * B * grad / (s * APPLY), "pull": B * wire / rate * fan, "rtt": 2 * RTT}


def cluster():
    Ws = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    Ss = [1, 2, 4, 8, 16, 32, 64]
    for shape, (t_c, dts) in SHAPES.items():
        for gbit in (10, 100):
            rate = gbit * 1e9 / 8
            for dt, (wire, grad) in dts.items():
                print(f"\n#### {shape}, {dt}, {gbit} Gb/s: total samples/s (best S marked *, "
                      f"bottleneck at that S)\n")
                print("| W | " + " | ".join(f"S={s}" for s in Ss) + " | best S | bound by |")
                print("|---|" + "---|" * (len(Ss) + 2))
                for w in Ws:
                    row, best = [], None
                    for s in Ss:
                        t = sum(step(t_c, wire, grad, w, s, rate).values())
                        row.append(w * B / t)
                    top = max(row)
                    k = next(i for i, v in enumerate(row) if v >= 0.95 * top)
                    terms = step(t_c, wire, grad, w, Ss[k], rate)
                    comm = {"network": terms["push"] + terms["pull"], "shard apply": terms["apply"],
                            "barrier": B * t_c * (g(w, 0.05) - 1)}
                    bound = max(comm, key=comm.get)
                    share = comm[bound] / sum(terms.values())
                    cells = [f"{v:,.0f}" + ("*" if i == k else "") for i, v in enumerate(row)]
                    print(f"| {w} | " + " | ".join(cells) +
                          f" | {Ss[k]} | {bound} {share:.0%} |")


def grid(path):
    runs = [json.loads(l) for l in open(path) if l.strip()]
    base = {(r["shards"]): r["per_worker_samples_per_s"] for r in runs
            if r["rate"] == "off" and r["dtype"] == "f32"}
    rates = {"off": math.inf, "1gbit": 125e6, "500mbit": 62.5e6, "200mbit": 25e6}
    print("| link | dtype | S | bytes/sample | measured /worker | modelled, no burst | "
          "modelled, 1 MB burst | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        c = base.get(r["shards"]) or next(iter(base.values()))
        t_c = B / c  # compute per step as measured unlimited in the same grid (f32)
        per_dir = 2 * B * r["bytes_per_sample"] / 2  # both workers share one host link
        rate = rates.get(r["rate"], math.inf)
        t0 = t_c + 2 * per_dir / rate
        burst = min(1e6, rate * t_c)
        t1 = t_c + 2 * max(0.0, per_dir - burst) / rate
        print(f"| {r['rate']} | {r['dtype']} | {r['shards']} | {r['bytes_per_sample']:,.0f} | "
              f"{r['per_worker_samples_per_s']:,.0f} | {B / t0:,.0f} | {B / t1:,.0f} | "
              f"{r['load1']} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "grid":
        grid(sys.argv[2])
    else:
        cluster()
