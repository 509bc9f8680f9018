"""SKAB outlier-detection benchmark, leaderboard protocol, figures from ``hazardloop detect`` defaults.

Protocol (../shared/data/README.md, ../shared/docs/anchors.md): in each of the 34 labelled files
rows 1–400 train and the rest test; TP/FP/FN/TN pooled over all test rows;
F1 = TP / (TP + (FP + FN) / 2), FAR = FP / (FP + TN), MAR = FN / (FN + TP).
Each file is written without its label columns and run through the CLI with ``--train-rows 400``.

Run: ``python benchmarks/skab.py`` (or ``make bench``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from rich.progress import track

from _common import RESULTS, command_line, console, data_dir, machine, markdown_table, rich_table, run_detect

TRAIN_ROWS = 400
ANCHORS = [("Conv-AE (leaderboard best)", "0.78", "13.55", "28.02"), ("MSET", "0.78", "39.73", "14.13"),
           ("PCA T²+Q", "0.76", "26.62", "24.92"), ("HazardLoop goal", "≥ 0.85", "≤ 10", "")]


def labelled_files(root: Path) -> list[Path]:
    files = [f for sub in ("valve1", "valve2", "other") for f in (root / "skab" / sub).glob("*.csv")]
    return sorted(files, key=lambda f: (f.parent.name, int(f.stem)))


def main() -> None:
    files = labelled_files(data_dir())
    if len(files) != 34:
        raise SystemExit(f"expected 34 labelled SKAB files under {data_dir() / 'skab'}, found {len(files)}")
    per_file = []
    tp = fp = fn = tn = 0
    side = {"before": [0, 0], "after": [0, 0]}  # normal test rows before / after the fault: [flagged, all]
    with tempfile.TemporaryDirectory() as tmp:
        for f in track(files, description="SKAB: hazardloop detect per file"):
            df = pd.read_csv(f, sep=";")
            src = Path(tmp) / f"{f.parent.name}_{f.stem}.csv"
            df.drop(columns=["anomaly", "changepoint"]).to_csv(src, sep=";", index=False)
            out = Path(tmp) / f"out_{src.name}"
            run_detect(src, out, "datetime", TRAIN_ROWS)
            pred = pd.read_csv(out, sep=";")["is_anomaly"].to_numpy()[TRAIN_ROWS:].astype(bool)
            y = df["anomaly"].to_numpy()[TRAIN_ROWS:].astype(bool)
            c = (int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum()), int((~pred & ~y).sum()))
            tp, fp, fn, tn = tp + c[0], fp + c[1], fn + c[2], tn + c[3]
            if y.any():  # where the false alarms sit: before the fault, or after it (normal again)
                first, last = int(np.flatnonzero(y)[0]), int(np.flatnonzero(y)[-1])
                for name, part in (("before", slice(0, first)), ("after", slice(last + 1, None))):
                    side[name][0] += int(pred[part].sum())
                    side[name][1] += int(len(pred[part]))
            per_file.append((f"{f.parent.name}/{f.name}", *c))
    f1 = tp / (tp + (fp + fn) / 2)
    far = 100 * fp / (fp + tn)
    mar = 100 * fn / (fn + tp)
    header = ["method", "F1", "FAR %", "MAR %"]
    rows = [list(a) for a in ANCHORS] + [["**HazardLoop `detect` defaults (this run)**", f"{f1:.3f}",
                                           f"{far:.2f}", f"{mar:.2f}"]]
    console.print(rich_table("SKAB (34 files, rows 1–400 train, pooled)", header, rows))
    free = anomaly_free_share()
    console.print(f"anomaly-free.csv with every default (first 20 % train): {free:.1f} % of later rows flagged")
    unseen = unseen_series()
    console.print(rich_table("Series never used for tuning (every default)", UNSEEN_HEADER, unseen))
    flagged = {name: 100 * f / max(n, 1) for name, (f, n) in side.items()}
    write_report(header, rows, per_file, (tp, fp, fn, tn), free, flagged, unseen)
    plot(per_file, f1, far, mar)


def anomaly_free_share() -> float:
    """A check on a series nothing was tuned on: the unlabelled normal file, every CLI default."""
    src = data_dir() / "skab" / "anomaly-free" / "anomaly-free.csv"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.csv"
        run_detect(src, out, "datetime", None)
        flags = pd.read_csv(out, sep=";")["is_anomaly"].to_numpy()
    k = int(len(flags) * 0.2)
    return 100 * float(flags[k:].mean())


UNSEEN_HEADER = ["series", "rows judged", "false alarms % (normal rows)", "detection % (fault rows)"]
CMAPSS_UNITS = 20  # C-MAPSS FD001 engines 1-20
CMAPSS_TRAIN = 50  # first 50 cycles of each engine train (the shortest engine runs 128)


def unseen_series() -> list[list[str]]:
    """The defaults on series nothing was tuned on: C-MAPSS engines and the simulated demo plant.

    C-MAPSS FD001: each engine is one CSV (cycle as the time column, the 21 sensors), trained on its
    first 50 cycles; "normal" = later cycles with more than 125 cycles of life left (the usual cap
    before which degradation is taken as negligible), "fault" = the last 20 cycles before failure.
    Demo plant (``hazardloop.demo.signals.simulate``, seed 7): 4 days at 2-minute steps, the first day
    trains; "fault" rows are those inside an injected event (process fault or sensor failure).
    """
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        a = np.loadtxt(data_dir() / "cmapss" / "train_FD001.txt")
        flagged_normal = normal = flagged_fault = fault = 0
        for unit in track(range(1, CMAPSS_UNITS + 1), description="C-MAPSS: hazardloop detect per engine"):
            x = a[a[:, 0] == unit]
            frame = pd.DataFrame(x[:, 5:], columns=[f"sensor{i}" for i in range(1, 22)])
            frame.insert(0, "cycle", x[:, 1])
            src, out = Path(tmp) / f"engine{unit}.csv", Path(tmp) / f"out{unit}.csv"
            frame.to_csv(src, index=False)
            run_detect(src, out, "cycle", CMAPSS_TRAIN)
            flags = pd.read_csv(out)["is_anomaly"].to_numpy().astype(bool)
            life_left = len(flags) - 1 - np.arange(len(flags))
            ok = (np.arange(len(flags)) >= CMAPSS_TRAIN) & (life_left > 125)
            flagged_normal, normal = flagged_normal + int(flags[ok].sum()), normal + int(ok.sum())
            flagged_fault, fault = flagged_fault + int(flags[life_left < 20].sum()), fault + int((life_left < 20).sum())
        rows.append([f"C-MAPSS FD001 engines 1–{CMAPSS_UNITS}, {CMAPSS_TRAIN} cycles train", f"{normal + fault}",
                     f"{100 * flagged_normal / normal:.1f}", f"{100 * flagged_fault / fault:.1f}"])
        rows.append(demo_plant(Path(tmp)))
    return rows


def demo_plant(tmp: Path) -> list[str]:
    from datetime import datetime, timedelta

    from hazardloop.demo.signals import simulate
    from hazardloop.demo.spec import load_plant_spec

    sim = simulate(load_plant_spec(), start=datetime(2026, 1, 5), duration=timedelta(days=4),
                   step=timedelta(minutes=2), seed=7)
    k = 720  # the first day
    reporting = np.isfinite(sim.values[:k]).mean(axis=0) > 0.5  # a tag without readings cannot be trained
    frame = sim.to_frame()[["timestamp", *[t for t, r in zip(sim.tags, reporting, strict=True) if r]]]
    src, out = tmp / "demo.csv", tmp / "demo_out.csv"
    frame.to_csv(src, index=False)
    run_detect(src, out, "timestamp", k)
    flags = pd.read_csv(out)["is_anomaly"].to_numpy().astype(bool)[k:]
    truth = sim.truth_mask().any(axis=1)[k:]
    return [f"demo plant ({len(frame.columns) - 1} tags, 2-min steps), day 1 trains", f"{len(flags)}",
            f"{100 * flags[~truth].mean():.1f}", f"{100 * flags[truth].mean():.1f}"]


def write_report(header, rows, per_file, totals, free, flagged, unseen) -> None:
    tp, fp, fn, tn = totals
    file_rows = [[name, str(a), str(b), str(c), str(d),
                  f"{a / (a + (b + c) / 2):.2f}" if a + b + c else "–"] for name, a, b, c, d in per_file]
    text = f"""# SKAB benchmark

