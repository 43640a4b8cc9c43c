#!/usr/bin/env python3
"""`fseg convert` side by side with DeepFashion2's official converter on a generated split.

The official converter is not part of this repository and this script contains none of its code.
Get it yourself, outside the repository, e.g. from a clone of https://github.com/switchablenorms/DeepFashion2:
``git -C DeepFashion2 show HEAD:evaluation/deepfashion2_to_coco.py > /tmp/official/deepfashion2_to_coco.py``,
and pass its path with --official. As the dataset's README asks, a copy of it is patched at run time:
only its three path strings are replaced and ``num_images = N`` is defined before its loop.

Steps:
  1. generate (once, cached outside the repo, default ~/.cache/fseg/bench) a synthetic DeepFashion2
     split of --images images (see ensure_split: a pool of --pool rendered images, hard-linked;
     one annotation file per image; no quirks, since the official converter crashes on most);
  2. run both converters as subprocesses, measuring wall time, CPU time and peak memory of the
     whole process tree (parent + workers): RSS summed over the tree (overcounts pages the
     processes share), PSS summed over the tree (shared pages split between them), both sampled
     every 50 ms from /proc, and the largest single-process ru_maxrss reported by the kernel;
  3. compare the two outputs: every official annotation must match one of ours (same image,
     category, segmentation) with identical bbox, keypoints (values), num_keypoints, style,
     pair_id and iscrowd; ids and area are counted separately because they differ on purpose
     (item order, mask area).

Usage:
  python3 scripts/bench_convert.py --official /tmp/official/deepfashion2_to_coco.py [--images 20000]
      [--workers 2] [--cache ~/.cache/fseg/bench] [--work /tmp/fseg_bench_convert] [--repeat 1]
  python3 scripts/bench_convert.py --images 191961 --no-compare     # fseg alone, released train size
  python3 scripts/bench_convert.py --startup 10                     # start-up cost, 10-image split
Prints a Markdown table and a JSON summary (with the load average before and after).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PLACEHOLDERS = {  # the official script's path strings -> what they point at
    "'/.../val_annos/'": "annos",
    "'/.../val/'": "image",
    "'/.../deepfashion2.json'": "out",
}
LOOP_LINE = "for num in range(1,num_images+1):"
SAMPLE_SECONDS = 0.05


# ---- data ------------------------------------------------------------------------------------------

def ensure_split(cache: Path, num_images: int, seed: int, workers: int, pool_size: int) -> Path:
    """The cached benchmark split of ``num_images`` images, generated first if absent.

    Rendering every image with ``fseg synth`` costs about 10 ms of CPU each (half an hour and 8 GB
    for the 191,961 images of the released train split), while the converter reads only image
    headers. So ``pool_size`` images are rendered once with ``df2coco.synthetic.generate_split`` and
    image ``n`` of the split is a hard link to pool image ``(n - 1) % pool_size + 1`` (no disk space),
    with its own annotation file: the pool image's annotation with the ``pair_id`` and ``source`` of
    image ``n`` in the generator's pair plan. Sizes, items, polygons and landmarks therefore follow
    the generator's distribution; only the pixels repeat.
    """
    from df2coco.synthetic import generate_split
    from df2coco.synthetic.annotation import pair_info

    split = cache / f"df2_{num_images}_s{seed}_pool{pool_size}"
    if split.is_dir():
        return split
    pool = cache / f"pool_{pool_size}_s{seed}"
    if not pool.is_dir():
        print(f"rendering a pool of {pool_size} images into {pool} ...", file=sys.stderr)
        generate_split(pool.with_suffix(".tmp"), pool_size, seed=seed, workers=workers, progress=True)
        pool.with_suffix(".tmp").rename(pool)
    tmp = split.with_suffix(".tmp")
    print(f"writing {num_images} images (hard links) and annotation files into {split} ...", file=sys.stderr)
    for sub in ("image", "annos"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    pool_annos = [json.loads((pool / "annos" / f"{k:06d}.json").read_bytes()) for k in range(1, pool_size + 1)]
    for n in range(1, num_images + 1):
        k = (n - 1) % pool_size + 1
        image = tmp / "image" / f"{n:06d}.jpg"
        if not image.exists():
            os.link(pool / "image" / f"{k:06d}.jpg", image)
        annotation = dict(pool_annos[k - 1])
        annotation["pair_id"], annotation["source"] = pair_info(seed, n)
        (tmp / "annos" / f"{n:06d}.json").write_text(json.dumps(annotation))
    tmp.rename(split)
    return split


def patch_official(source: Path, split: Path, out: Path, num_images: int, dest: Path) -> Path:
    """Write a copy of the official script with only its paths and num_images set."""
    text = source.read_text()
    targets = {"annos": f"'{split / 'annos'}/'", "image": f"'{split / 'image'}/'", "out": f"'{out}'"}
    for placeholder, key in PLACEHOLDERS.items():
        if text.count(placeholder) != 1:
            sys.exit(f"{source}: expected the path string {placeholder} exactly once; is it the official script?")
        text = text.replace(placeholder, targets[key])
    if text.count(LOOP_LINE) != 1:
        sys.exit(f"{source}: loop line {LOOP_LINE!r} not found")
    text = text.replace(LOOP_LINE, f"num_images = {num_images}\n{LOOP_LINE}")
    dest.write_text(text)
    return dest


# ---- measurement -----------------------------------------------------------------------------------

def _children() -> dict[int, list[int]]:
    tree = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree[ppid].append(int(entry))
    return tree


def _tree(root: int) -> list[int]:
    tree, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, []))
    return out


def _rss_pss(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of one process, 0 if it has gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process so far (None if it has gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(cmd: list[str], cwd: Path, env: dict | None = None) -> dict:
    """Run cmd; wall time, peak tree RSS/PSS (sampled), CPU time of the tree and the largest ru_maxrss.

    CPU time: the command's own (from wait4) plus, for every other process of its tree, the last
    value sampled from /proc (so up to one sampling interval of each worker's CPU may be missed).
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = {"rss": 0, "pss": 0}
    cpu_seen: dict[int, float] = {}
    done = threading.Event()

    def sample():
        while not done.is_set():
            pids = _tree(proc.pid)
            sums = [_rss_pss(pid) for pid in pids]
            peak["rss"] = max(peak["rss"], sum(r for r, _ in sums))
            peak["pss"] = max(peak["pss"], sum(p for _, p in sums))
            for pid in pids:
                cpu = _cpu_seconds(pid)
                if cpu is not None:
                    cpu_seen[pid] = cpu
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr.decode()[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime + sum(c for pid, c in cpu_seen.items() if pid != proc.pid)
    return {"wall_s": wall, "cpu_s": cpu, "tree_rss_mb": peak["rss"] / 2**20, "tree_pss_mb": peak["pss"] / 2**20,
            "max_single_rss_mb": usage.ru_maxrss / 1024}


def startup(cache: Path, seed: int, workers: int, pool: int, runs: int) -> dict:
    """Start-up cost: ``fseg convert`` of a 10-image split against a bare ``python3 -c pass``, ``runs`` each,
    alternating; min and median of wall and CPU seconds."""
    split = ensure_split(cache, 10, seed, workers, pool)
    out = Path(tempfile.mkdtemp(prefix="fseg_startup-")) / "out.json"
    commands = {"fseg convert, 10 images": [sys.executable, "-m", "fseg", "convert", str(split), "--out", str(out),
                                            "--force", "--no-progress"],
                "python3 -c pass": [sys.executable, "-c", "pass"]}
    # Installed packages have bytecode caches (pip compiles them); PYTHONDONTWRITEBYTECODE=1 in the
    # environment would make every run compile the sources, so it is dropped and one untimed run of
    # each command writes the caches first.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for cmd in commands.values():
        measure(cmd, REPO, env=env)
    runs_by_name: dict[str, list[dict]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            runs_by_name[name].append(measure(cmd, REPO, env=env))
    summary = {}
    for name, measured in runs_by_name.items():
        walls, cpus = [m["wall_s"] for m in measured], [m["cpu_s"] for m in measured]
        summary[name] = {"wall_min_s": min(walls), "wall_median_s": statistics.median(walls),
                         "cpu_min_s": min(cpus), "cpu_median_s": statistics.median(cpus), "runs": runs}
    return summary


def warm_page_cache(split: Path) -> None:
    """Reads every file of the split once, so that neither converter pays for the first (disk) read:
    whichever ran first would otherwise be slowed by a cold page cache (seen: 9.3 s cold vs 5.6 s warm)."""
    for folder in ("image", "annos"):
        with os.scandir(split / folder) as entries:
            for entry in entries:
                with open(entry.path, "rb") as f:
                    while f.read(1 << 20):
                        pass


def median_run(cmd: list[str], cwd: Path, repeat: int) -> dict:
    runs = [measure(cmd, cwd) for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]} | {"runs": len(runs)}


# ---- content comparison ----------------------------------------------------------------------------

def compare(official_path: Path, ours_path: Path) -> dict:
    """Counts of agreements/differences between the two outputs (see module docstring)."""
    official = json.loads(official_path.read_text())
    ours = json.loads(ours_path.read_text())
    result = {"images_official": len(official["images"]), "images_ours": len(ours["images"]),
              "annotations_official": len(official["annotations"]), "annotations_ours": len(ours["annotations"])}
    ours_images = {im["id"]: im for im in ours["images"]}
    result["image_field_mismatch"] = sum(
        1 for im in official["images"]
        if any(ours_images.get(im["id"], {}).get(k) != im[k] for k in ("file_name", "width", "height")))
    result["category_mismatch"] = sum(
        1 for a, b in zip(official["categories"], ours["categories"])
        if any(a[k] != b[k] for k in ("id", "name", "supercategory", "keypoints", "skeleton")))
    by_key = {}
    for ann in ours["annotations"]:
        by_key[(ann["image_id"], ann["category_id"], json.dumps(ann["segmentation"]))] = ann
    mismatch = defaultdict(int)
    unmatched = id_differs = area_differs = area_bbox_equal = 0
    for ann in official["annotations"]:
        mine = by_key.get((ann["image_id"], ann["category_id"], json.dumps(ann["segmentation"])))
        if mine is None:
            unmatched += 1
            continue
        for key in ("bbox", "num_keypoints", "style", "pair_id", "iscrowd"):
            mismatch[key] += mine[key] != ann[key]
        mismatch["keypoints"] += [float(v) for v in mine["keypoints"]] != ann["keypoints"]
        id_differs += mine["id"] != ann["id"]
        area_differs += mine["area"] != ann["area"]
        area_bbox_equal += mine["bbox"][2] * mine["bbox"][3] == ann["area"]
    result.update(unmatched=unmatched, field_mismatch=dict(mismatch), id_differs=id_differs,
                  area_differs=area_differs, our_bbox_area_equals_official_area=area_bbox_equal)
    return result


# ---- main ------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, help="path of the fetched official deepfashion2_to_coco.py")
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool", type=int, default=2000, help="rendered images the split's images link to")
    parser.add_argument("--workers", type=int, default=2, help="fseg convert --workers")
    parser.add_argument("--repeat", type=int, default=1, help="runs per converter (median reported)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "fseg" / "bench")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fseg_bench_convert"))
    parser.add_argument("--no-compare", action="store_true", help="skip the content comparison")
    parser.add_argument("--fseg-args", default="", help="extra fseg convert options, e.g. '--area bbox'")
    parser.add_argument("--generate-only", action="store_true", help="only generate (and cache) the split")
    parser.add_argument("--startup", type=int, metavar="RUNS",
                        help="measure only the start-up cost: RUNS conversions of a 10-image split")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.startup:
        load_before = os.getloadavg()
        result = startup(args.cache, args.seed, max(args.workers, 1), args.pool, args.startup)
        print(json.dumps({"load_before": load_before, **result, "load_after": os.getloadavg()}, indent=2))
        return
    split = ensure_split(args.cache, args.images, args.seed, max(args.workers, 1), args.pool)
    if args.generate_only:
        print(split)
        return
    ours_out, official_out = args.work / "fseg.json", args.work / "official.json"
    warm_page_cache(split)

    results = {"images": args.images, "workers": args.workers, "fseg_args": args.fseg_args,
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "load_before": os.getloadavg()}
    ours_cmd = [sys.executable, "-m", "fseg", "convert", str(split), "--out", str(ours_out), "--force",
                "--workers", str(args.workers), "--no-progress", *args.fseg_args.split()]
    results["fseg"] = median_run(ours_cmd, REPO, args.repeat)
    if args.official is not None:
        script = patch_official(args.official, split, official_out, args.images, args.work / "official_patched.py")
        results["official"] = median_run([sys.executable, str(script)], args.work, args.repeat)
        o, f = results["official"], results["fseg"]
        results["ratios"] = {"wall": o["wall_s"] / f["wall_s"], "cpu": o["cpu_s"] / f["cpu_s"],
                             "tree_rss": o["tree_rss_mb"] / f["tree_rss_mb"],
                             "tree_pss": o["tree_pss_mb"] / f["tree_pss_mb"],
                             "max_single_rss": o["max_single_rss_mb"] / f["max_single_rss_mb"]}
        results["output_mb"] = {"official": official_out.stat().st_size / 2**20, "fseg": ours_out.stat().st_size / 2**20}
        if not args.no_compare:
            results["content"] = compare(official_out, ours_out)
    results["load_after"] = os.getloadavg()
    print_table(results)
    print(json.dumps(results, indent=2))


def print_table(r: dict) -> None:
    print("| converter | wall s | CPU s | peak tree RSS MB | peak tree PSS MB | largest process RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("official", "fseg"):
        if name in r:
            m = r[name]
            print(f"| {name} | {m['wall_s']:.2f} | {m['cpu_s']:.2f} | {m['tree_rss_mb']:.0f} | {m['tree_pss_mb']:.0f} "
                  f"| {m['max_single_rss_mb']:.0f} |")
    if "ratios" in r:
        x = r["ratios"]
        print(f"| official / fseg | {x['wall']:.1f}x | {x['cpu']:.1f}x | {x['tree_rss']:.1f}x | {x['tree_pss']:.1f}x "
              f"| {x['max_single_rss']:.1f}x |")


if __name__ == "__main__":
    main()
