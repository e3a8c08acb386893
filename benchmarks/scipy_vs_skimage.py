"""scipy.ndimage vs scikit-image for the three jobs sss-auto does with them (issue 16 §6).

    python benchmarks/scipy_vs_skimage.py [--repeats 5] [--threads 1]

1. Connected components with their sizes and bounding boxes, as PCSW and the fingerprint need them:
   `ndimage.label(26-connected) + bincount + find_objects` against
   `skimage.measure.label(connectivity=3) + regionprops` (the labels may be numbered differently, so
   equality is checked on the partition: same components, same sizes, same boxes).
2. Resampling an image volume (cubic) and a label map (nearest), as preprocessing does:
   `ndimage.zoom(grid_mode=True, mode="nearest")` against `skimage.transform.resize` (what nnU-Net's
   resampling calls); reported: time and the largest difference between the two outputs.
Data: a 24 × 512 × 512 float volume (BHSD-like in-plane size) and masks with 1, 30 and 300 blobs.
Prints one line per job with the median time of `--repeats` runs (and, for resampling, the peak of
the memory numpy allocates, from tracemalloc); nothing is written.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import tracemalloc


def _median_s(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="OMP threads (scipy and skimage here are single-threaded)")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import scipy
    import skimage
    from scipy import ndimage
    from skimage.measure import label, regionprops
    from skimage.transform import resize

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs; scipy {scipy.__version__}, skimage {skimage.__version__}; "
          f"median of {args.repeats}")
    rng = np.random.default_rng(0)
    shape = (24, 512, 512)
    structure = ndimage.generate_binary_structure(3, 3)
    for blobs in (1, 30, 300):
        mask = np.zeros(shape, bool)
        for _ in range(blobs):
            z, y, x = rng.integers(2, 22), rng.integers(20, 492), rng.integers(20, 492)
            r = int(rng.integers(3, 15))
            mask[z - 2:z + 2, y - r:y + r, x - r:x + r] = True

        def with_scipy():
            components, count = ndimage.label(mask, structure=structure)
            sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
            boxes = [tuple((s.start, s.stop) for s in where) for where in ndimage.find_objects(components)]
            return sorted(zip(sizes.tolist(), boxes))

        def with_skimage():
            regions = regionprops(label(mask, connectivity=3))
            return sorted((int(r.area), tuple(zip(r.bbox[:3], r.bbox[3:]))) for r in regions)

        scipy_s, a = _median_s(with_scipy, args.repeats)
        skimage_s, b = _median_s(with_skimage, args.repeats)
        print(f"components, {blobs:>3} blob(s), {len(a)} components: scipy {scipy_s * 1000:7.1f} ms, skimage "
              f"{skimage_s * 1000:7.1f} ms ({skimage_s / scipy_s:.2f}x), same components, sizes and boxes: {a == b}")

    volume = rng.normal(size=shape).astype(np.float32)
    labels = (rng.random(shape) > 0.98).astype(np.uint8)
    target = (24, 384, 384)  # in-plane 0.45 -> 0.6 mm, say
    zoom = np.array(target) / np.array(shape)
    for name, array, order in (("image, cubic", volume, 3), ("labels, nearest", labels, 0)):
        scipy_s, a = _median_s(lambda: ndimage.zoom(array, zoom, order=order, mode="nearest", grid_mode=True,
                                                    prefilter=order > 1), args.repeats)
        skimage_s, b = _median_s(lambda: resize(array, target, order=order, mode="edge", anti_aliasing=False,
                                                preserve_range=True).astype(array.dtype), args.repeats)
        difference = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
        share = float((a != b).mean())
        peaks = []
        for function in (lambda: ndimage.zoom(array, zoom, order=order, mode="nearest", grid_mode=True, prefilter=order > 1),
                         lambda: resize(array, target, order=order, mode="edge", anti_aliasing=False,
                                        preserve_range=True).astype(array.dtype)):
            tracemalloc.start()
            function()
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
        print(f"resample {name}: scipy {scipy_s * 1000:7.1f} ms, skimage {skimage_s * 1000:7.1f} ms "
              f"({skimage_s / scipy_s:.2f}x), largest difference {difference:.3g}, voxels differing {share:.2%}; "
              f"peak memory scipy {peaks[0]:.0f} MiB, skimage {peaks[1]:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