Generated by `python benchmarks/skab.py` ({machine()}). Protocol: rows 1–400 of each of the 34 labelled
files train, rows 401–end test, counts pooled over all test rows (SKAB leaderboard). Every figure is
what `{command_line("datetime", TRAIN_ROWS)}` writes for the file without its label columns.

{markdown_table(header, rows)}

Pooled counts: TP {tp}, FP {fp}, FN {fn}, TN {tn}.

Generalisation check (not a leaderboard figure): `anomaly-free/anomaly-free.csv` (9,405 rows, no fault),
`hazardloop detect` with every default (first 20 % of rows as training): **{free:.1f} %** of the later rows
flagged. SKAB's normal operation keeps moving (the water warms up for hours; pump current and
vibration levels shift between sessions), so limits learned from the first minutes do not describe
later normal rows: this is the main source of the false alarms above as well. Sensors that already
wander within the training rows are now watched by their changes (see below); what remains on this file
is mostly the vibration level (Accelerometer1RMS), which looks steady in the training rows and then
creeps up by about 8 % over two hours (peer-drift and T² alarms naming it). After a fault the water
temperature often stays where the fault left it while SKAB labels the rows normal, and other levels do
not return exactly either: in this run, normal test rows before the fault are flagged
{flagged['before']:.1f} % of the time, normal rows after it {flagged['after']:.1f} %.

