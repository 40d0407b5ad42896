"""The k-means both tokenizers share: seeded MiniBatchKMeans on one thread, and nearest-centroid
assignment.

One thread, because the issue asks that the same manifest, params and seed give the same dataset
hash: OpenMP reductions over a machine-dependent number of threads can change the last bits of a
centroid and with them a few assignments.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from imagintalk.errors import DataError


def fit_kmeans(x: np.ndarray, k: int, seed: int, batch_size: int, max_iter: int, n_init: int,
               what: str = "k-means") -> tuple[np.ndarray, float]:
    """Centroids float32 (k, D) of rows ``x`` and the mean squared distance to them."""
    from sklearn.cluster import MiniBatchKMeans

    x = np.ascontiguousarray(x, np.float32)
    if len(x) < k:
        raise DataError(what, f"{len(x)} training frames are fewer than the {k} clusters asked for")
    with threadpool_limits(limits=1):
        km = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=min(batch_size, len(x)),
                             max_iter=max_iter, n_init=n_init, compute_labels=False)
        km.fit(x)
    centroids = km.cluster_centers_.astype(np.float32)
    _, dist = assign(x, centroids)
    return centroids, float(dist.mean())


def assign(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid per row (int64) and its squared distance, in float64 so ties do not depend
    on BLAS summation order."""
    x64 = np.asarray(x, np.float64)
    c64 = np.asarray(centroids, np.float64)
    d = (x64 ** 2).sum(1)[:, None] - 2.0 * x64 @ c64.T + (c64 ** 2).sum(1)[None, :]
    idx = d.argmin(1)
    return idx, np.maximum(d[np.arange(len(x64)), idx], 0.0)


def cap_rows(x: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """At most ``max_rows`` rows, a seeded uniform sample kept in time order."""
    if len(x) <= max_rows:
        return x
    keep = np.sort(np.random.default_rng(seed).choice(len(x), size=max_rows, replace=False))
    return x[keep]
