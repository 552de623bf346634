"""Rendering speed of the synthetic bimodal phantom, in B/SE pairs per second (one process).

Usage:
    python benchmarks/bench_phantom.py [--pairs 40] [--cohort]

Prints pairs/s at 336 px (the paper's image size, §3.1) and at 128 px; with ``--cohort``, also
the seconds to render the whole default phantom (``iter_phantom``, about 220 pairs at 336 px,
what preparing the data set costs; it should stay well under a minute). Writes nothing.
"""

from __future__ import annotations

import argparse
import time

from tf_bimodal.config import PhantomConfig
from tf_bimodal.data import phantom


def pairs_per_second(image_size: int, num_pairs: int, seed: int = 0) -> float:
    """Render ``num_pairs`` pairs of the default cohort at ``image_size`` and return pairs/s."""
    patients = phantom.sample_patients(PhantomConfig(seed=seed))
    jobs = [(patient, view) for patient in patients for view in range(patient.num_pairs)][:num_pairs]
    phantom.render_pair(jobs[0][0], jobs[0][1], image_size, seed)  # warm-up (imports, caches)
    start = time.perf_counter()
    for patient, view in jobs:
        phantom.render_pair(patient, view, image_size, seed)
    return len(jobs) / (time.perf_counter() - start)


def cohort_seconds(config: PhantomConfig = PhantomConfig()) -> tuple[float, int]:
    """Render every pair of ``config``'s cohort as the data set builder does; (seconds, pairs)."""
    start = time.perf_counter()
    count = sum(1 for _ in phantom.iter_phantom(config))
    return time.perf_counter() - start, count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40, help="pairs rendered per image size")
    parser.add_argument("--cohort", action="store_true", help="also time the whole default phantom")
    args = parser.parse_args()
    for image_size in (336, 128):
        rate = pairs_per_second(image_size, args.pairs)
        print(f"phantom render_pair at {image_size}x{image_size}: {rate:.1f} pairs/s over {args.pairs} pairs")
    if args.cohort:
        seconds, count = cohort_seconds()
        print(f"default phantom (iter_phantom): {count} pairs at {PhantomConfig().image_size} px in {seconds:.1f} s")


if __name__ == "__main__":
    main()