Series never used to choose any default (the guard against fitting SKAB):

{markdown_table(UNSEEN_HEADER, unseen)}

C-MAPSS engines degrade slowly from the start, so some of its "normal" rows are early wear, not noise.

## How every threshold is chosen (training rows only)
* Slow sensors: a sensor whose training variance lies more *between* the means of 5 contiguous blocks
  of its training rows than within them (between-block share > 0.5) wanders on a time scale the
  training window does not cover, so its level has no trustworthy limit. Its level is left out of the
  EWMA, T²/SPE and peer-drift checks (a regression between trending series is spurious); its one-row
  change, which is stationary, is monitored instead. Decided per file from its own training rows
  (on SKAB it is mostly Temperature and/or Thermocouple — the water warming up; no TEP variable
  qualifies).
* Sensor health: "stuck" after more than twice the longest constant run a sensor shows in its training
  rows (at least 5 rows); "spike" for a one-row jump over 3× the largest training jump; "drift" when the
  EWMA of the (non-slow) sensors' peer-prediction errors exceeds 3× its training maximum and one
  sensor's drift direction explains ≥ 80 % of it (reconstruction-based contribution).
* Process components (EWMA max over sensors, dynamic PCA with 2 lags and 95 % variance: T² and SPE
  smoothed over the last 8 rows): the 400 rows are cut into 5 contiguous blocks, each scored by a model
  fitted on the other 4 (*out-of-sample* scores), and one more block is scored *forward in time*: the
  last 30 % of the rows (120) by a model fitted on the first 70 % (rolling-origin validation) — new rows
  always come after the training rows, and a drifting process is missed by more going forward than
  by leaving out a block in the middle. Each limit is the larger of the 99.5 % quantile of all those
  scores and the largest 99.5 % quantile of any single block — new data differ from the training rows
  at least as much as the training blocks differ from each other.
* Not in the defaults (available in `DetectConfig`, measured and left out): canonical variate analysis
  T²/Q (it adds 0.3 points of TEP detection but raises false alarms here and on C-MAPSS) and an adaptive
  normal reference that follows slow drift from rows judged normal (it cuts anomaly-free.csv to about
  5 % flagged but learns the slowly building fault of other/4 as normal and lowers F1 here).
* An alarm is raised when any component is over its limit or a sensor fault is present, and clears
  after 3 rows back under every limit.
No test row, label or per-file setting is used to choose anything; all defaults are the CLI's.

## Also tried, measured and not adopted
Measured in-process with the same detector and the same pooled counting (baseline reproduced exactly:
F1 0.810, FAR 29.8 %, MAR 14.3 %; C-MAPSS 56.4 % / 100 %, demo 8.7 % / 92.3 %); none reaches the goal,
and each gain on SKAB is either a trade of misses for false alarms or costs a persistent TEP fault.
* Persistence (an alarm needs k of the last n rows over a limit): SKAB's false alarms are long, not
  blips. k/n = 3/5: F1 0.808, FAR 28.4 %; 10/20: 0.807, 27.8 %; 30/60: 0.793, 27.5 % — a few rows
  fewer false alarms, more rows of delay at every fault onset.
* Agreement of two components (EWMA, T², SPE, peer drift), unless one is over c times its limit:
  c = 1.5: F1 0.781, FAR 17.4 %, MAR 26.2 %; c = 2: 0.739, 12.9 %, 34.8 %; c = 5: 0.646, 10.0 %,
  48.2 %. Most valve faults are seen by one component only (the flow departing from its peers), so
  FAR falls only as fast as the misses rise.
* "New operating state" after a fault: once an alarm episode's levels (20-row means of the steady
  sensors, in training standard deviations) are back within 30 % of the episode's largest
  displacement from the pre-alarm level and steady (20-row change within twice the largest training
  one), the reference level moves to the current level. SKAB: F1 0.826, FAR 25.0 % (normal rows after
  a fault 48 % -> 38 % flagged) — but on TEP it declares fault 5 "recovered" once the controllers have
  compensated it (only the condenser cooling-water valve stays about 2 σ off): fault 5 99.9 -> 75.5 %,
  fault 10 93.6 -> 88.1 %, mean 95.6 -> 93.9 %. That is a persistent fault hidden, so it is not used.
  Requiring the return to be a quick step (within 2 windows of leaving the peak) keeps TEP at 95.6 %
  and removes every SKAB recovery (F1 0.810); 3 windows: SKAB 0.818 / 27.4 %; 5 windows hides
  fault 5 again. The data alone cannot tell SKAB's "normal, but not quite where it was" after a fault
  from a fault that a control loop has compensated.
* The slow-sensor share (0.5) as a knob: 0.4 gives F1 0.807, FAR 26.5 %; 0.3 gives 0.820, 23.3 %
  (MAR 16.6 %); 0.2 gives 0.801, 20.3 % (MAR 21.5 %). It trades misses for false alarms with no
  consistent F1 gain (TEP unchanged, no TEP variable is slow at any of these; C-MAPSS 56.4 -> 51.1 %
  false alarms at 0.3 and 0.4, demo plant 8.5 / 9.5 %), and picking the best
  point on this curve would be choosing a default by SKAB's test labels.
* A stricter peer-drift limit (3 -> 5 or 8 times the training maximum): F1 0.800 / 0.801, FAR 29.7 /
  29.4 % — the drift check finds most valve faults (the flow departing from its peers) and loses
  those rows faster than it drops the temperature drift flags behind most of its false alarms.
* Scoring on changes (two-window mean differences) was not pursued as a detector: SKAB labels the whole
  faulty period, hundreds of rows of a steady faulty state, which a change statistic sees only at its
  two ends; as a way to end alarms it is the "new operating state" rule above, with the same problem.

## Per file
{markdown_table(["file", "TP", "FP", "FN", "TN", "F1"], file_rows)}
"""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "skab.md").write_text(text)


def plot(per_file, f1, far, mar) -> None:
    names = [p[0] for p in per_file]
    f1s = [p[1] / (p[1] + (p[2] + p[3]) / 2) if p[1] + p[2] + p[3] else np.nan for p in per_file]
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.bar(range(len(names)), f1s, color="tab:blue")
    ax.axhline(0.78, color="grey", ls="--", label="leaderboard best pooled F1 0.78")
    ax.axhline(f1, color="tab:red", label=f"HazardLoop pooled F1 {f1:.3f} (FAR {far:.1f} %, MAR {mar:.1f} %)")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_ylabel("F1 per file")
    ax.set_title("SKAB: hazardloop detect defaults, rows 1–400 train")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / "skab.png", dpi=110)


if __name__ == "__main__":
    main()
